"""Exactness holes of the kernel, closed: force groups, a cache outliving its Context or System, a weak
independence check, and deep copies sharing one random stream.

Each test fails on a kernel with the hole (bind-time force groups; a cache keyed on positions,
parameters and groups only; the former two-row independence check; deep copies that copy the
generator state).
"""

import copy

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from openmm_timewarp import FlowContractError, MoveStatistics, TimewarpIntegrator
from openmm_timewarp.contract import check_independence, flow_info
from openmm_timewarp.testing import IndependentGaussianFlow, PartlyLocalFlow, double_well_system

from sampling import STIFFENING, TEMPERATURE, drift_gaussian_flow

OFFSET = 1000.0  # kJ/mol: a constant energy; MH ignores it, a stale cached U(x) does not


def _offset_force(group=0):
    force = openmm.CustomExternalForce(f"{OFFSET}")
    force.addParticle(0, [])
    force.setForceGroup(group)
    return force


def _energy(context, groups=-1):
    return context.getState(getEnergy=True, groups=groups).getPotentialEnergy().value_in_unit(
        unit.kilojoule_per_mole)


def _moves_only(system, positions, flow=None, seed=3):
    integrator = TimewarpIntegrator(TEMPERATURE * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds,
                                    flow=drift_gaussian_flow() if flow is None else flow, moveInterval=0,
                                    proposalsPerMove=4, batchSize=4)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return integrator, context


def independent_gaussian():
    return torch.jit.script(IndependentGaussianFlow(centre=(-0.02, 0.0, 0.0), sigma=0.09, temperature=TEMPERATURE))


# ---------------------------------------------------------------------------- force groups
def test_force_groups_set_after_binding_are_the_moves_target():
    system, positions = double_well_system(1, stiffening=STIFFENING)
    system.addForce(_offset_force(group=1))
    integrator, context = _moves_only(system, positions)
    integrator.step(2)  # binds with all groups
    integrator.setIntegrationForceGroups({0})
    integrator.step(5)
    # the energy the moves hold for the current state is that of group 0 only
    assert integrator._kernel._left.energy == pytest.approx(_energy(context, {0}), abs=1e-6)
    assert integrator._kernel._left.groups == integrator.getIntegrationForceGroups()


# ---------------------------------------------------------------------------- the cache and its Context
@pytest.mark.parametrize("flow", [drift_gaussian_flow, independent_gaussian], ids=["dependent", "independent"])
def test_one_move_on_two_systems_does_not_reuse_the_energy(flow):
    """As in MultiStateSampler: one TimewarpMove applied to ThermodynamicStates with different Systems."""
    from openmmtools import cache, states

    from openmm_timewarp.openmmtools_move import TimewarpMove

    system_a, positions = double_well_system(1, stiffening=STIFFENING)
    system_b, _ = double_well_system(1, stiffening=STIFFENING)
    system_b.addForce(_offset_force())
    state_a = states.ThermodynamicState(system_a, TEMPERATURE * unit.kelvin)
    state_b = states.ThermodynamicState(system_b, TEMPERATURE * unit.kelvin)
    sampler_state = states.SamplerState(positions * unit.nanometer)
    context_cache = cache.ContextCache(platform=openmm.Platform.getPlatformByName("Reference"))
    move = TimewarpMove(flow(), n_proposals=4, batch_size=4, seed=5)
    for _ in range(3):
        move.apply(state_a, sampler_state, context_cache)
    accepted = move.n_accepted
    for _ in range(20):
        move.apply(state_b, sampler_state, context_cache)
    context_b, _ = context_cache.get_context(state_b)
    # with U_A(x) reused for state B every proposal looks OFFSET kJ/mol higher and is rejected
    assert move.n_accepted > accepted
    assert move._kernel._left.energy == pytest.approx(_energy(context_b), abs=1e-6)


@pytest.mark.parametrize("flow", [drift_gaussian_flow, independent_gaussian], ids=["dependent", "independent"])
def test_a_force_added_before_reinitialize_is_seen(flow):
    system, positions = double_well_system(1, stiffening=STIFFENING)
    integrator, context = _moves_only(system, positions, flow())
    integrator.step(3)
    system.addForce(_offset_force())
    context.reinitialize(preserveState=True)
    accepted = integrator.getNumAccepted()
    integrator.step(20)
    assert integrator.getNumAccepted() > accepted
    assert integrator._kernel._left.energy == pytest.approx(_energy(context), abs=1e-6)


def test_invalidate_cache_forgets_everything_after_an_edit_in_place():
    """An edited force cannot be seen cheaply: invalidateCache() must clear energy, density and buffer."""
    system, positions = double_well_system(1, stiffening=STIFFENING)
    offset = openmm.CustomExternalForce("offset")
    offset.addPerParticleParameter("offset")
    offset.addParticle(0, [0.0])
    system.addForce(offset)
    integrator, context = _moves_only(system, positions, independent_gaussian())
    integrator.step(3)
    kernel = integrator._kernel
    assert kernel._left is not None and kernel._buffer is not None
    offset.setParticleParameters(0, 0, [OFFSET])
    context.reinitialize(preserveState=True)
    integrator.invalidateCache()
    assert kernel._left is None and kernel._buffer is None
    accepted = integrator.getNumAccepted()
    integrator.step(20)
    assert integrator.getNumAccepted() > accepted
    assert kernel._left.energy == pytest.approx(_energy(context), abs=1e-6)


