"""Peptides from sequences, force-field presets, platforms and the shipped structures.

Peptides are built from their one-letter sequence: heavy atoms from PeptideBuilder's standard
residue geometries (with the backbone torsions you ask for), hydrogens from
``openmm.app.Modeller.addHydrogens`` at pH 7. Two kinds of termini:

- uncapped, zwitterionic (NH3+ ... COO-), as in the Timewarp dipeptide and tetrapeptide data
  (``build_peptide("AK")``);
- capped with acetyl and N-methylamide groups, ACE-X...-NME (``build_peptide("A", capped=True)``
  is alanine dipeptide).

The atom order depends on the sequence and the termini only: residues N- to C-terminus, in each
residue the heavy atoms in PDB order (N, CA, C, O, side chain, OXT), each followed by its
hydrogens. Histidine is always the HIE tautomer, Asp/Glu are charged, Lys/Arg protonated.

Every preset builds unconstrained Systems with flexible water unless ``create_system`` is asked for
bond constraints (``constraints="hbonds"`` or ``"allbonds"``, which internal-coordinate models hold
fixed; see ``docs/constraints.md``).
"""

import functools
import io
import os
import random
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch  # noqa: F401  (torch before openmm; see openmm_timewarp._stack)
import openmm
from openmm import app, unit

from ..chirality import canonical_hydrogen_permutation
from ..units import in_unit, optional_quantity
from ._resumable import atomic_write

# One-letter code -> residue name, the 20 standard amino acids.
AMINO_ACIDS: Dict[str, str] = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU", "G": "GLY",
    "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE", "P": "PRO", "S": "SER",
    "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}
_ONE_LETTER = {name: letter for letter, name in AMINO_ACIDS.items()}
# Residue names other tools use for protonation states / tautomers of the same amino acids.
_ONE_LETTER.update({"HIE": "H", "HID": "H", "HIP": "H", "CYX": "C", "ASH": "D", "GLH": "E", "LYN": "K"})
_CAPS = ("ACE", "NME")

DEFAULT_PRESET = "amber99sbildn-obc"
DEFAULT_TEMPERATURE = 310.0 * unit.kelvin

STRUCTURES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "structures")


@dataclass(frozen=True)
class ForceFieldPreset:
    """A named force field with its nonbonded settings and default temperature.

    Systems built from a preset are unconstrained (``constraints=None, rigidWater=False``) unless
    :func:`create_system` is given ``constraints``.

    Parameters
    ----------
    name : str
        The name recorded in datasets and model metadata.
    files : tuple of str
        Force-field XML files, as ``openmm.app.ForceField`` takes them.
    nonbonded_method : str
        ``"NoCutoff"`` or ``"CutoffNonPeriodic"``.
    cutoff : openmm.unit.Quantity or None
        Nonbonded cutoff (only with ``CutoffNonPeriodic``).
    temperature : openmm.unit.Quantity
        Default simulation temperature.
    description : str
        One line for listings.
    """

    name: str
    files: Tuple[str, ...]
    nonbonded_method: str = "NoCutoff"
    cutoff: Optional[unit.Quantity] = None
    temperature: unit.Quantity = field(default_factory=lambda: DEFAULT_TEMPERATURE)
    description: str = ""

    def force_field(self) -> app.ForceField:
        """Return an ``openmm.app.ForceField`` with this preset's files (loaded once per process; do not modify it)."""
        return _load_force_field(self.files)

    def create_system_arguments(self) -> dict:
        """Keyword arguments for ``ForceField.createSystem`` (without hydrogenMass)."""
        kwargs = {
            "nonbondedMethod": getattr(app, self.nonbonded_method),
            "constraints": None,
            "rigidWater": False,
            "removeCMMotion": True,
        }
        if self.cutoff is not None:
            kwargs["nonbondedCutoff"] = self.cutoff
        return kwargs

    def create(self, topology: app.Topology, hydrogen_mass=None, constraints=None) -> openmm.System:
        """The System of ``topology`` with this force field (see :func:`create_system`)."""
        kwargs = self.create_system_arguments()
        kwargs["constraints"] = CONSTRAINT_OPTIONS[constraint_option(constraints)]
        mass = _hydrogen_mass(hydrogen_mass)
        if mass is not None:
            kwargs["hydrogenMass"] = mass
        return self.force_field().createSystem(topology, **kwargs)

    def as_dict(self) -> dict:
        """A JSON-serialisable description (units: nm, K)."""
        return {
            "name": self.name,
            "files": list(self.files),
            "nonbonded_method": self.nonbonded_method,
            "cutoff_nm": None if self.cutoff is None else self.cutoff.value_in_unit(unit.nanometer),
            "constraints": None,
            "rigid_water": False,
            "temperature_K": self.temperature.value_in_unit(unit.kelvin),
        }


