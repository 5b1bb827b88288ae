"""The two MH walks of a move, and drawing and testing proposals.

- A proposal that depends on the current state draws ``batchSize`` proposals from it, tests them
  in order and discards the rest of the batch after an acceptance
  (:func:`~openmm_timewarp.mcmc.fixed_budget_walk`); reverse densities are evaluated lazily, up
  to the first acceptance.
- A ``proposal_independent`` flow's proposals are valid from any state that shares their rigid
  frame, so the kernel keeps a buffer of them across MH steps and moves, and knows the current
  state's density log q(x) whenever the Context holds, bit for bit, a proposal it accepted.
  After something else moved the Context (MD, ``setPositions``), a flow that names its
  ``frame_atoms`` has its unused proposals re-placed in the current state's frame
  (:func:`replace_buffer`); the others' buffer is dropped.

With bond constraints the densities the walks use (drawn proposals' log q, every ``log_prob``)
include the mass-metric term, log q(x) - 0.5 log det G_M(x) (:mod:`.constraints`): the one MH rule
then targets the measure constrained dynamics samples. G_M depends only on the bonds' relative
directions, so it is unchanged when a buffered proposal is re-placed rigidly.

Every function takes the :class:`~openmm_timewarp.kernel.TimewarpKernel` whose flow, generator,
binding, cache and counters it uses.
"""

import math
import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch

from ..chirality import chirality_changed, chirality_signs
from ..contract import flow_evaluation, place_in_frame
from ..mcmc import acceptance_energy_bound, exploration_energy_bound, fixed_budget_walk

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def auxiliary_log_density(v: torch.Tensor) -> torch.Tensor:
    """log N(v; 0, I) over the last two dimensions (atoms, xyz)."""
    return -0.5 * v.double().pow(2).sum(dim=(-2, -1)) - v.shape[-2] * 3 * _HALF_LOG_2PI


@dataclass
class Batch:
    """Proposals drawn from one state, with what the tests need (model atom order)."""

    x: torch.Tensor  # [B, N, 3] float32
    v: torch.Tensor
    log_q: torch.Tensor  # [B]
    v_old: torch.Tensor  # [N, 3] (dependent walk) or [B, N, 3] (buffer: one per MH step)
    log_u: torch.Tensor  # [B] float64
    components: List[int]
    kT: float = 0.0
    bound0: List[float] = field(default_factory=list)  # buffer: MH energy bound for U(x) = 0, log q(x) = 0
    log_q_x: List[float] = field(default_factory=list)  # buffer: log q(x') without the auxiliary density
    finite: List[bool] = field(default_factory=list)
    flipped: List[bool] = field(default_factory=list)
    system_positions: Optional[np.ndarray] = None  # [B, N, 3] float64, System atom order
    next: int = 0  # buffer: first proposal not yet used
    drawn: Optional[torch.Tensor] = None  # buffer: the proposals as drawn, once ``x`` was re-placed

    def __len__(self):
        return self.x.shape[0]


@dataclass
class Chain:
    """The current state during a move (model atom order)."""

    x: torch.Tensor
    energy: float
    signs: torch.Tensor
    log_q: Optional[float] = None  # log q(x) of a proposal-independent flow, if known
    moved: bool = False
    positions: Optional[np.ndarray] = None  # System order, float64, as it sits in the Context
    changed_outside: bool = False  # the Context's state is not the one the kernel left


