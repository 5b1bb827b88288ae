"""One spline-coupling flow for the internal coordinates of every peptide.

The variables are those of the per-molecule family (:mod:`openmm_timewarp.flow.internal.model`):
soft torsions t on the circle (uniform base), and y, the bonds, angles and rigid torsions after
standardisation (normal base). Which torsions are soft, and every mean and spread, come from the
pooled training data by token (:mod:`.coordinates`), so they differ from peptide to peptide; the
network's weights do not. Transforms, in order: circular spline couplings of the soft torsions,
then bounded spline couplings of y conditioned on every soft torsion. The first layer of each
group transforms all of its coordinates, conditioned on their tokens alone; each later pair of
layers splits the group in two by a bit of the token's hash.

The conditioner of a layer (:class:`ResidueConditioner`) sees a molecule as residues:

1. every visible coordinate c (one the layer conditions on) gives a message
   ``m_c = SiLU(E_c + W_c f_c)``, with f_c = (cos t, sin t, 1) for a soft torsion and (y, 0, 1)
   for the rest, and E_c, W_c sums of per-level token embeddings; hidden coordinates give SiLU(E_c);
2. a residue is the mean of its coordinates' messages plus its type's embedding;
3. ``rounds`` times, every residue is updated from itself, its two neighbours and the mean of all;
4. a transformed coordinate's spline parameters are a small MLP of its residue's state, its own
   token embedding and the visible values of its Z-matrix neighbours in fixed roles (its atom's
   other coordinates, its parent's, grandparent's, siblings' and children's), zero at the output
   so that every layer starts as the identity.

What a molecule contributes is a :class:`MoleculeTensors` (made once per molecule: tokens,
residues, standardisation, masks); the flow itself is shared.
"""

import math
from dataclasses import asdict, dataclass
from typing import List, NamedTuple, Tuple

import torch
from torch import nn

from ..splines import bounded_spline, circular_spline, unit_derivative_parameter, wrap_angle



class MoleculeTensors(NamedTuple):
    """What one molecule gives the network (C = 3N - 6 coordinates, R residues).

    tokens [C, L] int64: embedding index per level (0: not seen in training); residue [C] int64;
    residue_tokens [R] int64; residue_weight [R] (1 / coordinates per residue); soft [S] and
    geometry [G] int64: indices into C; wrap [G] bool (rigid torsions); mean, std [C];
    torsion_masks [Lt, S] and geometry_masks [Lg, G] bool: what each layer transforms;
    neighbours [C, K] int64: the coordinates each coordinate's spline sees directly
    (:func:`~.coordinates.neighbour_coordinates`; C stands for "none").
    """

    tokens: torch.Tensor
    residue: torch.Tensor
    residue_tokens: torch.Tensor
    residue_weight: torch.Tensor
    soft: torch.Tensor
    geometry: torch.Tensor
    wrap: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    torsion_masks: torch.Tensor
    geometry_masks: torch.Tensor
    neighbours: torch.Tensor


@dataclass
class PeptideFlowConfig:
    """Sizes of a :class:`PeptideFlow` (saved with checkpoints and exports)."""

    hidden: int = 96
    embedding: int = 64
    bins: int = 8
    torsion_layers: int = 6
    geometry_layers: int = 4
    rounds: int = 2
    neighbours: int = 24
    bound: float = 5.0

    def to_dict(self):
        return asdict(self)


class TokenEmbedding(nn.Module):
    """Sum over levels of one embedding per level (index 0 of each level is a fixed zero)."""

    def __init__(self, vocabulary: List[int], width: int, scale: float = 0.1):
        super().__init__()
        self.width = width
        self.tables = nn.ModuleList([nn.Embedding(size + 1, width, padding_idx=0) for size in vocabulary])
        for table in self.tables:
            nn.init.normal_(table.weight, std=scale)
            with torch.no_grad():
                table.weight[0].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(tokens.shape[0], self.width, dtype=torch.float32, device=tokens.device)
        for level, table in enumerate(self.tables):
            out = out + table(tokens[:, level])
        return out


