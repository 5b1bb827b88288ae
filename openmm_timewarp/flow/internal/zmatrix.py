"""Z-matrix internal coordinates of one molecule: bonds, angles, torsions, and back to Cartesian.

Every atom after the first is placed from atoms placed before it. With the placement order
a0, a1, a2, ... and, for atom n >= 3, references (i, j, k):

- a1: bond |a1 - a0|;
- a2: bond to its parent p (a0 or a1) and the angle (a2, p, q), q the other of a0, a1;
- n >= 3: bond r = |x_n - x_i|, angle theta = angle(n, i, j) at i, torsion phi = dihedral(n, i, j, k).

There are N - 1 bonds, N - 2 angles and N - 3 torsions: 3N - 6 internal coordinates. The other
six degrees of freedom, the rigid frame g of (a0, a1, a2), are never part of the density: a
proposal keeps the frame of the structure it conditions on (a0 stays, a1 stays on the ray from
a0, a2 stays in the same half-plane), so with x = T(g, c)

    dx = J(c) dc dg,   J(c) = r_1^2 * prod_{n >= 2} r_n^2 sin(theta_n),

with dg the invariant measure of the rigid motions. ``log_jacobian`` returns log J(c); the
tests compare it with an autograd determinant.

How the references are chosen (:func:`build_zmatrix`): the root a0 is the middle atom of the
backbone (for a capped residue, its CA), a1 and a2 its backbone neighbours, then the rest of the
backbone outwards, then side-chain heavy atoms, then hydrogens, each on its parent i with j the
parent of i. The first child of i gets a proper torsion (k the parent of j), so that backbone
phi, psi, omega and side-chain chi are coordinates themselves; later children of i are placed
relative to their first sibling (k = that sibling), which turns, for example, the second and
third hydrogens of a methyl group into nearly constant offsets of about +-120 degrees.
"""

import math
from collections import deque
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

_HYDROGEN = 1


@dataclass(frozen=True)
class ZMatrix:
    """Placement order and references of a molecule's atoms (indices into the molecule's atom list).

    Attributes
    ----------
    order : tuple of int
        Atoms in placement order; ``order[0]`` is the root.
    parents : tuple of int
        ``parents[m]`` is the atom that ``order[m]`` is bonded to (-1 for the root).
    angle_references : tuple of int
        For m >= 2, the atom j of the angle (order[m], parent, j); -1 before.
    torsion_references : tuple of int
        For m >= 3, the atom k of the torsion (order[m], parent, j, k); -1 before.
    """

    order: Tuple[int, ...]
    parents: Tuple[int, ...]
    angle_references: Tuple[int, ...]
    torsion_references: Tuple[int, ...]

    @property
    def num_atoms(self) -> int:
        return len(self.order)

    @property
    def num_torsions(self) -> int:
        return max(self.num_atoms - 3, 0)

    def torsion_atoms(self) -> List[Tuple[int, int, int, int]]:
        """(n, i, j, k) of every torsion coordinate, in coordinate order."""
        return [(self.order[m], self.parents[m], self.angle_references[m], self.torsion_references[m])
                for m in range(3, self.num_atoms)]

    def find_torsion(self, atoms: Sequence[int]) -> Optional[int]:
        """Index of the torsion coordinate equal to dihedral(atoms) (either direction), or None."""
        wanted = (tuple(atoms), tuple(reversed(atoms)))
        for index, quad in enumerate(self.torsion_atoms()):
            if quad in wanted:
                return index
        return None

    def to_dict(self) -> Dict[str, List[int]]:
        return {"order": list(self.order), "parents": list(self.parents),
                "angle_references": list(self.angle_references), "torsion_references": list(self.torsion_references)}

    @classmethod
    def from_dict(cls, data) -> "ZMatrix":
        return cls(tuple(data["order"]), tuple(data["parents"]), tuple(data["angle_references"]),
                   tuple(data["torsion_references"]))


def _neighbours(num_atoms: int, bonds: Sequence[Tuple[int, int]]) -> List[List[int]]:
    neighbours: List[List[int]] = [[] for _ in range(num_atoms)]
    for a, b in bonds:
        a, b = int(a), int(b)
        if a != b and b not in neighbours[a]:
            neighbours[a].append(b)
            neighbours[b].append(a)
    for row in neighbours:
        row.sort()
    return neighbours


def _farthest(start: int, allowed: Sequence[bool], neighbours: List[List[int]]) -> Tuple[int, Dict[int, int]]:
    """Breadth-first search within ``allowed`` atoms: the last atom reached and the parent map."""
    parent = {start: -1}
    queue, last = deque([start]), start
    while queue:
        atom = queue.popleft()
        last = atom
        for other in neighbours[atom]:
            if allowed[other] and other not in parent:
                parent[other] = atom
                queue.append(other)
    return last, parent


