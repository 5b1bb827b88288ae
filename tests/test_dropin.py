"""TimewarpIntegrator works unchanged inside an ordinary OpenMM script."""

import io

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide
from openmm_timewarp.testing import DriftGaussianFlow, double_well_system


def small_step_flow():
    """Symmetric small random-walk proposals: accepted often enough on alanine dipeptide."""
    return torch.jit.script(DriftGaussianFlow(sigma=0.0015, drift=0.0, coupling=0.0, temperature=310.0))


@pytest.fixture(scope="module")
def dipeptide():
    topology, positions = load_alanine_dipeptide()
    return topology, create_system(topology), positions


FLOWS = {"random-walk": small_step_flow, "shipped": lambda: "alanine-dipeptide"}


@pytest.fixture(params=sorted(FLOWS))
def flow(request):
    """Every drop-in test runs with an analytic flow and with the shipped (internal-coordinate) model file."""
    return FLOWS[request.param]


def make_simulation(dipeptide, seed=7, flow=small_step_flow, **kwargs):
    topology, system, positions = dipeptide
    settings = dict(moveInterval=10, proposalsPerMove=4, batchSize=4)
    settings.update(kwargs)
    integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond,
                                    flow=flow(), topology=topology, **settings)
    integrator.setRandomNumberSeed(seed)
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(positions)
    simulation.context.setVelocitiesToTemperature(310 * unit.kelvin, seed)
    return simulation


def test_simulation_with_reporters_and_checkpoint(dipeptide, tmp_path, flow):
    simulation = make_simulation(dipeptide, flow=flow)
    integrator = simulation.integrator
    log = io.StringIO()
    simulation.reporters.append(app.StateDataReporter(log, 20, step=True, potentialEnergy=True, temperature=True))
    simulation.reporters.append(app.DCDReporter(str(tmp_path / "traj.dcd"), 20))
    simulation.step(200)

    assert simulation.context.getStepCount() == 200
    assert integrator.getNumMoves() == 20
    assert integrator.getNumProposals() == 80
    assert integrator.getNumAccepted() > 0
    rows = [line for line in log.getvalue().splitlines() if not line.startswith("#")]
    assert [int(row.split(",")[0]) for row in rows] == list(range(20, 201, 20))
    reporter = simulation.reporters.pop(1)
    del reporter  # DCDReporter closes its file when deleted
    import gc

    import mdtraj

    gc.collect()

    frames = mdtraj.load_dcd(str(tmp_path / "traj.dcd"), top=mdtraj.Topology.from_openmm(dipeptide[0]))
    assert frames.n_frames == 10

    checkpoint = str(tmp_path / "state.chk")
    simulation.saveCheckpoint(checkpoint)
    saved = simulation.context.getState(getPositions=True, getVelocities=True)
    simulation.step(30)
    simulation.loadCheckpoint(checkpoint)
    restored = simulation.context.getState(getPositions=True, getVelocities=True)
    assert np.array_equal(saved.getPositions(asNumpy=True)._value, restored.getPositions(asNumpy=True)._value)
    assert np.array_equal(saved.getVelocities(asNumpy=True)._value, restored.getVelocities(asNumpy=True)._value)
    assert simulation.context.getStepCount() == 200
    simulation.step(20)  # and it goes on
    assert integrator.getNumMoves() == 25


def test_save_state_and_reinitialize(dipeptide, tmp_path, flow):
    simulation = make_simulation(dipeptide, flow=flow)
    simulation.step(20)
    simulation.saveState(str(tmp_path / "state.xml"))
    simulation.context.reinitialize(preserveState=True)
    simulation.step(20)
    simulation.loadState(str(tmp_path / "state.xml"))
    simulation.step(20)
    assert simulation.integrator.getNumMoves() == 6
    assert np.isfinite(simulation.context.getState(getEnergy=True).getPotentialEnergy()._value)


def test_schedule_follows_the_step_count_not_the_calls(dipeptide):
    one_call = make_simulation(dipeptide, moveInterval=7)
    one_call.step(70)
    many_calls = make_simulation(dipeptide, moveInterval=7)
    for chunk in (3, 10, 1, 20, 36):
        many_calls.step(chunk)
    assert one_call.integrator.getNumMoves() == many_calls.integrator.getNumMoves() == 10
    assert many_calls.context.getStepCount() == 70


def _run(dipeptide, seed, flow):
    simulation = make_simulation(dipeptide, seed=seed, flow=flow)
    simulation.step(60)
    positions = simulation.context.getState(getPositions=True).getPositions(asNumpy=True)._value
    return positions, simulation.integrator.getNumAccepted()


def test_same_seed_same_trajectory(dipeptide, flow):
    # one run at a time: the Reference platform draws Langevin noise from one process-wide generator
    (pa, accepted_a), (pb, accepted_b) = _run(dipeptide, 11, flow), _run(dipeptide, 11, flow)
    assert np.array_equal(pa, pb)
    assert accepted_a == accepted_b > 0
    pc, _ = _run(dipeptide, 12, flow)
    assert not np.array_equal(pa, pc)


def test_moves_only_do_not_advance_time(dipeptide, flow):
    simulation = make_simulation(dipeptide, moveInterval=0, proposalsPerMove=2, flow=flow)
    simulation.step(5)
    assert simulation.context.getStepCount() == 5
    assert simulation.context.getState().getTime().value_in_unit(unit.picosecond) == 0.0
    assert simulation.integrator.getNumMoves() == 5


def test_bare_context_and_explicit_bind():
    system, positions = double_well_system(1)
    integrator = TimewarpIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds,
                                    flow=torch.jit.script(DriftGaussianFlow()), moveInterval=5)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    integrator.bind(context)
    integrator.step(10)
    assert integrator.getNumMoves() == 2
    other = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    with pytest.raises(ValueError, match="another integrator"):
        integrator.bind(other)


def test_exploration_never_climbs_more_than_the_threshold():
    system, positions = double_well_system(1)
    threshold = 0.5
    integrator = TimewarpIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds,
                                    flow=torch.jit.script(DriftGaussianFlow(sigma=0.05)), moveInterval=0,
                                    proposalsPerMove=1, batchSize=1, mode="explore",
                                    energyThreshold=threshold * unit.kilojoule_per_mole)
    integrator.setRandomNumberSeed(3)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    energy = context.getState(getEnergy=True).getPotentialEnergy()._value
    for _ in range(300):
        integrator.step(1)
        new = context.getState(getEnergy=True).getPotentialEnergy()._value
        assert new - energy < threshold
        energy = new
    assert integrator.getNumAccepted() > 20  # uphill steps below the threshold are kept too