@functools.lru_cache(maxsize=None)
def _load_force_field(files: Tuple[str, ...]) -> app.ForceField:
    return app.ForceField(*files)


PRESETS: Dict[str, ForceFieldPreset] = {
    "amber99sbildn-obc": ForceFieldPreset(
        "amber99sbildn-obc", ("amber99sbildn.xml", "amber99_obc.xml"), "NoCutoff",
        description="Amber99SB-ILDN + OBC implicit solvent (GBSAOBCForce), no cutoff; fast on Reference"),
    "amber14-obc1": ForceFieldPreset(
        "amber14-obc1", ("amber14-all.xml", "implicit/obc1.xml"), "CutoffNonPeriodic", 2.0 * unit.nanometer,
        description="Amber14 + OBC1 implicit solvent (CustomGBForce), 2 nm cutoff; the Timewarp paper's peptides"),
    "amber14-vacuum": ForceFieldPreset(
        "amber14-vacuum", ("amber14-all.xml",), "NoCutoff",
        description="Amber14 in vacuum, no cutoff"),
}


def get_preset(preset: Union[str, ForceFieldPreset]) -> ForceFieldPreset:
    """Return the preset of that name (a ``ForceFieldPreset`` passes through).

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    if isinstance(preset, ForceFieldPreset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown force-field preset {preset!r}; choose one of: {', '.join(PRESETS)}.") from None


def parse_sequence(sequence: str) -> List[str]:
    """Residue names of a one-letter amino-acid sequence.

    Parameters
    ----------
    sequence : str
        One-letter codes of the 20 standard amino acids, N- to C-terminus (case-insensitive).

    Returns
    -------
    list of str
        Three-letter residue names.

    Raises
    ------
    ValueError
        Empty sequence, or a letter that is not a standard amino acid.
    """
    if not isinstance(sequence, str) or not sequence.strip():
        raise ValueError(f"empty peptide sequence {sequence!r}: give one-letter amino-acid codes, e.g. 'AK'.")
    sequence = sequence.strip().upper()
    unknown = sorted({letter for letter in sequence if letter not in AMINO_ACIDS})
    if unknown:
        raise ValueError(
            f"sequence {sequence!r} has unknown residue letter(s) {', '.join(map(repr, unknown))}; "
            f"use the one-letter codes of the 20 standard amino acids ({''.join(sorted(AMINO_ACIDS))}).")
    return [AMINO_ACIDS[letter] for letter in sequence]


def normalize_sequence(sequence: str) -> str:
    """The checked, upper-case one-letter form of a sequence (see ``parse_sequence`` for errors)."""
    return "".join(_ONE_LETTER[name] for name in parse_sequence(sequence))


def peptide_name(sequence: str, capped: bool = False) -> str:
    """The name a peptide's data go under: ``"AK"``, or ``"ACE-A-NME"`` when capped."""
    sequence = normalize_sequence(sequence)
    return f"ACE-{sequence}-NME" if capped else sequence


def sequence_of(topology: app.Topology) -> Tuple[str, bool]:
    """One-letter sequence of a peptide topology, and whether it is capped with ACE/NME.

    Raises
    ------
    ValueError
        A residue that is not a standard amino acid or an ACE/NME cap.
    """
    letters, caps = [], []
    for residue in topology.residues():
        if residue.name in _CAPS:
            caps.append(residue.name)
        elif residue.name in _ONE_LETTER:
            letters.append(_ONE_LETTER[residue.name])
        else:
            raise ValueError(f"residue {residue.name} {residue.id} is not a standard amino acid or an ACE/NME cap.")
    if not letters:
        raise ValueError("the topology has no amino-acid residues.")
    return "".join(letters), bool(caps)


def _per_residue(value, n: int, name: str) -> List[Optional[float]]:
    """A backbone torsion for each of n residues: None, one angle, or n angles (degrees or Quantity)."""
    if value is None:
        return [None] * n
    if unit.is_quantity(value) or np.ndim(value) == 0:
        return [in_unit(value, unit.degree, name)] * n
    values = [None if v is None else in_unit(v, unit.degree, name) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} angles but the sequence has {n} residues: give one angle or one per residue.")
    return values


