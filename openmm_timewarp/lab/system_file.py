"""A molecule of any kind given as an OpenMM System (serialised to XML) and a PDB of the same atoms.

``fit system.xml structure.pdb`` takes a ligand, a cyclic peptide or a toy of three particles as
well as a peptide: the force field is the System's, as it is, and so are its constraints.

- **The molecular graph** is the PDB's CONECT records where it has them (``PDBFile.writeFile``
  writes them for non-standard residues); else the System's: every ``HarmonicBondForce`` bond and
  every constraint (``createSystem`` leaves the bond term of a constrained bond out). The PDB
  gives the elements, names and starting positions.
- **Constraints** are read, not chosen: none, or bonds to hydrogen (what ``constraints=HBonds``
  makes). Others (``AllBonds``, ``HAngles``) are refused with the pair they involve.
- **Hydrogen mass repartitioning** (for the 2 fs and 4 fs steps of exploration and MD data) moves
  mass from each heavy atom to its hydrogens, as ``createSystem(hydrogenMass=...)`` does.

Periodic Systems (explicit solvent) and virtual sites are refused: the proposal models one molecule
in implicit solvent or vacuum.
"""

import functools
import hashlib
import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
import openmm
from openmm import app, unit

from . import systems


@functools.lru_cache(maxsize=8)
def _read_system(path: str, sha256: str) -> openmm.System:
    with open(path) as handle:
        text = handle.read()
    if hashlib.sha256(text.encode()).hexdigest() != sha256:
        raise ValueError(f"{path!r} changed since the molecule was loaded; load it again.")
    loaded = openmm.XmlSerializer.deserialize(text)
    return without_empty_forces(loaded) if isinstance(loaded, openmm.System) else loaded


# force types whose terms are counted by the method named: with none, the force adds nothing
_TERM_COUNTS = {"HarmonicBondForce": "getNumBonds", "HarmonicAngleForce": "getNumAngles",
                "PeriodicTorsionForce": "getNumTorsions", "RBTorsionForce": "getNumTorsions",
                "CMAPTorsionForce": "getNumTorsions", "CustomBondForce": "getNumBonds",
                "CustomAngleForce": "getNumAngles", "CustomTorsionForce": "getNumTorsions"}


def without_empty_forces(system: openmm.System) -> openmm.System:
    """``system`` less its bonded forces that have no terms (in place; returned).

    They add nothing to any energy or force, but cost time: an empty ``CMAPTorsionForce`` (as
    CHARMM force fields write for a molecule without CMAP terms) takes ~0.3 ms a step on the
    Reference platform, four times what the rest of a 16-atom molecule's forces take.
    """
    for index in reversed(range(system.getNumForces())):
        force = system.getForce(index)
        count = _TERM_COUNTS.get(type(force).__name__)
        if count is not None and getattr(force, count)() == 0:
            system.removeForce(index)
    return system


def file_sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@dataclass(frozen=True)
class SystemFile(systems.ForceFieldPreset):
    """A "preset" that is one serialised System: :func:`create_system` returns a copy of it.

    Parameters
    ----------
    path : str
        The System's XML file (absolute).
    sha256 : str
        Of the file's contents; the System is read again only if they are unchanged.
    constraints : {"none", "hbonds"}
        What the System constrains (:func:`constraint_kind`).
    """

    path: str = ""
    sha256: str = ""
    constraints: str = "none"
    bonds: Tuple[Tuple[int, int], ...] = field(default=(), repr=False)

    @property
    def molecule_name(self) -> str:
        """The molecule's name: the file's, without the folder and extension."""
        return self.name.split("@")[0][len("system:"):]

    def system(self) -> openmm.System:
        """A fresh copy of the file's System."""
        return openmm.XmlSerializer.clone(_read_system(self.path, self.sha256))

    def check_constraints(self, constraints: Optional[str]) -> None:
        """Refuse constraints other than the file's own (None: as the file has them).

        Raises
        ------
        ValueError
            Other constraints, with what to do.
        """
        requested = systems.constraint_option(constraints)
        if constraints is not None and requested != self.constraints:
            raise ValueError(f"the System in {self.path!r} has constraints={self.constraints!r}; a System file's "
                             f"constraints are its own, so {requested!r} cannot be asked for. Serialise the System "
                             "with the constraints you want (createSystem(constraints=...)).")

    def create(self, topology: app.Topology, hydrogen_mass=None, constraints=None) -> openmm.System:
        """The file's System, with hydrogen masses repartitioned to ``hydrogen_mass`` if given.

        ``constraints`` must be the file's own (or None: as the file has them).
        """
        self.check_constraints(constraints)
        system = self.system()
        if system.getNumParticles() != topology.getNumAtoms():
            raise ValueError(f"the System in {self.path!r} has {system.getNumParticles()} particles, the topology "
                             f"{topology.getNumAtoms()} atoms.")
        mass = systems._hydrogen_mass(hydrogen_mass)
        if mass is not None:
            repartition_hydrogen_mass(system, [a.element for a in topology.atoms()], self.bonds, mass)
        return system

    def as_dict(self) -> dict:
        return {"name": self.name, "system_file": self.path, "sha256": self.sha256, "constraints": self.constraints,
                "temperature_K": self.temperature.value_in_unit(unit.kelvin)}


