"""``openmm-timewarp analyze`` on short DCD files of built peptides; the Ramachandran and TICA plot helpers."""

import json
import math

import numpy as np
import pytest

from openmm_timewarp.lab.analysis import (
    PeptideObservables,
    effective_sample_size,
    jensen_shannon_divergence,
    log_ratio_error,
    ramachandran_plot,
    reference_from_samples,
    save_reference,
    state_estimates,
    tica_plot,
    torsion_histogram,
    z_score,
)
from openmm_timewarp.lab.analysis.torsions import dcd_frame_interval_ps

# (phi, psi) in degrees at the centre of each Ramachandran region of a standard residue
CENTRES = {"beta": (-80.0, 150.0), "alphaR": (-70.0, -30.0), "alphaL": (60.0, 40.0)}
_BUILT = {}


def conformation(sequence, states):
    """Topology and positions (nm) of the capped peptide with each residue at the centre of its state."""
    from openmm_timewarp.lab import systems

    key = (sequence, tuple(states))
    if key not in _BUILT:
        phi = [CENTRES[s][0] for s in states]
        psi = [CENTRES[s][1] for s in states]
        topology, positions = systems.build_peptide(sequence, capped=True, phi=phi, psi=psi)
        _BUILT[key] = topology, np.asarray(positions.value_in_unit(positions.unit))
    return _BUILT[key]


def write_run(directory, name, sequence, frames):
    """A DCD (0.5 ps per frame in its header) of the capped peptide through ``frames`` (a state per residue),
    and the topology PDB; returns both paths."""
    import openmm
    from openmm import app, unit

    from openmm_timewarp.lab import systems

    topology, first = conformation(sequence, frames[0])
    pdb = directory / f"{sequence}.pdb"
    if not pdb.exists():
        systems.write_pdb(topology, first * unit.nanometer, str(pdb))
    path = directory / f"{name}.dcd"
    with open(path, "wb") as handle:
        dcd = app.DCDFile(handle, topology, 0.002 * unit.picoseconds, 0, 250)  # 250 steps of 2 fs per frame
        for states in frames:
            dcd.writeModel(openmm.unit.Quantity(conformation(sequence, states)[1], unit.nanometer))
    return path, pdb


# 80 frames of ACE-AA-NME dwelling 10 frames in each joint state of beta and alphaR
MD_FRAMES = ([("beta", "beta")] * 10 + [("alphaR", "beta")] * 10 + [("beta", "alphaR")] * 10 +
             [("alphaR", "alphaR")] * 10) * 2
FAST_FRAMES = [("beta", "beta"), ("alphaL", "alphaR"), ("alphaR", "beta"), ("alphaL", "alphaL")] * 20


def read_json(out):
    with open(out / "analysis.json", encoding="utf-8") as handle:
        return json.load(handle)


