"""The Timewarp flow: an augmented conditional normalizing flow q(x', v' | x).

The flow models the displacement d = x' - x (Jacobian 1) together with an auxiliary variable v'
of the same shape. Base: z ~ N(0, I) in [B, N, 6], scaled by one learnable scale for positions
and one for v. Then affine coupling layers alternate between the position half and the auxiliary
half; every conditioner sees per-atom element embeddings, the conditioning structure centred by
its plain centroid, and the other half, mixed by kernel self-attention whose weights depend on
the conditioning structure only (computed once per call, shared by all layers).

Symmetries: permutation equivariant (no positional encodings), translation equivariant (the
conditioning is centred and the flow acts on displacements); rotations are learned from data
augmentation. Batches may mix molecules of different sizes through a padding mask; a
molecule's density does not depend on the rest of the batch.
"""

import math
from dataclasses import asdict, dataclass, field
from typing import List, Tuple

import torch
from torch import nn

from .attention import kernel_attention_weights
from .coupling import AffineCoupling
from .frames import canonical_frame



@dataclass
class FlowConfig:
    """Sizes and constants of a :class:`TimewarpFlow` (all of it is saved with checkpoints and exports).

    Attributes
    ----------
    elements : list of int
        Atomic numbers the model knows (H, C, N, O, S by default: transferable across peptides).
    embedding : int
        Size of the element embedding.
    hidden : int
        Width of the atom transformers (a multiple of the number of length scales).
    blocks : int
        Kernel-attention blocks per conditioner.
    layers : int
        Coupling layers (alternating positions / auxiliary).
    length_scales : list of float
        Attention length scales (nm), one head each.
    max_log_scale : float
        Bound on |log-scale| of each coupling.
    position_scale : float
        Typical displacement (nm); sets the scale of position inputs and shifts and the initial base scale.
    coordinate_scale : float
        Scale (nm) of the centred conditioning coordinates given to the conditioners.
    canonical_frame : bool
        Act in the canonical frame of the conditioning structure (principal axes; see
        :mod:`openmm_timewarp.flow.frames`): rotation equivariant by construction. Without it,
        rotations are learned from augmentation only.
    """

    elements: List[int] = field(default_factory=lambda: [1, 6, 7, 8, 16])
    embedding: int = 16
    hidden: int = 48
    blocks: int = 1
    layers: int = 8
    length_scales: List[float] = field(default_factory=lambda: [0.1, 0.2, 0.5, 0.7, 1.0, 1.2])
    max_log_scale: float = 2.0
    position_scale: float = 0.1
    coordinate_scale: float = 0.5
    canonical_frame: bool = True

    def to_dict(self):
        return asdict(self)


