"""The Z-matrix of a peptide and a token for every internal coordinate that means the same in every peptide.

Every peptide is rooted at the CA of its middle standard residue (:attr:`PeptideMolecule.root_residue`),
its N and C as the next two atoms, and built outwards along the backbone
(:func:`openmm_timewarp.flow.internal.zmatrix.build_zmatrix`): residues after the root are placed
from their predecessor (N to C), residues before it from their successor (C to N). A coordinate
is then described by its kind (bond, angle, torsion), its atom and the atoms it is measured from,
each as (residue offset, atom name); ``psi`` of one residue and the torsion that places the next
residue's N are the same token in every peptide.

Tokens come at four levels, most specific first:

==========  ===============================================  ===========================================
level       key                                              example (the CB torsion of a middle ALA)
==========  ===============================================  ===========================================
variant     kind, template key, atom, references             ``t|ALA|CB|+0CA,+0N,+0C``
residue     kind, residue type, atom, references             ``t|ALA|CB|+0CA,+0N,+0C``
pattern     kind, atom name, references                      ``t|CB|+0CA,+0N,+0C``
element     kind, elements of the atom and its references    ``t|C|C,N,C``
==========  ===============================================  ===========================================

The network embeds a coordinate as the sum of its levels' embeddings (a level never seen in
training adds nothing), and its standardisation comes from the most specific level the training
data contain.
"""

import math
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..internal.zmatrix import ZMatrix, build_zmatrix
from .molecule import PeptideMolecule, residue_of_key

LEVELS = ("variant", "residue", "pattern", "element")
KINDS = ("b", "a", "t")
RIGID_SPREAD = 0.5  # radians of circular spread below which a torsion is modelled with the bonds and angles
_SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 16: "S"}


@dataclass(frozen=True)
class CoordinateToken:
    """One internal coordinate of a peptide: its kind, atoms and keys (see the module docstring)."""

    kind: str
    atom: int
    references: Tuple[int, ...]
    residue: int
    keys: Tuple[str, ...]  # one per level of LEVELS

    @property
    def mask_key(self) -> int:
        """A stable integer of the pattern key: which coupling layers transform this coordinate."""
        return zlib.crc32(self.keys[2].encode())


def peptide_zmatrix(molecule: PeptideMolecule) -> ZMatrix:
    """The Z-matrix of a canonical peptide, rooted at the CA of its middle standard residue."""
    return build_zmatrix(molecule.numbers, molecule.bonds, molecule.backbone, root=molecule.backbone_root)


def _reference_text(molecule: PeptideMolecule, atom: int, references: Sequence[int]) -> str:
    here = int(molecule.residue_index[atom])
    return ",".join(f"{int(molecule.residue_index[r]) - here:+d}{molecule.atom_names[r]}" for r in references)


def coordinate_tokens(molecule: PeptideMolecule, zmatrix: ZMatrix) -> List[CoordinateToken]:
    """Tokens of the 3N - 6 coordinates in the order of :class:`InternalCoordinates`: bonds, angles, torsions."""
    order, parents = zmatrix.order, zmatrix.parents
    rows: List[Tuple[str, int, Tuple[int, ...]]] = []
    rows += [("b", order[m], (parents[m],)) for m in range(1, len(order))]
    rows += [("a", order[m], (parents[m], zmatrix.angle_references[m])) for m in range(2, len(order))]
    rows += [("t", order[m], (parents[m], zmatrix.angle_references[m], zmatrix.torsion_references[m]))
             for m in range(3, len(order))]
    tokens = []
    for kind, atom, references in rows:
        r = int(molecule.residue_index[atom])
        key = molecule.keys[r]
        name = molecule.atom_names[atom]
        text = _reference_text(molecule, atom, references)
        elements = ",".join(_SYMBOLS.get(molecule.numbers[a], "X") for a in references)
        keys = (f"{kind}|{key}|{name}|{text}", f"{kind}|{residue_of_key(key)}|{name}|{text}", f"{kind}|{name}|{text}",
                f"{kind}|{_SYMBOLS.get(molecule.numbers[atom], 'X')}|{elements}")
        tokens.append(CoordinateToken(kind, int(atom), tuple(int(a) for a in references), r, keys))
    return tokens


