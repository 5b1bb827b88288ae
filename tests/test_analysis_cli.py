"""``openmm-timewarp analyze`` on small DCD files of the model dipeptide; the Ramachandran plot helper."""

import json

import numpy as np
import pytest

from openmm_timewarp.analysis import ramachandran_plot, tica_plot
from openmm_timewarp.analysis.torsions import dcd_frame_interval_ps

from test_analysis_geometry import dipeptide, dipeptide_topology, peptide, peptide_topology

STATE_CENTRES = np.array([(-80.0, 150.0), (-70.0, -30.0), (60.0, 40.0), (70.0, -80.0)])


def _torsion_walk(states, frames, seed):
    """Torsions that dwell 40 frames at a time around the centres of ``states``."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.choice(states, size=frames // 40 + 1), 40)[:frames]
    angles = STATE_CENTRES[labels] + rng.normal(scale=8.0, size=(frames, 2))
    return angles[:, 0], angles[:, 1]


def _write_run(directory, name, states, frames, seed):
    import openmm
    from openmm import app, unit

    topology = dipeptide_topology()
    xyz = dipeptide(*_torsion_walk(states, frames, seed))
    pdb = directory / "dipeptide.pdb"
    if not pdb.exists():
        import mdtraj

        mdtraj.Trajectory(xyz[:1].astype(np.float32), topology).save_pdb(str(pdb))
    path = directory / f"{name}.dcd"
    with open(path, "wb") as handle:
        # 2 fs steps, a frame every 250 steps: 0.5 ps per frame in the header
        dcd = app.DCDFile(handle, topology.to_openmm(), 0.002 * unit.picoseconds, 0, 250)
        for frame in xyz:
            dcd.writeModel(openmm.unit.Quantity(frame, unit.nanometer))
    return path, pdb


def test_analyze_command_writes_tables_plots_and_json(tmp_path, capsys):
    from openmm_timewarp.cli import main

    md, pdb = _write_run(tmp_path, "md", [0, 1], 2000, 1)
    fast, _ = _write_run(tmp_path, "fast", [0, 1, 2, 3], 2000, 2)
    assert dcd_frame_interval_ps(md) == pytest.approx(0.5, rel=1e-5)
    out = tmp_path / "out"
    code = main(["analyze", str(md), str(fast), "--top", str(pdb), "--out", str(out), "--reference",
                 "--wall-seconds", "100", "10", "--block-ps", "100", "--tica", "--tica-lag", "5"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "beta_C7eq" in printed and "ESS" in printed and "Jensen-Shannon" in printed
    assert "missed states the reference visits: alphaL, C7ax" in printed
    for name in ("ramachandran.png", "tica.png", "analysis.json"):
        assert (out / name).stat().st_size > 1000
    with open(out / "analysis.json", encoding="utf-8") as handle:
        summary = json.load(handle)
    md_report, fast_report = summary["runs"]["md"], summary["runs"]["fast"]
    assert md_report["sample_interval_ps"] == pytest.approx(0.5, rel=1e-5)
    assert md_report["populations"]["populations"]["alphaL"] == 0.0
    assert md_report["populations"]["free_energy_kT"]["alphaL"] == "inf"
    assert fast_report["populations"]["populations"]["alphaL"] > 0.0
    assert "TIC0" in fast_report["ess"] and "ess_blocks" in md_report["ess"]["indicator_C7ax"]
    assert md_report["populations"]["block_size"] == 200
    speed = summary["speed_up"]["fast"]
    assert speed["baseline"] == "md" and speed["baseline_missed_states"] == ["alphaL", "C7ax"]
    assert speed["ess"]["indicator_alphaL"]["censored"] is True
    assert speed["ess"]["indicator_alphaL"]["text"].startswith("> ")
    assert speed["ess"]["indicator_beta_C7eq"]["value"] > 1.0


def test_analyze_command_on_a_longer_peptide_with_tica(tmp_path, capsys):
    import mdtraj
    import openmm
    from openmm import app, unit

    from openmm_timewarp.cli import main

    topology = peptide_topology(3)
    pdb = tmp_path / "peptide.pdb"
    paths = []
    for seed in (1, 2):
        columns = [_torsion_walk([0, 1, 2], 600, seed * 10 + r) for r in range(3)]
        phi = np.stack([c[0] for c in columns], axis=1)
        psi = np.stack([c[1] for c in columns], axis=1)
        xyz = peptide(phi, psi)
        if not pdb.exists():
            mdtraj.Trajectory(xyz[:1].astype(np.float32), topology).save_pdb(str(pdb))
        paths.append(tmp_path / f"run{seed}.dcd")
        with open(paths[-1], "wb") as handle:
            dcd = app.DCDFile(handle, topology.to_openmm(), 0.001 * unit.picoseconds, 0, 1000)
            for frame in xyz:
                dcd.writeModel(openmm.unit.Quantity(frame, unit.nanometer))
    out = tmp_path / "out"
    code = main(["analyze", *map(str, paths), "--top", str(pdb), "--out", str(out), "--tica-fit", str(paths[0]),
                 "--tica-lag", "5", "--labels", "md", "other"])
    assert code == 0
    assert "sin_phi_2" in capsys.readouterr().out
    with open(out / "analysis.json", encoding="utf-8") as handle:
        summary = json.load(handle)
    report = summary["runs"]["other"]
    assert "populations" not in report and report["sample_interval_ps"] == pytest.approx(1.0, rel=1e-5)
    assert {"sin_phi_0", "cos_psi_2", "TIC0", "TIC1"} <= set(report["ess"])
    assert (out / "tica.png").stat().st_size > 1000 and (out / "ramachandran.png").stat().st_size > 1000


def test_analyze_command_reference_file_and_bad_arguments(tmp_path, capsys):
    from openmm_timewarp.analysis.reference import PACKAGED_REFERENCE
    from openmm_timewarp.cli import main

    md, pdb = _write_run(tmp_path, "md", [0, 1], 200, 3)
    assert main(["analyze", str(md), "--top", str(pdb), "--out", str(tmp_path), "--wall-seconds", "1", "2"]) == 2
    assert main(["analyze", str(md), "--top", str(pdb), "--out", str(tmp_path), "--reference-file",
                 str(PACKAGED_REFERENCE), "--frame-ps", "2"]) == 0
    with open(tmp_path / "analysis.json", encoding="utf-8") as handle:
        report = json.load(handle)["runs"]["md"]
    assert report["reference"]["missed_states"] == ["alphaL", "C7ax"] and report["sample_interval_ps"] == 2.0


def test_plots_share_axes_and_colour_scale(tmp_path):
    rng = np.random.default_rng(0)
    runs = {"a": _torsion_walk([0, 1], 3000, 1), "b": _torsion_walk([0, 1, 2], 3000, 2)}
    path = ramachandran_plot(runs, tmp_path / "rama.png", max_kT=8.0)
    assert (tmp_path / "rama.png").stat().st_size > 1000 and path.endswith("rama.png")
    tica_plot({"a": rng.normal(size=(500, 2)), "b": rng.normal(size=(500, 2)) + 1.0}, tmp_path / "tica.png")
    assert (tmp_path / "tica.png").stat().st_size > 1000