# ---------------------------------------------------------------------------- the independence check
def _check(flow, num_atoms=3, seed=0):
    rng = np.random.default_rng(seed)
    positions = rng.normal(0.0, 0.1, size=(num_atoms, 3))
    check_independence(flow, flow_info(flow), [6] * num_atoms, positions)


def test_independence_check_catches_a_flow_local_in_ten_percent_of_rows():
    with pytest.raises(FlowContractError, match="declares proposal_independent"):
        _check(torch.jit.script(PartlyLocalFlow(sigma=0.1, local_sigma=0.02)))


def test_a_flow_local_in_ten_percent_of_rows_is_refused_at_bind():
    system, positions = double_well_system(1, stiffening=STIFFENING)
    integrator, context = _moves_only(system, positions, torch.jit.script(PartlyLocalFlow(centre=(-0.02, 0.0, 0.0))))
    with pytest.raises(FlowContractError, match="declares proposal_independent"):
        integrator.step(1)


@pytest.mark.parametrize("num_atoms", [1, 3, 22])
def test_independence_check_passes_an_independent_flow_with_few_flow_calls(num_atoms):
    calls = []
    inner = torch.jit.script(IndependentGaussianFlow(sigma=0.1))

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name in ("contract_version", "temperature", "tau_ps", "num_atoms", "elements", "force_field",
                         "proposal_independent"):
                setattr(self, name, getattr(inner, name))

        def sample(self, x_cond, atomic_numbers, z):
            calls.append(x_cond.shape[0])
            return inner.sample(x_cond, atomic_numbers, z)

        def log_prob(self, x_cond, atomic_numbers, x, v):
            calls.append(x_cond.shape[0])
            return inner.log_prob(x_cond, atomic_numbers, x, v)

    _check(Counting(), num_atoms)
    assert len(calls) <= 5 and sum(calls) <= 2 * 4 * 64 + 2 * 16  # cheap at bind time


# ---------------------------------------------------------------------------- deep copies and random streams
def _positions_after(move, iterations=5):
    from openmmtools import cache, states

    system, positions = double_well_system(1, stiffening=STIFFENING)
    thermodynamic_state = states.ThermodynamicState(system, TEMPERATURE * unit.kelvin)
    sampler_state = states.SamplerState(positions * unit.nanometer)
    context_cache = cache.ContextCache(platform=openmm.Platform.getPlatformByName("Reference"))
    for _ in range(iterations):
        move.apply(thermodynamic_state, sampler_state, context_cache)
    return np.array(sampler_state.positions.value_in_unit(unit.nanometer))


def test_deep_copies_draw_independent_streams_and_restart_exactly():
    from openmm_timewarp.openmmtools_move import TimewarpMove

    def make():
        return TimewarpMove(drift_gaussian_flow(), n_proposals=6, batch_size=4, seed=3)

    move = make()
    _positions_after(move)
    first, second = copy.deepcopy(move), copy.deepcopy(move)  # as MultiStateSampler copies one move per state
    assert first.statistics == move.statistics
    runs = [_positions_after(m, 10) for m in (move, first, second)]
    assert not np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[1], runs[2])
    assert not np.array_equal(runs[0], runs[2])
    # reproducible: copies of an identically seeded move are identical
    twin = make()
    _positions_after(twin)
    np.testing.assert_array_equal(_positions_after(copy.deepcopy(twin), 10), runs[1])
    # and getState / setState restarts of a copy stay bit-exact
    restored = make()
    restored._kernel.setState(first._kernel.getState())
    np.testing.assert_array_equal(_positions_after(restored, 4), _positions_after(first, 4))


# ---------------------------------------------------------------------------- statistics snapshots
def test_statistics_snapshots_subtract_and_know_resets():
    a = MoveStatistics(moves=3, proposals=12, accepted=4, flow_time=1.0, md_time=2.0)
    b = MoveStatistics(moves=5, proposals=20, accepted=5, flow_time=1.5, md_time=3.0)
    delta = b - a
    assert (delta.moves, delta.proposals, delta.accepted) == (2, 8, 1)
    assert delta.flow_time == pytest.approx(0.5) and delta.acceptance_rate == pytest.approx(1 / 8)
    after_reset = MoveStatistics(moves=1, proposals=4, accepted=1, generation=1)
    assert after_reset - b == after_reset
    assert MoveStatistics.from_dict(b.as_dict()) == b
    assert set(b.as_dict()) == {"moves", "proposals", "accepted", "discarded", "chirality_rejections",
                                "acceptance_rate", "accepted_energy_change", "flow_time", "energy_time", "md_time"}


def test_reporter_rows_after_a_reset_count_since_the_reset():
    """A reset with more moves after it than before: the reporter sees it by the snapshots' generation."""
    import io

    from openmm import app

    from openmm_timewarp import TimewarpReporter

    system, positions = double_well_system(1, stiffening=STIFFENING)
    integrator = TimewarpIntegrator(TEMPERATURE * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds,
                                    flow=drift_gaussian_flow(), moveInterval=5, proposalsPerMove=2, batchSize=2)
    topology = app.Topology()
    topology.addAtom("C", app.element.carbon, topology.addResidue("X", topology.addChain()))
    sim = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    sim.context.setPositions(positions)
    out = io.StringIO()
    sim.reporters.append(TimewarpReporter(out, 10))
    sim.step(10)  # 2 moves, reported
    integrator.resetStatistics()
    sim.step(10)  # 2 moves since the reset: as many as before it, so counts alone cannot show the reset
    rows = [line.split(",") for line in out.getvalue().strip().splitlines()[1:]]
    assert [int(r[1]) for r in rows] == [2, 2] and int(rows[1][2]) == integrator.getNumProposals() == 4
