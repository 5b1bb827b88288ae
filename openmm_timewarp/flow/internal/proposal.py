"""The internal-coordinate family as a flow-contract-1 proposal: one molecule, one file.

A proposal keeps the rigid frame of the structure it conditions on (that of the first three
Z-matrix atoms, exported as ``frame_atoms``) and draws new internal coordinates c' from a flow
(or a mixture of flows); its density, as the contract passes it to Metropolis-Hastings, is

    log q(x', v' | x) = log q(c' | c) - log J(c') + log N(v'; 0, I),     v' = z[..., 3:].

Why this keeps MH exact: write x = T(g, c) with g the frame of the first three Z-matrix atoms;
dx = J(c) dc dg. A kernel that keeps g and moves c is an MH kernel on c for the target
mu(T(g, c)) J(c) at fixed g, and the acceptance ratio needs q(c | c') / J(c) over
q(c' | c) / J(c'): exactly the ratio of the densities above. It leaves the Boltzmann distribution
invariant for any potential (the frame is simply not moved); MD between moves moves the frame.
The auxiliary v' is the contract's noise itself, and log N(v') is part of log q, so the kinetic
terms of the augmented MH rule cancel.

A mixture of components (for example a conditional proposal at lag tau and an independent one)
picks its component from the noise (one of the six spare noise values) with fixed weights, and
its density is the logsumexp over all components: a mixture is never state-independent.
Proposals whose bonds are not positive or whose angles leave (0, pi) get log q = -inf (rejected).

Bond constraints (``hold_bonds``): constrained bonds are Z-matrix bonds held at their lengths. Every
flow then leaves them out of its density (see :meth:`InternalCoordinateFlow.hold`), ``sample`` sets
them exactly, and ``log_prob`` reads them as their lengths, so log q is a density over the rigid
frame and the free internal coordinates: with respect to prod_k delta(|x_i - x_j| - d_k) dx, it is
log q(c'_free | x) - log J(c') (J with the held lengths) + log N(v'). The mass-metric factor of the
measure constrained dynamics samples (``docs/constraints.md``) is added by the kernel, which knows
the masses.
"""

import math
from typing import List, Optional, Tuple

import torch
from torch import nn

from .model import InternalCoordinateFlow
from .zmatrix import InternalCoordinates



class ZMatrixDensity(nn.Module):
    """The density a Z-matrix proposal passes to MH, shared by the internal and peptides families.

    A subclass holds its Z-matrix as ``self.coordinates`` (:class:`InternalCoordinates`).
    """

    def _auxiliary_log_density(self, v: torch.Tensor) -> torch.Tensor:
        return -0.5 * v.pow(2).sum(dim=(-2, -1)) - 1.5 * v.shape[-2] * 1.8378770664093453

    def _contract_density(self, log_q: torch.Tensor, bonds: torch.Tensor, angles: torch.Tensor, v: torch.Tensor,
                          x: Optional[torch.Tensor]) -> torch.Tensor:
        """log q(c) - log J(c) + log N(v), -inf where the map to Cartesian is not one-to-one (or, for
        placed positions ``x``, not finite)."""
        log_q = log_q - self.coordinates.log_jacobian(bonds, angles) + self._auxiliary_log_density(v)
        valid = self.coordinates.valid(bonds, angles)
        if x is not None:
            valid = valid & torch.isfinite(x).all(-1).all(-1)
        return torch.where(valid, log_q, torch.full_like(log_q, -math.inf))


