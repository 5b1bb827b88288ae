"""The packed peptide data (:mod:`.peptide_set`) as internal coordinates of the transferable model.

:func:`load_training_set` reads every ``<name>.npz`` of a folder and returns a :class:`TrainingSet`:

1. residue templates from the training peptides' structures (the builder's names and order);
2. every peptide read as a chain of those templates (the same :func:`~openmm_timewarp.flow.peptides.molecule.identify`
   that binds a user's molecule), its frames put in the canonical atom order with the canonical
   cyclic order of equivalent hydrogens;
3. pooled statistics of every token key over the *training* peptides only, and the vocabularies;
4. per peptide, the internal coordinates of its frames (computed in float64) and log J(c).
"""

import glob
import io
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ...chirality import canonical_hydrogen_permutation
from ...flow.internal.zmatrix import InternalCoordinates, log_jacobian
from ...flow.peptides.binder import BoundPeptide, PeptideKnowledge, bind_molecule
from ...flow.peptides.coordinates import NEIGHBOURS, coordinate_tokens, peptide_zmatrix, statistics_of
from ...flow.peptides.molecule import PeptideMolecule, ResidueTemplate, identify, templates_from_chain
from ...matching import candidate_mappings, check_mapping
from .peptide_set import load_packed


@dataclass
class PackedPeptide:
    """One packed file, read: graph, residues and frames in the file's atom order."""

    name: str
    split: str
    group: str
    numbers: List[int]
    bonds: List[Tuple[int, int]]
    residues: List[Tuple[str, List[int], List[str]]]
    positions: np.ndarray  # [F, N, 3] nm
    record: Dict[str, object]


@dataclass
class PeptideExample:
    """One peptide's training data in the model's terms."""

    name: str
    split: str
    group: str
    bound: BoundPeptide
    coordinates: torch.Tensor  # [F, C] float32: bonds, angles, torsions
    log_jacobian: torch.Tensor  # [F]

    @property
    def num_atoms(self) -> int:
        return self.bound.molecule.num_atoms


@dataclass
class TrainingSet:
    knowledge: PeptideKnowledge
    train: List[PeptideExample]
    validation: List[PeptideExample]

    def summary(self) -> Dict[str, object]:
        def describe(examples):
            return {"peptides": len(examples), "frames": int(sum(len(e.coordinates) for e in examples)),
                    "by_group": {g: sum(1 for e in examples if e.group == g) for g in sorted({e.group for e in examples})}}
        return {"train": describe(self.train), "validation": describe(self.validation),
                "templates": sorted(t.key for t in self.knowledge.templates), "keys": len(self.knowledge.table)}


def read_packed_peptide(path: str) -> PackedPeptide:
    """A packed peptide file with its topology read from the PDB text it carries."""
    from openmm import app

    positions, record, pdb = load_packed(path)
    topology = app.PDBFile(io.StringIO(pdb)).topology
    numbers = [atom.element.atomic_number for atom in topology.atoms()]
    bonds = [(a.index, b.index) for a, b in topology.bonds()]
    residues = [(r.name, [a.index for a in r.atoms()], [a.name for a in r.atoms()]) for r in topology.residues()]
    peptide = record["peptide"]
    return PackedPeptide(record["name"], peptide["split"], peptide["group"], numbers, bonds, residues,
                         positions.astype(np.float64), record)


def collect_templates(peptides: Sequence[PackedPeptide]) -> List[ResidueTemplate]:
    """One template per key, from the first peptide that has it; the others must agree on its atoms."""
    found: Dict[str, ResidueTemplate] = {}
    for peptide in peptides:
        for template in templates_from_chain(peptide.residues, peptide.numbers, peptide.bonds, peptide.positions[0]):
            known = found.get(template.key)
            if known is None:
                found[template.key] = template
            elif known.atoms != template.atoms or known.bonds != template.bonds:
                raise ValueError(f"{peptide.name}: residue {template.key} has other atoms or bonds than in "
                                 "earlier peptides; the data were built by different builders.")
    return [found[key] for key in sorted(found)]


def canonical_frames(molecule: PeptideMolecule, peptide: PackedPeptide) -> np.ndarray:
    """The peptide's frames in the canonical molecule's atom order and hydrogen order."""
    identity = np.arange(len(peptide.numbers))
    if check_mapping(identity, molecule.numbers, molecule.bonds, peptide.numbers, peptide.bonds):
        mapping = identity
    else:
        mapping = candidate_mappings(molecule.numbers, molecule.bonds, molecule.handedness, peptide.numbers,
                                     peptide.bonds, peptide.positions[0])[0]
    frames = peptide.positions[:, mapping]
    for f in range(len(frames)):
        permutation = canonical_hydrogen_permutation(molecule.numbers, molecule.bonds, frames[f])
        frames[f] = frames[f][permutation]
    return frames


