"""``openmm-timewarp demo``: a very short run end to end, and the clear errors for bad arguments."""

import json

import pytest

import openmm_timewarp
from openmm_timewarp import cli


def test_demo_rejects_a_non_positive_duration(tmp_path, capsys):
    for minutes in ("0", "-1"):
        assert cli.main(["demo", "--minutes", minutes, "--out", str(tmp_path / "demo"), "--no-progress"]) == 2
        assert "--minutes must be positive" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_demo_rejects_an_unknown_model(tmp_path, capsys):
    assert cli.main(["demo", "--flow", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "demo")]) == 2
    assert "neither a file nor an installed model" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def shipped_model():
    return next((name for name in ("alanine-dipeptide", "alanine-dipeptide-cartesian")
                 if name in openmm_timewarp.list_models()), None)


@pytest.mark.skipif(shipped_model() is None, reason="no shipped alanine-dipeptide model is installed "
                                                    "(openmm_timewarp.list_models() has neither name)")
def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--minutes", "0.05", "--flow", shipped_model(), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for text in ("Timewarp MH moves", "3 s per method", "acceptance", "ESS/s block", "Populations", "reference",
                 "First visits", "Time to accuracy", "md-1fs", "md-2fs-hmr", "timewarp-mh"):
        assert text in printed, text
    result = json.loads((out / "benchmark.json").read_text())
    assert list(result["methods"]) == ["md-1fs", "md-2fs-hmr", "timewarp-mh"]
    assert result["title"] == "alanine dipeptide, 310 K" and result["settings"]["budget_s"] == pytest.approx(3.0)
    assert result["settings"]["options"]["flow"].endswith(".pt")
    timewarp = result["methods"]["timewarp-mh"]
    assert timewarp["role"] == "timewarp" and timewarp["boltzmann"] and timewarp["samples"] >= timewarp["replicas"]
    assert timewarp["statistics"]["proposals"] > 0 and 0.0 <= timewarp["statistics"]["acceptance_rate"] <= 1.0
    for summary in result["methods"].values():
        populations = [summary["states"][s]["population"] for s in summary["checked_states"]]
        assert summary["checked_states"] == ["ALA2:beta", "ALA2:alphaR", "ALA2:phi_positive"]
        assert sum(populations) == pytest.approx(1.0)
    assert set(result["comparisons"]["timewarp-mh"]["speed_up"]) == set(timewarp["states"])
    for name in ("ramachandran-ALA2.png", "error_vs_time.png", "ess_per_s.png", "samples.npz"):
        assert (out / name).stat().st_size > 1000, name