def _longest_path(allowed: Sequence[bool], neighbours: List[List[int]]) -> List[int]:
    """A longest chain within ``allowed`` atoms (two breadth-first sweeps; exact on trees)."""
    start = next((i for i, a in enumerate(allowed) if a), 0)
    end, _ = _farthest(start, allowed, neighbours)
    other, parent = _farthest(end, allowed, neighbours)
    path = [other]
    while parent[path[-1]] != -1:
        path.append(parent[path[-1]])
    return path


def longest_heavy_path(atomic_numbers: Sequence[int], bonds: Sequence[Tuple[int, int]]) -> List[int]:
    """The backbone when none is given: a longest chain of heavy atoms.

    A molecule with fewer than three heavy atoms in a chain (water, methane, ethane, methanol)
    is rooted on a longest chain of any atoms instead, hydrogens included.
    """
    neighbours = _neighbours(len(atomic_numbers), bonds)
    path = _longest_path([z != _HYDROGEN for z in atomic_numbers], neighbours)
    if len(path) < 3:
        path = _longest_path([True] * len(atomic_numbers), neighbours)
    return path


def _placement_order(atomic_numbers, neighbours, backbone, root=None):
    """The order atoms are placed in, and the atom each is bonded to when placed.

    The backbone grows outwards from its middle atom (or ``backbone[root]``), alternating sides;
    then heavy side-chain atoms breadth-first, each on its earliest-placed neighbour; then
    hydrogens, in the order of the atoms they are bonded to.
    """
    middle = len(backbone) // 2 if root is None else int(root)
    middle = min(max(middle, 1), len(backbone) - 2)
    order = [backbone[middle]]
    parent = {backbone[middle]: -1}
    left, right = list(reversed(backbone[:middle])), backbone[middle + 1:]
    previous_left = previous_right = backbone[middle]
    for step in range(max(len(left), len(right))):
        if step < len(left):
            order.append(left[step])
            parent[left[step]] = previous_left
            previous_left = left[step]
        if step < len(right):
            order.append(right[step])
            parent[right[step]] = previous_right
            previous_right = right[step]
    frontier = list(order)
    while frontier:
        added = []
        for atom in frontier:
            for other in neighbours[atom]:
                if other not in parent and atomic_numbers[other] != _HYDROGEN:
                    parent[other] = atom
                    order.append(other)
                    added.append(other)
        frontier = added
    for atom in list(order):
        for other in neighbours[atom]:
            if other not in parent:
                parent[other] = atom
                order.append(other)
    return order, parent


def build_zmatrix(atomic_numbers: Sequence[int], bonds: Sequence[Tuple[int, int]],
                  backbone: Optional[Sequence[int]] = None, root: Optional[int] = None) -> ZMatrix:
    """Choose a placement order and references for a connected molecule (see the module docstring).

    Parameters
    ----------
    atomic_numbers : sequence of int
    bonds : sequence of (int, int)
    backbone : sequence of int, optional
        The main chain in chain order (for peptides: :func:`peptide_backbone`); default: a longest
        chain of heavy atoms.
    root : int, optional
        Position in ``backbone`` of the root atom (not its first or last); default: the middle.

    Returns
    -------
    ZMatrix

    Raises
    ------
    ValueError
        Fewer than three atoms, or the bond graph is not connected.
    """
    n = len(atomic_numbers)
    if n < 3:
        raise ValueError(f"a Z-matrix needs at least 3 atoms, got {n}.")
    neighbours = _neighbours(n, bonds)
    backbone = list(backbone) if backbone is not None else longest_heavy_path(atomic_numbers, bonds)
    if len(backbone) < 3:
        raise ValueError("the backbone needs at least 3 atoms in a chain.")
    for a, b in zip(backbone, backbone[1:]):
        if b not in neighbours[a]:
            raise ValueError(f"backbone atoms {a} and {b} are not bonded.")
    order, parent = _placement_order(atomic_numbers, neighbours, backbone, root)
    if len(order) != n:
        missing = sorted(set(range(n)) - set(order))
        raise ValueError(f"the bond graph is not connected: atoms {missing[:10]} cannot be reached from the backbone.")
    rank = {atom: m for m, atom in enumerate(order)}
    root, a1 = order[0], order[1]
    children: Dict[int, List[int]] = {atom: [] for atom in order}
    parents, angle_refs, torsion_refs = [-1], [-1, -1], [-1, -1, -1]
    for m, atom in enumerate(order[1:], start=1):
        parents.append(parent[atom])
    children[root].append(a1)
    for m in range(2, n):
        atom, i = order[m], parents[m]
        if m == 2:
            j = a1 if i == root else root
        else:
            j = parents[rank[i]] if i != root else a1
            siblings = [s for s in children[i] if s != j]
            if siblings:
                k = siblings[0]
            elif j != root:
                k = parents[rank[j]]
            else:
                k = next(s for s in children[root] if s != i)
            torsion_refs.append(k)
        angle_refs.append(j)
        children[i].append(atom)
    return ZMatrix(tuple(order), tuple(parents), tuple(angle_refs), tuple(torsion_refs))


