"""Matching a user's molecule to the molecular graph a model was trained on.

A per-molecule model numbers its atoms its own way. A user's PDB, prmtop or System of the same
molecule may order and name them differently. :func:`candidate_mappings` finds the graph
isomorphisms between the two (elements as node labels, networkx's VF2), in a form that stays
small for peptides:

- terminal atoms (hydrogens, carbonyl and carboxylate oxygens) are matched after the rest, per
  atom they hang on, so that methyl groups do not multiply the number of matches;
- at an atom with four neighbours, equivalent terminal hydrogens are ordered so that the
  tetrahedral signature agrees with the model's (:func:`openmm_timewarp.chirality.tetrahedral_centres`):
  the other order is a permutational isomer, which molecular dynamics never reaches and on
  which a model trained on MD has almost no density;
- a chirality centre (four neighbours, at most one hydrogen) whose signature cannot be made to
  agree by any isomorphism means the user's structure is the mirror image (a D-amino acid).

Each remaining candidate keeps Metropolis-Hastings exact; the kernel picks the one under which
the model gives the starting structure the highest density.
"""

import itertools
from collections import Counter
from typing import List, Optional, Sequence, Tuple

import networkx as nx
import numpy as np
import torch
from networkx.algorithms.isomorphism import GraphMatcher

from .chirality import signed_volumes, tetrahedral_centres

_ELEMENT_SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 15: "P", 16: "S", 17: "Cl", 35: "Br", 53: "I"}
MAX_CANDIDATES = 256


class MoleculeMismatchError(ValueError):
    """The user's molecule is not the model's molecule (or is its mirror image)."""


def _symbol(number: int) -> str:
    return _ELEMENT_SYMBOLS.get(int(number), f"Z={int(number)}")


def _neighbours(count: int, bonds: Sequence[Tuple[int, int]]) -> List[List[int]]:
    table: List[set] = [set() for _ in range(count)]
    for a, b in bonds:
        if a != b:
            table[int(a)].add(int(b))
            table[int(b)].add(int(a))
    return [sorted(row) for row in table]


def _environments(numbers: Sequence[int], neighbours: List[List[int]], rounds: int = 3) -> List[str]:
    """A Weisfeiler-Lehman label of every atom (element, then its neighbours' labels, ``rounds`` times)."""
    labels = [_symbol(z) for z in numbers]
    for _ in range(rounds):
        labels = [labels[i] + "(" + ",".join(sorted(labels[j] for j in neighbours[i])) + ")"
                  for i in range(len(numbers))]
    return labels


def _describe(atoms: Sequence[int], names: Optional[Sequence[str]]) -> str:
    shown = [names[i] if names is not None else f"atom {i}" for i in atoms[:12]]
    return ", ".join(shown) + (f" and {len(atoms) - 12} more" if len(atoms) > 12 else "")


def mismatch_report(model_numbers: Sequence[int], model_bonds: Sequence[Tuple[int, int]], user_numbers: Sequence[int],
                    user_bonds: Sequence[Tuple[int, int]], user_names: Optional[Sequence[str]] = None) -> str:
    """Why two molecular graphs differ, naming the user's atoms whose surroundings the model lacks."""
    if len(model_numbers) != len(user_numbers):
        head = f"the model has {len(model_numbers)} atoms, the System {len(user_numbers)}"
    else:
        head = "the bonds differ"
    model_count, user_count = Counter(map(int, model_numbers)), Counter(map(int, user_numbers))
    if model_count != user_count:
        diff = []
        for z in sorted(set(model_count) | set(user_count)):
            if model_count[z] != user_count[z]:
                diff.append(f"{_symbol(z)} {user_count[z]} (model {model_count[z]})")
        head += "; elements: " + ", ".join(diff)
    for rounds in (1, 2, 3):
        model_env = Counter(_environments(model_numbers, _neighbours(len(model_numbers), model_bonds), rounds))
        user_labels = _environments(user_numbers, _neighbours(len(user_numbers), user_bonds), rounds)
        unmatched, seen = [], Counter()
        for atom, label in enumerate(user_labels):
            seen[label] += 1
            if seen[label] > model_env[label]:
                unmatched.append(atom)
        if unmatched:
            return head + f"; atoms without a counterpart in the model: {_describe(unmatched, user_names)}"
    return head


