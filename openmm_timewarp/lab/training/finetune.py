"""Energy-based fine-tuning of a trained flow, to raise Metropolis-Hastings acceptance.

Loss = nll_weight * NLL(x(t+tau) | x(t)) + acceptance_weight * E[-log alpha] + chirality_weight * penalty.
The acceptance term uses reparameterised proposals (x', v') = f(z; x) and the same acceptance
rule as the integrator (:func:`openmm_timewarp.mcmc.log_acceptance`); U(x') and dU/dx' come from
OpenMM through :func:`openmm_timewarp.lab.energy.differentiable_energy`. Energy rises above
``energy_clip`` are softened logarithmically so that wild proposals do not blow up gradients,
and proposals that invert a chirality centre pay a penalty proportional to how far they went.
The likelihood term keeps the proposal honest (the acceptance term alone favours tiny steps).
Each step's randomness is seeded by (seed, step), so a resumed run repeats the uninterrupted one,
and a run asked for more steps than before continues where it stopped (the learning rate is constant).
"""

import csv
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import torch
from openmm import unit

from ... import units
from ...chirality import chirality_signs, find_chirality_centres, signed_volumes
from .._resumable import atomic_write, changed_settings, settings_message
from ..energy import SystemEnergy, differentiable_energy
from ...mcmc import log_acceptance
from .trainer import (ExponentialMovingAverage, align_to, batch_tensors, nll_per_atom, random_rotations,
                      rotate_pairs)


@dataclass
class FinetuneConfig:
    """Settings of :func:`finetune_flow` (energies in kJ/mol, temperature in K)."""

    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 5e-5
    nll_weight: float = 1.0
    acceptance_weight: float = 0.1
    chirality_weight: float = 10.0
    energy_clip: float = 500.0
    temperature: float = 310.0
    grad_clip: float = 5.0
    ema_decay: float = 0.99
    checkpoint_every: int = 100
    seed: int = 0
    device: str = "cpu"


def soften_energy_rise(rise: torch.Tensor, clip: float) -> torch.Tensor:
    """Identity below ``clip``, clip + log(1 + rise - clip) above it (continuous, monotone)."""
    excess = torch.clamp(rise - clip, min=0.0)
    return torch.where(rise > clip, clip + torch.log1p(excess), rise)


def chirality_penalty(positions: torch.Tensor, reference: torch.Tensor, centres: torch.Tensor,
                      scale: float = 1e-3) -> torch.Tensor:
    """Mean over the batch of sum_c relu(-s_c * t_c / scale), t_c the signed volume at centre c (nm^3)."""
    if centres.shape[0] == 0:
        return positions.new_zeros(())
    return torch.relu(-reference * signed_volumes(positions, centres) / scale).sum(-1).mean()


def acceptance_terms(flow, x_cond, numbers, mask, evaluator: SystemEnergy, kT: float, energy_clip: float,
                     generator: torch.Generator):
    """-log alpha of one reparameterised proposal per row (single-molecule batches), and the proposals."""
    batch, atoms = x_cond.shape[:2]
    z = torch.randn(batch, atoms, 6, generator=generator).to(x_cond)
    v_old = torch.randn(batch, atoms, 3, generator=generator).to(x_cond)
    x_new, v_new, log_q_forward = flow.sample_batch(x_cond, numbers, z, mask)
    log_q_reverse = flow.log_prob_batch(x_new, numbers, x_cond, v_old, mask)
    with torch.no_grad():
        energy_old = torch.from_numpy(evaluator.energies(x_cond.detach().cpu().numpy())).to(x_cond)
    energy_new = differentiable_energy(x_new, evaluator)
    finite = torch.isfinite(energy_new)
    rise = soften_energy_rise(torch.where(finite, energy_new - energy_old, torch.full_like(energy_new, 1e9)),
                              energy_clip)
    log_alpha = log_acceptance(torch.zeros_like(rise), rise, kT, v_old, v_new, log_q_forward, log_q_reverse)
    # rejected-for-sure rows (log alpha = -inf) give no gradient; count them at the clip instead
    log_alpha = torch.where(torch.isfinite(log_alpha), log_alpha, torch.full_like(log_alpha, -energy_clip / kT))
    return -log_alpha, x_new


