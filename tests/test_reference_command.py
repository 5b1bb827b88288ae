"""``openmm-timewarp reference``: a short run writes a reference, a longer target resumes it, bad input fails early."""

import json

import netCDF4
import numpy as np
import pytest

from openmm_timewarp import cli
from openmm_timewarp.lab.analysis.peptide import PeptideObservables
from openmm_timewarp.lab.analysis.reference import load_reference
from openmm_timewarp.lab import reference_run as ref
from openmm_timewarp.lab.reference_run import ReferenceSettings
from openmm_timewarp.lab.molecule import load_molecule
from openmm_timewarp.lab.samplers.replica_exchange import replica_count

# 4 replicas; one checkpoint (20 iterations, 10 ps per replica) per 0.01 ns
SHORT = ["reference", "A", "--capped", "--replicas", "4", "--burn-in-ns", "0", "--no-progress"]

WATER_PDB = """\
HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O
HETATM    2  H1  HOH A   1       0.957   0.000   0.000  1.00  0.00           H
HETATM    3  H2  HOH A   1      -0.240   0.927   0.000  1.00  0.00           H
END
"""


def reference_molecule():
    return load_molecule("A", capped=True).topology


def _stored(directory):
    with netCDF4.Dataset(str(directory / ref.STORAGE_FILE), "r") as storage:
        last = int(storage.variables["last_iteration"][0])
        positions = np.asarray(storage.variables["positions"][:last + 1])
        states = np.asarray(storage.variables["states"][:last + 1])
    return last, positions, states


def test_short_run_writes_a_reference_and_a_longer_target_resumes_it(tmp_path, capsys):
    out = tmp_path / "ref"
    assert cli.main(SHORT + ["--ns", "0.01", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ALA2:phi_positive" in printed and "reference.json" in printed

    reference = load_reference(out)
    assert reference.molecule == "ACE-A-NME" and reference.temperature_K == 310.0
    partition = ["ALA2:beta", "ALA2:alphaR", "ALA2:phi_positive"]
    assert sum(reference.population(s) for s in partition) == pytest.approx(1.0)
    assert all(np.isfinite(reference.stderr(s)) for s in partition)
    # MBAR (the default): all 4 replicas' 20 iterations count
    assert reference.num_samples == 80 and reference.simulated_ns == pytest.approx(0.01)
    provenance = reference.provenance
    assert provenance["estimator"] == "mbar" and 1.0 <= provenance["kish_effective_samples"] <= 80.0
    assert provenance["replicas"] == 4 and len(provenance["swap_acceptance"]) == 3
    assert provenance["temperatures_K"][0] == pytest.approx(310.0)
    assert provenance["temperatures_K"][-1] == pytest.approx(600.0)
    assert provenance["wall_time_s"] > 0 and "version" in json.dumps(provenance)
    with np.load(out / ref.TORSIONS_FILE) as torsions:
        assert torsions["torsions"].dtype == np.float32 and torsions["torsions"].shape == (20, 2)
    first_last, first_positions, first_states = _stored(out)
    assert first_last == 20
    # what MBAR reads: replica r's reduced potential at temperature k is U_r / (k_B T_k)
    data = ref.read_run(out, PeptideObservables(reference_molecule()), first_last)
    energies = data.reduced_potentials * np.asarray(provenance["temperatures_K"])
    assert data.reduced_potentials.shape == (21, 4, 4)
    np.testing.assert_allclose(energies, energies[..., :1].repeat(4, axis=2), rtol=1e-9)
    assert np.ptp(energies[..., 0], axis=1).max() > 0  # replicas differ

    assert cli.main(SHORT + ["--ns", "0.02", "-o", str(out)]) == 0
    last, positions, states = _stored(out)
    assert last == 40
    np.testing.assert_array_equal(positions[:first_last + 1], first_positions)
    np.testing.assert_array_equal(states[:first_last + 1], first_states)
    assert load_reference(out).num_samples == 160
    assert json.loads((out / ref.RUN_FILE).read_text())["wall_s"] >= provenance["wall_time_s"]

    # the estimator is analysis only: the finished run is re-analysed, not extended
    assert cli.main(SHORT + ["--ns", "0.02", "--estimator", "target", "-o", str(out)]) == 0
    assert "samples at 310 K only (40)" in capsys.readouterr().out
    assert _stored(out)[0] == 40
    target_only = load_reference(out)
    assert target_only.num_samples == 40 and target_only.provenance["estimator"] == "target"
    assert sum(target_only.population(s) for s in partition) == pytest.approx(1.0)


def test_changed_settings_do_not_continue_a_run(tmp_path, capsys):
    out = tmp_path / "ref"
    assert cli.main(SHORT + ["--ns", "0.01", "-o", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(SHORT[:3] + ["--replicas", "5"] + SHORT[5:] + ["--ns", "0.02", "-o", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err
    assert _stored(out)[0] == 20


def test_non_peptide_input_fails_before_any_file_is_written(tmp_path, capsys):
    pdb = tmp_path / "water.pdb"
    pdb.write_text(WATER_PDB)
    out = tmp_path / "ref"
    assert cli.main(["reference", str(pdb), "-o", str(out), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "openmm-timewarp reference: error:" in error and "HOH" in error
    assert not out.exists()


def test_unknown_preset_and_bad_lengths_fail_early(tmp_path, capsys):
    out = tmp_path / "ref"
    assert cli.main(["reference", "A", "--capped", "--preset", "nonsense", "-o", str(out)]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert cli.main(["reference", "A", "--capped", "--ns", "1", "--burn-in-ns", "2", "-o", str(out)]) == 2
    assert "burn-in" in capsys.readouterr().err
    assert not out.exists()


def test_default_replicas_grow_with_size_from_eight():
    assert replica_count(22, 310.0, 600.0) == 8  # alanine dipeptide
    assert replica_count(42, 310.0, 600.0) == 8  # ACE-AAA-NME
    assert replica_count(200, 310.0, 600.0) > 8
    assert ReferenceSettings().iterations_in(0.011) == 40  # rounded up to a checkpoint


def test_mbar_on_a_run_with_a_nan_energy_says_what_to_do():
    reduced = np.ones((3, 2, 2))
    reduced[2, 1, 0] = np.nan
    data = ref.RunData(np.array([[0, 1], [1, 0], [0, 1]]), np.zeros((3, 2, 2)), [0.5], reduced)
    with pytest.raises(ValueError, match="NaN or infinite energy.*--estimator target"):
        data.mbar_log_weights(1)