def _graph(numbers: Sequence[int], neighbours: List[List[int]], core: List[bool]):
    graph = nx.Graph()
    for atom, z in enumerate(numbers):
        if core[atom]:
            terminal = tuple(sorted(int(numbers[n]) for n in neighbours[atom] if not core[n]))
            graph.add_node(atom, label=(int(z), terminal))
    for atom in range(len(numbers)):
        for other in neighbours[atom]:
            if core[atom] and core[other] and atom < other:
                graph.add_edge(atom, other)
    return graph


def _signs(positions: np.ndarray, rows: np.ndarray) -> np.ndarray:
    if len(rows) == 0:
        return np.zeros(0)
    volumes = signed_volumes(torch.as_tensor(positions, dtype=torch.float64), torch.as_tensor(rows, dtype=torch.int64))
    return np.sign(volumes.numpy())


def _place_terminal_atoms(core_match, model, user, positions, rows, wanted, by_centre):
    """Extend a match of the graphs' cores to their terminal atoms.

    Terminal atoms of one element on one core atom are interchangeable. At a handedness row's
    centre the last two are swapped where needed so that the centre has the model's handedness;
    elsewhere the group is free and returned for enumeration.

    Returns
    -------
    mapping : numpy.ndarray
        ``mapping[k]`` = the user's index of model atom k.
    free_groups : list of list of int
        Model indices of interchangeable terminal atoms not fixed by a handedness row.
    """
    (model_numbers, model_nb, model_core), (user_numbers, user_nb, user_core) = model, user
    mapping = -np.ones(len(model_numbers), dtype=np.int64)
    for m, u in core_match.items():
        mapping[m] = u
    free_groups = []
    for m_atom, u_atom in core_match.items():
        for z in sorted({int(model_numbers[t]) for t in model_nb[m_atom] if not model_core[t]}):
            m_terminal = [t for t in model_nb[m_atom] if not model_core[t] and model_numbers[t] == z]
            u_terminal = [t for t in user_nb[u_atom] if not user_core[t] and user_numbers[t] == z]
            mapping[m_terminal] = u_terminal
            if len(m_terminal) < 2:
                continue
            if m_atom not in by_centre:
                free_groups.append(m_terminal)
                continue
            k = by_centre[m_atom]
            if _signs(positions, mapping[rows[k:k + 1]])[0] != wanted[k]:
                mapping[m_terminal[-2]], mapping[m_terminal[-1]] = mapping[m_terminal[-1]], mapping[m_terminal[-2]]
    return mapping, free_groups


