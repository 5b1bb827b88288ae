"""``openmm-timewarp demo``: argument handling, the clear error without the model, a very short run."""

import json

import pytest

from openmm_timewarp import cli


@pytest.fixture
def tiny_flow(tmp_path):
    import torch

    from openmm_timewarp.flow.cartesian.export import export_flow
    from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow

    torch.manual_seed(1)
    flow = TimewarpFlow(FlowConfig(embedding=8, hidden=12, layers=2, length_scales=[0.1, 0.3], position_scale=0.002))
    path = str(tmp_path / "tiny.pt")
    export_flow(flow, path, temperature=310.0, tau_ps=0.0, force_field="amber99sbildn-obc", num_atoms=22)
    return path


def test_demo_without_the_shipped_model_says_what_to_do(monkeypatch, capsys, tmp_path):
    import openmm_timewarp.models as models

    monkeypatch.setattr(models, "list_models", lambda: [])
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 2
    error = capsys.readouterr().err
    assert "'alanine-dipeptide' is not installed" in error and "--flow" in error
    assert not (tmp_path / "demo").exists()


def test_demo_rejects_bad_arguments(capsys, tmp_path, tiny_flow):
    assert cli.main(["demo", "--minutes", "0", "--flow", tiny_flow, "--out", str(tmp_path)]) == 2
    assert "--minutes" in capsys.readouterr().err
    assert cli.main(["demo", "--flow", str(tmp_path / "missing.pt"), "--out", str(tmp_path)]) == 2
    assert "neither a file nor an installed model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["demo", "--md", "md-3fs"])


def test_demo_runs_end_to_end(tiny_flow, tmp_path, capsys):
    out = tmp_path / "demo"
    code = cli.main(["demo", "--minutes", "0.02", "--flow", tiny_flow, "--cores", "1", "--md", "md-2fs-hmr",
                     "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    for text in ("acceptance", "ESS/s sin_phi", "speed-up", "State populations", "reference", "timewarp-mh"):
        assert text in printed, text
    assert (out / "ramachandran.png").stat().st_size > 1000
    with open(out / "benchmark.json", encoding="utf-8") as handle:
        result = json.load(handle)
    assert list(result["methods"]) == ["md-2fs-hmr", "timewarp-mh"]
    assert set(result["speed_ups"]) == {"timewarp-mh"}