class InternalCoordinateProposal(ZMatrixDensity):
    """Flow contract version 1 over the internal coordinates of one molecule.

    Parameters
    ----------
    coordinates : InternalCoordinates
        The molecule's Z-matrix.
    flows : list of InternalCoordinateFlow
        The mixture's components.
    weights : list of float
        Their probabilities (summing to 1).
    component_names : list of str
        Names of the components, for statistics ("local", "global", ...).
    temperature, tau_ps : float
        Kelvin, and the lag in ps of the conditional component (0.0 when there is none).
    force_field : str
    atomic_numbers : list of int
        Per atom, in the model's atom order.
    bonds : list of [int, int]
        The molecular graph.
    handedness : list of [int, int, int, int, int]
        (centre, n0, n1, n2, sign) of every atom with four bonded neighbours in the training data.
    metadata_json : str
    constraints : {"none", "hbonds", "allbonds"}
        The bond constraints of the System the model was made (trained) for.
    """

    elements: List[int]
    atomic_numbers: List[int]
    bonds: List[List[int]]
    handedness: List[List[int]]
    component_names: List[str]
    log_weights: List[float]
    frame_atoms: List[int]
    holdable_bonds: List[List[int]]

    def __init__(self, coordinates: InternalCoordinates, flows: List[InternalCoordinateFlow], weights: List[float],
                 component_names: List[str], *, temperature: float, tau_ps: float, force_field: str,
                 atomic_numbers: List[int], bonds: List[List[int]], handedness: List[List[int]], metadata_json: str,
                 constraints: str = "none"):
        super().__init__()
        if len(flows) != len(weights) or len(flows) != len(component_names) or not flows:
            raise ValueError("give one weight and one name for each of at least one flow")
        if abs(sum(weights) - 1.0) > 1e-6 or min(weights) <= 0:
            raise ValueError(f"mixture weights must be positive and sum to 1, got {weights}")
        self.coordinates = coordinates
        self.flows = nn.ModuleList(flows)
        self.log_weights = [math.log(w) for w in weights]
        self.cumulative_weights = [float(sum(weights[:k + 1])) for k in range(len(weights))]
        self.component_names = list(component_names)
        self.contract_version: int = 1
        self.temperature: float = float(temperature)
        self.tau_ps: float = float(tau_ps)
        self.num_atoms: int = int(coordinates.num_atoms)
        self.atomic_numbers = [int(z) for z in atomic_numbers]
        self.elements = sorted(set(self.atomic_numbers))
        self.force_field: str = str(force_field)
        self.bonds = [[int(a), int(b)] for a, b in bonds]
        self.handedness = [[int(v) for v in row] for row in handedness]
        self.proposal_independent: bool = len(flows) == 1 and not flows[0].conditional
        # the rigid frame every proposal keeps (contract metadata: the kernel re-places buffered proposals in it)
        self.frame_atoms = [int(coordinates.root), int(coordinates.first), int(coordinates.second)]
        self.any_conditional: bool = any(f.conditional for f in flows)
        self.dimension: int = 3 * self.num_atoms - 6
        self.metadata_json: str = metadata_json
        if constraints not in ("none", "hbonds", "allbonds"):
            raise ValueError(f"constraints must be 'none', 'hbonds' or 'allbonds', not {constraints!r}")
        self.constraints: str = constraints
        # bond constraints the proposal can hold: its Z-matrix bonds (atom, the atom it is placed on)
        order, parents = coordinates.zmatrix.order, coordinates.zmatrix.parents
        self.holdable_bonds = [[int(order[m]), int(parents[m])] for m in range(1, self.num_atoms)]
        self.register_buffer("held", torch.zeros(self.num_atoms - 1, dtype=torch.bool), persistent=False)
        self.register_buffer("held_lengths", torch.zeros(self.num_atoms - 1), persistent=False)

    # ------------------------------------------------------------------ bond constraints
    @torch.jit.export
    def hold_bonds(self, pairs: torch.Tensor, lengths: torch.Tensor):
        """Hold the bonds ``pairs`` ([K, 2] int64, model atom order) at ``lengths`` ([K], nm) from now on.

        Each pair must be one of ``holdable_bonds`` (either order); K = 0 releases every bond.
        """
        if pairs.dim() != 2 or pairs.shape[1] != 2 or lengths.dim() != 1 or lengths.shape[0] != pairs.shape[0]:
            raise ValueError("hold_bonds needs pairs [K, 2] and lengths [K]")
        held = torch.zeros(self.num_atoms - 1, dtype=torch.bool)
        values = torch.zeros(self.num_atoms - 1)
        for k in range(pairs.shape[0]):
            a, b = int(pairs[k, 0]), int(pairs[k, 1])
            found = -1
            for index, bond in enumerate(self.holdable_bonds):
                if (bond[0] == a and bond[1] == b) or (bond[0] == b and bond[1] == a):
                    found = index
            if found < 0:
                raise ValueError("atoms " + str(a) + " and " + str(b) + " are not a Z-matrix bond: they cannot be held")
            if not float(lengths[k]) > 0.0:
                raise ValueError("held bond lengths must be positive")
            held[found] = True
            values[found] = float(lengths[k])
        device = self.held.device
        self.held = held.to(device)
        self.held_lengths = values.to(device)
        for flow in self.flows:
            flow.hold(self.held, self.held_lengths)

    def _internal(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Internal coordinates of x, held bonds read as their lengths (x sits on the constraints)."""
        bonds, angles, torsions = self.coordinates.to_internal(x)
        bonds = torch.where(self.held.unsqueeze(0), self.held_lengths.to(bonds.dtype).unsqueeze(0), bonds)
        return bonds, angles, torsions

    # ------------------------------------------------------------------ pieces

    def _conditioning(self, x_cond: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.any_conditional:
            return self._internal(x_cond)
        empty = torch.zeros(x_cond.shape[0], 0, dtype=x_cond.dtype, device=x_cond.device)
        return empty, empty, empty

    def _mixture_log_prob(self, bonds: torch.Tensor, angles: torch.Tensor, torsions: torch.Tensor,
                          cond: Tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        terms: List[torch.Tensor] = []
        for k, flow in enumerate(self.flows):
            context = flow.context_of(cond[0], cond[1], cond[2])
            terms.append(self.log_weights[k] + flow.log_prob(bonds, angles, torsions, context, cond[2]))
        if len(terms) == 1:
            return terms[0]
        return torch.logsumexp(torch.stack(terms, dim=0), dim=0)

    @torch.jit.export
    def component(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the mixture component each noise row [B, N, 6] draws from ([B], int64)."""
        batch = z.shape[0]
        if len(self.cumulative_weights) == 1:
            return torch.zeros(batch, dtype=torch.int64, device=z.device)
        selector = z[..., :3].reshape(batch, -1)[:, self.dimension]
        u = 0.5 * (1.0 + torch.erf(selector / math.sqrt(2.0)))
        edges = torch.tensor(self.cumulative_weights[:-1], dtype=u.dtype, device=u.device)
        return (u.unsqueeze(-1) >= edges).sum(-1)

    # ------------------------------------------------------------------ the contract
    @torch.jit.export
    def sample(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor,
               z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = z.shape[0]
        shared = batch > 1 and bool((x_cond == x_cond[:1]).all())
        frame = x_cond[:1] if shared else x_cond
        cond = self._conditioning(frame)
        noise = z[..., :3].reshape(batch, -1)[:, :self.dimension]
        choice = self.component(z)
        bonds = torch.zeros(0)
        angles = torch.zeros(0)
        torsions = torch.zeros(0)
        forward = torch.zeros(0)
        for k, flow in enumerate(self.flows):
            context = flow.context_of(cond[0], cond[1], cond[2])
            b, a, t, lq = flow.sample(noise, context, cond[2])
            if k == 0:
                bonds, angles, torsions, forward = b, a, t, lq
            else:
                pick = choice == k
                bonds = torch.where(pick.unsqueeze(-1), b, bonds)
                angles = torch.where(pick.unsqueeze(-1), a, angles)
                torsions = torch.where(pick.unsqueeze(-1), t, torsions)
        bonds = torch.where(self.held.unsqueeze(0), self.held_lengths.to(bonds.dtype).unsqueeze(0), bonds)
        if len(self.flows) == 1:
            log_q = self.log_weights[0] + forward
        else:
            log_q = self._mixture_log_prob(bonds, angles, torsions, cond)
        x = self.coordinates.place(bonds, angles, torsions, frame)
        v = z[..., 3:]
        return x, v, self._contract_density(log_q, bonds, angles, v, x)

    @torch.jit.export
    def log_prob(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor,
                 v: torch.Tensor) -> torch.Tensor:
        bonds, angles, torsions = self._internal(x)
        batch = x.shape[0]
        shared = batch > 1 and bool((x_cond == x_cond[:1]).all())
        cond = self._conditioning(x_cond[:1] if shared else x_cond)
        return self._contract_density(self._mixture_log_prob(bonds, angles, torsions, cond), bonds, angles, v, None)

    def forward(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor,
                z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.sample(x_cond, atomic_numbers, z)
