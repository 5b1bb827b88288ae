"""Atom transformer conditioner: per-atom features mixed by kernel attention, out come log-scale and shift."""

import torch
from torch import nn


class KernelAttentionBlock(nn.Module):
    """h <- h + W_o [A_h (W_v h)]_h ; h <- h + MLP(LayerNorm(h)), with precomputed weights A."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        if hidden % heads != 0:
            raise ValueError(f"hidden size {hidden} must be a multiple of the number of heads {heads}")
        self.heads = heads
        self.norm_attention = nn.LayerNorm(hidden)
        self.values = nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, hidden)
        self.norm_mlp = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.SiLU(), nn.Linear(2 * hidden, hidden))

    def forward(self, h: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        batch, atoms, hidden = h.shape
        values = self.values(self.norm_attention(h)).view(batch, atoms, self.heads, hidden // self.heads)
        values = values.transpose(1, 2)  # [B, H, N, d]
        mixed = torch.matmul(weights, values).transpose(1, 2).reshape(batch, atoms, hidden)
        h = h + self.output(mixed)
        return h + self.mlp(self.norm_mlp(h))


class AtomTransformer(nn.Module):
    """Maps per-atom inputs to a per-atom, per-coordinate (log-scale, shift) pair.

    The final layer starts at zero, so a fresh coupling layer is the identity.
    """

    def __init__(self, in_features: int, hidden: int, heads: int, blocks: int):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(in_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList([KernelAttentionBlock(hidden, heads) for _ in range(blocks)])
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, 6)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        h = self.embed(features)
        for block in self.blocks:
            h = block(h, weights)
        return self.head(self.norm(h))