def build_peptide(sequence: str, capped: bool = False, phi=None, psi=None) -> Tuple[app.Topology, unit.Quantity]:
    """Build a peptide with hydrogens from its sequence.

    Parameters
    ----------
    sequence : str
        One-letter amino-acid codes, N- to C-terminus, e.g. ``"AK"`` or ``"A"`` (with ``capped``).
    capped : bool
        If True, cap the termini with acetyl (ACE) and N-methylamide (NME) groups; if False, build
        the zwitterion (NH3+ and COO- termini), which needs at least two residues.
    phi, psi : float, openmm.unit.Quantity, or sequence of them, optional
        Starting backbone torsions, one angle for every residue or one per residue, in degrees
        unless given as a Quantity. Torsions that do not exist (phi of an uncapped N-terminal
        residue, psi of an uncapped C-terminal one) are ignored; ``None`` keeps PeptideBuilder's
        default (an extended chain, phi -120, psi 140, Pro phi -61).

    Returns
    -------
    topology : openmm.app.Topology
        With bonds; atom order as in the module docstring.
    positions : openmm.unit.Quantity
        numpy array [num_atoms, 3] in nm. Not minimised: see ``minimize``.

    Raises
    ------
    ValueError
        Empty sequence, unknown letters, a single uncapped residue, or torsion lists of the wrong length.
    """
    from PeptideBuilder import Geometry, PeptideBuilder

    names = parse_sequence(sequence)
    letters = [_ONE_LETTER[name] for name in names]
    if not capped and len(letters) < 2:
        raise ValueError(
            f"an uncapped peptide needs at least two residues (got {''.join(letters)!r}); "
            "use capped=True for a single residue (e.g. alanine dipeptide is build_peptide('A', capped=True)).")
    phis = _per_residue(phi, len(letters), "phi")
    psis = _per_residue(psi, len(letters), "psi")

    # Caps are built as glycines and trimmed: ACE keeps CA (as CH3), C and O; NME keeps N and CA (as C).
    chain = ["G"] + letters + ["G"] if capped else letters
    chain_phi = [None] + phis + [None] if capped else phis
    chain_psi = [None] + psis + [None] if capped else psis
    geometries = []
    for k, letter in enumerate(chain):
        geo = Geometry.geometry(letter)
        if chain_phi[k] is not None:
            geo.phi = chain_phi[k]
        if k > 0 and chain_psi[k - 1] is not None:
            geo.psi_im1 = chain_psi[k - 1]
        geometries.append(geo)
    structure = PeptideBuilder.make_structure_from_geos(geometries)
    if not capped:
        PeptideBuilder.add_terminal_OXT(structure)

    topology = app.Topology()
    topology_chain = topology.addChain("A")
    positions = []
    residues = list(structure.get_residues())
    for k, bio_residue in enumerate(residues):
        atoms = [(atom.get_id(), atom) for atom in bio_residue.get_atoms()]
        if capped and k == 0:
            name = "ACE"
            atoms = [("CH3" if n == "CA" else n, a) for n, a in atoms if n in ("CA", "C", "O")]
        elif capped and k == len(residues) - 1:
            name = "NME"
            atoms = [("C" if n == "CA" else n, a) for n, a in atoms if n in ("N", "CA")]
        else:
            name = bio_residue.get_resname()
        residue = topology.addResidue(name, topology_chain, id=str(k + 1))
        for atom_name, atom in atoms:
            topology.addAtom(atom_name, app.Element.getBySymbol(atom.element), residue)
            positions.append(np.asarray(atom.coord, dtype=float) * 0.1)  # Angstrom -> nm
    topology.createStandardBonds()

    modeller = app.Modeller(topology, unit.Quantity(np.array(positions), unit.nanometer))
    variants = ["HIE" if residue.name == "HIS" else None for residue in modeller.topology.residues()]
    # Modeller places some hydrogens from Python's global random stream, then relaxes them: seed a
    # private stream and use Reference so the same sequence always gives the same structure.
    saved = random.getstate()
    random.seed(20230302)
    try:
        modeller.addHydrogens(PRESETS[DEFAULT_PRESET].force_field(), pH=7.0, variants=variants,
                              platform=reference_platform())
    finally:
        random.setstate(saved)
    positions = np.array(modeller.positions.value_in_unit(unit.nanometer))
    # addHydrogens names equivalent hydrogens (methyl HB1/HB2/HB3, methylene HB2/HB3) in a cyclic
    # order that depends on the backbone conformation; MD never changes that order, so two builds
    # would be permutational isomers. Relabel to the package's one canonical order.
    numbers = [atom.element.atomic_number for atom in modeller.topology.atoms()]
    bonds = [(a.index, b.index) for a, b in modeller.topology.bonds()]
    positions = positions[canonical_hydrogen_permutation(numbers, bonds, positions)]
    return modeller.topology, unit.Quantity(positions, unit.nanometer)


