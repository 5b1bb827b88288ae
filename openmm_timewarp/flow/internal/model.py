"""Spline coupling flows over the internal coordinates of one molecule.

Variables, after fixed standardisation from the training data:

- soft torsions t (backbone phi and psi, side-chain and methyl rotors: those whose circular
  spread in the data exceeds ``RIGID_SPREAD``) on the circle [-pi, pi), shifted by their circular
  mean (or, in a conditional flow, taken relative to the torsions of the structure conditioned on);
- bonds, angles and rigid torsions (amide omegas, the offsets that place a branch or a methyl
  hydrogen relative to its sibling) y, standardised by their mean and spread; a rigid torsion is
  its deviation from the circular mean, and a proposal deviating by pi or more is invalid.

Narrow peaks are what circular splines on a uniform base model worst, and a peptide's Z-matrix
has many rigid torsions (14 of alanine dipeptide's 19): they sit with the bonds and angles.

Base: uniform on the circle for soft torsions, standard normal for y. Transforms, in order:

1. torsion couplings: circular rational-quadratic splines of half the soft torsions, conditioned
   on (cos, sin) of the other half (the first layer transforms all of them, conditioned on
   nothing but the context);
2. geometry couplings: splines on [-bound, bound] with identity tails of y, conditioned on
   (cos, sin) of every soft torsion and on the other half of y (the first layer transforms all of
   y, conditioned on the soft torsions alone).

A *conditional* flow (a Timewarp proposal at lag tau) gives every conditioner a context
computed from the current structure's internal coordinates, and models the torsions as
displacements from the current ones; an *independent* flow (tau = infinity, a Boltzmann
generator used inside MH) has no context. Every layer starts as the identity.

Bond constraints (:meth:`InternalCoordinateFlow.hold`): held bonds take their constraint length,
no layer transforms them (they still condition the others), and the density counts only the free
coordinates, so it stays exact on the constraint manifold.
"""

import math
from dataclasses import asdict, dataclass
from typing import List, Sequence, Tuple

import torch
from torch import nn

from ..splines import bounded_spline, circular_spline, unit_derivative_parameter, wrap_angle

RIGID_SPREAD = 0.5  # radians of circular standard deviation below which a torsion counts as rigid



@dataclass
class InternalFlowConfig:
    """Sizes of an :class:`InternalCoordinateFlow` (saved with checkpoints and exports).

    Attributes
    ----------
    conditional : bool
        Condition on the current structure (a proposal at lag tau) or not (tau = infinity).
    bins : int
        Spline bins.
    hidden : int
        Width of the conditioner MLPs.
    depth : int
        Hidden layers per conditioner.
    torsion_layers : int
        Circular spline couplings on the torsions (the first transforms all torsions).
    geometry_layers : int
        Spline couplings on bonds and angles (the first transforms all of them).
    bound : float
        Range [-bound, bound] of the bond/angle splines, in standard deviations.
    context : int
        Size of the context computed from the current structure (conditional flows only).
    """

    conditional: bool = False
    bins: int = 8
    hidden: int = 128
    depth: int = 2
    torsion_layers: int = 4
    geometry_layers: int = 3
    bound: float = 5.0
    context: int = 64

    def to_dict(self):
        return asdict(self)


