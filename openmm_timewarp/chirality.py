"""Chirality centres and the flip test (pure functions).

Flows are not reflection-aware and can propose mirror images (D-amino acids). A centre is an
atom with exactly four bonded neighbours of which at most one is hydrogen (every non-Gly CA,
Ile CB, Thr CB, and some non-stereogenic branch points, flagged conservatively). Its signature
is the sign of d0 . (d1 x d2), d_i the vectors from the centre to its first three bonded
neighbours in ascending index order.
"""

from typing import Iterable, Sequence, Tuple

import numpy as np
import torch


def find_chirality_centres(
    atomic_numbers: Sequence[int], bonds: Iterable[Tuple[int, int]]
) -> np.ndarray:
    """Return the chirality centres as rows (centre, n0, n1, n2) of an int64 array [C, 4].

    Parameters
    ----------
    atomic_numbers : sequence of int
        Atomic number of each atom (1 = hydrogen).
    bonds : iterable of (int, int)
        Bonded atom pairs (each pair once or twice, any order).
    """
    neighbours = [set() for _ in atomic_numbers]
    for i, j in bonds:
        if i != j:
            neighbours[i].add(j)
            neighbours[j].add(i)
    rows = []
    for centre, bonded in enumerate(neighbours):
        if len(bonded) != 4:
            continue
        ordered = sorted(bonded)
        if sum(1 for n in ordered if atomic_numbers[n] == 1) > 1:
            continue
        rows.append([centre] + ordered[:3])
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def signed_volumes(positions: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """d0 . (d1 x d2) at every centre (nm^3), differentiable.

    Parameters
    ----------
    positions : Tensor [..., N, 3]
    centres : Tensor [C, 4] of int64

    Returns
    -------
    Tensor [..., C]
    """
    centre = positions[..., centres[:, 0], :]
    d0 = positions[..., centres[:, 1], :] - centre
    d1 = positions[..., centres[:, 2], :] - centre
    d2 = positions[..., centres[:, 3], :] - centre
    return (d0 * torch.cross(d1, d2, dim=-1)).sum(-1)


def chirality_signs(positions: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Signs (+1, -1, 0) of the chirality signature of every centre, [..., C]."""
    return torch.sign(signed_volumes(positions, centres))


def chirality_changed(reference: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """True for every configuration (leading dimensions of ``signs``) whose signature differs from ``reference``."""
    if signs.shape[-1] == 0:
        return torch.zeros(signs.shape[:-1], dtype=torch.bool)
    return (signs != reference).any(dim=-1)
