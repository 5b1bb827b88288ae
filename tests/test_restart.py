"""Exact restart through save_checkpoint/load_checkpoint, and the TimewarpReporter."""

import io

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator, TimewarpReporter, load_checkpoint, save_checkpoint
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide
from openmm_timewarp.testing import DriftGaussianFlow

TOPOLOGY, POSITIONS = load_alanine_dipeptide()
SYSTEM = create_system(TOPOLOGY)


def random_walk():
    return torch.jit.script(DriftGaussianFlow(sigma=0.001, drift=0.0, coupling=0.0, temperature=310.0))


def simulation(seed=3, flow=random_walk, moveInterval=5):
    integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond, flow=flow(),
                                    topology=TOPOLOGY, moveInterval=moveInterval, proposalsPerMove=4, batchSize=3)
    integrator.setRandomNumberSeed(seed)
    sim = app.Simulation(TOPOLOGY, SYSTEM, integrator, openmm.Platform.getPlatformByName("Reference"))
    sim.context.setPositions(POSITIONS)
    sim.context.setVelocitiesToTemperature(310 * unit.kelvin, seed)
    return sim


def positions(sim):
    return sim.context.getState(getPositions=True).getPositions(asNumpy=True)._value


@pytest.mark.parametrize("flow, move_interval", [(random_walk, 5), (lambda: "alanine-dipeptide", 5),
                                                  (lambda: "alanine-dipeptide", 0)],
                         ids=["random-walk", "shipped-with-md", "shipped-moves-only"])
def test_split_run_repeats_uninterrupted_run_bit_for_bit(tmp_path, flow, move_interval):
    """The shipped model is state-independent: its buffer, cached density and atom mapping must restart too."""
    whole = simulation(flow=flow, moveInterval=move_interval)
    whole.step(200)
    expected, expected_stats = positions(whole), whole.integrator.getStatistics()
    del whole

    first = simulation(flow=flow, moveInterval=move_interval)
    first.step(100)
    save_checkpoint(first, str(tmp_path / "run.chk"))
    del first
    # a fresh process would build the same objects; the seed is restored
    second = simulation(seed=99, flow=flow, moveInterval=move_interval)
    load_checkpoint(second, str(tmp_path / "run.chk"))
    second.step(100)
    assert np.array_equal(positions(second), expected)
    stats = second.integrator.getStatistics()
    assert stats["accepted"] == expected_stats["accepted"] > 0
    assert stats["proposals"] == expected_stats["proposals"]


def test_openmm_checkpoint_alone_does_not_restore_the_moves(tmp_path):
    """Why the package's checkpoint exists: OpenMM's own misses the moves' random stream."""
    whole = simulation()
    whole.step(200)
    expected = positions(whole)
    del whole
    first = simulation()
    first.step(100)
    checkpoint = first.context.createCheckpoint()
    del first
    second = simulation(seed=99)
    second.context.loadCheckpoint(checkpoint)
    second.step(100)
    assert not np.array_equal(positions(second), expected)


def test_load_checkpoint_rejects_other_files(tmp_path):
    path = tmp_path / "other.chk"
    path.write_bytes(simulation().context.createCheckpoint())
    with pytest.raises(ValueError, match="not an openmm-timewarp checkpoint"):
        load_checkpoint(simulation(), str(path))


def test_reporter_rows_add_up_to_the_statistics():
    sim = simulation()
    out = io.StringIO()
    sim.reporters.append(TimewarpReporter(out, 50))
    sim.step(200)
    lines = out.getvalue().strip().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    assert header[0] == "step" and [int(r[0]) for r in rows] == [50, 100, 150, 200]
    column = {name: i for i, name in enumerate(header)}
    stats = sim.integrator.getStatistics()
    assert sum(int(r[column["moves"]]) for r in rows) == stats["moves"] == 40
    assert sum(int(r[column["proposals"]]) for r in rows) == stats["proposals"]
    assert sum(int(r[column["accepted"]]) for r in rows) == stats["accepted"]
