"""Affine coupling between the position half and the auxiliary half of the augmented state."""

from typing import Tuple

import torch
from torch import nn

from .conditioner import AtomTransformer


class AffineCoupling(nn.Module):
    """Updates one half (displacement d or auxiliary v) given the other half and the conditioning.

    y <- y * exp(s) + t, with s = s_max * tanh(s_raw / s_max) bounded and (s, t) from an atom
    transformer that sees the per-atom conditioning features and the other half. Padded atoms
    are left unchanged and contribute nothing to the log-determinant.
    """

    def __init__(self, update_positions: bool, context_features: int, hidden: int, heads: int, blocks: int,
                 max_log_scale: float, position_scale: float):
        super().__init__()
        self.update_positions = update_positions
        self.max_log_scale = max_log_scale
        self.position_scale = position_scale
        self.conditioner = AtomTransformer(context_features + 3, hidden, heads, blocks)

    def _scale_shift(self, other: torch.Tensor, context: torch.Tensor, weights: torch.Tensor,
                     mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if not self.update_positions:
            other = other / self.position_scale  # displacement in units of a typical step
        if context.shape[0] != other.shape[0]:
            context = context.expand(other.shape[0], context.shape[1], context.shape[2])
        out = self.conditioner(torch.cat([context, other], dim=-1), weights)
        keep = mask.unsqueeze(-1).to(out.dtype)
        log_scale = self.max_log_scale * torch.tanh(out[..., :3] / self.max_log_scale) * keep
        shift = out[..., 3:] * keep
        if self.update_positions:
            shift = shift * self.position_scale
        return log_scale, shift

    def forward(self, d: torch.Tensor, v: torch.Tensor, context: torch.Tensor, weights: torch.Tensor,
                mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Base -> data direction. Returns (d, v, log|det J|) with the log-det per batch row."""
        if self.update_positions:
            log_scale, shift = self._scale_shift(v, context, weights, mask)
            d = d * torch.exp(log_scale) + shift
        else:
            log_scale, shift = self._scale_shift(d, context, weights, mask)
            v = v * torch.exp(log_scale) + shift
        return d, v, log_scale.sum(dim=(-2, -1))

    def inverse(self, d: torch.Tensor, v: torch.Tensor, context: torch.Tensor, weights: torch.Tensor,
                mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Data -> base direction. Returns (d, v, log|det J^-1|)."""
        if self.update_positions:
            log_scale, shift = self._scale_shift(v, context, weights, mask)
            d = (d - shift) * torch.exp(-log_scale)
        else:
            log_scale, shift = self._scale_shift(d, context, weights, mask)
            v = (v - shift) * torch.exp(-log_scale)
        return d, v, -log_scale.sum(dim=(-2, -1))