def repartition_hydrogen_mass(system: openmm.System, elements, bonds, mass: unit.Quantity) -> None:
    """Give every hydrogen ``mass``, taking the difference from the heavy atom it is bonded to (in place)."""
    target = mass.value_in_unit(unit.dalton)
    hydrogen = [element is not None and element.atomic_number == 1 for element in elements]
    for i, j in bonds:
        if hydrogen[i] == hydrogen[j]:
            continue
        h, heavy = (i, j) if hydrogen[i] else (j, i)
        delta = target - system.getParticleMass(h).value_in_unit(unit.dalton)
        left = system.getParticleMass(heavy).value_in_unit(unit.dalton) - delta
        if left <= 0.0:
            raise ValueError(f"hydrogen mass repartitioning to {target:g} amu leaves atom {heavy} no mass; use a "
                             "smaller hydrogen mass.")
        system.setParticleMass(h, target * unit.dalton)
        system.setParticleMass(heavy, left * unit.dalton)


def _label(topology_atoms, index: int) -> str:
    atom = topology_atoms[index]
    return f"{atom.name} ({index}, residue {atom.residue.name} {atom.residue.id})"


def system_bonds(system: openmm.System, numbers: List[int], labels=None,
                 given: Optional[List[Tuple[int, int]]] = None) -> Tuple[List[Tuple[int, int]], str]:
    """The molecular graph of a System (sorted pairs) and the kind of its constraints ("none", "hbonds").

    ``given`` bonds (a PDB's CONECT records) are the graph when there are any; else the
    ``HarmonicBondForce`` bonds and the constraints are, and every hydrogen must then have one
    partner (a CHARMM System's Urey-Bradley terms are harmonic bonds between 1-3 atoms: such
    Systems need the bonds in the PDB).

    Raises
    ------
    ValueError
        A constraint that is not a bond to hydrogen, or not a bond of ``given`` (the message names
        the atoms); a graph that gives a hydrogen two partners; no bonds at all.
    """
    label = labels or (lambda k: f"atom {k}")
    pairs = {(min(i, j), max(i, j)) for i, j in given or ()}
    from_system = not pairs
    if from_system:
        for force in system.getForces():
            if isinstance(force, openmm.HarmonicBondForce):
                for k in range(force.getNumBonds()):
                    i, j = force.getBondParameters(k)[:2]
                    pairs.add((min(i, j), max(i, j)))
    constrained = False
    for k in range(system.getNumConstraints()):
        i, j, _ = system.getConstraintParameters(k)
        hydrogens = (numbers[i] == 1) + (numbers[j] == 1)
        if hydrogens != 1:
            what = "two hydrogens (an angle constraint, HAngles or rigid water)" if hydrogens == 2 else \
                "two heavy atoms (AllBonds)"
            raise ValueError(f"the System constrains {label(i)} and {label(j)}, {what}. A System file may constrain "
                             "bonds to hydrogen only (constraints=HBonds); serialise it with constraints=HBonds or "
                             "None.")
        pair = (min(i, j), max(i, j))
        if not from_system and pair not in pairs:
            raise ValueError(f"the System constrains {label(i)} and {label(j)}, which the PDB does not bond "
                             "(CONECT); constraints must be bonds.")
        pairs.add(pair)
        constrained = True
    if not pairs:
        raise ValueError("the System has no HarmonicBondForce bonds and no constraints, and the PDB no CONECT "
                         "records: the molecular graph is unknown. Add CONECT records to the PDB.")
    partners = np.zeros(len(numbers), dtype=int)
    for i, j in pairs:
        partners[[i, j]] += 1
    crowded = [k for k in range(len(numbers)) if numbers[k] == 1 and partners[k] != 1]
    if crowded:
        source = "the System's harmonic bonds (Urey-Bradley or other 1-3 terms count as bonds there)" \
            if from_system else "the PDB's CONECT records"
        raise ValueError(f"hydrogen {label(crowded[0])} has {partners[crowded[0]]} bonded partners in {source}; "
                         "give a PDB whose CONECT records list the molecule's bonds (openmm.app.PDBFile.writeFile "
                         "writes them for non-standard residues).")
    return sorted(pairs), "hbonds" if constrained else "none"


