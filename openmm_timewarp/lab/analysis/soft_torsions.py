"""The soft torsions of any molecule, found from its bond graph, and their rotamer states.

A bond b-c is a soft torsion when it is in no ring (no other path joins b and c), both b and c
have other neighbours, and neither end is a symmetric terminal rotor (three or more terminal atoms
of one element, as in CH3, NH3+ or CF3, or two as in NH2 and COO-: their turns only permute
equivalent atoms). Hydroxyl and thiol hydrogens count. Without bond orders a double or amide bond
counts too; it simply stays in one state.

The torsion is a-b-c-d with a and d the heaviest other neighbours of b and c (lowest index on
ties). Every torsion has three states on (-180, 180]: ``gauche+`` [0, 120), ``gauche-`` [-120, 0)
and ``trans`` (the rest), named ``<a>-<b>-<c>-<d>:<state>`` by atom names. The extra states are
that torsion's histogram: six bins of 60 degrees from -180, named ``<torsion>:-180..-120`` and so on.

:class:`SoftTorsionObservables` has the interface of
:class:`openmm_timewarp.lab.analysis.peptide.PeptideObservables` that fits, references and
benchmarks use: ``values`` (degrees), ``state_names``, ``indicators``, ``residues`` (none: there
are no Ramachandran residues) and ``biased_torsions``.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from .peptide import dihedrals

STATES = ("gauche+", "gauche-", "trans")
BIN_EDGES = tuple(range(-180, 181, 60))  # degrees: the histogram of the extra states
BINS = tuple(f"{lo}..{hi}" for lo, hi in zip(BIN_EDGES, BIN_EDGES[1:]))


def _neighbours(count: int, bonds) -> List[List[int]]:
    out: List[List[int]] = [[] for _ in range(count)]
    for i, j in bonds:
        out[i].append(j)
        out[j].append(i)
    return out


def _joined_without(neighbours, b: int, c: int) -> bool:
    """Whether b and c stay connected when their bond is removed (the bond is in a ring)."""
    seen, todo = {b}, [b]
    while todo:
        k = todo.pop()
        for m in neighbours[k]:
            if (k, m) in ((b, c), (c, b)) or m in seen:
                continue
            if m == c:
                return True
            seen.add(m)
            todo.append(m)
    return False


def _symmetric_rotor(neighbours, numbers, centre: int, other: int) -> bool:
    """Whether ``centre``'s neighbours other than ``other`` are 2+ terminal atoms of one element."""
    rest = [m for m in neighbours[centre] if m != other]
    return len(rest) >= 2 and all(len(neighbours[m]) == 1 for m in rest) and len({numbers[m] for m in rest}) == 1


def soft_torsions(numbers, bonds) -> List[Tuple[int, int, int, int]]:
    """The soft torsions (a, b, c, d) of a molecular graph, one per rotatable bond, in bond order."""
    neighbours = _neighbours(len(numbers), bonds)
    out = []
    for b, c in sorted((min(i, j), max(i, j)) for i, j in bonds):
        ends = [[m for m in neighbours[b] if m != c], [m for m in neighbours[c] if m != b]]
        if not ends[0] or not ends[1] or _joined_without(neighbours, b, c):
            continue
        if _symmetric_rotor(neighbours, numbers, b, c) or _symmetric_rotor(neighbours, numbers, c, b):
            continue
        a, d = (min(end, key=lambda m: (-numbers[m], m)) for end in ends)
        out.append((a, b, c, d))
    return out


@dataclass
class SoftTorsionObservables:
    """The soft torsions of a topology (by its bonds) and their rotamer states (see the module docstring).

    Parameters
    ----------
    topology : openmm.app.Topology
        With elements and bonds.
    """

    topology: object
    quadruples: List[Tuple[int, int, int, int]] = field(init=False)
    names: List[str] = field(init=False)

    def __post_init__(self):
        atoms = list(self.topology.atoms())
        numbers = [atom.element.atomic_number for atom in atoms]
        bonds = [(a.index, b.index) for a, b in self.topology.bonds()]
        self.quadruples = soft_torsions(numbers, bonds)
        self.names = ["-".join(atoms[k].name for k in quad) for quad in self.quadruples]

    @property
    def residues(self) -> list:
        """No residues with Ramachandran states (no joint states, no Ramachandran histograms)."""
        return []

    def biased_torsions(self) -> List[Tuple[int, int, int, int]]:
        """The torsions metadynamics biases: the first two soft torsions."""
        return list(self.quadruples[:2])

    def quads(self) -> np.ndarray:
        return np.asarray(self.quadruples, dtype=np.int64).reshape(-1, 4)

    def values(self, positions: np.ndarray) -> np.ndarray:
        """Torsions (degrees) of positions [N, 3] -> [T], or [F, N, 3] -> [F, T]."""
        positions = np.asarray(positions)
        if not self.quadruples:
            return np.zeros(positions.shape[:-2] + (0,))
        return dihedrals(positions, self.quads())

    def state_names(self, extra: bool = False) -> List[str]:
        """``<torsion>:<state>`` of every torsion (and, with ``extra``, its 60-degree bins)."""
        return [f"{name}:{state}" for name in self.names for state in STATES + (BINS if extra else ())]

    def indicators(self, values: np.ndarray, extra: bool = True) -> Dict[str, np.ndarray]:
        """Boolean indicator of every torsion's every state (and, with ``extra``, bin) for rows [F, T]."""
        values = np.atleast_2d(values)
        out: Dict[str, np.ndarray] = {}
        for k, name in enumerate(self.names):
            angle = values[:, k]
            plus, minus = (angle >= 0.0) & (angle < 120.0), (angle >= -120.0) & (angle < 0.0)
            out.update({f"{name}:gauche+": plus, f"{name}:gauche-": minus, f"{name}:trans": ~(plus | minus)})
            if extra:
                index = np.clip(np.searchsorted(BIN_EDGES, angle, side="right") - 1, 0, len(BINS) - 1)
                out.update({f"{name}:{label}": index == b for b, label in enumerate(BINS)})
        return out