def _mlp(inputs: int, outputs: int, hidden: int, depth: int) -> nn.Sequential:
    layers: List[nn.Module] = []
    width = inputs
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class SplineConditioner(nn.Module):
    """Spline parameters from features: an MLP (or free parameters when there are no features).

    Initialised so that every spline is the identity (equal bins, unit derivatives).
    """

    def __init__(self, features: int, dims: int, per_dim: int, derivative_slots: List[int], hidden: int, depth: int):
        super().__init__()
        self.dims = dims
        self.per_dim = per_dim
        self.features = features
        initial = torch.zeros(dims, per_dim)
        initial[:, derivative_slots] = unit_derivative_parameter()
        if features > 0:
            self.net = _mlp(features, dims * per_dim, hidden, depth)
            last = self.net[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            with torch.no_grad():
                last.bias.copy_(initial.reshape(-1))
            self.free = nn.Parameter(torch.zeros(0))
        else:
            self.net = nn.Sequential()
            self.free = nn.Parameter(initial.reshape(-1).clone())

    def forward(self, features: torch.Tensor, batch: int) -> torch.Tensor:
        if self.features > 0:
            out = self.net(features)
        else:
            out = self.free.unsqueeze(0)
        return out.reshape(out.shape[0], self.dims, self.per_dim).expand(batch, self.dims, self.per_dim)


def _split(count: int, layer: int) -> Tuple[List[int], List[int]]:
    """Transformed and conditioning indices of coupling ``layer`` (each index is transformed once per pair of layers)."""
    shift = (layer // 2) % max(1, int(math.ceil(math.log2(max(count, 2)))))
    parity = layer % 2
    transformed = [i for i in range(count) if ((i >> shift) & 1) == parity]
    if not transformed or len(transformed) == count:
        transformed = [i for i in range(count) if i % 2 == parity]
    conditioning = [i for i in range(count) if i not in transformed]
    return transformed, conditioning


class TorsionCoupling(nn.Module):
    """Circular splines of some torsions, conditioned on (cos, sin) of the others and the context."""

    def __init__(self, count: int, transformed: List[int], conditioning: List[int], context: int, bins: int,
                 hidden: int, depth: int):
        super().__init__()
        self.bins = bins
        self.register_buffer("transformed", torch.tensor(transformed, dtype=torch.int64))
        self.register_buffer("conditioning", torch.tensor(conditioning, dtype=torch.int64))
        self.conditioner = SplineConditioner(2 * len(conditioning) + context, len(transformed), 3 * bins,
                                             list(range(2 * bins, 3 * bins)), hidden, depth)

    def _spline_parameters(self, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        other = t[:, self.conditioning]
        features = torch.cat([torch.cos(other), torch.sin(other), context.expand(t.shape[0], context.shape[1])], dim=-1)
        return self.conditioner(features, t.shape[0])

    def forward(self, t: torch.Tensor, context: torch.Tensor, inverse: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        p = self._spline_parameters(t, context)
        k = self.bins
        out, log_det = circular_spline(t[:, self.transformed], p[..., :k], p[..., k:2 * k], p[..., 2 * k:], inverse)
        return t.index_copy(1, self.transformed, out), log_det.sum(-1)


class GeometryCoupling(nn.Module):
    """Bounded splines of some bonds/angles, conditioned on every torsion, the other bonds/angles and the context."""

    def __init__(self, count: int, transformed: List[int], conditioning: List[int], torsions: int, context: int,
                 bins: int, bound: float, hidden: int, depth: int):
        super().__init__()
        self.bins = bins
        self.bound = bound
        self.register_buffer("transformed", torch.tensor(transformed, dtype=torch.int64))
        self.register_buffer("conditioning", torch.tensor(conditioning, dtype=torch.int64))
        self.conditioner = SplineConditioner(2 * torsions + len(conditioning) + context, len(transformed),
                                             3 * bins - 1, list(range(2 * bins, 3 * bins - 1)), hidden, depth)

    def forward(self, y: torch.Tensor, torsion_features: torch.Tensor, context: torch.Tensor, inverse: bool,
                held: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Transform the layer's dimensions of y, except the ``held`` ones ([num_geometry] bool), which stay."""
        features = torch.cat([torsion_features, y[:, self.conditioning], context.expand(y.shape[0], context.shape[1])],
                             dim=-1)
        p = self.conditioner(features, y.shape[0])
        k = self.bins
        inputs = y[:, self.transformed]
        out, log_det = bounded_spline(inputs, p[..., :k], p[..., k:2 * k], p[..., 2 * k:], self.bound, inverse)
        keep = held[self.transformed].unsqueeze(0)  # held dimensions are constant: not transformed, no log-det
        out = torch.where(keep, inputs, out)
        log_det = torch.where(keep, torch.zeros_like(log_det), log_det)
        return y.index_copy(1, self.transformed, out), log_det.sum(-1)


class InternalCoordinateFlow(nn.Module):
    """q(c) or q(c' | c) over the internal coordinates c = (bonds, angles, torsions) of one molecule.

    Parameters
    ----------
    num_atoms : int
    config : InternalFlowConfig
    bond_mean, bond_std, angle_mean, angle_std : Tensor
        Standardisation from the training data (nm and radians): bonds [N-1], angles [N-2].
    torsion_offset, torsion_std : Tensor [N-3]
        Circular means and spreads of the torsions (soft torsions of a conditional flow use
        displacements instead of the offset).
    rigid : sequence of int
        Indices of the rigid torsions (modelled with bonds and angles).
    """

    conditional: bool

    def __init__(self, num_atoms: int, config: InternalFlowConfig, bond_mean: torch.Tensor, bond_std: torch.Tensor,
                 angle_mean: torch.Tensor, angle_std: torch.Tensor, torsion_offset: torch.Tensor,
                 torsion_std: torch.Tensor, rigid: Sequence[int]):
        super().__init__()
        self.config_dict = config.to_dict()
        self.conditional = bool(config.conditional)
        self.num_bonds = num_atoms - 1
        self.num_angles = num_atoms - 2
        self.num_torsions = num_atoms - 3
        rigid = sorted(int(i) for i in rigid)
        soft = [i for i in range(self.num_torsions) if i not in rigid]
        self.rigid = rigid
        self.num_soft = len(soft)
        self.num_rigid = len(rigid)
        self.num_geometry = self.num_bonds + self.num_angles + self.num_rigid
        self.dimension = self.num_torsions + self.num_bonds + self.num_angles
        self.register_buffer("soft_index", torch.tensor(soft, dtype=torch.int64))
        self.register_buffer("rigid_index", torch.tensor(rigid, dtype=torch.int64))
        torsion_offset, torsion_std = torsion_offset.float(), torsion_std.float()
        self.register_buffer("geometry_mean", torch.cat([bond_mean.float(), angle_mean.float(), torsion_offset[rigid]]))
        self.register_buffer("geometry_std", torch.cat([bond_std.float(), angle_std.float(), torsion_std[rigid]]))
        self.register_buffer("soft_offset", torsion_offset[soft])
        # Held bonds (bond constraints, see :meth:`hold`): not part of the density; not in state dicts
        self.register_buffer("held", torch.zeros(self.num_geometry, dtype=torch.bool), persistent=False)
        self.register_buffer("held_value", torch.zeros(self.num_geometry), persistent=False)  # standardised
        self.register_buffer("held_length", torch.zeros(self.num_geometry), persistent=False)  # nm
        context = config.context if self.conditional else 0
        self.context_size = context
        if self.conditional:
            self.encoder = _mlp(2 * self.num_soft + self.num_geometry, context, config.hidden, 1)
        else:
            self.encoder = nn.Sequential()
        torsion_layers = []
        for layer in range(config.torsion_layers if self.num_soft else 0):
            if layer == 0 or self.num_soft < 2:
                transformed, conditioning = list(range(self.num_soft)), []
            else:
                transformed, conditioning = _split(self.num_soft, layer - 1)
            torsion_layers.append(TorsionCoupling(self.num_soft, transformed, conditioning, context, config.bins,
                                                  config.hidden, config.depth))
        self.torsion_layers = nn.ModuleList(torsion_layers)
        self.torsion_layers_reversed = nn.ModuleList(torsion_layers[::-1])
        geometry_layers = []
        for layer in range(config.geometry_layers):
            if layer == 0:
                transformed, conditioning = list(range(self.num_geometry)), []
            else:
                transformed, conditioning = _split(self.num_geometry, layer - 1)
            geometry_layers.append(GeometryCoupling(self.num_geometry, transformed, conditioning, self.num_soft,
                                                    context, config.bins, config.bound, config.hidden, config.depth))
        self.geometry_layers = nn.ModuleList(geometry_layers)
        self.geometry_layers_reversed = nn.ModuleList(geometry_layers[::-1])

    # ------------------------------------------------------------------ held bonds
    @torch.jit.export
    def hold(self, bonds: torch.Tensor, lengths: torch.Tensor):
        """Hold the bonds where ``bonds`` ([N-1] bool, Z-matrix order) is True at ``lengths`` ([N-1], nm).

        A held bond is set to its length in :meth:`sample`, is not transformed by any coupling layer
        (it stays usable as a conditioning input), and neither its log-det, its base density nor its
        standardisation count in log q: the density is over the free coordinates only, so each layer
        stays a bijection of them and the density exact. No bond held: the flow as before.
        """
        if bonds.shape[0] != self.num_bonds or lengths.shape[0] != self.num_bonds:
            raise ValueError("hold needs one flag and one length per Z-matrix bond")
        device = self.geometry_mean.device
        others = torch.zeros(self.num_geometry - self.num_bonds, dtype=torch.bool, device=device)
        held = torch.cat([bonds.to(device=device, dtype=torch.bool), others])
        length = torch.cat([lengths.to(device=device, dtype=self.geometry_mean.dtype),
                            torch.zeros(self.num_geometry - self.num_bonds, device=device)])
        self.held = held
        self.held_length = torch.where(held, length, torch.zeros_like(length))
        self.held_value = torch.where(held, (length - self.geometry_mean) / self.geometry_std,
                                      torch.zeros_like(length))

    def _free_base(self, y: torch.Tensor) -> torch.Tensor:
        """log N(y) over the free (not held) geometry dimensions, minus their standardisation log-scale."""
        free = ~self.held
        count = int(free.sum())
        squares = torch.where(free.unsqueeze(0), y * y, torch.zeros_like(y)).sum(-1)
        log_scale = torch.where(free, torch.log(self.geometry_std), torch.zeros_like(self.geometry_std)).sum()
        return -0.5 * squares - 0.5 * count * 1.8378770664093453 - log_scale

    # ------------------------------------------------------------------ context
    def _standardised(self, bonds: torch.Tensor, angles: torch.Tensor, torsions: torch.Tensor) -> torch.Tensor:
        """y of structures: bonds, angles and rigid torsions (deviation from the mean, wrapped), standardised."""
        start = self.num_bonds + self.num_angles
        geometry = (torch.cat([bonds, angles], dim=-1) - self.geometry_mean[:start]) / self.geometry_std[:start]
        rigid = wrap_angle(torsions[:, self.rigid_index] - self.geometry_mean[start:]) / self.geometry_std[start:]
        return torch.cat([geometry, rigid], dim=-1)

    @torch.jit.export
    def context_of(self, bonds: torch.Tensor, angles: torch.Tensor, torsions: torch.Tensor) -> torch.Tensor:
        """The context of the structures conditioned on ([B, context]; [B, 0] for an independent flow)."""
        if not self.conditional:
            return torch.zeros(bonds.shape[0], 0, dtype=bonds.dtype, device=bonds.device)
        soft = torsions[:, self.soft_index]
        y = self._standardised(bonds, angles, torsions)
        return self.encoder(torch.cat([torch.cos(soft), torch.sin(soft), y], dim=-1))

    # ------------------------------------------------------------------ the two directions
    @torch.jit.export
    def sample(self, noise: torch.Tensor, context: torch.Tensor,
               cond_torsions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Standard-normal noise [B, 3N-6] -> (bonds, angles, torsions, log q(c)) of new structures.

        ``context`` ([1 or B, context]) and ``cond_torsions`` ([1 or B, N-3]) come from the structure
        conditioned on; an independent flow ignores both. Rows whose rigid torsions deviate by pi or
        more from their mean get log q = -inf (the map to the circle would not be one-to-one).
        """
        batch = noise.shape[0]
        u = 0.5 * (1.0 + torch.erf(noise[:, :self.num_soft] / math.sqrt(2.0)))
        t = (2.0 * u - 1.0) * math.pi
        y = torch.where(self.held.unsqueeze(0), self.held_value.unsqueeze(0), noise[:, self.num_soft:self.dimension])
        log_q = -self.num_soft * 1.8378770664093453 + self._free_base(y)
        for layer in self.torsion_layers:
            t, log_det = layer(t, context, False)
            log_q = log_q - log_det
        features = torch.cat([torch.cos(t), torch.sin(t)], dim=-1)
        for layer in self.geometry_layers:
            y, log_det = layer(y, features, context, False, self.held)
            log_q = log_q - log_det
        if self.conditional:
            soft = wrap_angle(t + cond_torsions[:, self.soft_index].expand(batch, self.num_soft))
        else:
            soft = wrap_angle(t + self.soft_offset)
        geometry = torch.where(self.held.unsqueeze(0), self.held_length.unsqueeze(0),
                               self.geometry_mean + self.geometry_std * y)  # held bonds exactly at their length
        start = self.num_bonds + self.num_angles
        deviation = (geometry - self.geometry_mean)[:, start:]
        log_q = torch.where((deviation.abs() < math.pi).all(-1), log_q, torch.full_like(log_q, -math.inf))
        torsions = torch.zeros(batch, self.num_torsions, dtype=noise.dtype, device=noise.device)
        torsions = torsions.index_copy(1, self.soft_index, soft).index_copy(1, self.rigid_index,
                                                                             wrap_angle(geometry[:, start:]))
        return geometry[:, :self.num_bonds], geometry[:, self.num_bonds:start], torsions, log_q

    @torch.jit.export
    def log_prob(self, bonds: torch.Tensor, angles: torch.Tensor, torsions: torch.Tensor, context: torch.Tensor,
                 cond_torsions: torch.Tensor) -> torch.Tensor:
        """log q(c) (or log q(c | conditioning)) per row [B]."""
        batch = bonds.shape[0]
        y = self._standardised(bonds, angles, torsions)
        soft = torsions[:, self.soft_index]
        if self.conditional:
            t = wrap_angle(soft - cond_torsions[:, self.soft_index].expand(batch, self.num_soft))
        else:
            t = wrap_angle(soft - self.soft_offset)
        y = torch.where(self.held.unsqueeze(0), self.held_value.unsqueeze(0), y)  # held: as sample sets them
        log_q = torch.zeros(batch, dtype=y.dtype, device=y.device)
        features = torch.cat([torch.cos(t), torch.sin(t)], dim=-1)
        for layer in self.geometry_layers_reversed:
            y, log_det = layer(y, features, context, True, self.held)
            log_q = log_q + log_det
        for layer in self.torsion_layers_reversed:
            t, log_det = layer(t, context, True)
            log_q = log_q + log_det
        return log_q - self.num_soft * 1.8378770664093453 + self._free_base(y)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _std(rows: torch.Tensor) -> torch.Tensor:
    """Per-column standard deviation of rows [F, C]; empty for no columns (a molecule of three atoms has no torsions)."""
    return rows.std(0) if rows.shape[-1] > 0 else rows.new_zeros(0)


def standardization(bonds: torch.Tensor, angles: torch.Tensor, torsions: torch.Tensor, floor: float = 1e-3):
    """Means and spreads from data rows [F, ...]: bonds, angles, torsions (circular), and the rigid torsions.

    Returns
    -------
    dict
        ``bond_mean``, ``bond_std``, ``angle_mean``, ``angle_std``, ``torsion_offset``, ``torsion_std``
        (Tensors) and ``rigid`` (indices of torsions whose circular spread is below ``RIGID_SPREAD``).
    """
    bonds, angles, torsions = bonds.double(), angles.double(), torsions.double()
    resultant = torch.complex(torch.cos(torsions), torch.sin(torsions)).mean(0)
    offset = torch.angle(resultant)
    spread = torch.sqrt(-2.0 * torch.log(resultant.abs().clamp(1e-12, 1.0)))
    deviation = wrap_angle(torsions - offset)
    return {"bond_mean": bonds.mean(0), "bond_std": _std(bonds).clamp_min(floor * bonds.mean(0).abs().clamp_min(1e-3)),
            "angle_mean": angles.mean(0), "angle_std": _std(angles).clamp_min(floor), "torsion_offset": offset,
            "torsion_std": _std(deviation).clamp_min(floor),
            "rigid": [int(i) for i in torch.nonzero(spread < RIGID_SPREAD).flatten()]}


def build_flow(num_atoms: int, config: InternalFlowConfig, bonds: torch.Tensor, angles: torch.Tensor,
               torsions: torch.Tensor) -> InternalCoordinateFlow:
    """A flow for this molecule, standardised on training data (rows of bonds, angles, torsions)."""
    return InternalCoordinateFlow(num_atoms, config, **standardization(bonds, angles, torsions))


def empty_flow(num_atoms: int, config: InternalFlowConfig, rigid: Sequence[int]) -> InternalCoordinateFlow:
    """A flow of the right shapes whose standardisation and weights come from a saved state dict."""
    n = num_atoms
    return InternalCoordinateFlow(n, config, torch.zeros(n - 1), torch.ones(n - 1), torch.zeros(n - 2),
                                  torch.ones(n - 2), torch.zeros(n - 3), torch.ones(n - 3), rigid)
