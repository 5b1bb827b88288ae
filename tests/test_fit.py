"""``openmm-timewarp fit``: every stage runs, the model works with the integrator, a rerun resumes, bad input fails early."""

import json

import numpy as np
import openmm
import pytest
from openmm import app

from openmm_timewarp import TimewarpIntegrator, load_flow
from openmm_timewarp.cli import main
from openmm_timewarp.lab.fit import STAGES, Fit, FitSettings, choose_seeds, farthest_points, summary
from openmm_timewarp.lab.analysis.peptide import PeptideObservables
from openmm_timewarp.lab.systems import build_peptide, create_system

TINY = FitSettings(minutes=0.5, workers=1, explore_share=0.1, seeds=3, seed_equilibration_ps=1.0,
                   seed_production_ps=2.0, check_seconds=2.0, max_epochs=2,
                   flow={"hidden": 16, "depth": 1, "torsion_layers": 2, "geometry_layers": 1})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fit") / "ACE-A-NME"
    fit = Fit(str(folder), "A", capped=True, settings=TINY, progress=False)
    fit.run()
    return folder, fit


def test_every_stage_runs_and_the_model_drives_the_integrator(fitted):
    folder, fit = fitted
    assert list(fit.record["stages"]) == list(STAGES)
    module, info = load_flow(str(folder / "model.pt"))
    assert info.proposal_independent and info.num_atoms == 22 and info.has_graph
    assert info.recommended_settings["moveInterval"] == 0
    assert fit.record["stages"]["export"]["model"] == "model.pt"  # relative: the folder can move
    assert f"model: {folder / 'model.pt'}" in summary(fit.record, fit.directory)
    check = fit.record["stages"]["check"]
    assert check["mh_steps"] > 0 and set(check["populations"]) == {"ALA2:beta", "ALA2:alphaR", "ALA2:phi_positive"}
    pdb = app.PDBFile(str(folder / "structure.pdb"))
    integrator = TimewarpIntegrator(310, 1.0, 0.002, flow=str(folder / "model.pt"), topology=pdb.topology)
    context = openmm.Context(create_system(pdb.topology, hydrogen_mass=3.0), integrator,
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    integrator.step(3)
    assert integrator.getNumProposals() == 3  # one MH step per move, as the model recommends


def test_a_second_run_resumes_without_redoing_stages(fitted):
    folder, fit = fitted
    before = json.loads((folder / "fit.json").read_text())
    again = Fit(str(folder), "A", capped=True, settings=TINY, progress=False)
    again.run()
    assert json.loads((folder / "fit.json").read_text())["stages"] == before["stages"]


def test_another_molecule_in_the_same_folder_is_refused(fitted):
    folder, _ = fitted
    with pytest.raises(ValueError, match="other settings"):
        Fit(str(folder), "G", capped=True, settings=TINY, progress=False)


def test_input_that_is_not_a_peptide_fails_before_any_work(tmp_path, capsys):
    water = tmp_path / "water.pdb"
    water.write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\n"
                     "HETATM    2  H1  HOH A   1       0.957   0.000   0.000  1.00  0.00           H\n"
                     "HETATM    3  H2  HOH A   1      -0.240   0.927   0.000  1.00  0.00           H\nEND\n")
    assert main(["fit", str(water), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "HOH" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_seeds_cover_every_explored_region():
    topology, _ = build_peptide("A", capped=True)
    observables = PeptideObservables(topology)
    rng = np.random.default_rng(0)
    # explored frames: 400 in one basin, 4 in a rare one; the seeds must include a rare one
    frames = []
    for (phi, psi), count in (((-80, 150), 400), ((60, 40), 4)):
        structure = np.asarray(build_peptide("A", capped=True, phi=phi, psi=psi)[1]._value)
        frames += [structure + rng.normal(0.0, 0.003, structure.shape) for _ in range(count)]
    seeds = choose_seeds(observables, [np.asarray(frames)[:, None]], 8, seed=1)
    states = observables.indicators(observables.values(seeds), extra=False)
    assert states["ALA2:phi_positive"].sum() >= 1 and states["ALA2:beta"].sum() >= 4


def test_farthest_points_picks_spread_out_rows():
    features = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [20.0]])
    chosen = farthest_points(features, 3, np.random.default_rng(3))
    assert {int(np.floor(features[i, 0] / 10)) for i in chosen} == {0, 1, 2}


def test_an_interrupted_train_stage_continues_from_its_checkpoint(fitted):
    folder, _ = fitted
    log = (folder / "train" / "log.csv").read_text()
    record = json.loads((folder / "fit.json").read_text())
    done = record["stages"].pop("train")
    record["running"] = {"train": {"seconds": done["seconds"], "started": "earlier"}}  # as left by a kill
    (folder / "fit.json").write_text(json.dumps(record))
    again = Fit(str(folder), "A", capped=True, settings=TINY, progress=False)
    figures = again.run(until="train")
    assert figures["epochs"] == done["epochs"] and figures["seconds"] >= done["seconds"]
    assert (folder / "train" / "log.csv").read_text() == log  # every epoch was in the checkpoint: none redone
    assert "train" not in again.record["running"]
