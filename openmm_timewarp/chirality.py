"""Chirality centres and the flip test (pure functions).

Flows are not reflection-aware and can propose mirror images (D-amino acids). A centre is an
atom with exactly four bonded neighbours of which at most one is hydrogen (every non-Gly CA,
Ile CB, Thr CB, and some non-stereogenic branch points, flagged conservatively). Its signature
is the sign of d0 . (d1 x d2), d_i the vectors from the centre to its first three bonded
neighbours in ascending index order.
"""

from . import _stack  # noqa: F401  (torch before openmm; repairs the openmm-torch plugin)
from typing import Iterable, List, Sequence, Tuple

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
    neighbours = _neighbour_sets(len(atomic_numbers), bonds)
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


def tetrahedral_centres(atomic_numbers: Sequence[int], bonds: Iterable[Tuple[int, int]]) -> np.ndarray:
    """Every atom with exactly four bonded neighbours as rows (centre, n0, n1, n2), neighbours ascending.

    A superset of :func:`find_chirality_centres`: methyl and methylene carbons are included. The
    sign of their signature tells the cyclic order of equivalent hydrogens (HB1, HB2, HB3), which
    molecular dynamics never changes: a structure with the opposite order is a permutational
    isomer of the same molecule.
    """
    neighbours = _neighbour_sets(len(atomic_numbers), bonds)
    rows = [[centre] + sorted(bonded)[:3] for centre, bonded in enumerate(neighbours) if len(bonded) == 4]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def equivalent_hydrogen_groups(atomic_numbers: Sequence[int], bonds: Iterable[Tuple[int, int]]) -> List[Tuple[int, List[int]]]:
    """Atoms with four neighbours of which two or more are hydrogens bonded to nothing else.

    Returns
    -------
    list of (centre, hydrogens)
        Hydrogens in ascending index order.
    """
    bonds = list(bonds)
    neighbours = _neighbour_sets(len(atomic_numbers), bonds)
    groups = []
    for centre, bonded in enumerate(neighbours):
        if len(bonded) != 4:
            continue
        hydrogens = sorted(n for n in bonded if atomic_numbers[n] == 1 and len(neighbours[n]) == 1)
        if len(hydrogens) >= 2:
            groups.append((centre, hydrogens))
    return groups


CANONICAL_HYDROGEN_SIGN = -1


def canonical_hydrogen_permutation(atomic_numbers: Sequence[int], bonds: Iterable[Tuple[int, int]],
                                   positions) -> np.ndarray:
    """The relabelling of equivalent hydrogens that gives every group the package's canonical order.

    For every group of :func:`equivalent_hydrogen_groups` whose tetrahedral signature (see
    :func:`tetrahedral_centres`) is not ``CANONICAL_HYDROGEN_SIGN``, the last two hydrogens swap
    places. Swapping two substituents flips the signature, and the energy does not change.

    Parameters
    ----------
    positions : array_like [N, 3]

    Returns
    -------
    numpy.ndarray of int64 [N]
        ``positions[permutation]`` carries canonical labels (the identity if it already does).
    """
    bonds = list(bonds)
    permutation = np.arange(len(atomic_numbers), dtype=np.int64)
    groups = equivalent_hydrogen_groups(atomic_numbers, bonds)
    if not groups:
        return permutation
    rows = {int(r[0]): r for r in tetrahedral_centres(atomic_numbers, bonds)}
    x = torch.as_tensor(np.asarray(positions, dtype=np.float64))
    centres = torch.as_tensor(np.stack([rows[centre] for centre, _ in groups]))
    signs = chirality_signs(x, centres).tolist()
    for (centre, hydrogens), sign in zip(groups, signs):
        if sign != CANONICAL_HYDROGEN_SIGN:
            a, b = hydrogens[-2], hydrogens[-1]
            permutation[a], permutation[b] = b, a
    return permutation


def _neighbour_sets(count: int, bonds: Iterable[Tuple[int, int]]) -> List[set]:
    neighbours = [set() for _ in range(count)]
    for i, j in bonds:
        if i != j:
            neighbours[i].add(j)
            neighbours[j].add(i)
    return neighbours
