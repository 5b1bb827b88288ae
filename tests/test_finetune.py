"""Energy-based fine-tuning: correct gradients, softened energies, and it raises acceptance."""

import numpy as np
import torch

from openmm_timewarp.lab.energy import SystemEnergy, differentiable_energy
from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow
from openmm_timewarp.testing import double_well_system
from openmm_timewarp.lab.training.finetune import (FinetuneConfig, acceptance_terms, chirality_penalty,
                                               finetune_flow, soften_energy_rise)


def test_energy_gradient_is_minus_the_force():
    system, _ = double_well_system(2)
    evaluator = SystemEnergy(system)
    x = torch.tensor([[[-0.05, 0.01, 0.02], [0.03, -0.02, 0.01]]], dtype=torch.float64, requires_grad=True)
    differentiable_energy(x, evaluator).sum().backward()
    eps = 1e-6
    numeric = np.zeros((2, 3))
    for i in range(2):
        for k in range(3):
            plus, minus = x.detach().clone(), x.detach().clone()
            plus[0, i, k] += eps
            minus[0, i, k] -= eps
            numeric[i, k] = (evaluator.energies(plus.numpy())[0] - evaluator.energies(minus.numpy())[0]) / (2 * eps)
    assert np.allclose(x.grad[0].numpy(), numeric, rtol=1e-4, atol=1e-3)


def test_soften_energy_rise():
    rise = torch.tensor([-5.0, 10.0, 100.0, 1e6])
    soft = soften_energy_rise(rise, 100.0)
    assert torch.equal(soft[:3], rise[:3])
    assert 100.0 < soft[3] < 120.0


def test_chirality_penalty_only_for_inverted_centres():
    positions = torch.tensor([[[0.0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1]]])
    centres = torch.tensor([[0, 1, 2, 3]])
    assert chirality_penalty(positions, torch.tensor([1.0]), centres) == 0
    mirrored = positions * torch.tensor([1.0, 1.0, -1.0])
    assert chirality_penalty(mirrored, torch.tensor([1.0]), centres) > 0


def _pairs(count, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 2, 3, generator=g) * torch.tensor([0.08, 0.03, 0.03]) - torch.tensor([0.1, 0.0, 0.0])
    y = x + 0.03 * torch.randn(count, 2, 3, generator=g)
    numbers = torch.tensor([6, 6])
    return [(x[i], y[i], numbers) for i in range(count)]


def _collate(items):
    x, y, n = zip(*items)
    return torch.stack(x), torch.stack(y), torch.stack(n), torch.ones(len(items), 2, dtype=torch.bool)


def _mean_alpha(flow, system, seed=99):
    x_cond, _, numbers, mask = _collate(_pairs(256, seed))
    with torch.no_grad():
        minus_log_alpha, _ = acceptance_terms(flow, x_cond, numbers, mask, SystemEnergy(system), 2.494, 500.0,
                                              torch.Generator().manual_seed(seed))
    return float(torch.exp(-minus_log_alpha).mean())


def test_finetuning_raises_acceptance(tmp_path):
    system, _ = double_well_system(2)
    torch.manual_seed(0)
    flow = TimewarpFlow(FlowConfig(embedding=4, hidden=12, layers=4, length_scales=[0.1, 0.3], position_scale=0.1))
    before = _mean_alpha(flow, system)
    config = FinetuneConfig(steps=80, batch_size=32, learning_rate=3e-3, nll_weight=0.0, acceptance_weight=1.0,
                            temperature=300.0, ema_decay=0.5, checkpoint_every=40)
    tuned, rows = finetune_flow(flow, _pairs(512, 1), _collate, system, [6, 6], [], config, str(tmp_path),
                                progress=False)
    after = _mean_alpha(tuned, system)
    assert after > before + 0.1, (before, after)
    assert (tmp_path / "finetune_log.csv").exists() and len(rows) == 80