# ---------------------------------------------------------------------------- drawing and testing
def draw(kernel, chain, size, per_step_auxiliary):
    """Draw ``size`` proposals from the chain's state (and the per-proposal random numbers)."""
    binding, counters = kernel.binding, kernel.counters
    n = binding.num_atoms
    z = torch.randn(size, n, 6, generator=kernel.generator)
    v_old = torch.randn((size, n, 3) if per_step_auxiliary else (n, 3), generator=kernel.generator)
    log_u = torch.log(torch.rand(size, generator=kernel.generator, dtype=torch.float64))
    start = time.perf_counter()
    with flow_evaluation():
        x_cond = chain.x.to(kernel.device).expand(size, n, 3)
        x, v, log_q = kernel.flow.sample(x_cond, binding.numbers, z.to(kernel.device))
        components = kernel.flow.component(z.to(kernel.device)).tolist() if binding.components else [0] * size
    counters.flow_time += time.perf_counter() - start
    batch = Batch(x.detach().cpu(), v.detach().cpu(), constrained_density(binding, x, log_q), v_old, log_u,
                  components)
    finite = torch.isfinite(batch.x).all(dim=(1, 2)) & torch.isfinite(batch.v).all(dim=(1, 2))
    batch.finite = (finite & torch.isfinite(batch.log_q)).tolist()
    batch.flipped = chirality_changed(chain.signs, chirality_signs(batch.x, binding.centres)).tolist()
    batch.system_positions = batch.x.numpy().astype(np.float64)[:, binding.inverse]
    return batch


def constrained_density(binding, x, log_q):
    """The density MH uses for proposals x: log q, less 0.5 log det G_M(x) when bonds are held (on the CPU)."""
    log_q = log_q.detach().cpu()
    if binding.holds is None:
        return log_q
    return (log_q.double() - binding.holds.half_log_det_metric(x.detach().cpu())).to(log_q.dtype)


def log_prob(kernel, x_cond, x, v):
    """The flow's log q(x, v | x_cond), timed (with the metric term of held bonds)."""
    start = time.perf_counter()
    with flow_evaluation():
        log_q = kernel.flow.log_prob(x_cond.to(kernel.device), kernel.binding.numbers, x.to(kernel.device),
                                     v.to(kernel.device))
    log_q = constrained_density(kernel.binding, x, log_q)
    kernel.counters.flow_time += time.perf_counter() - start
    return log_q


def test_proposal(kernel, context, chain, batch, i, bound, groups):
    """Test proposal ``i`` against an energy bound; on acceptance the chain moves to it."""
    counters, components = kernel.counters, kernel.binding.components
    if components:
        counters.component_proposals[batch.components[i]] += 1
    if not batch.finite[i] or not bound > -math.inf:
        return False
    if batch.flipped[i]:
        counters.chirality_rejections += 1
        return False
    new_energy = kernel._energy(context, batch.system_positions[i], groups)
    if not new_energy < bound:
        return False
    counters.accepted_energy_change += new_energy - chain.energy
    # the chirality signs stay: proposals that change any of them are rejected
    chain.x, chain.energy, chain.moved = batch.x[i], new_energy, True
    chain.positions = batch.system_positions[i]
    if components:
        counters.component_accepted[batch.components[i]] += 1
    return True


test_proposal.__test__ = False  # not a pytest test


# ---------------------------------------------------------------------------- the two walks
def dependent_walk(kernel, context, chain, kT, groups):
    """Fixed-budget walk for proposals that depend on the current state (lazy reverse densities).

    Returns
    -------
    (int, int, int)
        MH steps spent, accepted, discarded.
    """
    explore = kernel.mode == "explore"
    n = kernel.binding.num_atoms

    def first_acceptance(batch):
        size = len(batch)
        begin, chunk = 0, min(kernel.reverseChunk, size)
        while begin < size:
            end = min(size, begin + chunk)
            if explore:
                bound = exploration_energy_bound(chain.energy, kernel.energyThreshold, end - begin)
            else:
                width = end - begin
                reverse = log_prob(kernel, batch.x[begin:end], chain.x.expand(width, n, 3),
                                   batch.v_old.expand(width, n, 3))
                bound = acceptance_energy_bound(chain.energy, kT, batch.v_old, batch.v[begin:end],
                                                batch.log_q[begin:end], reverse, batch.log_u[begin:end])
            bound = bound.tolist()
            for i in range(begin, end):
                if test_proposal(kernel, context, chain, batch, i, bound[i - begin], groups):
                    return i
            begin = end
            chunk *= 2
        return None

    steps, accepted, discarded = fixed_budget_walk(
        kernel.proposalsPerMove, kernel.batchSize, lambda size: draw(kernel, chain, size, False), first_acceptance)
    # Lazy chunks: start each batch with about one acceptance's worth of proposals.
    counters = kernel.counters
    rate = (counters.accepted + accepted + 1) / (counters.proposals + steps + 1)
    kernel.reverseChunk = max(1, min(kernel.batchSize, int(round(1.0 / rate))))
    return steps, accepted, discarded