def _hydrogen_mass(hydrogen_mass) -> Optional[unit.Quantity]:
    mass = optional_quantity(hydrogen_mass, unit.amu, "hydrogen_mass")
    if mass is not None and mass.value_in_unit(unit.amu) <= 0:
        raise ValueError(f"hydrogen_mass must be positive, got {hydrogen_mass}.")
    return mass


# ``constraints`` of create_system (and of fit/train --constraints): the flow contract's names
CONSTRAINT_OPTIONS = {"none": None, "hbonds": app.HBonds, "allbonds": app.AllBonds}


def constraint_option(constraints) -> str:
    """"none", "hbonds" or "allbonds" from that name (any case), None, or OpenMM's HBonds / AllBonds."""
    if constraints is None:
        return "none"
    for name, value in CONSTRAINT_OPTIONS.items():
        if constraints is value and value is not None:
            return name
    if isinstance(constraints, str) and constraints.lower() in CONSTRAINT_OPTIONS:
        return constraints.lower()
    raise ValueError(f"constraints must be one of {', '.join(CONSTRAINT_OPTIONS)} (bond constraints only: HAngles "
                     f"cannot be held by a Timewarp proposal), got {constraints!r}.")


def create_system(topology: app.Topology, preset: Union[str, ForceFieldPreset] = DEFAULT_PRESET,
                  hydrogen_mass=None, constraints=None) -> openmm.System:
    """Create a System for a topology with a force-field preset (unconstrained unless asked).

    Parameters
    ----------
    topology : openmm.app.Topology
        With hydrogens, e.g. from ``build_peptide``.
    preset : str or ForceFieldPreset
        A key of ``PRESETS``, or a preset object (a
        :class:`openmm_timewarp.lab.system_file.SystemFile` gives its own System).
    hydrogen_mass : openmm.unit.Quantity or float, optional
        Hydrogen mass repartitioning: every hydrogen gets this mass (amu if a float), taken from
        the heavy atom it is bonded to (3 amu allows a 2 fs step without constraints; 4 amu a 4 fs
        step with ``constraints="hbonds"``).
    constraints : {None, "none", "hbonds", "allbonds"} or openmm.app.HBonds / AllBonds
        Bond constraints (water stays flexible).

    Returns
    -------
    openmm.System
    """
    return get_preset(preset).create(topology, hydrogen_mass, constraints)


def reference_platform() -> openmm.Platform:
    """The Reference platform (single-threaded, double precision)."""
    return openmm.Platform.getPlatformByName("Reference")


def _platform_names() -> List[str]:
    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def _force_evaluations_per_second(system: openmm.System, positions, platform: openmm.Platform, seconds: float) -> float:
    """Force evaluations per wall-clock second on ``platform`` (a Verlet step of 1e-9 ps is one evaluation).

    A step of exactly zero is not usable: the CPU platform turns it into NaN coordinates.
    """
    context = openmm.Context(system, openmm.VerletIntegrator(1e-9), platform)
    context.setPositions(positions)
    integrator = context.getIntegrator()
    integrator.step(2)  # warm up (kernel compilation, neighbour lists)
    steps, start = 0, time.perf_counter()
    while True:
        integrator.step(5)
        steps += 5
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def best_platform(system: Optional[openmm.System] = None, positions=None, seconds: float = 0.1,
                  margin: float = 1.5) -> openmm.Platform:
    """The fastest OpenMM platform, measured for this System.

    For molecules as small as dipeptides with the default preset, Reference is 10-30x faster than
    CPU (CPU has a floor of ~200 us per call on small machines); from about 70 atoms, or with the
    CustomGBForce of ``amber14-obc1``, CPU or a GPU platform can win. So this times a few force
    evaluations on every platform present and returns the fastest.

    Parameters
    ----------
    system : openmm.System, optional
        Without it, Reference (the right choice for small peptides).
    positions : openmm.unit.Quantity, optional
        Positions to time at; required with ``system``.
    seconds : float
        Time spent per platform.
    margin : float
        Another platform replaces Reference only when it is at least this many times faster
        (Reference runs are reproducible bit for bit; a near tie is not worth losing that).

    Returns
    -------
    openmm.Platform
    """
    if system is None:
        return reference_platform()
    if positions is None:
        raise ValueError("best_platform(system) needs positions to time the force evaluations at.")
    rates, failed = {}, set()
    for _ in range(3):  # the best of three alternating rounds: another process's load hits them all alike
        for name in _platform_names():
            if name in failed:
                continue
            try:
                rate = _force_evaluations_per_second(system, positions, openmm.Platform.getPlatformByName(name),
                                                     seconds / 3.0)
            except Exception:  # e.g. a GPU platform without a usable device
                failed.add(name)
                continue
            rates[name] = max(rate, rates.get(name, 0.0))
    if not rates:
        return reference_platform()
    fastest = max(rates, key=rates.get)
    if "Reference" in rates and rates[fastest] < margin * rates["Reference"]:
        fastest = "Reference"
    return openmm.Platform.getPlatformByName(fastest)