def _pooled_table(molecules, coordinate_rows) -> Dict[str, object]:
    values = defaultdict(list)
    for (molecule, tokens), rows in zip(molecules, coordinate_rows):
        for k, token in enumerate(tokens):
            for key in token.keys:
                values[key].append(rows[:, k])
    return {key: statistics_of(key[0], np.concatenate(parts)) for key, parts in values.items()}


def load_training_set(folder: str, torsion_layers: int, geometry_layers: int, max_residues: int = 4,
                      names: Optional[Sequence[str]] = None, neighbours: int = NEIGHBOURS) -> TrainingSet:
    """Every packed peptide of ``folder`` (train and validation splits) as a :class:`TrainingSet`.

    Raises
    ------
    ValueError
        No packed peptide in the folder, a file of the test split (never trained on), or data
        built with different residue templates.
    """
    paths = sorted(glob.glob(os.path.join(folder, "*.npz")))
    if names is not None:
        paths = [p for p in paths if os.path.splitext(os.path.basename(p))[0] in set(names)]
    if not paths:
        raise ValueError(f"no packed peptides (*.npz) in {folder}; make them with `openmm-timewarp peptide-data`.")
    packed = [read_packed_peptide(p) for p in paths]
    testing = [p.name for p in packed if p.split not in ("train", "validation")]
    if testing:
        raise ValueError(f"{folder} holds peptides of the test split ({', '.join(testing[:5])}): the model is "
                         "never trained on them. Move them to another folder.")
    templates = collect_templates(sorted(packed, key=lambda p: p.split != "train"))
    molecules, rows_of = [], []
    for peptide in packed:
        molecule = identify(peptide.numbers, peptide.bonds, templates, max_residues=max_residues)
        zmatrix = peptide_zmatrix(molecule)
        frames = canonical_frames(molecule, peptide)
        rows_of.append(torch.cat(InternalCoordinates(zmatrix).double().to_internal(torch.as_tensor(frames)), dim=-1))
        molecules.append((molecule, coordinate_tokens(molecule, zmatrix)))
    train_index = [k for k, p in enumerate(packed) if p.split == "train"]
    if not train_index:
        raise ValueError(f"{folder} holds no peptide of the train split.")
    table = _pooled_table([molecules[k] for k in train_index], [rows_of[k].numpy() for k in train_index])
    knowledge = PeptideKnowledge.from_tokens(templates, table, [t for k in train_index for t in molecules[k][1]],
                                             max_residues)
    out = {"train": [], "validation": []}
    for peptide, rows in zip(packed, rows_of):
        bound = bind_molecule(knowledge, peptide.numbers, peptide.bonds, torsion_layers, geometry_layers,
                              neighbours=neighbours)
        out[peptide.split].append(_example(peptide, bound, rows))
    return TrainingSet(knowledge, out["train"], out["validation"])


def _example(peptide: PackedPeptide, bound: BoundPeptide, rows: torch.Tensor) -> PeptideExample:
    n = bound.molecule.num_atoms
    jac = log_jacobian(rows[:, :n - 1], rows[:, n - 1:2 * n - 3])
    return PeptideExample(peptide.name, peptide.split, peptide.group, bound, rows.float(), jac.float())


def example_of(knowledge: PeptideKnowledge, name: str, numbers: Sequence[int], bonds: Sequence[Tuple[int, int]],
               positions: np.ndarray, torsion_layers: int, geometry_layers: int,
               neighbours: int = NEIGHBOURS) -> PeptideExample:
    """One molecule's frames [F, N, 3] (nm, its own atom order) as a training example for a known model."""
    peptide = PackedPeptide(name, "train", "own", list(numbers), [tuple(b) for b in bonds], [],
                            np.asarray(positions, dtype=np.float64), {})
    bound = bind_molecule(knowledge, peptide.numbers, peptide.bonds, torsion_layers, geometry_layers,
                          neighbours=neighbours)
    frames = canonical_frames(bound.molecule, peptide)
    rows = torch.cat(bound.coordinates.double().to_internal(torch.as_tensor(frames)), dim=-1)
    return _example(peptide, bound, rows)
