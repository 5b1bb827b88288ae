"""MH with Timewarp moves samples the exact Boltzmann distribution; broken variants do not.

The proposal (DriftGaussianFlow) is asymmetric and couples v' to x', so a missing Hastings term or
mishandled auxiliary variables show. The double well's y-z trap stiffens for x > 0, so acceptance
depends on the state and a walk "until the first acceptance" shows its bias (stationary law
proportional to mu(x) times the acceptance rate from x).
"""

import pytest

import openmm_timewarp.kernel.walks as kernel_module
import openmm_timewarp.mcmc as mcmc

from sampling import Z_LIMIT, double_well_z_scores


@pytest.mark.parametrize(
    "move_interval, proposals, batch_size, seed",
    [
        (0, 4, 3, 1),   # pure moves, batch smaller than the budget
        (0, 4, 8, 2),   # pure moves, batch larger than the budget
        (0, 1, 1, 3),   # one MH step per move
        (10, 4, 3, 4),  # mixed with Langevin MD
    ],
)
def test_mh_reproduces_exact_distribution(move_interval, proposals, batch_size, seed):
    num_samples = 8000 if move_interval == 0 else 4000
    z, integrator = double_well_z_scores(num_samples, move_interval, proposals, batch_size, seed)
    assert max(abs(v) for v in z.values()) < Z_LIMIT, z
    assert integrator.getNumProposals() == integrator.getNumMoves() * proposals
    assert 0.05 < integrator.getAcceptanceRate() < 0.9


def _drop_hastings(v_old, v_new, log_q_forward, log_q_reverse):
    return -mcmc.kinetic_term(v_new) + mcmc.kinetic_term(v_old)


def _until_first_acceptance(budget, batch_size, draw_batch, first_acceptance):
    steps = accepted = discarded = 0
    while accepted == 0:
        index = first_acceptance(draw_batch(batch_size))
        if index is None:
            steps += batch_size
        else:
            steps, accepted, discarded = steps + index + 1, 1, discarded + batch_size - index - 1
    return steps, accepted, discarded


def test_dropped_hastings_term_fails_the_same_check(monkeypatch):
    monkeypatch.setattr(mcmc, "augmented_log_ratio", _drop_hastings)
    z, _ = double_well_z_scores(8000, 0, 4, 3, 1)
    assert max(abs(v) for v in z.values()) > Z_LIMIT, z


def test_until_first_acceptance_fails_the_same_check(monkeypatch):
    monkeypatch.setattr(kernel_module, "fixed_budget_walk", _until_first_acceptance)
    z, _ = double_well_z_scores(8000, 0, 4, 3, 1)
    assert max(abs(v) for v in z.values()) > Z_LIMIT, z


def test_randomly_initialised_exported_flow_samples_exactly(tmp_path):
    """The project's own flow, perturbed away from identity and exported, drives MH exactly (3 atoms)."""
    import torch

    from openmm_timewarp.flow.cartesian.export import export_flow
    from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow

    torch.manual_seed(5)
    flow = TimewarpFlow(FlowConfig(embedding=8, hidden=12, layers=4, length_scales=[0.1, 0.3], position_scale=0.03))
    with torch.no_grad():
        for layer in flow.layers:
            layer.conditioner.head.weight.normal_(0.0, 0.05)  # asymmetric: median log q-ratio ~ -1
            layer.conditioner.head.bias.normal_(0.0, 0.05)
    path = str(tmp_path / "random.pt")
    export_flow(flow, path, temperature=300.0, tau_ps=0.0, force_field="")
    z, integrator = double_well_z_scores(6000, 0, 4, 4, 7, flow=path, num_particles=3)
    assert max(abs(v) for v in z.values()) < Z_LIMIT, (z, integrator.getAcceptanceRate())


def test_randomly_initialised_flow_without_hastings_term_fails(tmp_path, monkeypatch):
    """The same check detects a dropped Hastings term with the project's flow."""
    import torch

    from openmm_timewarp.flow.cartesian.export import export_flow
    from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow

    torch.manual_seed(5)
    flow = TimewarpFlow(FlowConfig(embedding=8, hidden=12, layers=4, length_scales=[0.1, 0.3], position_scale=0.03))
    with torch.no_grad():
        for layer in flow.layers:
            layer.conditioner.head.weight.normal_(0.0, 0.05)
            layer.conditioner.head.bias.normal_(0.0, 0.05)
    path = str(tmp_path / "random.pt")
    export_flow(flow, path, temperature=300.0, tau_ps=0.0, force_field="")
    monkeypatch.setattr(mcmc, "augmented_log_ratio", _drop_hastings)
    z, _ = double_well_z_scores(6000, 0, 4, 4, 7, flow=path, num_particles=3)
    assert max(abs(v) for v in z.values()) > Z_LIMIT, z
