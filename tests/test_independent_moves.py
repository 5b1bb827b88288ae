"""State-independent proposals: the kernel's buffer and cached density keep MH exact; stale variants do not.

Two systems with known answers:

- the tilted double well (``sampling.py``) with an analytic proposal that declares
  ``proposal_independent`` (IndependentGaussianFlow);
- a four-atom chain whose energy separates in internal coordinates, sampled with the internal
  family's proposal, so that the Z-matrix Jacobian, the kept rigid frame and the auxiliary density
  are all on the line. With a tether on its first atom the energy also depends on where the
  molecule is, so the frame the proposals are placed in matters too.
"""

import math

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

import openmm_timewarp.flow.internal.zmatrix as zmatrix_module
from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.contract import FlowContractError
from openmm_timewarp.flow.internal.proposal import InternalCoordinateProposal
from openmm_timewarp.flow.internal.zmatrix import InternalCoordinates, build_zmatrix
from openmm_timewarp.kernel import TimewarpKernel
from openmm_timewarp.testing import (CHAIN_ANGLE, CHAIN_BOND, DriftGaussianFlow, IndependentGaussianFlow,
                                     torsion_chain_exact, torsion_chain_system)

from sampling import Z_LIMIT, batch_mean_z, double_well_z_scores
from test_internal_flow import perturbed_internal_flow

TEMPERATURE = 300.0
TETHER = 2000.0  # kJ/mol/nm^2


# ---------------------------------------------------------------------------- broken variants
def _stale_density(original):
    """The kernel reuses log q(x) of the state it left even after MD moved the Context."""
    def current(self, context, groups):
        previous = self._left.log_q if self._left is not None else None
        chain, parameters = original(self, context, groups)
        if chain.log_q is None:
            chain.log_q = previous
        return chain, parameters
    return current


def _no_angle_jacobian(bonds, angles):
    return 2.0 * torch.log(bonds).sum(-1)


# ---------------------------------------------------------------------------- double well, analytic proposal
def independent_gaussian(centre=-0.02, sigma=0.09):
    return torch.jit.script(IndependentGaussianFlow(centre=(centre, 0.0, 0.0), sigma=sigma, temperature=TEMPERATURE))


# With MD between moves: a proposal narrower than the target's y-z trap, so that the density of the
# state changes a lot while MD moves it, and a stale density shows.
MIXED = dict(num_samples=3000, move_interval=50, proposals=4, batch_size=32, seed=13)


@pytest.mark.parametrize("move_interval, proposals, batch_size, seed", [(0, 1, 64, 11), (0, 4, 3, 12)])
def test_independent_proposal_samples_exactly(move_interval, proposals, batch_size, seed):
    z, integrator = double_well_z_scores(4000, move_interval, proposals, batch_size, seed, flow=independent_gaussian())
    assert max(abs(v) for v in z.values()) < Z_LIMIT, z
    stats = integrator.getStatistics()
    assert stats["discarded"] == 0  # nothing drawn is thrown away
    assert stats["proposals"] == stats["moves"] * proposals
    assert 0.1 < integrator.getAcceptanceRate() < 0.9


def test_independent_proposal_with_md_samples_exactly():
    z, integrator = double_well_z_scores(**MIXED, flow=independent_gaussian(-0.08, 0.03))
    assert max(abs(v) for v in z.values()) < Z_LIMIT, z
    assert 0.1 < integrator.getAcceptanceRate() < 0.9


def test_stale_density_after_md_fails_the_same_check(monkeypatch):
    monkeypatch.setattr(TimewarpKernel, "_current", _stale_density(TimewarpKernel._current))
    z, _ = double_well_z_scores(**MIXED, flow=independent_gaussian(-0.08, 0.03))
    assert max(abs(v) for v in z.values()) > Z_LIMIT, z


def test_buffer_and_density_survive_pure_moves_without_flow_calls():
    """With no MD, one flow call per batchSize MH steps and a single reverse pass in the whole run."""
    calls = {"sample": 0, "log_prob": 0}
    flow = IndependentGaussianFlow(sigma=0.09, temperature=TEMPERATURE)

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = flow
            for name in ("contract_version", "temperature", "tau_ps", "num_atoms", "elements", "force_field",
                         "proposal_independent"):
                setattr(self, name, getattr(flow, name))

        def sample(self, *args):
            calls["sample"] += 1
            return self.inner.sample(*args)

        def log_prob(self, *args):
            calls["log_prob"] += 1
            return self.inner.log_prob(*args)

    _, integrator = double_well_z_scores(200, 0, 1, 50, 3, flow=Counting())
    # the contract check, the independence check and (log_prob) the starting structure's density check
    binding_calls = {"sample": 1 + 3, "log_prob": 1 + 2 + 1}
    # the first move finds no state the kernel left and draws only its one proposal; then 199 / 50 batches
    assert calls["sample"] - binding_calls["sample"] == 1 + 4
    assert calls["log_prob"] - binding_calls["log_prob"] == 1  # the start; accepted states' densities are known
    assert integrator.getNumAccepted() > 10