def candidate_mappings(model_numbers: Sequence[int], model_bonds: Sequence[Tuple[int, int]],
                       model_handedness: Sequence[Sequence[int]], user_numbers: Sequence[int],
                       user_bonds: Sequence[Tuple[int, int]], user_positions,
                       user_names: Optional[Sequence[str]] = None,
                       limit: int = MAX_CANDIDATES) -> List[np.ndarray]:
    """The atom mappings under which the user's molecule is the model's, with the model's handedness.

    Parameters
    ----------
    model_numbers, model_bonds
        The model's molecular graph (its atom order).
    model_handedness : sequence of (centre, n0, n1, n2, sign)
        Tetrahedral signatures of the training data, model indices.
    user_numbers, user_bonds, user_positions
        The user's molecule (positions [N, 3], any length unit).
    user_names : sequence of str, optional
        Atom labels for error messages.
    limit : int
        At most this many candidates are returned.

    Returns
    -------
    list of numpy.ndarray
        Each ``mapping`` has ``mapping[k]`` = the user's index of model atom k.

    Raises
    ------
    MoleculeMismatchError
        The graphs are not isomorphic (the message names the user's atoms that do not match), or
        every isomorphism inverts a chirality centre (a mirror image).
    """
    n = len(model_numbers)
    if n != len(user_numbers) or Counter(map(int, model_numbers)) != Counter(map(int, user_numbers)):
        raise MoleculeMismatchError(mismatch_report(model_numbers, model_bonds, user_numbers, user_bonds, user_names))
    model_nb, user_nb = _neighbours(n, model_bonds), _neighbours(n, user_bonds)
    model_core = [len(model_nb[a]) > 1 or n <= 2 for a in range(n)]
    user_core = [len(user_nb[a]) > 1 or n <= 2 for a in range(n)]
    matcher = GraphMatcher(_graph(model_numbers, model_nb, model_core), _graph(user_numbers, user_nb, user_core),
                           node_match=lambda a, b: a["label"] == b["label"])
    positions = np.asarray(user_positions, dtype=np.float64)
    handedness = np.asarray(model_handedness, dtype=np.int64).reshape(-1, 5)
    rows, wanted = handedness[:, :4], handedness[:, 4]
    chiral = np.array([sum(1 for m in model_nb[r[0]] if model_numbers[m] == 1) <= 1 for r in rows], dtype=bool)
    by_centre = {int(r[0]): k for k, r in enumerate(rows)}
    candidates: List[np.ndarray] = []
    seen_core = False
    inverted: Optional[List[int]] = None
    for core_match in matcher.isomorphisms_iter():
        seen_core = True
        mapping, free_groups = _place_terminal_atoms(core_match, (model_numbers, model_nb, model_core),
                                                     (user_numbers, user_nb, user_core), positions, rows, wanted,
                                                     by_centre)
        if len(rows):
            agree = _signs(positions, mapping[rows]) == wanted
            if not agree[chiral].all():
                if inverted is None:
                    inverted = [int(mapping[r[0]]) for r, ok, c in zip(rows, agree, chiral) if c and not ok]
                continue
        for variant in _group_permutations(mapping, free_groups):
            candidates.append(variant)
            if len(candidates) >= limit:
                return candidates
    if not seen_core:
        raise MoleculeMismatchError(mismatch_report(model_numbers, model_bonds, user_numbers, user_bonds, user_names))
    if not candidates:
        raise MoleculeMismatchError(
            "the structure is the mirror image of the model's molecule at chirality centre(s) "
            f"{_describe(inverted or [], user_names)} (for example a D-amino acid where the model knows the "
            "L form). Use the enantiomer the model was trained on, or a model for this stereoisomer.")
    return candidates


def _group_permutations(mapping: np.ndarray, groups: List[List[int]]):
    """``mapping`` with every combination of permutations of the user atoms assigned to each group."""
    if not groups:
        yield mapping
        return
    options = [list(itertools.permutations(mapping[g].tolist())) for g in groups]
    for choice in itertools.product(*options):
        variant = mapping.copy()
        for group, users in zip(groups, choice):
            variant[group] = users
        yield variant


def handedness_of(numbers: Sequence[int], bonds: Sequence[Tuple[int, int]], positions) -> List[List[int]]:
    """(centre, n0, n1, n2, sign) of every atom with four neighbours in one structure (for a model's metadata)."""
    rows = tetrahedral_centres(list(numbers), bonds)
    signs = _signs(np.asarray(positions, dtype=np.float64), rows)
    return [[int(v) for v in row] + [int(s)] for row, s in zip(rows, signs)]


def check_mapping(mapping: Sequence[int], model_numbers: Sequence[int], model_bonds: Sequence[Tuple[int, int]],
                  user_numbers: Sequence[int], user_bonds: Sequence[Tuple[int, int]]) -> bool:
    """Whether ``mapping`` (model index -> user index) is an isomorphism of the two graphs."""
    mapping = [int(m) for m in mapping]
    n = len(model_numbers)
    if sorted(mapping) != list(range(n)) or len(user_numbers) != n:
        return False
    if any(int(model_numbers[k]) != int(user_numbers[mapping[k]]) for k in range(n)):
        return False
    model_edges = {frozenset((mapping[a], mapping[b])) for a, b in model_bonds if a != b}
    user_edges = {frozenset((int(a), int(b))) for a, b in user_bonds if a != b}
    return model_edges == user_edges