def platform_by_name(name: Optional[str], system: Optional[openmm.System] = None, positions=None) -> openmm.Platform:
    """The named platform, or ``best_platform(system, positions)`` for None or ``"auto"``.

    Raises
    ------
    ValueError
        No platform of that name; the message lists the available ones.
    """
    if name is None or name == "auto":
        return best_platform(system, positions)
    if name not in _platform_names():
        raise ValueError(f"no OpenMM platform named {name!r}; available: {', '.join(_platform_names())}.")
    return openmm.Platform.getPlatformByName(name)


def minimize(system: openmm.System, positions, platform: Optional[openmm.Platform] = None,
             tolerance=1.0 * unit.kilojoule_per_mole / unit.nanometer, max_iterations: int = 0
             ) -> Tuple[unit.Quantity, unit.Quantity]:
    """Minimise the potential energy (L-BFGS, ``openmm.LocalEnergyMinimizer``).

    Parameters
    ----------
    system : openmm.System
    positions : openmm.unit.Quantity
        [num_atoms, 3], length units.
    platform : openmm.Platform, optional
        Default Reference (deterministic).
    tolerance : openmm.unit.Quantity
        RMS force at which to stop (kJ/mol/nm).
    max_iterations : int
        0 for no limit.

    Returns
    -------
    positions : openmm.unit.Quantity
        numpy array [num_atoms, 3] in nm.
    energy : openmm.unit.Quantity
        Potential energy at those positions (kJ/mol).
    """
    context = openmm.Context(system, openmm.VerletIntegrator(1.0 * unit.femtosecond), platform or reference_platform())
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, tolerance, max_iterations)
    state = context.getState(getPositions=True, getEnergy=True)
    return state.getPositions(asNumpy=True).in_units_of(unit.nanometer), state.getPotentialEnergy()


def potential_energy(system: openmm.System, positions, platform: Optional[openmm.Platform] = None) -> unit.Quantity:
    """Potential energy (kJ/mol) of one configuration (on Reference unless ``platform`` is given)."""
    context = openmm.Context(system, openmm.VerletIntegrator(1.0 * unit.femtosecond), platform or reference_platform())
    context.setPositions(positions)
    return context.getState(getEnergy=True).getPotentialEnergy()


def read_pdb(path: str) -> Tuple[app.Topology, unit.Quantity]:
    """Topology and positions (numpy array in nm) of a PDB file, with a clear error if it is missing."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no PDB file at {path!r}.")
    pdb = app.PDBFile(path)
    positions = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    return pdb.topology, unit.Quantity(positions, unit.nanometer)


def write_pdb(topology: app.Topology, positions, path: str) -> None:
    """Write a PDB file (atomically: a temporary file renamed into place)."""
    text = io.StringIO()
    app.PDBFile.writeFile(topology, positions, text, keepIds=True)
    atomic_write(path, text.getvalue())


def structure_path(name: str) -> str:
    """Path of a shipped structure, e.g. ``structure_path("alanine-dipeptide")``."""
    path = os.path.join(STRUCTURES_DIR, f"{name}.pdb")
    if not os.path.isfile(path):
        shipped = sorted(f[:-4] for f in os.listdir(STRUCTURES_DIR) if f.endswith(".pdb")) if os.path.isdir(STRUCTURES_DIR) else []
        raise FileNotFoundError(f"no shipped structure {name!r}; shipped: {', '.join(shipped) or 'none'}.")
    return path


def load_alanine_dipeptide() -> Tuple[app.Topology, unit.Quantity]:
    """The shipped alanine dipeptide (ACE-ALA-NME, 22 atoms, minimised with the default preset).

    Returns
    -------
    topology : openmm.app.Topology
    positions : openmm.unit.Quantity
        numpy array [22, 3] in nm.
    """
    return read_pdb(structure_path("alanine-dipeptide"))