def test_false_independence_declaration_is_refused_at_bind_time():
    flow = DriftGaussianFlow(sigma=0.05, drift=0.02, temperature=TEMPERATURE)
    flow.proposal_independent = True
    system, positions = torsion_chain_system()[0], torsion_chain_system()[2]
    integrator = TimewarpIntegrator(TEMPERATURE, 1.0, 0.002, flow=flow, moveInterval=0)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    with pytest.raises(FlowContractError, match="declares proposal_independent"):
        integrator.step(1)


# ---------------------------------------------------------------------------- four-atom chain, internal family
def chain_proposal(components=("global",), seed=0):
    system, topology, positions = torsion_chain_system()
    numbers = [6, 6, 6, 6]
    bonds = [(a.index, b.index) for a, b in topology.bonds()]
    coordinates = InternalCoordinates(build_zmatrix(numbers, bonds))
    flows = [perturbed_internal_flow(4, name == "local", seed + k, bond=(CHAIN_BOND[0], 0.012),
                                     angle=(CHAIN_ANGLE[0], 0.32), scale=0.05)
             for k, name in enumerate(components)]
    return InternalCoordinateProposal(coordinates, flows, [1.0 / len(flows)] * len(flows), list(components),
                                      temperature=TEMPERATURE, tau_ps=1.0, force_field="", atomic_numbers=numbers,
                                      bonds=[list(b) for b in bonds], handedness=[], metadata_json="{}")


def chain_z_scores(proposal, samples, move_interval, seed, tether=0.0, proposals=1, batch_size=64):
    system, topology, positions = torsion_chain_system(tether)
    integrator = TimewarpIntegrator(TEMPERATURE, 1.0, 0.002, flow=proposal, topology=topology,
                                    moveInterval=move_interval, proposalsPerMove=proposals, batchSize=batch_size)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    context.setVelocitiesToTemperature(TEMPERATURE, seed)
    frames = np.empty((samples, 4, 3))
    for i in range(samples):
        integrator.step(max(move_interval, 1))
        frames[i] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    frames = frames[samples // 10:]
    x = torch.as_tensor(frames)
    bond = torch.linalg.norm(x[:, 1:] - x[:, :-1], dim=-1).mean(-1).numpy()
    angle = torch.stack([zmatrix_module.bond_angle(x[:, i], x[:, i + 1], x[:, i + 2]) for i in range(2)], -1)
    torsion = zmatrix_module.dihedral(x[:, 0], x[:, 1], x[:, 2], x[:, 3]).numpy()
    exact = torsion_chain_exact(TEMPERATURE)
    z = {"bond": batch_mean_z(bond, exact["bond"]),
         "angle": batch_mean_z(angle.mean(-1).numpy(), exact["angle"]),
         "cos_torsion": batch_mean_z(np.cos(torsion), exact["cos_torsion"]),
         "torsion_near_zero": batch_mean_z((np.abs(torsion) < math.pi / 2).astype(float), exact["torsion_near_zero"])}
    if tether:
        kT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin) * TEMPERATURE
        z["tether"] = batch_mean_z((frames[:, 0] ** 2).sum(-1), 3 * kT / tether)
    return z, integrator


@pytest.mark.parametrize("components, move_interval, tether, proposals, seed", [
    (("global",), 0, 0.0, 1, 1),          # state-independent, pure moves
    (("local", "global"), 0, 0.0, 4, 2),  # a mixture of a conditional and an independent flow
    (("global",), 10, TETHER, 1, 3),      # mixed with MD, on an energy that depends on the frame
])
def test_internal_family_samples_exactly(components, move_interval, tether, proposals, seed, tmp_path):
    samples = {(0, 1): 10000, (0, 4): 1500}.get((move_interval, proposals), 3000)
    proposal = str(tmp_path / "chain.pt")  # through a file, as models are shipped
    torch.jit.save(torch.jit.script(chain_proposal(components, seed)), proposal)
    z, integrator = chain_z_scores(proposal, samples, move_interval, seed, tether, proposals, batch_size=64 // proposals)
    assert max(abs(v) for v in z.values()) < Z_LIMIT, z
    assert 0.05 < integrator.getAcceptanceRate() < 0.95
    if len(components) == 2:
        stats = integrator.getStatistics()
        assert sum(stats["component_proposals"].values()) == stats["proposals"]
        assert all(stats["component_accepted"][name] > 0 for name in components)


def test_dropped_jacobian_term_fails_the_same_check(monkeypatch):
    monkeypatch.setattr(zmatrix_module, "log_jacobian", _no_angle_jacobian)
    z, _ = chain_z_scores(chain_proposal(("global",), 1), 10000, 0, 1)
    assert max(abs(v) for v in z.values()) > Z_LIMIT, z