def replace_buffer(kernel, chain):
    """Re-place the buffered proposals in the rigid frame of the chain's state (which MD or the user moved).

    A ``proposal_independent`` flow keeps the frame of ``binding.frame_atoms`` and its log q depends on
    nothing else, so a proposal drawn from another state, moved rigidly into the current state's frame,
    is the proposal that noise gives from the current state: the same internal coordinates, log q and
    auxiliary variables (v and the reverse v are standard normal whatever the frame, so they stay).
    Each placement starts from the proposals as drawn, so rounding does not accumulate.
    """
    batch, binding = kernel.cache.buffer, kernel.binding
    if batch.drawn is None:
        batch.drawn = batch.x
    batch.x = place_in_frame(batch.drawn, chain.x, binding.frame_atoms)
    batch.system_positions = batch.x.numpy().astype(np.float64)[:, binding.inverse]
    # a proper rigid motion keeps chirality; the current state's signs are what proposals are tested against
    batch.flipped = chirality_changed(chain.signs, chirality_signs(batch.x, binding.centres)).tolist()


def _prepared_buffer(kernel, chain, kT, step):
    """The buffer with a proposal left for this MH step (drawn anew when used up), its bounds at ``kT``."""
    cache = kernel.cache
    if cache.buffer is None or cache.buffer.next >= len(cache.buffer):
        # a buffer that cannot be re-placed is dropped after MD (or anything else) moved the
        # Context, and the next move will likely find it stale again: draw only what this move needs
        size = kernel.batchSize
        if chain.changed_outside and not kernel.binding.frame_atoms:
            size = min(size, kernel.proposalsPerMove - step)
        cache.buffer = draw(kernel, chain, size, True)
    batch = cache.buffer
    if batch.kT != kT:  # new batch, or the temperature changed
        batch.kT = kT
        batch.bound0 = acceptance_energy_bound(0.0, kT, batch.v_old, batch.v, batch.log_q,
                                               auxiliary_log_density(batch.v_old), batch.log_u).tolist()
        batch.log_q_x = (batch.log_q.double() - auxiliary_log_density(batch.v)).tolist()
    return batch


def independent_walk(kernel, context, chain, kT, groups):
    """MH steps through the buffer of a proposal-independent flow: nothing drawn is wasted.

    The MH energy bound of buffered proposal i is linear in the current state's U(x) and
    log q(x) (the reverse density is log q(x) + log N(v_i), whatever the proposal): it is
    evaluated once per batch with U(x) = log q(x) = 0 by the shared rule, and shifted by
    U(x) + kT log q(x) when the proposal is tested.
    """
    explore = kernel.mode == "explore"
    accepted = 0
    for step in range(kernel.proposalsPerMove):
        batch = _prepared_buffer(kernel, chain, kT, step)
        i = batch.next
        batch.next += 1
        if explore:
            bound = chain.energy + kernel.energyThreshold
        else:
            if chain.log_q is None:
                x = chain.x.unsqueeze(0)
                chain.log_q = float(log_prob(kernel, x, x, batch.v_old[i:i + 1])[0]
                                    - auxiliary_log_density(batch.v_old[i]))
            bound = chain.energy + kT * chain.log_q + batch.bound0[i]
        if test_proposal(kernel, context, chain, batch, i, bound, groups):
            accepted += 1
            chain.log_q = batch.log_q_x[i]
    return kernel.proposalsPerMove, accepted, 0
