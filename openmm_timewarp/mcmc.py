"""Metropolis-Hastings in augmented space, as pure functions on tensors.

The target is pi(x, v) = mu(x) N(v; 0, I) with mu(x) proportional to exp(-U(x) / kT).
One implementation of the acceptance rule serves the integrator, the openmmtools move and
the acceptance loss of fine-tuning (it is differentiable). Nothing here knows OpenMM.
"""

from . import _stack  # noqa: F401  (torch before openmm; repairs the openmm-torch plugin)
from typing import Callable, Optional, Tuple

import torch


def kinetic_term(v: torch.Tensor) -> torch.Tensor:
    """Return |v|^2 / 2 summed over the last two dimensions (atoms, xyz)."""
    return 0.5 * v.pow(2).sum(dim=(-2, -1))


def augmented_log_ratio(
    v_old: torch.Tensor, v_new: torch.Tensor, log_q_forward: torch.Tensor, log_q_reverse: torch.Tensor
) -> torch.Tensor:
    """The part of log alpha that does not involve the energy.

    -|v'|^2/2 + |v|^2/2 + log q(x, v | x') - log q(x', v' | x): the auxiliary Gaussian and the
    Hastings correction of the (asymmetric) flow proposal.
    """
    return -kinetic_term(v_new) + kinetic_term(v_old) + log_q_reverse - log_q_forward


def log_acceptance(
    energy_old: torch.Tensor,
    energy_new: torch.Tensor,
    kT: float,
    v_old: torch.Tensor,
    v_new: torch.Tensor,
    log_q_forward: torch.Tensor,
    log_q_reverse: torch.Tensor,
) -> torch.Tensor:
    """Log Metropolis-Hastings acceptance probability of (x, v) -> (x', v').

    log alpha = min(0, -(U(x') - U(x)) / kT - |v'|^2/2 + |v|^2/2 + log q(x, v | x') - log q(x', v' | x)).
    Any non-finite ingredient gives -inf (reject). Differentiable (used by the acceptance loss).

    Parameters
    ----------
    energy_old, energy_new : Tensor
        U(x) and U(x') in the same energy unit as ``kT``; shapes broadcast to [B].
    kT : float
        Thermal energy in that unit.
    v_old, v_new : Tensor
        Auxiliary variables of the current state ([N, 3] or [B, N, 3]) and of the proposals ([B, N, 3]).
    log_q_forward : Tensor
        log q(x', v' | x), shape [B].
    log_q_reverse : Tensor
        log q(x, v | x'), shape [B].

    Returns
    -------
    Tensor
        log alpha, shape [B], values in [-inf, 0].
    """
    log_alpha = -(energy_new - energy_old) / kT + augmented_log_ratio(v_old, v_new, log_q_forward, log_q_reverse)
    log_alpha = torch.where(torch.isfinite(log_alpha), log_alpha, torch.full_like(log_alpha, -float("inf")))
    return torch.clamp(log_alpha, max=0.0)


def acceptance_energy_bound(
    energy_old: float,
    kT: float,
    v_old: torch.Tensor,
    v_new: torch.Tensor,
    log_q_forward: torch.Tensor,
    log_q_reverse: torch.Tensor,
    log_u: torch.Tensor,
) -> torch.Tensor:
    """The MH test as an energy bound: accept proposal b iff U(x'_b) < bound[b].

    Equivalent to ``log_u < log_acceptance(...)`` for log_u < 0, but lets the caller decide each
    proposal from one float comparison as soon as its energy is known, without evaluating the
    energies of the others. A NaN energy never passes; a non-finite flow term gives -inf.

    Returns
    -------
    Tensor [B] (float64)
    """
    ratio = augmented_log_ratio(v_old.double(), v_new.double(), log_q_forward.double(), log_q_reverse.double())
    bound = energy_old + kT * (ratio - log_u.double())
    return torch.where(torch.isnan(bound), torch.full_like(bound, -float("inf")), bound)


def exploration_energy_bound(energy_old: float, threshold: float, size: int) -> torch.Tensor:
    """Exploration rule (not Boltzmann): keep a proposal iff U(x') < U(x) + threshold."""
    return torch.full((size,), energy_old + threshold, dtype=torch.float64)


def fixed_budget_walk(
    budget: int,
    batch_size: int,
    draw_batch: Callable[[int], object],
    first_acceptance: Callable[[object], Optional[int]],
) -> Tuple[int, int, int]:
    """Spend exactly ``budget`` MH steps, proposing ``batch_size`` at a time from the current state.

    Proposals of one batch are all drawn from the same state. They are tested in order; the
    first accepted one (index k) moves the chain, and counts k + 1 steps (k rejections, then the
    acceptance); the rest of the batch is discarded and, with budget left, a new batch is drawn
    from the new state. A batch without acceptance counts all of its proposals as rejections.
    This makes the move a composition of exactly ``budget`` valid MH kernels. Walking "until the
    first acceptance" instead would not be one: its stationary law is biased towards states
    whose proposals are easy to accept.

    Parameters
    ----------
    budget : int
        MH steps to spend (>= 0).
    batch_size : int
        Proposals drawn per flow call (>= 1); the last batch is cut to the budget left.
    draw_batch : callable
        ``draw_batch(size)`` draws ``size`` proposals from the current state.
    first_acceptance : callable
        ``first_acceptance(batch)`` tests the batch in order and returns the index of the first
        accepted proposal (having moved the state to it) or None.

    Returns
    -------
    steps, accepted, discarded : int
        MH steps spent (== budget), acceptances, and drawn proposals never tested.
    """
    if budget < 0 or batch_size < 1:
        raise ValueError("budget must be >= 0 and batch_size >= 1")
    steps = accepted = discarded = 0
    while steps < budget:
        size = min(batch_size, budget - steps)
        index = first_acceptance(draw_batch(size))
        if index is None:
            steps += size
        else:
            steps += index + 1
            accepted += 1
            discarded += size - index - 1
    return steps, accepted, discarded
