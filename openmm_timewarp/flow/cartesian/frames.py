"""A canonical frame of a conditioning structure: rotation equivariance by construction.

The frame's axes are the principal axes of the structure's (unit-mass) inertia, ordered by
eigenvalue, each oriented so that the third moment of the coordinates along it is positive, and
the last axis flipped if needed to make a proper rotation. It depends only on the set of atom
positions, so it is invariant to permuting atoms and equivariant to rotating and translating the
structure. A flow that acts in this frame (rotating its inputs in and its outputs back) is
rotation equivariant exactly; rotations have unit Jacobian, so densities are unchanged. Where the
frame is ill-defined (degenerate axes, vanishing third moments) it may jump: the density stays
exact, only harder to learn there.
"""

from typing import Tuple

import torch


def canonical_frame(x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Centroid [B, 1, 3] and rotation [B, 3, 3] (columns = axes) of each structure.

    Coordinates in the frame are ``(x - centroid) @ rotation``; back: ``y @ rotation.T + centroid``.
    """
    keep = mask.unsqueeze(-1).to(x.dtype)
    centroid = (x * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1.0)
    centred = (x - centroid) * keep
    covariance = torch.matmul(centred.transpose(1, 2), centred)  # [B, 3, 3]
    _, axes = torch.linalg.eigh(covariance.double())
    axes = axes.to(x.dtype)
    projected = torch.matmul(centred, axes)  # [B, N, 3]
    skew = projected.pow(3).sum(1)  # [B, 3]
    signs = torch.where(skew >= 0, torch.ones_like(skew), -torch.ones_like(skew))
    axes = axes * signs.unsqueeze(1)
    determinant = torch.linalg.det(axes)
    flip = torch.ones_like(axes[:, 0, :])
    flip[:, 2] = determinant.sign()
    return centroid, axes * flip.unsqueeze(1)