def finetune_flow(flow, dataset: Sequence, collate: Callable, system, atomic_numbers: Sequence[int],
                  bonds: Sequence, config: FinetuneConfig = None, out_dir: Optional[str] = None,
                  progress: bool = True):
    """Fine-tune ``flow`` for acceptance on one molecule; resume from ``out_dir/finetune.pt`` if present.

    Parameters
    ----------
    flow : TimewarpFlow
        A likelihood-trained flow (its weights are changed in place).
    dataset : sequence
        Training pairs of this molecule (items as for :func:`~openmm_timewarp.lab.training.trainer.train_flow`).
    collate : callable
    system : openmm.System
        The molecule's System (no constraints), for energies and forces.
    atomic_numbers, bonds
        For the chirality penalty.
    config : FinetuneConfig
    out_dir : str, optional
        Where ``finetune.pt`` and ``finetune_log.csv`` go.

    Returns
    -------
    (torch.nn.Module, list of dict)
        The EMA of the fine-tuned weights and the log rows.
    """
    from tqdm.auto import tqdm

    config = config or FinetuneConfig()
    device = torch.device(config.device)
    flow = flow.to(device)
    evaluator = SystemEnergy(system)
    kT = units.kT(config.temperature)
    centres = torch.as_tensor(find_chirality_centres(list(atomic_numbers), bonds), device=device)
    ema = ExponentialMovingAverage(flow, config.ema_decay)
    optimizer = torch.optim.AdamW(flow.parameters(), lr=config.learning_rate)
    start, rows = 0, []
    path = os.path.join(out_dir, "finetune.pt") if out_dir else None
    if path and os.path.exists(path):
        state = torch.load(path, map_location=device, weights_only=False)
        recorded, requested = {**state["config"], "steps": config.steps}, asdict(config)
        changed = changed_settings(recorded, requested, sorted(set(recorded) | set(requested)))
        if changed:
            raise ValueError(settings_message(out_dir, "a fine-tuning run", changed)[:-1]
                             + " (only --steps may grow, to extend a run).")
        flow.load_state_dict(state["flow"])
        ema.shadow.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start, rows = state["step"], state["rows"]
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    bar = tqdm(total=config.steps, initial=start, disable=not progress, desc="fine-tune", unit="step")
    flow.train()
    for step in range(start, config.steps):
        started = time.time()
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        indices = torch.randint(len(dataset), (config.batch_size,), generator=generator).tolist()
        x_cond, x_target, numbers, mask = batch_tensors(collate([dataset[i] for i in indices]))
        x_target = align_to(x_target, x_cond, mask)
        x_cond, x_target = rotate_pairs(x_cond, x_target, mask, random_rotations(len(indices), generator))
        x_cond, x_target, numbers, mask = (t.to(device) for t in (x_cond, x_target, numbers, mask))
        nll = nll_per_atom(flow, x_cond, x_target, numbers, mask, generator)
        minus_log_alpha, proposals = acceptance_terms(flow, x_cond, numbers, mask, evaluator, kT,
                                                      config.energy_clip, generator)
        with torch.no_grad():
            reference = chirality_signs(x_cond, centres)
        penalty = chirality_penalty(proposals, reference, centres)
        loss = config.nll_weight * nll + config.acceptance_weight * minus_log_alpha.mean() + config.chirality_weight * penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(flow.parameters(), config.grad_clip)
        if torch.isfinite(norm):
            optimizer.step()
            ema.update(flow)
        rows.append({"step": step + 1, "nll": nll.item(), "minus_log_alpha": minus_log_alpha.mean().item(),
                     "mean_alpha": torch.exp(-minus_log_alpha).mean().item(), "chirality_penalty": penalty.item(),
                     "seconds": time.time() - started})
        bar.update(1)
        bar.set_postfix(nll=f"{rows[-1]['nll']:.3f}", alpha=f"{rows[-1]['mean_alpha']:.3f}")
        if out_dir and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps):
            state = {"flow": flow.state_dict(), "ema": ema.shadow.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step + 1, "rows": rows, "config": asdict(config)}
            atomic_write(path, lambda tmp: torch.save(state, tmp))

            def write_log(tmp):
                with open(tmp, "w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)

            atomic_write(os.path.join(out_dir, "finetune_log.csv"), write_log)
    bar.close()
    return ema.shadow, rows