def _pieces(count: int, bonds) -> int:
    parent = list(range(count))

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, j in bonds:
        parent[root(i)] = root(j)
    return len({root(k) for k in range(count)})


def load_system_file(system_path: str, structure_path: str, temperature_K: Optional[float] = None):
    """(topology, positions [N, 3] nm, SystemFile) of a serialised System and a PDB of its atoms.

    The topology is the PDB's atoms with the molecule's bonds (:func:`system_bonds`: the PDB's
    CONECT records, else the System's bonds).

    Raises
    ------
    FileNotFoundError
        A file that does not exist.
    ValueError
        Not a System, a periodic System, virtual sites, a PDB of other atoms or without elements,
        constraints other than bonds to hydrogen, or more than one molecule. Each message says what to do.
    """
    for path, what in ((system_path, "System XML"), (structure_path, "PDB")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {what} file at {path!r}.")
    path = os.path.abspath(system_path)
    sha = file_sha256(path)
    try:
        system = _read_system(path, sha)
    except Exception as error:  # OpenMM raises a bare Exception for anything it cannot parse
        raise ValueError(f"{system_path!r} is not an OpenMM System serialised to XML "
                         f"(openmm.XmlSerializer.serialize(system)): {error}") from None
    if not isinstance(system, openmm.System):
        raise ValueError(f"{system_path!r} holds a serialised {type(system).__name__}, not a System.")
    if system.usesPeriodicBoundaryConditions():
        raise ValueError(f"the System in {system_path!r} is periodic. Periodic, explicitly solvated Systems are out "
                         "of scope: use implicit solvent (for example amber14's implicit/obc1.xml) or vacuum.")
    virtual = [k for k in range(system.getNumParticles()) if system.isVirtualSite(k)
               or system.getParticleMass(k).value_in_unit(unit.dalton) == 0.0]
    if virtual:
        raise ValueError(f"the System has virtual sites or massless particles (particle {virtual[0]}, ...), which a "
                         "Timewarp proposal cannot place; use a force field without them.")
    pdb_topology, positions = systems.read_pdb(structure_path)
    atoms = list(pdb_topology.atoms())
    if len(atoms) != system.getNumParticles():
        raise ValueError(f"{structure_path!r} has {len(atoms)} atoms but the System {system.getNumParticles()} "
                         "particles; give a PDB of the System's atoms, in its order.")
    missing = [a for a in atoms if a.element is None]
    if missing:
        raise ValueError(f"{structure_path!r}: atom {missing[0].name} ({missing[0].index}) has no element; fill in "
                         "the PDB's element column (columns 77-78).")
    numbers = [a.element.atomic_number for a in atoms]
    given = [(a.index, b.index) for a, b in pdb_topology.bonds()]
    bonds, kind = system_bonds(system, numbers, lambda k: _label(atoms, k), given)
    if _pieces(len(atoms), bonds) > 1:
        raise ValueError(f"the System's bonds make {_pieces(len(atoms), bonds)} separate molecules; a Timewarp "
                         "proposal models one molecule (bonded atoms only, no ions or solvent).")
    topology = with_bonds(pdb_topology, bonds)
    temperature = (float(temperature_K) if temperature_K is not None
                   else systems.DEFAULT_TEMPERATURE.value_in_unit(unit.kelvin)) * unit.kelvin
    name = os.path.splitext(os.path.basename(system_path))[0]
    preset = SystemFile(f"system:{name}@{sha[:12]}", (), "NoCutoff", temperature=temperature,
                        description=f"the System in {path}", path=path, sha256=sha, constraints=kind,
                        bonds=tuple(bonds))
    xyz = np.asarray(positions.value_in_unit(unit.nanometer), dtype=np.float64)
    return topology, xyz, preset


def with_bonds(topology: app.Topology, bonds) -> app.Topology:
    """A copy of ``topology`` whose bonds are exactly ``bonds``."""
    out = app.Topology()
    atoms = []
    for chain in topology.chains():
        new_chain = out.addChain(chain.id)
        for residue in chain.residues():
            new_residue = out.addResidue(residue.name, new_chain, residue.id, residue.insertionCode)
            for atom in residue.atoms():
                atoms.append(out.addAtom(atom.name, atom.element, new_residue, atom.id))
    for i, j in bonds:
        out.addBond(atoms[i], atoms[j])
    return out
