"""What a transferable peptide model knows, and binding it to one molecule.

:class:`PeptideKnowledge` travels inside the model file (JSON): the residue templates, the pooled
statistics of every token key, the embedding vocabularies and the lengths covered.
:func:`bind_molecule` reads a molecular graph as a chain of its templates and gives the
:class:`MoleculeTensors` the network needs for it; :func:`bind_peptides` does that for a loaded
model file (the contract's bind step, registered as ``"peptides"``).
"""

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..internal.zmatrix import InternalCoordinates, ZMatrix
from .coordinates import (LEVELS, NEIGHBOURS, CoordinateStatistics, CoordinateToken, coordinate_tokens, lookup,
                          neighbour_coordinates, peptide_zmatrix)
from .molecule import PeptideBindError, PeptideMolecule, ResidueTemplate, identify
from .network import MoleculeTensors
from .proposal import rebind_arguments

MASK_BITS = 16


@dataclass
class PeptideKnowledge:
    """What a transferable model knows (saved in its file; see the module docstring).

    Attributes
    ----------
    templates : list of ResidueTemplate
    table : dict
        Token key -> :class:`CoordinateStatistics` (every level).
    vocabulary : list of dict
        Per token level, key -> embedding index (from 1; 0 is "not seen").
    residues : dict
        Template key -> residue embedding index (from 1).
    max_residues : int
        Most standard residues a bound peptide may have.
    """

    templates: List[ResidueTemplate]
    table: Dict[str, CoordinateStatistics]
    vocabulary: List[Dict[str, int]]
    residues: Dict[str, int]
    max_residues: int = 4
    extra: Dict[str, object] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"templates": [t.to_dict() for t in self.templates],
                           "table": {key: stats.to_list() for key, stats in self.table.items()},
                           "vocabulary": self.vocabulary, "residues": self.residues,
                           "max_residues": self.max_residues, "extra": self.extra}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "PeptideKnowledge":
        data = json.loads(text)
        table = {key: CoordinateStatistics.from_list(key[0], values) for key, values in data["table"].items()}
        return cls([ResidueTemplate.from_dict(t) for t in data["templates"]], table, data["vocabulary"],
                   data["residues"], int(data["max_residues"]), data.get("extra", {}))

    @property
    def vocabulary_sizes(self) -> List[int]:
        return [len(level) for level in self.vocabulary]

    @classmethod
    def from_tokens(cls, templates: Sequence[ResidueTemplate], table: Dict[str, CoordinateStatistics],
                    tokens: Sequence[CoordinateToken], max_residues: int = 4) -> "PeptideKnowledge":
        """Vocabularies of every key of ``tokens`` (training molecules), in a deterministic order."""
        vocabulary = []
        for level in range(len(LEVELS)):
            keys = sorted({token.keys[level] for token in tokens})
            vocabulary.append({key: k + 1 for k, key in enumerate(keys)})
        residues = {t.key: k + 1 for k, t in enumerate(sorted(templates, key=lambda t: t.key))}
        return cls(list(templates), dict(table), vocabulary, residues, max_residues)


@dataclass
class BoundPeptide:
    """One molecule as the network sees it."""

    molecule: PeptideMolecule
    zmatrix: ZMatrix
    tokens: List[CoordinateToken]
    tensors: MoleculeTensors
    levels: Dict[str, int]  # how many coordinates took their statistics from each level

    @property
    def coordinates(self) -> InternalCoordinates:
        return InternalCoordinates(self.zmatrix)