def test_analyze_a_two_residue_peptide(tmp_path, capsys):
    from openmm_timewarp.cli import main

    md, pdb = write_run(tmp_path, "md", "AA", MD_FRAMES)
    fast, _ = write_run(tmp_path, "fast", "AA", FAST_FRAMES)
    assert dcd_frame_interval_ps(md) == pytest.approx(0.5, rel=1e-5)
    out = tmp_path / "out"
    code = main(["analyze", str(md), str(fast), "--top", str(pdb), "--out", str(out), "--labels", "MD", "TW",
                 "--wall-seconds", "100", "10", "--tica", "--tica-lag", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "ACE-AA-NME: residues ALA2, ALA3; reference: none" in printed
    for header in ("== MD: 80 frames of 0.5 ps", "== TW: 80 frames of 0.5 ps", "ALA2 ", "ALA3 ", "joint ",
                   "  alphaR|beta ", "  phi_positive|phi_positive ", "TICA: TIC0"):
        assert header in printed
    for name in ("ramachandran_ALA2.png", "ramachandran_ALA3.png", "tica.png", "analysis.json"):
        assert (out / name).stat().st_size > 1000

    summary = read_json(out)
    assert summary["molecule"] == "ACE-AA-NME" and summary["residues"] == ["ALA2", "ALA3"]
    assert summary["reference"] is None
    md_report, fast_report = summary["runs"]["MD"], summary["runs"]["TW"]
    assert md_report["frame_ps"] == pytest.approx(0.5, rel=1e-5) and md_report["frames"] == 80
    assert "missed_states" not in md_report and "jsd" not in md_report
    ala2 = md_report["residues"]["ALA2"]
    assert list(ala2) == ["ALA2:beta", "ALA2:alphaR", "ALA2:phi_positive", "ALA2:alphaL", "ALA2:C7ax"]
    assert ala2["ALA2:beta"]["population"] == 0.5 and ala2["ALA2:phi_positive"]["population"] == 0.0
    assert md_report["joint_states"]["beta|alphaR"]["population"] == 0.25
    assert sum(e["population"] for e in md_report["joint_states"].values()) == pytest.approx(1.0)
    # first visits: frame k is at (k + 1) x 0.5 ps, and (k + 1) x 100 s / 80 of wall-clock time
    assert ala2["ALA2:beta"]["first_visit_ps"] == pytest.approx(0.5, rel=1e-5)
    assert ala2["ALA2:alphaR"]["first_visit_ps"] == pytest.approx(5.5, rel=1e-5)
    assert md_report["residues"]["ALA3"]["ALA3:alphaR"]["first_visit_ps"] == pytest.approx(10.5, rel=1e-5)
    assert ala2["ALA2:alphaR"]["first_visit_wall_s"] == pytest.approx(11 * 100.0 / 80)
    assert ala2["ALA2:alphaL"]["first_visit_ps"] is None
    # errors and ESS are those of the estimators on the run's indicators
    indicator = np.array([s[0] == "alphaR" for s in MD_FRAMES])
    expected = state_estimates({"s": indicator}, num_blocks=20)["s"]
    assert ala2["ALA2:alphaR"]["stderr"] == pytest.approx(expected["stderr"], rel=1e-9)
    assert ala2["ALA2:alphaR"]["ess_block"] == pytest.approx(expected["ess"], rel=1e-9)
    assert ala2["ALA2:alphaR"]["ess_window"] == pytest.approx(effective_sample_size(indicator.astype(float)))
    assert ala2["ALA2:alphaR"]["ess_block_per_s"] == pytest.approx(expected["ess"] / 100.0, rel=1e-9)
    assert ala2["ALA2:alphaL"]["ess_block"] == 0.0
    # the second run visits alphaL in both residues: populations by counting frames
    fast_ala3 = fast_report["residues"]["ALA3"]
    assert fast_ala3["ALA3:alphaL"]["population"] == 0.25 and fast_ala3["ALA3:phi_positive"]["population"] == 0.25
    assert fast_report["residues"]["ALA2"]["ALA2:alphaL"]["population"] == 0.5
    assert fast_report["joint_states"]["phi_positive|alphaR"]["population"] == 0.25
    assert fast_report["residues"]["ALA2"]["ALA2:alphaL"]["ess_window_per_s"] == pytest.approx(
        fast_report["residues"]["ALA2"]["ALA2:alphaL"]["ess_window"] / 10.0)
    assert set(fast_report["tics"]) == {"TIC0", "TIC1"}


def _reference_values(observables, n, seed):
    """Torsions of a reference for ACE-AA-NME: ALA2 beta/alphaR/alphaL 0.5/0.45/0.05, ALA3 beta/alphaR 0.6/0.4."""
    rng = np.random.default_rng(seed)
    second = rng.choice(["beta", "alphaR", "alphaL"], size=n, p=[0.5, 0.45, 0.05])
    third = rng.choice(["beta", "alphaR"], size=n, p=[0.6, 0.4])
    columns = {"phi2": [CENTRES[s][0] for s in second], "psi2": [CENTRES[s][1] for s in second],
               "phi3": [CENTRES[s][0] for s in third], "psi3": [CENTRES[s][1] for s in third]}
    return np.stack([columns[name] for name in observables.names], axis=1) + rng.normal(scale=10.0, size=(n, 4))


def test_analyze_against_a_reference_of_the_same_peptide(tmp_path, capsys):
    import mdtraj

    from openmm_timewarp.cli import main

    md, pdb = write_run(tmp_path, "md", "AA", MD_FRAMES)
    observables = PeptideObservables(conformation("AA", MD_FRAMES[0])[0])
    reference = reference_from_samples(observables, _reference_values(observables, 4000, 7), molecule="ACE-AA-NME",
                                       temperature_K=300.0, preset="test", num_blocks=10)
    folder = tmp_path / "ref"
    folder.mkdir()
    save_reference(reference, folder)
    out = tmp_path / "out"
    assert main(["analyze", str(md), "--top", str(pdb), "--out", str(out), "--reference", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "reference: ACE-AA-NME at 300 K" in printed and "|ln p/pr|" in printed
    assert "missed states (reference >= 1%, never visited): ALA2:phi_positive, ALA2:alphaL, " in printed
    report = read_json(out)["runs"]["md"]
    entry = report["residues"]["ALA2"]["ALA2:alphaR"]
    assert entry["reference"] == reference.population("ALA2:alphaR")
    assert entry["error_kT"] == pytest.approx(log_ratio_error(0.5, reference.population("ALA2:alphaR")))
    assert entry["z"] == pytest.approx(z_score(0.5, entry["stderr"], reference.population("ALA2:alphaR"),
                                               reference.stderr("ALA2:alphaR")))
    assert report["residues"]["ALA2"]["ALA2:alphaL"]["error_kT"] == "inf"
    missed_joint = {s for s, e in reference.joint_states.items() if e["population"] >= 0.01 and "phi_positive" in s}
    assert set(report["missed_states"]) == {"ALA2:phi_positive", "ALA2:alphaL"} | missed_joint
    assert "phi_positive|beta" in report["joint_states"]  # the reference's joint states are reported too
    values = observables.values(mdtraj.load(str(md), top=str(pdb)).xyz.astype(float))
    for residue, (phi, psi) in {"ALA2": (0, 1), "ALA3": (2, 3)}.items():
        run = torsion_histogram(values[:, phi], values[:, psi], 36)
        assert report["jsd"][residue] == pytest.approx(jensen_shannon_divergence(run, reference.histogram(residue, 36)))
    assert 0.0 < report["jsd"]["ALA2"] < math.log(2.0)
    assert (out / "ramachandran_ALA3.png").stat().st_size > 1000


def test_alanine_dipeptide_is_compared_with_the_packaged_reference(tmp_path, capsys):
    from openmm_timewarp.cli import main

    frames = [("beta",)] * 5 + [("alphaR",)] * 5 + [("beta",)] * 5 + [("alphaR",)] * 5
    run, pdb = write_run(tmp_path, "run", "A", frames)
    out = tmp_path / "out"
    assert main(["analyze", str(run), "--top", str(pdb), "--out", str(out), "--frame-ps", "2", "--stride", "2"]) == 0
    printed = capsys.readouterr().out
    assert "reference: ACE-A-NME at 310 K" in printed and "packaged" in printed
    assert "missed states (reference >= 1%, never visited): ALA2:phi_positive, ALA2:alphaL\n" in printed
    summary = read_json(out)
    report = summary["runs"]["run"]
    assert summary["reference"]["molecule"] == "ACE-A-NME" and "joint_states" not in report
    assert report["frames"] == 10 and report["frame_ps"] == 4.0
    assert report["missed_states"] == ["ALA2:phi_positive", "ALA2:alphaL"]  # C7ax holds under 1%
    assert report["residues"]["ALA2"]["ALA2:beta"]["reference"] == pytest.approx(0.5574, abs=1e-4)
    assert set(report["jsd"]) == {"ALA2"}


def test_analyze_refuses_inputs_it_cannot_use(tmp_path, capsys):
    from openmm import app, unit

    from openmm_timewarp.lab.analysis.reference import PACKAGED_REFERENCE
    from openmm_timewarp.cli import main

    md, pdb = write_run(tmp_path, "md", "AA", MD_FRAMES[:20])
    _, dipeptide_pdb = write_run(tmp_path, "dipeptide", "A", [("beta",)] * 3)
    water = tmp_path / "water.pdb"
    topology = app.Topology()
    residue = topology.addResidue("HOH", topology.addChain())
    for name, element in (("O", "O"), ("H1", "H"), ("H2", "H")):
        topology.addAtom(name, app.Element.getBySymbol(element), residue)
    with open(water, "w", encoding="utf-8") as handle:
        app.PDBFile.writeFile(topology, [[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0]] * unit.nanometer, handle)
    out = str(tmp_path / "out")
    capsys.readouterr()

    assert main(["analyze", str(md), "--top", str(pdb), "--out", out, "--reference", str(PACKAGED_REFERENCE)]) == 2
    assert "the reference is for ACE-A-NME, the topology is ACE-AA-NME" in capsys.readouterr().err
    assert main(["analyze", str(md), "--top", str(pdb), "--out", out, "--reference"]) == 2
    assert "ACE-A-NME" in capsys.readouterr().err
    assert main(["analyze", str(md), "--top", str(dipeptide_pdb), "--out", out]) == 2
    assert "has 32 atoms per frame, the topology" in capsys.readouterr().err
    assert main(["analyze", str(md), "--top", str(water), "--out", out]) == 2
    assert "not a peptide" in capsys.readouterr().err
    assert main(["analyze", str(md), "--top", str(pdb), "--out", out, "--wall-seconds", "1", "2"]) == 2
    assert "one --wall-seconds value per trajectory" in capsys.readouterr().err
    assert main(["analyze", str(md), "--top", str(pdb), "--out", out, "--reference", str(tmp_path / "none")]) == 2
    assert "no reference" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_plots_share_axes_and_colour_scale(tmp_path):
    rng = np.random.default_rng(0)
    runs = {"a": (rng.normal(-80, 10, 3000), rng.normal(150, 10, 3000)),
            "b": (rng.normal(60, 10, 3000), rng.normal(40, 10, 3000), rng.random(3000))}
    reference = torsion_histogram(rng.normal(-70, 20, 5000), rng.normal(-30, 20, 5000), 72)
    path = ramachandran_plot(runs, tmp_path / "rama.png", reference_counts=reference, max_kT=8.0)
    assert (tmp_path / "rama.png").stat().st_size > 1000 and path.endswith("rama.png")
    tica_plot({"a": rng.normal(size=(500, 2)), "b": rng.normal(size=(500, 2)) + 1.0}, tmp_path / "tica.png")
    assert (tmp_path / "tica.png").stat().st_size > 1000