class ResidueConditioner(nn.Module):
    """Spline parameters of the transformed coordinates of one layer (see the module docstring).

    The token embeddings are shared by every layer; each layer maps them to its own message bias,
    message weights and output offset.
    """

    def __init__(self, embedding: int, residue_vocabulary: int, hidden: int, per_dim: int,
                 derivative_slots: List[int], rounds: int, neighbours: int):
        super().__init__()
        self.hidden = hidden
        self.per_dim = per_dim
        self.from_token = nn.Linear(embedding, 5 * hidden)
        self.residue_embedding = nn.Embedding(residue_vocabulary + 1, hidden, padding_idx=0)
        nn.init.normal_(self.residue_embedding.weight, std=0.1)
        self.mixers = nn.ModuleList([nn.Sequential(nn.Linear(4 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
                                     for _ in range(rounds)])
        self.to_output = nn.Linear(hidden, hidden)
        self.local = nn.Linear(3 * neighbours, hidden)
        self.head = nn.Linear(hidden, per_dim)
        initial = torch.zeros(per_dim)
        initial[derivative_slots] = unit_derivative_parameter()
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(initial)

    def forward(self, features: torch.Tensor, visible: torch.Tensor, targets: torch.Tensor, tokens: torch.Tensor,
                molecule: MoleculeTensors) -> torch.Tensor:
        """Parameters [B, T, per_dim] of coordinates ``targets`` [T], from ``features`` [B, V, 3] of ``visible`` [V].

        ``tokens`` [C, embedding] are the molecule's token embeddings.
        """
        batch = features.shape[0]
        h = self.hidden
        mapped = self.from_token(tokens)
        bias, weight, offset = mapped[:, :h], mapped[:, h:4 * h], mapped[:, 4 * h:]
        weight = weight[visible].reshape(visible.shape[0], 3, h)
        messages = torch.nn.functional.silu(bias[visible] + torch.einsum("bvf,vfh->bvh", features, weight))
        residues = molecule.residue_tokens.shape[0]
        state = torch.zeros(batch, residues, h, dtype=features.dtype, device=features.device)
        state = state.index_add(1, molecule.residue[visible], messages) * molecule.residue_weight.unsqueeze(-1)
        state = state + self.residue_embedding(molecule.residue_tokens)
        for mixer in self.mixers:
            zero = torch.zeros_like(state[:, :1])
            left = torch.cat([zero, state[:, :-1]], dim=1)
            right = torch.cat([state[:, 1:], zero], dim=1)
            mean = state.mean(1, keepdim=True).expand(batch, residues, h)
            state = state + mixer(torch.cat([left, state, right, mean], dim=-1))
        own = self.to_output(state)[:, molecule.residue[targets]] + offset[targets]
        # the visible values of each target's Z-matrix neighbours, in fixed roles (zero where hidden or absent)
        count = molecule.mean.shape[0]
        every = torch.zeros(batch, count + 1, 3, dtype=features.dtype, device=features.device)
        every = every.index_copy(1, visible, features)
        local = every[:, molecule.neighbours[targets]].reshape(batch, targets.shape[0], -1)
        return self.head(torch.nn.functional.silu(own + self.local(local)))


def _torsion_features(t: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cos(t), torch.sin(t), torch.ones_like(t)], dim=-1)


def _geometry_features(y: torch.Tensor) -> torch.Tensor:
    return torch.stack([y, torch.zeros_like(y), torch.ones_like(y)], dim=-1)


class TorsionCoupling(nn.Module):
    """Circular splines of the masked soft torsions, conditioned on the other soft torsions."""

    def __init__(self, embedding: int, residue_vocabulary: int, config: PeptideFlowConfig):
        super().__init__()
        k = self.bins = int(config.bins)
        self.conditioner = ResidueConditioner(embedding, residue_vocabulary, config.hidden, 3 * k,
                                              list(range(2 * k, 3 * k)), config.rounds, config.neighbours)

    def forward(self, t: torch.Tensor, y: torch.Tensor, tokens: torch.Tensor, molecule: MoleculeTensors,
                mask: torch.Tensor, inverse: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        moved = torch.nonzero(mask).flatten()
        kept = torch.nonzero(~mask).flatten()
        p = self.conditioner(_torsion_features(t[:, kept]), molecule.soft[kept], molecule.soft[moved], tokens,
                             molecule)
        k = self.bins
        out, log_det = circular_spline(t[:, moved], p[..., :k].contiguous(), p[..., k:2 * k].contiguous(),
                                       p[..., 2 * k:].contiguous(), inverse)
        return t.index_copy(1, moved, out), log_det.sum(-1)


class GeometryCoupling(nn.Module):
    """Bounded splines of the masked bonds, angles and rigid torsions, conditioned on every soft torsion and the rest."""

    def __init__(self, embedding: int, residue_vocabulary: int, config: PeptideFlowConfig):
        super().__init__()
        k = self.bins = int(config.bins)
        self.bound = float(config.bound)
        self.conditioner = ResidueConditioner(embedding, residue_vocabulary, config.hidden, 3 * k - 1,
                                              list(range(2 * k, 3 * k - 1)), config.rounds, config.neighbours)

    def forward(self, t: torch.Tensor, y: torch.Tensor, tokens: torch.Tensor, molecule: MoleculeTensors,
                mask: torch.Tensor, inverse: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        moved = torch.nonzero(mask).flatten()
        kept = torch.nonzero(~mask).flatten()
        features = torch.cat([_torsion_features(t), _geometry_features(y[:, kept])], dim=1)
        visible = torch.cat([molecule.soft, molecule.geometry[kept]])
        p = self.conditioner(features, visible, molecule.geometry[moved], tokens, molecule)
        k = self.bins
        out, log_det = bounded_spline(y[:, moved], p[..., :k].contiguous(), p[..., k:2 * k].contiguous(),
                                      p[..., 2 * k:].contiguous(), self.bound, inverse)
        return y.index_copy(1, moved, out), log_det.sum(-1)


class PeptideFlow(nn.Module):
    """q(c | molecule) over the internal coordinates of any peptide (state-independent).

    Parameters
    ----------
    config : PeptideFlowConfig
    vocabulary : list of int
        Number of keys at each token level.
    residue_vocabulary : int
        Number of template keys.
    """

    def __init__(self, config: PeptideFlowConfig, vocabulary: List[int], residue_vocabulary: int):
        super().__init__()
        self.config_dict = config.to_dict()
        self.vocabulary = [int(v) for v in vocabulary]
        self.residue_vocabulary = int(residue_vocabulary)
        self.embedding = TokenEmbedding(vocabulary, config.embedding)
        torsion = [TorsionCoupling(config.embedding, residue_vocabulary, config) for _ in range(config.torsion_layers)]
        geometry = [GeometryCoupling(config.embedding, residue_vocabulary, config)
                    for _ in range(config.geometry_layers)]
        self.torsion_layers = nn.ModuleList(torsion)
        self.geometry_layers = nn.ModuleList(geometry)
        self.torsion_layers_reversed = nn.ModuleList(torsion[::-1])
        self.geometry_layers_reversed = nn.ModuleList(geometry[::-1])

    def standardised(self, coordinates: torch.Tensor, molecule: MoleculeTensors) -> Tuple[torch.Tensor, torch.Tensor]:
        """(t, y) of coordinates [B, C] (bonds, angles, torsions concatenated)."""
        soft = wrap_angle(coordinates[:, molecule.soft] - molecule.mean[molecule.soft])
        raw = coordinates[:, molecule.geometry] - molecule.mean[molecule.geometry]
        raw = torch.where(molecule.wrap, wrap_angle(raw), raw)
        return soft, raw / molecule.std[molecule.geometry]

    # ------------------------------------------------------------------ the two directions
    def sample(self, noise: torch.Tensor, molecule: MoleculeTensors) -> Tuple[torch.Tensor, torch.Tensor]:
        """Standard-normal noise [B, C] -> (coordinates [B, C], log q(c) [B]).

        Rows whose rigid torsions deviate by pi or more from their mean get log q = -inf.
        """
        soft_count = molecule.soft.shape[0]
        geometry_count = molecule.geometry.shape[0]
        u = 0.5 * (1.0 + torch.erf(noise[:, :soft_count] / math.sqrt(2.0)))
        t = (2.0 * u - 1.0) * math.pi
        y = noise[:, soft_count:soft_count + geometry_count]
        tokens = self.embedding(molecule.tokens)
        log_q = -soft_count * 1.8378770664093453 - 0.5 * (y * y).sum(-1) - 0.5 * geometry_count * 1.8378770664093453
        for k, layer in enumerate(self.torsion_layers):
            t, log_det = layer(t, y, tokens, molecule, molecule.torsion_masks[k], False)
            log_q = log_q - log_det
        for k, layer in enumerate(self.geometry_layers):
            y, log_det = layer(t, y, tokens, molecule, molecule.geometry_masks[k], False)
            log_q = log_q - log_det
        std = molecule.std[molecule.geometry]
        deviation = std * y
        log_q = log_q - torch.log(std).sum()
        rigid_ok = (~molecule.wrap | (deviation.abs() < math.pi)).all(-1)
        log_q = torch.where(rigid_ok, log_q, torch.full_like(log_q, -math.inf))
        geometry = molecule.mean[molecule.geometry] + deviation
        geometry = torch.where(molecule.wrap, wrap_angle(geometry), geometry)
        coordinates = torch.zeros(noise.shape[0], molecule.mean.shape[0], dtype=noise.dtype, device=noise.device)
        coordinates = coordinates.index_copy(1, molecule.soft, wrap_angle(t + molecule.mean[molecule.soft]))
        return coordinates.index_copy(1, molecule.geometry, geometry), log_q

    def to_base(self, coordinates: torch.Tensor, molecule: MoleculeTensors
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The base variables (t0 [B, S] on the circle, y0 [B, G]) of coordinates [B, C], and log |det d(t0, y0)/dc|."""
        t, y = self.standardised(coordinates, molecule)
        tokens = self.embedding(molecule.tokens)
        log_det_sum = -torch.log(molecule.std[molecule.geometry]).sum().expand(coordinates.shape[0])
        last = len(self.geometry_layers) - 1
        for k, layer in enumerate(self.geometry_layers_reversed):
            y, log_det = layer(t, y, tokens, molecule, molecule.geometry_masks[last - k], True)
            log_det_sum = log_det_sum + log_det
        last = len(self.torsion_layers) - 1
        for k, layer in enumerate(self.torsion_layers_reversed):
            t, log_det = layer(t, y, tokens, molecule, molecule.torsion_masks[last - k], True)
            log_det_sum = log_det_sum + log_det
        return t, y, log_det_sum

    def log_prob(self, coordinates: torch.Tensor, molecule: MoleculeTensors) -> torch.Tensor:
        """log q(c) per row of coordinates [B, C]."""
        t, y, log_det = self.to_base(coordinates, molecule)
        return (log_det - t.shape[1] * 1.8378770664093453 - 0.5 * (y * y).sum(-1)
                - 0.5 * y.shape[1] * 1.8378770664093453)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # shared by the reversed lists, counted once
