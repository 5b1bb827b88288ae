"""Peptides as chains of residue templates: which residues a molecule is made of, and its canonical form.

A transferable model knows residue *templates*: for every residue type in every terminal variant
(``ALA`` inside a chain, ``N-ALA`` with an NH3+ N-terminus, ``C-ALA`` with a carboxylate, ``NC-ALA``
with both, and the caps ``ACE`` and ``NME``) its atoms, bonds, link atoms and one reference
structure (for the handedness of chirality centres and the cyclic order of equivalent
hydrogens). :func:`identify` reads a user's molecular graph as such a chain, whatever the atom
names and order, and :class:`PeptideMolecule` is the canonical molecule it stands for: template
atoms in template order, residue after residue from the N-terminus.

How a graph is cut into residues: a peptide bond is a bond between a carbonyl carbon (three
neighbours, one of them an oxygen bonded to nothing else) and a nitrogen that has another heavy
neighbour (CA, or CH3 of NME; proline's N has two). Side-chain amides (Asn ND2, Gln NE2) have no
other heavy neighbour and stay inside their residue. The pieces must form an unbranched,
acyclic chain; each is then matched to a template by graph isomorphism (elements and link atoms
as labels), so that atom names never matter.

Nothing here imports OpenMM: graphs come in as atomic numbers and bond lists.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import networkx as nx
import numpy as np
from networkx.algorithms.isomorphism import GraphMatcher

from ...chirality import canonical_hydrogen_permutation, tetrahedral_centres
from ...matching import _neighbours, _signs

CAPS = ("ACE", "NME")
ONE_LETTER = {"ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C", "GLN": "Q", "GLU": "E", "GLY": "G",
              "HIS": "H", "ILE": "I", "LEU": "L", "LYS": "K", "MET": "M", "PHE": "F", "PRO": "P", "SER": "S",
              "THR": "T", "TRP": "W", "TYR": "Y", "VAL": "V"}
_SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 16: "S"}


class PeptideBindError(ValueError):
    """The molecule is not a peptide the model covers; the message names the residue or atoms."""


def template_key(residue: str, n_terminal: bool, c_terminal: bool) -> str:
    """``ALA``, ``N-ALA``, ``C-ALA`` or ``NC-ALA`` (caps keep their names)."""
    if residue in CAPS:
        return residue
    prefix = ("N" if n_terminal else "") + ("C" if c_terminal else "")
    return f"{prefix}-{residue}" if prefix else residue


def residue_of_key(key: str) -> str:
    return key.split("-", 1)[1] if "-" in key else key


@dataclass(frozen=True)
class ResidueTemplate:
    """One residue type in one terminal variant (see the module docstring).

    Attributes
    ----------
    key : str
    atoms : tuple of str
        Atom names in template order.
    elements : tuple of int
    bonds : tuple of (int, int)
        Bonds inside the residue (template indices).
    link_in, link_out : int
        The atom bonded to the previous residue (N) and to the next one (C); -1 at a terminus.
    backbone : tuple of int
        Main-chain atoms in chain order (N, CA, C; ACE: CH3, C; NME: N, CH3).
    reference : numpy.ndarray [A, 3]
        One structure (nm) with the canonical order of equivalent hydrogens.
    """

    key: str
    atoms: Tuple[str, ...]
    elements: Tuple[int, ...]
    bonds: Tuple[Tuple[int, int], ...]
    link_in: int
    link_out: int
    backbone: Tuple[int, ...]
    reference: np.ndarray = field(compare=False, repr=False)

    @property
    def residue(self) -> str:
        return residue_of_key(self.key)

    @property
    def is_cap(self) -> bool:
        return self.key in CAPS

    def formula(self) -> str:
        return _formula(self.elements)

    def to_dict(self) -> Dict[str, object]:
        return {"key": self.key, "atoms": list(self.atoms), "elements": list(self.elements),
                "bonds": [list(b) for b in self.bonds], "link_in": self.link_in, "link_out": self.link_out,
                "backbone": list(self.backbone), "reference": np.round(self.reference, 5).tolist()}

    @classmethod
    def from_dict(cls, data) -> "ResidueTemplate":
        return cls(str(data["key"]), tuple(data["atoms"]), tuple(int(z) for z in data["elements"]),
                   tuple((int(a), int(b)) for a, b in data["bonds"]), int(data["link_in"]), int(data["link_out"]),
                   tuple(int(a) for a in data["backbone"]), np.asarray(data["reference"], dtype=np.float64))


def _formula(numbers: Sequence[int]) -> str:
    counts = Counter(_SYMBOLS.get(int(z), f"Z{int(z)}") for z in numbers)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in sorted(counts, key=lambda s: (s != "C", s != "H", s)))


_BACKBONE = {"ACE": (("CH3", "C1", "CA"), ("C",)), "NME": (("N",), ("C", "CH3", "CA"))}


def _backbone_of(residue: str, atom_names: Sequence[str]) -> Tuple[int, ...]:
    wanted = _BACKBONE.get(residue, (("N",), ("CA",), ("C",)))
    found = []
    for choices in wanted:
        hit = next((atom_names.index(c) for c in choices if c in atom_names), None)
        if hit is None:
            raise PeptideBindError(f"residue {residue} has none of the backbone atoms {', '.join(choices)}.")
        found.append(hit)
    return tuple(found)


def templates_from_chain(residues: Sequence[Tuple[str, Sequence[int], Sequence[str]]], numbers: Sequence[int],
                         bonds: Sequence[Tuple[int, int]], positions) -> List[ResidueTemplate]:
    """The templates of one linear peptide built with standard names (a training structure).

    Parameters
    ----------
    residues : sequence of (residue name, atom indices, atom names)
        The chain from the N-terminus.
    numbers, bonds : the molecule's graph
    positions : array_like [N, 3]
        nm; equivalent hydrogens are put in the canonical cyclic order first.
    """
    positions = np.asarray(positions, dtype=np.float64)
    positions = positions[canonical_hydrogen_permutation(numbers, bonds, positions)]
    owner = {int(atom): r for r, (_, atoms, _) in enumerate(residues) for atom in atoms}
    templates = []
    last = len(residues) - 1
    for r, (name, atoms, atom_names) in enumerate(residues):
        atoms = [int(a) for a in atoms]
        index = {atom: k for k, atom in enumerate(atoms)}
        local, link_in, link_out = [], -1, -1
        for a, b in bonds:
            a, b = int(a), int(b)
            for here, there in ((a, b), (b, a)):
                if here in index and there in index and here < there:
                    local.append((index[here], index[there]))
                elif here in index and owner.get(there) == r - 1:
                    link_in = index[here]
                elif here in index and owner.get(there) == r + 1:
                    link_out = index[here]
        key = template_key(name, r == 0 and name not in CAPS, r == last and name not in CAPS)
        templates.append(ResidueTemplate(key, tuple(str(n) for n in atom_names), tuple(int(numbers[a]) for a in atoms),
                                         tuple(sorted(local)), link_in, link_out,
                                         _backbone_of(name, list(atom_names)), positions[atoms]))
    return templates


@dataclass(frozen=True)
class PeptideMolecule:
    """A peptide as the model sees it: template atoms in template order, residue after residue.

    Attributes
    ----------
    keys : tuple of str
        Template key of every residue, N- to C-terminus.
    numbers : list of int
    bonds : list of (int, int)
    labels : list of str
        ``RES<k>:NAME`` of every atom (k counts residues from 1).
    residue_index : numpy.ndarray [N]
        Residue of every atom.
    atom_names : list of str
    backbone : list of int
        Main-chain atoms in chain order.
    root_residue : int
        The residue whose CA roots the Z-matrix (the middle standard residue).
    handedness : list of [centre, n0, n1, n2, sign]
        Tetrahedral signatures of the templates' reference structures.
    """

    keys: Tuple[str, ...]
    numbers: List[int]
    bonds: List[Tuple[int, int]]
    labels: List[str]
    residue_index: np.ndarray
    atom_names: List[str]
    backbone: List[int]
    root_residue: int
    handedness: List[List[int]]

    @property
    def sequence(self) -> str:
        """One-letter codes of the standard residues."""
        return "".join(ONE_LETTER.get(residue_of_key(k), "?") for k in self.keys if k not in CAPS)

    @property
    def capped(self) -> bool:
        return self.keys[0] == "ACE"

    @property
    def name(self) -> str:
        return f"ACE-{self.sequence}-NME" if self.capped and self.keys[-1] == "NME" else self.sequence

    @property
    def num_atoms(self) -> int:
        return len(self.numbers)

    @property
    def root_atom(self) -> int:
        """The CA (or cap carbon) of :attr:`root_residue`."""
        return self.backbone[self.backbone_root]

    @property
    def backbone_root(self) -> int:
        """Position of the root atom in :attr:`backbone`."""
        position = 0
        for r, key in enumerate(self.keys):
            count = 2 if key in CAPS else 3
            if r == self.root_residue:
                return position + (1 if count == 3 else 0)
            position += count
        raise AssertionError("root residue out of range")


def assemble(templates: Sequence[ResidueTemplate]) -> PeptideMolecule:
    """The canonical molecule of a chain of templates (N- to C-terminus)."""
    numbers, bonds, labels, owner, names, backbone, handedness = [], [], [], [], [], [], []
    offsets = []
    previous_out = -1
    for r, template in enumerate(templates):
        offset = len(numbers)
        offsets.append(offset)
        numbers += list(template.elements)
        names += list(template.atoms)
        labels += [f"{template.residue}{r + 1}:{a}" for a in template.atoms]
        owner += [r] * len(template.atoms)
        bonds += [(offset + a, offset + b) for a, b in template.bonds]
        if r > 0:
            bonds.append((previous_out, offset + template.link_in))
        previous_out = offset + template.link_out
        backbone += [offset + a for a in template.backbone]
    owner = np.asarray(owner, dtype=np.int64)
    for row in tetrahedral_centres(numbers, bonds):
        residues = set(owner[row].tolist())
        if len(residues) != 1:
            raise PeptideBindError(f"tetrahedral centre {labels[row[0]]} has neighbours in two residues; "
                                   "the templates cannot give its handedness.")
        r = residues.pop()
        local = row - offsets[r]
        sign = int(_signs(templates[r].reference, local.reshape(1, 4))[0])
        handedness.append([int(v) for v in row] + [sign])
    standard = [r for r, t in enumerate(templates) if not t.is_cap]
    root = standard[(len(standard) - 1) // 2] if standard else 0
    return PeptideMolecule(tuple(t.key for t in templates), numbers, bonds, labels, owner, names, backbone, root,
                           handedness)


# ------------------------------------------------------------------------------------------------ identify
def peptide_bonds(numbers: Sequence[int], neighbours: List[List[int]]) -> List[Tuple[int, int]]:
    """(carbonyl C, N) of every peptide bond (see the module docstring)."""
    found = []
    for c, bonded in enumerate(neighbours):
        if numbers[c] != 6 or len(bonded) != 3:
            continue
        if not any(numbers[o] == 8 and len(neighbours[o]) == 1 for o in bonded):
            continue
        for n in bonded:
            if numbers[n] == 7 and any(numbers[h] > 1 and h != c for h in neighbours[n]):
                found.append((c, n))
    return found


def _describe(atoms: Sequence[int], names: Optional[Sequence[str]], limit: int = 6) -> str:
    shown = [names[a] if names is not None else f"atom {a}" for a in list(atoms)[:limit]]
    more = len(atoms) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _components(count: int, neighbours: List[List[int]]) -> List[List[int]]:
    graph = nx.Graph()
    graph.add_nodes_from(range(count))
    graph.add_edges_from((a, b) for a in range(count) for b in neighbours[a] if a < b)
    return sorted((sorted(c) for c in nx.connected_components(graph)), key=len, reverse=True)


def _chain_of_fragments(numbers, neighbours, names):
    """The residues of a linear peptide as atom lists, N- to C-terminus, with their peptide bonds."""
    links = peptide_bonds(numbers, neighbours)
    cut = {frozenset(link) for link in links}
    reduced = [[b for b in neighbours[a] if frozenset((a, b)) not in cut] for a in range(len(numbers))]
    fragments = _components(len(numbers), reduced)
    owner = {atom: f for f, atoms in enumerate(fragments) for atom in atoms}
    outgoing: Dict[int, List[Tuple[int, int]]] = {}
    incoming: Dict[int, List[Tuple[int, int]]] = {}
    for c, n in links:
        outgoing.setdefault(owner[c], []).append((c, n))
        incoming.setdefault(owner[n], []).append((c, n))
    for f in range(len(fragments)):
        if len(outgoing.get(f, [])) > 1 or len(incoming.get(f, [])) > 1:
            raise PeptideBindError(f"the peptide is branched at the residue of {_describe(fragments[f], names)}: "
                                   "the model covers linear peptides only.")
    starts = [f for f in range(len(fragments)) if f not in incoming]
    if not starts:
        raise PeptideBindError(f"the peptide is cyclic (its peptide bonds form a ring through "
                               f"{_describe([c for c, _ in links], names)}): the model covers linear peptides only.")
    order, f = [], starts[0]
    while True:
        order.append(f)
        if f not in outgoing:
            break
        f = owner[outgoing[f][0][1]]
    if len(order) != len(fragments):
        raise PeptideBindError("the peptide bonds do not form one chain (a cyclic part?): the model covers "
                               "linear peptides only.")
    return [fragments[f] for f in order], [incoming.get(f, [None])[0] for f in order], \
        [outgoing.get(f, [None])[0] for f in order]


def _label(number: int, link: str) -> str:
    return f"{int(number)}{link}"


def _match_fragment(atoms, link_in, link_out, numbers, neighbours, candidates: Sequence[ResidueTemplate]):
    """The template this fragment is (by graph isomorphism), or None."""
    index = {a: k for k, a in enumerate(atoms)}
    graph = nx.Graph()
    for a in atoms:
        link = "<" if link_in is not None and a == link_in[1] else (">" if link_out is not None and a == link_out[0] else "")
        graph.add_node(index[a], label=_label(numbers[a], link))
    graph.add_edges_from((index[a], index[b]) for a in atoms for b in neighbours[a] if b in index and a < b)
    formula = Counter(int(numbers[a]) for a in atoms)
    for template in candidates:
        if len(template.elements) != len(atoms) or Counter(template.elements) != formula:
            continue
        if (template.link_in >= 0) != (link_in is not None) or (template.link_out >= 0) != (link_out is not None):
            continue
        other = nx.Graph()
        for k, z in enumerate(template.elements):
            link = "<" if k == template.link_in else (">" if k == template.link_out else "")
            other.add_node(k, label=_label(z, link))
        other.add_edges_from(template.bonds)
        if GraphMatcher(graph, other, node_match=lambda x, y: x["label"] == y["label"]).is_isomorphic():
            return template
    return None


def _unknown_residue(position, atoms, numbers, names, link_in, link_out, templates) -> PeptideBindError:
    formula = _formula([numbers[a] for a in atoms])
    where = ("N-terminal " if link_in is None else "") + ("C-terminal " if link_out is None else "")
    same_formula = sorted({t.key for t in templates if t.formula() == formula})
    hint = ""
    if same_formula:
        hint = f" Templates with this formula: {', '.join(same_formula)} (another terminus or a different graph)."
    if formula.startswith("C6") and "N3" in formula:
        hint += " Histidine: the model knows the tautomer(s) listed in its model card (HIE by default)."
    if "N" not in formula or len(atoms) > 30:
        hint += " A ligand or a non-standard residue is outside what the model covers."
    return PeptideBindError(f"residue {position + 1} ({where or ''}{formula}: {_describe(atoms, names)}) is not a "
                            f"residue the model knows.{hint}")


def identify(numbers: Sequence[int], bonds: Sequence[Tuple[int, int]], templates: Sequence[ResidueTemplate],
             names: Optional[Sequence[str]] = None, max_residues: int = 4) -> PeptideMolecule:
    """Read a molecular graph as a chain of the model's residue templates.

    Parameters
    ----------
    numbers : sequence of int
        Atomic numbers (0 for virtual sites, which are refused).
    bonds : sequence of (int, int)
    templates : sequence of ResidueTemplate
        What the model knows.
    names : sequence of str, optional
        Atom labels for messages (``RES<k>:NAME``).
    max_residues : int
        Most standard residues (caps excluded) the model covers.

    Returns
    -------
    PeptideMolecule
        The canonical molecule (the user's atoms are matched to it afterwards).

    Raises
    ------
    PeptideBindError
        More than one molecule (a ligand, ion or water beside the peptide), a residue the model does
        not know, a branched or cyclic peptide, or too many residues.
    """
    numbers = [int(z) for z in numbers]
    if any(z == 0 for z in numbers):
        raise PeptideBindError("the System has virtual sites or massless particles; the peptides model covers "
                               "plain all-atom peptides.")
    neighbours = _neighbours(len(numbers), bonds)
    components = _components(len(numbers), neighbours)
    if len(components) > 1:
        others = [a for c in components[1:] for a in c]
        raise PeptideBindError(f"the System holds {len(components)} molecules; besides the largest, "
                               f"{_describe(others, names)} (a ligand, ion or water?). The peptides model samples "
                               "one linear peptide in vacuum or implicit solvent.")
    fragments, links_in, links_out = _chain_of_fragments(numbers, neighbours, names)
    chosen = []
    for position, (atoms, link_in, link_out) in enumerate(zip(fragments, links_in, links_out)):
        template = _match_fragment(atoms, link_in, link_out, numbers, neighbours, templates)
        if template is None:
            raise _unknown_residue(position, atoms, numbers, names, link_in, link_out, templates)
        chosen.append(template)
    standard = [t for t in chosen if not t.is_cap]
    if not standard:
        raise PeptideBindError("the molecule has no standard residue between its caps.")
    if len(standard) > max_residues:
        raise PeptideBindError(f"the peptide has {len(standard)} residues ({''.join(ONE_LETTER.get(t.residue, '?') for t in standard)}); "
                               f"the model covers 1 to {max_residues}.")
    return assemble(chosen)