NEIGHBOURS = 24  # coordinates each coordinate's spline sees directly (see neighbour_coordinates)


def neighbour_coordinates(zmatrix: ZMatrix, count: int = NEIGHBOURS) -> np.ndarray:
    """[C, count] int64: for every coordinate, the coordinates of the atoms around its atom in the Z-matrix.

    Slots in a fixed order of roles: the atom's own bond, angle and torsion, then its parent's,
    its grandparent's, up to three siblings' (atoms on the same parent) and up to two children's
    (-1 where there is none). A coordinate's spline thus sees the geometry it is most coupled to,
    in the same roles in every peptide.
    """
    order = list(zmatrix.order)
    n = len(order)
    rank = {atom: m for m, atom in enumerate(order)}
    parent = {atom: zmatrix.parents[m] for m, atom in enumerate(order)}
    children: Dict[int, List[int]] = {atom: [] for atom in order}
    for atom in order[1:]:
        children[parent[atom]].append(atom)

    def own(atom: int) -> List[int]:
        m = rank.get(atom, -1)
        return [m - 1 if m >= 1 else -1, (n - 1) + m - 2 if m >= 2 else -1, (2 * n - 3) + m - 3 if m >= 3 else -1]

    rows = []
    for atom in order[1:] + order[2:] + order[3:]:
        up = parent.get(atom, -1)
        grand = parent.get(up, -1) if up >= 0 else -1
        siblings = [a for a in children.get(up, []) if a != atom][:3] if up >= 0 else []
        slots = own(atom) + own(up) + own(grand)
        for k in range(3):
            slots += own(siblings[k]) if k < len(siblings) else [-1, -1, -1]
        for k in range(2):
            kids = children[atom]
            slots += own(kids[k]) if k < len(kids) else [-1, -1, -1]
        rows.append(slots[:count] + [-1] * max(0, count - len(slots)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, count)


# ------------------------------------------------------------------------------------------------ statistics
@dataclass(frozen=True)
class CoordinateStatistics:
    """Pooled statistics of one key: mean and spread (nm or rad); for torsions the circular mean,
    the circular spread and the spread of the wrapped deviation."""

    kind: str
    mean: float
    std: float
    spread: float
    count: int

    @property
    def soft(self) -> bool:
        return self.kind == "t" and self.spread >= RIGID_SPREAD

    def to_list(self) -> List[float]:
        return [self.mean, self.std, self.spread, self.count]

    @classmethod
    def from_list(cls, kind: str, values) -> "CoordinateStatistics":
        return cls(kind, float(values[0]), float(values[1]), float(values[2]), int(values[3]))


def _wrap(angle: np.ndarray) -> np.ndarray:
    return np.remainder(angle + math.pi, 2.0 * math.pi) - math.pi


def statistics_of(kind: str, values: np.ndarray, floor: float = 1e-3) -> CoordinateStatistics:
    """Statistics of pooled values of one coordinate key."""
    values = np.asarray(values, dtype=np.float64)
    if kind == "t":
        resultant = np.exp(1j * values).mean()
        mean = float(np.angle(resultant))
        spread = float(math.sqrt(-2.0 * math.log(min(max(abs(resultant), 1e-12), 1.0))))
        std = float(max(_wrap(values - mean).std(), floor))
        return CoordinateStatistics(kind, mean, std, spread, len(values))
    mean = float(values.mean())
    return CoordinateStatistics(kind, mean, float(max(values.std(), floor * max(abs(mean), 1e-3))), 0.0, len(values))


def lookup(token: CoordinateToken, table: Dict[str, CoordinateStatistics], minimum_count: int = 50
           ) -> Tuple[Optional[CoordinateStatistics], int]:
    """The most specific statistics the table has for a token (with at least ``minimum_count`` values), and its level."""
    for level, key in enumerate(token.keys):
        found = table.get(key)
        if found is not None and found.count >= minimum_count:
            return found, level
    return None, -1
