"""Kernel self-attention over interatomic distances of the conditioning structure.

There are no queries or keys: the weight between atoms i and j for head h is
exp(-(d_ij / l_h)^2) of their distance in x(t), rows normalised over the real (unpadded) atoms.
The weights depend only on the conditioning structure, so a flow computes them once per call
and shares them between all coupling layers.
"""

from typing import List

import torch


def kernel_attention_weights(x: torch.Tensor, mask: torch.Tensor, length_scales: List[float]) -> torch.Tensor:
    """Attention weights for every head.

    Parameters
    ----------
    x : Tensor [B, N, 3]
        Conditioning positions (nm).
    mask : Tensor [B, N] of bool
        True for real atoms, False for padding.
    length_scales : list of float
        One length scale (nm) per head.

    Returns
    -------
    Tensor [B, H, N, N]
        Row-normalised weights; columns of padded atoms are zero.
    """
    squared = (x.unsqueeze(2) - x.unsqueeze(1)).pow(2).sum(-1)  # [B, N, N]
    scales = torch.tensor(length_scales, dtype=x.dtype, device=x.device).pow(2).view(1, -1, 1, 1)
    weights = torch.exp(-squared.unsqueeze(1) / scales)  # [B, H, N, N]
    weights = weights * mask.to(x.dtype).view(mask.shape[0], 1, 1, -1)
    return weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