class TimewarpFlow(nn.Module):
    """Conditional flow over (x', v') given x; see the module docstring.

    The batched, masked API (``sample_batch``, ``log_prob_batch``) takes per-row atomic numbers
    [B, N] and a padding mask [B, N]. The export wrapper turns it into flow contract version 1.
    """

    length_scales: List[float]
    elements: List[int]

    def __init__(self, config: FlowConfig = None):
        super().__init__()
        config = config if config is not None else FlowConfig()
        self.config_dict = config.to_dict()
        self.elements = list(config.elements)
        self.length_scales = list(config.length_scales)
        self.coordinate_scale = config.coordinate_scale
        self.canonical = config.canonical_frame
        table = torch.zeros(119, dtype=torch.int64)
        for index, number in enumerate(config.elements):
            table[number] = index + 1
        self.register_buffer("element_index", table)
        self.embedding = nn.Embedding(len(config.elements) + 1, config.embedding)
        context = config.embedding + 3
        self.layers = nn.ModuleList([
            AffineCoupling(i % 2 == 0, context, config.hidden, len(config.length_scales), config.blocks,
                           config.max_log_scale, config.position_scale)
            for i in range(config.layers)
        ])
        # The same layers in inverse order (TorchScript cannot iterate a ModuleList backwards).
        self.inverse_layers = nn.ModuleList(list(self.layers)[::-1])
        self.log_sigma_x = nn.Parameter(torch.tensor(math.log(config.position_scale)))
        self.log_sigma_v = nn.Parameter(torch.tensor(0.0))

    # ------------------------------------------------------------------ pieces
    def conditioning(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, mask: torch.Tensor,
                     shared: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-atom context [B, N, F], attention weights [B, H, N, N] and the frame rotation [B, 3, 3].

        With ``shared=True`` (every row conditions on the same structure) they are computed from the
        first row only and returned with batch size 1, to be broadcast. The rotation is the identity
        unless ``canonical_frame`` is on.
        """
        if shared:
            x_cond, atomic_numbers, mask = x_cond[:1], atomic_numbers[:1], mask[:1]
        keep = mask.unsqueeze(-1).to(x_cond.dtype)
        if self.canonical:
            centroid, rotation = canonical_frame(x_cond, mask)
        else:
            centroid = (x_cond * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1.0)
            rotation = torch.eye(3, dtype=x_cond.dtype, device=x_cond.device).expand(x_cond.shape[0], 3, 3)
        centred = torch.matmul(x_cond - centroid, rotation) * keep
        embedded = self.embedding(self.element_index[atomic_numbers]) * keep
        context = torch.cat([embedded, centred / self.coordinate_scale], dim=-1)
        return context, kernel_attention_weights(centred, mask, self.length_scales), rotation

    def standard_normal_log_prob(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) over the real atoms of each row, z [B, N, 6]."""
        keep = mask.to(z.dtype)
        return -0.5 * (z.pow(2).sum(-1) * keep).sum(-1) - keep.sum(-1) * 3.0 * 1.8378770664093453  # 3 log(2 pi)

    # ------------------------------------------------------------------ batched, masked API
    def sample_batch(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, z: torch.Tensor,
                     mask: torch.Tensor, shared: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Map noise z [B, N, 6] to (x', v', log q(x', v' | x_cond)).

        ``shared=True`` promises that every row has the same x_cond, atomic numbers and mask: the
        conditioning is then computed once and broadcast.
        """
        context, weights, rotation = self.conditioning(x_cond, atomic_numbers, mask, shared)
        keep = mask.unsqueeze(-1).to(z.dtype)
        z = z * keep
        log_q = self.standard_normal_log_prob(z, mask) - keep.sum(dim=(-2, -1)) * 3.0 * (self.log_sigma_x + self.log_sigma_v)
        d = z[..., :3] * torch.exp(self.log_sigma_x)
        v = z[..., 3:] * torch.exp(self.log_sigma_v)
        for layer in self.layers:
            d, v, log_det = layer(d, v, context, weights, mask)
            log_q = log_q - log_det
        # back from the frame (a rotation: no change of density)
        back = rotation.transpose(1, 2)
        return x_cond + torch.matmul(d, back), torch.matmul(v, back), log_q

    def to_base(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor, v: torch.Tensor,
                mask: torch.Tensor, shared: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """Invert the flow: (x, v) given x_cond -> (z [B, N, 6], log|det| of the inverse map per row)."""
        context, weights, rotation = self.conditioning(x_cond, atomic_numbers, mask, shared)
        keep = mask.unsqueeze(-1).to(x.dtype)
        d = torch.matmul(x - x_cond, rotation) * keep
        v = torch.matmul(v, rotation) * keep
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in self.inverse_layers:
            d, v, step = layer.inverse(d, v, context, weights, mask)
            log_det = log_det + step
        zx = d * torch.exp(-self.log_sigma_x)
        zv = v * torch.exp(-self.log_sigma_v)
        atoms = keep.sum(dim=(-2, -1))
        log_det = log_det - atoms * 3.0 * (self.log_sigma_x + self.log_sigma_v)
        return torch.cat([zx, zv], dim=-1), log_det

    def log_prob_batch(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor,
                       v: torch.Tensor, mask: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """log q(x, v | x_cond) per row [B]."""
        z, log_det = self.to_base(x_cond, atomic_numbers, x, v, mask, shared)
        return self.standard_normal_log_prob(z, mask) + log_det

    def forward(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor, v: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """log q(x, v | x_cond), the training objective's ingredient."""
        return self.log_prob_batch(x_cond, atomic_numbers, x, v, mask)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
