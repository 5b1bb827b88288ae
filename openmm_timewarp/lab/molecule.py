"""The molecule a command works on: from a PDB file or a sequence, with its force field and temperature.

``fit``, ``reference`` and ``benchmark`` take the same input: a PDB file of a peptide of standard
residues (capped with ACE/NME or zwitterionic; hydrogens are added at pH 7 if it has none), or a
one-letter sequence (``--capped`` for ACE/NME caps, as :func:`openmm_timewarp.lab.systems.build_peptide`).
``fit`` also takes a molecule of any kind as a serialised OpenMM System and a PDB of its atoms
(:mod:`openmm_timewarp.lab.system_file`). Anything else is refused with a clear error before any
work starts.
"""

import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Union

import numpy as np
import openmm
from openmm import app, unit

from . import systems
from .. import units
from ..chirality import canonical_hydrogen_permutation


@dataclass
class Molecule:
    """A molecule to sample: topology, starting positions, force field and temperature.

    Attributes
    ----------
    topology : openmm.app.Topology
    positions : numpy.ndarray [N, 3]
        nm, minimised.
    preset : str or openmm_timewarp.lab.systems.ForceFieldPreset
        Force field (:data:`openmm_timewarp.lab.systems.PRESETS` names, custom files, or a
        :class:`openmm_timewarp.lab.system_file.SystemFile`).
    temperature_K : float
    name : str
        ``ACE-A-NME``, ``AK``, ...
    """

    topology: app.Topology
    positions: np.ndarray
    preset: Union[str, systems.ForceFieldPreset] = systems.DEFAULT_PRESET
    temperature_K: float = 310.0
    name: str = ""
    _systems: Dict[tuple, openmm.System] = field(default_factory=dict, repr=False)

    def system(self, hydrogen_mass_amu: Optional[float] = None, constraints: Optional[str] = None) -> openmm.System:
        """A fresh System (hydrogen mass repartitioning to ``hydrogen_mass_amu`` if given), unconstrained
        unless ``constraints`` ("hbonds", "allbonds") says. A System file's molecule has the file's
        constraints (None: those; another option is refused)."""
        key = (hydrogen_mass_amu, None if constraints is None else systems.constraint_option(constraints))
        if key not in self._systems:
            self._systems[key] = systems.create_system(self.topology, self.preset, hydrogen_mass_amu, constraints)
        return openmm.XmlSerializer.clone(self._systems[key])

    @property
    def own_constraints(self) -> str:
        """The constraints a System of this molecule has unless asked otherwise: a System file's own, else "none"."""
        return getattr(self.preset, "constraints", "none")

    @property
    def preset_name(self) -> str:
        return self.preset if isinstance(self.preset, str) else self.preset.name

    @property
    def kT(self) -> float:
        """kJ/mol."""
        return units.kT(self.temperature_K)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_systems"] = {}
        return state


def force_field_preset(preset: str = systems.DEFAULT_PRESET,
                       forcefield: Optional[Sequence[str]] = None) -> Union[str, systems.ForceFieldPreset]:
    """A preset name, or a custom preset of force-field XML files (NoCutoff, no constraints)."""
    if not forcefield:
        systems.get_preset(preset)  # a clear error for unknown names
        return preset
    return systems.ForceFieldPreset("custom:" + "+".join(os.path.basename(f) for f in forcefield), tuple(forcefield),
                                    "NoCutoff", description="force-field files given on the command line")


def is_system_file(source: str) -> bool:
    """Whether a command's input names a serialised System (``.xml``) rather than a PDB or a sequence."""
    return source.lower().endswith(".xml")


def load_molecule(source: str, capped: bool = False, preset: Optional[str] = None,
                  forcefield: Optional[Sequence[str]] = None, temperature_K: Optional[float] = None,
                  structure: Optional[str] = None) -> Molecule:
    """The molecule of a PDB file, a sequence or a serialised System, minimised with its force field.

    Parameters
    ----------
    source : str
        A PDB file, one-letter amino-acid codes (``A`` with ``capped=True`` is alanine dipeptide),
        or an OpenMM System serialised to XML (with ``structure``; its force field and constraints
        are the System's, and ``capped``, ``preset`` and ``forcefield`` do not apply).
    structure : str, optional
        System input only: a PDB of the System's atoms, in its order, with elements.
    capped : bool
        Sequences only: ACE/NME caps instead of zwitterionic termini.
    preset : str, optional
        Force-field preset (default ``systems.DEFAULT_PRESET``; ignored when ``forcefield`` files
        are given; refused for a System file).
    forcefield : sequence of str, optional
        Force-field XML files instead of a preset.
    temperature_K : float, optional
        Default: the preset's (310 K).

    Raises
    ------
    ValueError
        Not a peptide of standard residues (the message says which residue), or an unknown preset.
    FileNotFoundError
        A path that does not exist.
    """
    if is_system_file(source):
        if preset is not None:
            raise ValueError("--preset does not apply to a System file: its force field is its own.")
        return _load_system_file(source, structure, capped, forcefield, temperature_K)
    if structure is not None:
        raise ValueError(f"a structure PDB goes with a System XML file, not with {source!r}.")
    ff = force_field_preset(preset or systems.DEFAULT_PRESET, forcefield)
    if source.lower().endswith(".pdb") or os.path.sep in source:
        topology, positions = systems.read_pdb(source)
        sequence, is_capped = systems.sequence_of(topology)
        if not any(atom.element is not None and atom.element.symbol == "H" for atom in topology.atoms()):
            modeller = app.Modeller(topology, positions)
            modeller.addHydrogens(systems.get_preset(ff).force_field(), pH=7.0)
            topology, positions = modeller.topology, modeller.getPositions()
        xyz = np.asarray(unit.Quantity(positions).value_in_unit(unit.nanometer) if unit.is_quantity(positions)
                         else positions, dtype=float)
        xyz = _canonical(topology, xyz)
        name = systems.peptide_name(sequence, is_capped)
    else:
        topology, positions = systems.build_peptide(source, capped=capped)
        xyz = np.asarray(positions.value_in_unit(unit.nanometer))
        name = systems.peptide_name(source, capped)
    temperature = float(temperature_K) if temperature_K is not None else \
        systems.get_preset(ff).temperature.value_in_unit(unit.kelvin)
    return _minimised(Molecule(topology, xyz, ff, temperature, name))


def _load_system_file(source: str, structure: Optional[str], capped: bool, forcefield, temperature_K) -> Molecule:
    from .system_file import load_system_file

    if structure is None:
        raise ValueError(f"{source!r} is a System: give a PDB of its atoms too (fit system.xml structure.pdb).")
    if capped or forcefield:
        raise ValueError("--capped and --forcefield do not apply to a System file: its force field is its own.")
    topology, xyz, preset = load_system_file(source, structure, temperature_K)
    molecule = Molecule(topology, _canonical(topology, xyz), preset, preset.temperature.value_in_unit(unit.kelvin),
                        preset.molecule_name)
    return _minimised(molecule)


def _canonical(topology: app.Topology, xyz: np.ndarray) -> np.ndarray:
    """Positions relabelled to the package's canonical order of equivalent hydrogens."""
    numbers = [atom.element.atomic_number for atom in topology.atoms()]
    bonds = [(a.index, b.index) for a, b in topology.bonds()]
    return xyz[canonical_hydrogen_permutation(numbers, bonds, xyz)]


def _minimised(molecule: Molecule) -> Molecule:
    minimised, _ = systems.minimize(molecule.system(), molecule.positions * unit.nanometer)
    molecule.positions = np.asarray(minimised.value_in_unit(unit.nanometer))
    return molecule