def _masks(keys: np.ndarray, layers: int) -> torch.Tensor:
    """[layers, K] bool: layer 0 transforms everything, then pairs of layers split by one bit of the key."""
    count = len(keys)
    masks = np.ones((max(layers, 0), count), dtype=bool)
    for layer in range(1, layers):
        bit, parity = ((layer - 1) // 2) % MASK_BITS, (layer - 1) % 2
        mask = ((keys >> bit) & 1) == parity
        if count > 1 and (mask.all() or not mask.any()):
            mask = (np.arange(count) % 2) == parity
        masks[layer] = mask
    return torch.as_tensor(masks)


def molecule_tensors(molecule: PeptideMolecule, tokens: Sequence[CoordinateToken], knowledge: PeptideKnowledge,
                     torsion_layers: int, geometry_layers: int, neighbours: np.ndarray,
                     names: Optional[Sequence[str]] = None) -> Tuple[MoleculeTensors, Dict[str, int]]:
    """The network's view of one molecule (see :class:`MoleculeTensors`), and the statistics levels used.

    Raises
    ------
    PeptideBindError
        A coordinate whose keys the training data never contained at any level.
    """
    ids, mean, std, soft, levels = [], [], [], [], {level: 0 for level in LEVELS}
    for token in tokens:
        stats, level = lookup(token, knowledge.table)
        if stats is None:
            label = molecule.labels[token.atom]
            raise PeptideBindError(f"the model has no statistics for the {token.kind}-coordinate of atom {label} "
                                   f"({token.keys[0]}): a residue or terminus it was not trained on.")
        levels[LEVELS[level]] += 1
        ids.append([knowledge.vocabulary[k].get(key, 0) for k, key in enumerate(token.keys)])
        mean.append(stats.mean)
        std.append(stats.std)
        soft.append(stats.soft)
    soft = np.asarray(soft, dtype=bool)
    kinds = np.asarray([t.kind for t in tokens])
    soft_index = np.nonzero(soft)[0]
    geometry_index = np.nonzero(~soft)[0]
    mask_keys = np.asarray([t.mask_key for t in tokens], dtype=np.int64)
    residue = np.asarray([t.residue for t in tokens], dtype=np.int64)
    counts = np.bincount(residue, minlength=len(molecule.keys)).astype(np.float32)
    tensors = MoleculeTensors(
        tokens=torch.as_tensor(np.asarray(ids, dtype=np.int64).reshape(-1, len(LEVELS))),
        residue=torch.as_tensor(residue),
        residue_tokens=torch.as_tensor([knowledge.residues.get(k, 0) for k in molecule.keys], dtype=torch.int64),
        residue_weight=torch.as_tensor(1.0 / np.maximum(counts, 1.0)),
        soft=torch.as_tensor(soft_index, dtype=torch.int64),
        geometry=torch.as_tensor(geometry_index, dtype=torch.int64),
        wrap=torch.as_tensor(kinds[geometry_index] == "t"),
        mean=torch.as_tensor(mean, dtype=torch.float32),
        std=torch.as_tensor(std, dtype=torch.float32),
        torsion_masks=_masks(mask_keys[soft_index], torsion_layers),
        geometry_masks=_masks(mask_keys[geometry_index], geometry_layers),
        neighbours=torch.as_tensor(np.where(neighbours < 0, len(tokens), neighbours)))
    return tensors, levels


def bind_molecule(knowledge: PeptideKnowledge, numbers: Sequence[int], bonds: Sequence[Tuple[int, int]],
                  torsion_layers: int, geometry_layers: int, names: Optional[Sequence[str]] = None,
                  neighbours: int = NEIGHBOURS) -> BoundPeptide:
    """Identify a molecular graph as a peptide of the model's templates and make its tensors.

    Raises
    ------
    PeptideBindError
        See :func:`~openmm_timewarp.flow.peptides.molecule.identify` and :func:`molecule_tensors`.
    """
    molecule = identify(numbers, bonds, knowledge.templates, names, knowledge.max_residues)
    zmatrix = peptide_zmatrix(molecule)
    tokens = coordinate_tokens(molecule, zmatrix)
    tensors, levels = molecule_tensors(molecule, tokens, knowledge, torsion_layers, geometry_layers,
                                       neighbour_coordinates(zmatrix, neighbours), names)
    return BoundPeptide(molecule, zmatrix, tokens, tensors, levels)


_KNOWLEDGE_CACHE: Dict[int, Tuple[str, PeptideKnowledge]] = {}


def knowledge_of(flow) -> PeptideKnowledge:
    """The :class:`PeptideKnowledge` a model file carries (parsed once per file object)."""
    text = flow.knowledge_json
    cached = _KNOWLEDGE_CACHE.get(id(flow))
    if cached is None or cached[0] != text:
        cached = (text, PeptideKnowledge.from_json(text))
        _KNOWLEDGE_CACHE[id(flow)] = cached
    return cached[1]


def bind_peptides(flow, numbers: Sequence[int], bonds: Sequence[Tuple[int, int]],
                  names: Optional[Sequence[str]] = None) -> BoundPeptide:
    """The contract's bind step for a ``peptides`` file: read the molecule, then bind the file to it.

    After this the file carries the canonical molecule's graph (``atomic_numbers``, ``bonds``,
    ``handedness``) and ``frame_atoms``; the user's atoms are matched to it as for any model with
    a graph.

    Raises
    ------
    PeptideBindError
        The molecule is not a peptide the model covers (the message names the residue or atoms).
    """
    bound = bind_molecule(knowledge_of(flow), numbers, bonds, int(flow.torsion_layer_count),
                          int(flow.geometry_layer_count), names, int(flow.neighbour_count))
    flow.coordinates.rebind(*rebind_arguments(bound.zmatrix))
    molecule = bound.molecule
    flow.bind_molecule(molecule.name, [int(z) for z in molecule.numbers], [[int(a), int(b)] for a, b in molecule.bonds],
                       [[int(v) for v in row] for row in molecule.handedness], *bound.tensors)
    return bound
