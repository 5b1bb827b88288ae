"""TimewarpMove in openmmtools: exact sampling in MCMCSampler and SequenceMove, serialization, errors."""

import copy
import pickle

import numpy as np
import openmm
import pytest
import torch
from openmm import unit
from openmmtools import cache, mcmc, states, utils

import openmm_timewarp
import openmm_timewarp.mcmc as mh
from openmm_timewarp.openmmtools_move import TimewarpMove
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide
from openmm_timewarp.testing import double_well_system

from sampling import STIFFENING, TEMPERATURE, Z_LIMIT, double_well_z_scores_of, drift_gaussian_flow


class SeededLangevinMove(mcmc.LangevinDynamicsMove):
    """LangevinDynamicsMove with a fixed Langevin seed, so that the statistical tests are reproducible."""

    def __init__(self, seed, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def _get_integrator(self, thermodynamic_state):
        integrator = super()._get_integrator(thermodynamic_state)
        integrator.setRandomNumberSeed(self.seed)
        return integrator


@pytest.fixture
def flow_file(tmp_path):
    path = tmp_path / "drift.pt"
    torch.jit.save(drift_gaussian_flow(), str(path))
    return str(path)


def _double_well_states():
    system, positions = double_well_system(1, stiffening=STIFFENING)
    thermodynamic_state = states.ThermodynamicState(system, TEMPERATURE * unit.kelvin)
    sampler_state = states.SamplerState(positions * unit.nanometer)
    return thermodynamic_state, sampler_state


def _reference_cache():
    return cache.ContextCache(platform=openmm.Platform.getPlatformByName("Reference"))


def _sample_double_well(move, num_samples):
    thermodynamic_state, sampler_state = _double_well_states()
    sampler = mcmc.MCMCSampler(thermodynamic_state, sampler_state, move)
    context_cache = _reference_cache()
    samples = np.empty((num_samples, 1, 3))
    for i in range(num_samples):
        sampler.run(1, context_cache=context_cache)
        samples[i] = sampler.sampler_state.positions.value_in_unit(unit.nanometer)
    return double_well_z_scores_of(samples)


def test_timewarp_move_in_mcmc_sampler_is_exact(flow_file):
    move = TimewarpMove(flow_file, n_proposals=4, batch_size=3, seed=11)
    z = _sample_double_well(move, 8000)
    assert max(abs(v) for v in z.values()) < Z_LIMIT, z
    assert move.n_proposed == 4 * 8000
    assert 0.05 < move.n_accepted / move.n_proposed < 0.9


def test_sequence_with_langevin_dynamics_is_exact(flow_file):
    langevin = SeededLangevinMove(seed=5, timestep=2.0 * unit.femtosecond, collision_rate=1.0 / unit.picosecond,
                                  n_steps=10, reassign_velocities=False)
    move = mcmc.SequenceMove([langevin, TimewarpMove(flow_file, n_proposals=4, batch_size=3, seed=12)])
    z = _sample_double_well(move, 4000)
    assert max(abs(v) for v in z.values()) < Z_LIMIT, z


def test_the_move_uses_the_shared_acceptance_rule(flow_file, monkeypatch):
    """Dropping the Hastings term in openmm_timewarp.mcmc breaks the move too: there is one rule."""
    monkeypatch.setattr(mh, "augmented_log_ratio", lambda v_old, v_new, lq_f, lq_r:
                        -mh.kinetic_term(v_new) + mh.kinetic_term(v_old))
    z = _sample_double_well(TimewarpMove(flow_file, n_proposals=4, batch_size=3, seed=11), 8000)
    assert max(abs(v) for v in z.values()) > Z_LIMIT, z


def _positions_after(move, iterations=5):
    thermodynamic_state, sampler_state = _double_well_states()
    context_cache = _reference_cache()
    for _ in range(iterations):
        move.apply(thermodynamic_state, sampler_state, context_cache)
    return np.array(sampler_state.positions.value_in_unit(unit.nanometer))


@pytest.mark.parametrize("duplicate", [
    lambda move: utils.deserialize(utils.serialize(move)),
    lambda move: pickle.loads(pickle.dumps(move)),
], ids=["openmmtools-serialize", "pickle"])  # deep copies draw their own stream: tests/test_kernel_exactness.py
def test_copies_continue_like_the_original(flow_file, duplicate):
    move = TimewarpMove(flow_file, n_proposals=6, batch_size=4, mode="mh", seed=3)
    _positions_after(move)
    twin = duplicate(move)
    assert twin.statistics == move.statistics
    assert twin.statistics["n_proposed"] == 5 * 6
    np.testing.assert_array_equal(_positions_after(twin), _positions_after(move))
    assert twin.n_accepted == move.n_accepted > 0


def test_serialization_stores_the_path_not_the_module(flow_file):
    serialization = utils.serialize(TimewarpMove(flow_file, n_proposals=2, batch_size=2, seed=1))
    assert serialization["flow"] == flow_file
    assert serialization["n_proposals"] == 2 and serialization["mode"] == "mh"
    assert not any(isinstance(value, torch.nn.Module) for value in serialization.values())


def test_in_memory_flow_refuses_serialization_but_deep_copies():
    move = TimewarpMove(drift_gaussian_flow(), n_proposals=2, batch_size=2, seed=1)
    with pytest.raises(TypeError, match="Export the flow"):
        utils.serialize(move)
    twin = copy.deepcopy(move)
    assert twin._kernel.flow is move._kernel.flow and twin.statistics == move.statistics
    assert not np.array_equal(_positions_after(twin, 3), _positions_after(move, 3))  # an independent stream


def test_constrained_system_is_refused_and_the_state_is_kept(flow_file):
    system, positions = double_well_system(2, stiffening=STIFFENING)
    system.addConstraint(0, 1, 0.1)
    thermodynamic_state = states.ThermodynamicState(system, TEMPERATURE * unit.kelvin)
    sampler_state = states.SamplerState(positions * unit.nanometer)
    move = TimewarpMove(flow_file, n_proposals=2, batch_size=2)
    with pytest.raises(ValueError, match="constraints"):
        move.apply(thermodynamic_state, sampler_state, _reference_cache())
    np.testing.assert_array_equal(sampler_state.positions.value_in_unit(unit.nanometer), positions)
    assert move.n_proposed == 0


def test_shipped_model_with_langevin_on_alanine_dipeptide():
    topology, positions = load_alanine_dipeptide()
    system = create_system(topology)
    thermodynamic_state = states.ThermodynamicState(system, 310 * unit.kelvin)
    sampler_state = states.SamplerState(positions)
    move = mcmc.SequenceMove([
        SeededLangevinMove(seed=2, timestep=1.0 * unit.femtosecond, n_steps=20),
        TimewarpMove("alanine-dipeptide", n_proposals=8, batch_size=8, seed=2),
    ])
    sampler = mcmc.MCMCSampler(thermodynamic_state, sampler_state, move)
    sampler.run(5, context_cache=_reference_cache())
    timewarp = move.move_list[1]
    assert timewarp.n_proposed == 5 * 8
    positions = sampler.sampler_state.positions.value_in_unit(unit.nanometer)
    assert np.isfinite(positions).all()
    assert np.isfinite(sampler.sampler_state.potential_energy.value_in_unit(unit.kilojoule_per_mole))
    assert openmm_timewarp.TimewarpMove is TimewarpMove


def test_without_openmmtools_the_import_error_says_what_to_install(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "openmmtools", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "openmm_timewarp.openmmtools_move")
    with pytest.raises(ImportError, match="pip install openmmtools"):
        importlib.import_module("openmm_timewarp.openmmtools_move")
