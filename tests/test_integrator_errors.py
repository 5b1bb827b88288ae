"""Bad input gets a clear error before any step runs, and nothing the user had is lost."""

import copy
import pickle

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from openmm_timewarp import FlowContractError, TimewarpIntegrator
from openmm_timewarp.flow.cartesian.export import export_flow
from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow
from openmm_timewarp.testing import DriftGaussianFlow, double_well_system

SMALL = FlowConfig(embedding=4, hidden=6, layers=2, length_scales=[0.1, 0.3])


def make_integrator(flow=None, **kwargs):
    flow = flow if flow is not None else torch.jit.script(DriftGaussianFlow())
    return TimewarpIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.001 * unit.picoseconds, flow=flow, **kwargs)


def context_for(system, integrator, positions, platform="Reference"):
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    context.setPositions(positions)
    return context


def test_missing_model_file():
    with pytest.raises(FlowContractError, match="No Timewarp flow at"):
        make_integrator(flow="/nonexistent/model.pt")


def test_corrupt_model_file(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(FlowContractError, match="not a readable TorchScript file"):
        make_integrator(flow=str(path))


def test_module_missing_contract_attribute(tmp_path):
    class NoTemperature(DriftGaussianFlow):
        def __init__(self):
            super().__init__()
            del self.temperature

    with pytest.raises(FlowContractError, match="'temperature'"):
        make_integrator(flow=NoTemperature())


def test_other_contract_version():
    flow = DriftGaussianFlow()
    flow.contract_version = 2
    with pytest.raises(FlowContractError, match="version 2"):
        make_integrator(flow=flow)


def test_plain_module_is_not_a_flow():
    with pytest.raises(FlowContractError, match="no sample or log_prob"):
        make_integrator(flow=torch.nn.Linear(3, 3))


def test_atom_count_mismatch(tmp_path):
    path = str(tmp_path / "five.pt")
    export_flow(TimewarpFlow(SMALL), path, temperature=300.0, tau_ps=1.0, force_field="", num_atoms=5)
    system, positions = double_well_system(2)
    integrator = make_integrator(flow=path)
    context = context_for(system, integrator, positions)
    with pytest.raises(ValueError, match="made for 5 atoms, but the System has 2"):
        integrator.step(1)
    assert context.getStepCount() == 0


def test_unknown_element(tmp_path):
    path = str(tmp_path / "hcnos.pt")
    export_flow(TimewarpFlow(SMALL), path, temperature=300.0, tau_ps=1.0, force_field="")
    system, positions = double_well_system(2, mass=35.45)  # chlorine
    integrator = make_integrator(flow=path)
    context = context_for(system, integrator, positions)
    with pytest.raises(ValueError, match=r"atomic numbers \[17\]"):
        integrator.step(1)


def test_constraints_are_refused_with_the_fix():
    system, positions = double_well_system(2)
    system.addConstraint(0, 1, 0.1)
    positions[1, 0] += 0.1
    integrator = make_integrator()
    context = context_for(system, integrator, positions)
    with pytest.raises(ValueError, match=r"constraints=None"):
        integrator.step(1)
    # the user's state is untouched
    assert np.allclose(context.getState(getPositions=True).getPositions(asNumpy=True)._value, positions)


def test_periodic_system_is_refused():
    system, positions = double_well_system(2)
    nonbonded = openmm.NonbondedForce()
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    for _ in range(2):
        nonbonded.addParticle(0.0, 0.3, 0.0)
    system.addForce(nonbonded)
    system.setDefaultPeriodicBoxVectors(*(np.eye(3) * 3.0))
    integrator = make_integrator()
    context = context_for(system, integrator, positions + 1.0)
    with pytest.raises(ValueError, match="periodic"):
        integrator.step(1)


def test_ambiguous_masses_need_a_topology():
    system, positions = double_well_system(2, mass=3.0)  # repartitioned hydrogen
    integrator = make_integrator()
    context = context_for(system, integrator, positions)
    with pytest.raises(ValueError, match="topology="):
        integrator.step(1)


def test_temperature_mismatch_warns():
    system, positions = double_well_system(1)
    integrator = make_integrator(flow=torch.jit.script(DriftGaussianFlow(temperature=400.0)))
    context = context_for(system, integrator, positions)
    with pytest.warns(RuntimeWarning, match="trained at 400 K"):
        integrator.step(1)


def test_cpu_platform_warns_for_small_systems():
    system, positions = double_well_system(1)
    integrator = make_integrator()
    context = context_for(system, integrator, positions, platform="CPU")
    with pytest.warns(RuntimeWarning, match="Reference platform"):
        integrator.step(1)


def test_unbound_integrator_says_what_to_do():
    with pytest.raises(RuntimeError, match="not bound to a Context"):
        make_integrator().step(1)


def test_nan_proposals_are_rejected_not_fatal():
    class NaNFlow(DriftGaussianFlow):
        def sample(self, x_cond, atomic_numbers, z):
            x, v, log_q = super().sample(x_cond, atomic_numbers, z)
            return x * float("nan"), v, log_q

    system, positions = double_well_system(1)
    integrator = make_integrator(flow=NaNFlow(), moveInterval=0)
    context = context_for(system, integrator, positions)
    integrator.step(5)
    assert integrator.getNumProposals() == 5 * integrator.getProposalsPerMove()
    assert integrator.getNumAccepted() == 0
    assert np.all(np.isfinite(context.getState(getPositions=True).getPositions(asNumpy=True)._value))


def test_nan_energy_of_current_state_is_a_clear_error():
    system, positions = double_well_system(1)
    integrator = make_integrator(moveInterval=0)
    context = context_for(system, integrator, positions)
    context.setPositions(positions * np.nan)
    with pytest.raises(openmm.OpenMMException, match="blown up"):
        integrator.step(1)


def test_copy_and_pickle_refuse_clearly():
    integrator = make_integrator()
    for attempt in (lambda: copy.deepcopy(integrator), lambda: copy.copy(integrator), lambda: pickle.dumps(integrator)):
        with pytest.raises(TypeError, match="cannot be copied or pickled"):
            attempt()


@pytest.mark.parametrize("name, value", [("moveInterval", -1), ("proposalsPerMove", 0), ("batchSize", 0),
                                         ("mode", "fast")])
def test_bad_settings(name, value):
    with pytest.raises(ValueError, match=name if name != "mode" else "mode"):
        make_integrator(**{name: value})