# --------------------------------------------------------------------------------------------------
# Geometry (pure functions, TorchScript-compatible)
# --------------------------------------------------------------------------------------------------

def bond_angle(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Angle a-b-c at b (radians, [0, pi]); positions [..., 3]."""
    u = a - b
    v = c - b
    return torch.atan2(torch.linalg.norm(torch.cross(u, v, dim=-1), dim=-1), (u * v).sum(-1))


def dihedral(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Dihedral angle a-b-c-d (radians, (-pi, pi]; IUPAC sign); positions [..., 3]."""
    b0 = a - b
    b1 = c - b
    b2 = d - c
    b1 = b1 / torch.linalg.norm(b1, dim=-1, keepdim=True)
    v = b0 - (b0 * b1).sum(-1, keepdim=True) * b1
    w = b2 - (b2 * b1).sum(-1, keepdim=True) * b1
    x = (v * w).sum(-1)
    y = (torch.cross(b1, v, dim=-1) * w).sum(-1)
    return torch.atan2(y, x)


def log_jacobian(bonds: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """log J(c) = 2 sum log r + sum log sin(theta) per row, with dx = J(c) dc dg (see the module docstring)."""
    return 2.0 * torch.log(bonds).sum(-1) + torch.log(torch.sin(angles)).sum(-1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.norm(v, dim=-1, keepdim=True)


def place_atom(i: torch.Tensor, j: torch.Tensor, k: torch.Tensor, bond: torch.Tensor, angle: torch.Tensor,
               torsion: torch.Tensor) -> torch.Tensor:
    """Position n with |n - i| = bond, angle(n, i, j) = angle, dihedral(n, i, j, k) = torsion (NeRF)."""
    axis = _unit(i - j)
    normal = _unit(torch.cross(j - k, axis, dim=-1))
    in_plane = torch.cross(normal, axis, dim=-1)
    along = -bond * torch.cos(angle)
    across = bond * torch.sin(angle)
    return (i + along.unsqueeze(-1) * axis + (across * torch.cos(torsion)).unsqueeze(-1) * in_plane
            + (across * torch.sin(torsion)).unsqueeze(-1) * normal)


class InternalCoordinates(nn.Module):
    """Cartesian <-> (bonds, angles, torsions) for one molecule, with the log-Jacobian (TorchScript-ready).

    Positions are [B, N, 3] in the molecule's atom order; bonds [B, N-1], angles [B, N-2] and
    torsions [B, N-3] follow the Z-matrix order (``zmatrix.order[1:]``, ``[2:]``, ``[3:]``).
    """

    generation_bounds: List[int]

    def __init__(self, zmatrix: ZMatrix):
        super().__init__()
        self.zmatrix = zmatrix
        n = zmatrix.num_atoms
        order = list(zmatrix.order)
        self.num_atoms = n
        self.root, self.first, self.second = order[0], order[1], order[2]
        self.second_parent = zmatrix.parents[2]
        self.second_other = zmatrix.angle_references[2]
        self.register_buffer("bond_atoms", torch.tensor(order[1:], dtype=torch.int64))
        self.register_buffer("bond_partners", torch.tensor(zmatrix.parents[1:], dtype=torch.int64))
        self.register_buffer("angle_atoms", torch.tensor(order[2:], dtype=torch.int64))
        self.register_buffer("angle_centres", torch.tensor(zmatrix.parents[2:], dtype=torch.int64))
        self.register_buffer("angle_ends", torch.tensor(zmatrix.angle_references[2:], dtype=torch.int64))
        self.register_buffer("torsion_k", torch.tensor(zmatrix.torsion_references[3:], dtype=torch.int64))
        # placement generations: an atom can be placed once its three references are
        generation = {order[0]: 0, order[1]: 0, order[2]: 0}
        rows = []
        for m in range(3, n):
            atom, i, j, k = order[m], zmatrix.parents[m], zmatrix.angle_references[m], zmatrix.torsion_references[m]
            generation[atom] = 1 + max(generation[i], generation[j], generation[k])
            rows.append((generation[atom], m - 3, atom, i, j, k))
        rows.sort()
        bounds = [0]
        for index in range(1, len(rows) + 1):
            if index == len(rows) or rows[index][0] != rows[index - 1][0]:
                bounds.append(index)
        self.generation_bounds = bounds if rows else [0]
        self.register_buffer("place_index", torch.tensor([r[1] for r in rows], dtype=torch.int64))
        self.register_buffer("place_atoms", torch.tensor([r[2] for r in rows], dtype=torch.int64))
        self.register_buffer("place_i", torch.tensor([r[3] for r in rows], dtype=torch.int64))
        self.register_buffer("place_j", torch.tensor([r[4] for r in rows], dtype=torch.int64))
        self.register_buffer("place_k", torch.tensor([r[5] for r in rows], dtype=torch.int64))

    @torch.jit.export
    def to_internal(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(bonds [B, N-1] nm, angles [B, N-2] rad, torsions [B, N-3] rad) of positions x [B, N, 3]."""
        bonds = torch.linalg.norm(x[:, self.bond_atoms] - x[:, self.bond_partners], dim=-1)
        angles = bond_angle(x[:, self.angle_atoms], x[:, self.angle_centres], x[:, self.angle_ends])
        torsions = dihedral(x[:, self.angle_atoms[1:]], x[:, self.angle_centres[1:]], x[:, self.angle_ends[1:]],
                            x[:, self.torsion_k])
        return bonds, angles, torsions

    @torch.jit.export
    def log_jacobian(self, bonds: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """log J(c) per row (see :func:`log_jacobian`)."""
        return log_jacobian(bonds, angles)

    @torch.jit.export
    def valid(self, bonds: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Rows whose bonds are positive and angles inside (0, pi): where the map to Cartesian is one-to-one."""
        return (bonds > 0).all(-1) & (angles > 0).all(-1) & (angles < math.pi).all(-1)

    @torch.jit.export
    def place(self, bonds: torch.Tensor, angles: torch.Tensor, torsions: torch.Tensor,
              frame: torch.Tensor) -> torch.Tensor:
        """Positions [B, N, 3] with these internal coordinates in the rigid frame of ``frame``.

        The frame of ``frame`` ([B, N, 3] or [1, N, 3]; only its atoms a0, a1, a2 are read) is kept:
        a0 at the same place, a1 on the same ray from a0, a2 in the same half-plane.
        """
        batch = bonds.shape[0]
        frame = frame.expand(batch, frame.shape[1], 3)
        origin = frame[:, self.root]
        e1 = _unit(frame[:, self.first] - origin)
        normal = _unit(torch.cross(e1, frame[:, self.second] - origin, dim=-1))
        side = torch.cross(normal, e1, dim=-1)
        x = torch.zeros(batch, self.num_atoms, 3, dtype=bonds.dtype, device=bonds.device)
        x[:, self.root] = origin
        first = origin + bonds[:, 0:1] * e1
        x[:, self.first] = first
        parent = origin if self.second_parent == self.root else first
        other = first if self.second_parent == self.root else origin
        toward = _unit(other - parent)
        perpendicular = _unit(side - (side * toward).sum(-1, keepdim=True) * toward)
        theta = angles[:, 0:1]
        x[:, self.second] = parent + bonds[:, 1:2] * (torch.cos(theta) * toward + torch.sin(theta) * perpendicular)
        for g in range(len(self.generation_bounds) - 1):
            start, end = self.generation_bounds[g], self.generation_bounds[g + 1]
            index = self.place_index[start:end]
            placed = place_atom(x[:, self.place_i[start:end]], x[:, self.place_j[start:end]],
                                x[:, self.place_k[start:end]], bonds[:, index + 2], angles[:, index + 1],
                                torsions[:, index])
            x = x.index_copy(1, self.place_atoms[start:end], placed)
        return x


# --------------------------------------------------------------------------------------------------
# Peptides
# --------------------------------------------------------------------------------------------------

_BACKBONE_NAMES = {"ACE": (("CH3", "C1", "CA"), ("C",)), "NME": (("N",), ("C", "CH3", "CA"))}


def peptide_backbone(topology) -> Optional[List[int]]:
    """Backbone atoms of a peptide in chain order (ACE CH3, C; N, CA, C per residue; NME N, C), or None.

    Parameters
    ----------
    topology : openmm.app.Topology

    Returns
    -------
    list of int or None
        None when a residue lacks the atoms (not a peptide of standard residues and caps).
    """
    chain = []
    for residue in topology.residues():
        names = {atom.name: atom.index for atom in residue.atoms()}
        wanted = _BACKBONE_NAMES.get(residue.name, (("N",), ("CA",), ("C",)))
        for choices in wanted:
            index = next((names[c] for c in choices if c in names), None)
            if index is None:
                return None
            chain.append(index)
    return chain if len(chain) >= 3 else None
