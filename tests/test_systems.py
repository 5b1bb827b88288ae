"""Peptides from sequences, force-field presets, platforms and the shipped alanine dipeptide."""

import math

import torch  # noqa: F401  (torch before openmm)
import numpy as np
import openmm
import pytest
from openmm import unit

from openmm_timewarp.lab import systems

from geometry import dihedral_degrees

# Atoms of ACE-X-NME with Amber protonation at pH 7 (His as HIE): a wrong protonation state or a
# missing hydrogen changes the count.
CAPPED_ATOMS = {"A": 22, "C": 23, "D": 24, "E": 27, "F": 32, "G": 19, "H": 29, "I": 31, "K": 34, "L": 31,
                "M": 29, "N": 26, "P": 26, "Q": 29, "R": 36, "S": 23, "T": 26, "V": 28, "W": 36, "Y": 33}
SIDE_CHAIN_CHARGE = {"D": -1, "E": -1, "K": 1, "R": 1}
# Ten uncapped dipeptides that cover all 20 letters, at both termini between them.
DIPEPTIDES = ["AC", "DE", "FG", "HI", "KL", "MN", "PQ", "RS", "TV", "WY", "YW", "QP"]


def _net_charge(system):
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    return sum(force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in range(force.getNumParticles()))


def _atom(topology, residue_index, name):
    residue = list(topology.residues())[residue_index]
    return next(a.index for a in residue.atoms() if a.name == name)


def _minimised_energy(topology, positions, preset=systems.DEFAULT_PRESET):
    system = systems.create_system(topology, preset)
    start = systems.potential_energy(system, positions).value_in_unit(unit.kilojoule_per_mole)
    _, energy = systems.minimize(system, positions, max_iterations=500)
    return system, start, energy.value_in_unit(unit.kilojoule_per_mole)


@pytest.mark.parametrize("letter", sorted(CAPPED_ATOMS))
def test_capped_single_residue(letter):
    topology, positions = systems.build_peptide(letter, capped=True)
    residues = [r.name for r in topology.residues()]
    assert residues == ["ACE", "HIS" if letter == "H" else systems.AMINO_ACIDS[letter], "NME"]
    assert topology.getNumAtoms() == CAPPED_ATOMS[letter] == positions.shape[0]
    system, start, energy = _minimised_energy(topology, positions)
    assert system.getNumConstraints() == 0
    assert math.isfinite(energy) and energy <= start
    assert _net_charge(system) == pytest.approx(SIDE_CHAIN_CHARGE.get(letter, 0), abs=1e-6)


@pytest.mark.parametrize("sequence", DIPEPTIDES)
def test_uncapped_zwitterionic_dipeptide(sequence):
    topology, positions = systems.build_peptide(sequence)
    residues = list(topology.residues())
    assert [r.name for r in residues] == [systems.AMINO_ACIDS[c] for c in sequence]
    n_terminal = {a.name for a in residues[0].atoms()}
    c_terminal = {a.name for a in residues[-1].atoms()}
    assert "OXT" in c_terminal
    assert {"H2", "H3"} <= n_terminal  # NH3+ (NH2+ for an N-terminal proline)
    system, start, energy = _minimised_energy(topology, positions)
    assert math.isfinite(energy) and energy <= start
    # zwitterion: +1 and -1 at the termini cancel
    assert _net_charge(system) == pytest.approx(sum(SIDE_CHAIN_CHARGE.get(c, 0) for c in sequence), abs=1e-6)


def test_all_twenty_letters_covered():
    assert set("".join(DIPEPTIDES)) == set(systems.AMINO_ACIDS)


def test_atom_order_is_deterministic_and_independent_of_torsions():
    a = systems.build_peptide("AKWE")
    b = systems.build_peptide("AKWE")
    c = systems.build_peptide("AKWE", phi=-60, psi=-45)
    names = [[(x.residue.name, x.name, x.element.symbol) for x in top.atoms()] for top, _ in (a, b, c)]
    assert names[0] == names[1] == names[2]
    assert np.array_equal(a[1].value_in_unit(unit.nanometer), b[1].value_in_unit(unit.nanometer))
    assert not np.allclose(a[1].value_in_unit(unit.nanometer), c[1].value_in_unit(unit.nanometer))


def test_alanine_dipeptide_atom_order():
    topology, _ = systems.build_peptide("A", capped=True)
    assert [(a.residue.name, a.name) for a in topology.atoms()] == [
        ("ACE", "CH3"), ("ACE", "H1"), ("ACE", "H2"), ("ACE", "H3"), ("ACE", "C"), ("ACE", "O"),
        ("ALA", "N"), ("ALA", "H"), ("ALA", "CA"), ("ALA", "HA"), ("ALA", "C"), ("ALA", "O"),
        ("ALA", "CB"), ("ALA", "HB1"), ("ALA", "HB2"), ("ALA", "HB3"),
        ("NME", "N"), ("NME", "H"), ("NME", "C"), ("NME", "H1"), ("NME", "H2"), ("NME", "H3")]


@pytest.mark.parametrize("phi, psi", [(60.0, 40.0), (-80.0, 75.0), (65.0 * unit.degree, -60.0 * unit.degree)])
def test_starting_torsions(phi, psi):
    topology, positions = systems.build_peptide("A", capped=True, phi=phi, psi=psi)
    x = positions.value_in_unit(unit.nanometer)
    phi_atoms = [_atom(topology, 0, "C"), _atom(topology, 1, "N"), _atom(topology, 1, "CA"), _atom(topology, 1, "C")]
    psi_atoms = [_atom(topology, 1, "N"), _atom(topology, 1, "CA"), _atom(topology, 1, "C"), _atom(topology, 2, "N")]
    degrees = [v.value_in_unit(unit.degree) if unit.is_quantity(v) else v for v in (phi, psi)]
    assert dihedral_degrees(*x[phi_atoms]) == pytest.approx(degrees[0], abs=0.5)
    assert dihedral_degrees(*x[psi_atoms]) == pytest.approx(degrees[1], abs=0.5)


@pytest.mark.parametrize("sequence, capped, match", [
    ("", False, "empty"),
    ("   ", True, "empty"),
    ("AXK", False, "'X'"),
    ("AB", False, "'B'"),
    ("A", False, "at least two residues"),
])
def test_bad_sequences(sequence, capped, match):
    with pytest.raises(ValueError, match=match):
        systems.build_peptide(sequence, capped=capped)


def test_torsion_list_length_is_checked():
    with pytest.raises(ValueError, match="phi has 3 angles"):
        systems.build_peptide("AK", phi=[-60, -60, -60])


def test_presets_build_unconstrained_systems():
    topology, positions = systems.build_peptide("A", capped=True)
    kinds = {}
    for name, preset in systems.PRESETS.items():
        system = systems.create_system(topology, name)
        assert system.getNumConstraints() == 0
        assert preset.temperature == 310 * unit.kelvin
        kinds[name] = {type(f).__name__ for f in system.getForces()}
        assert math.isfinite(systems.potential_energy(system, positions).value_in_unit(unit.kilojoule_per_mole))
        nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
        if name == "amber14-obc1":
            assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.CutoffNonPeriodic
            assert nonbonded.getCutoffDistance() == 2.0 * unit.nanometer
        else:
            assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.NoCutoff
    assert "GBSAOBCForce" in kinds["amber99sbildn-obc"]
    assert "CustomGBForce" in kinds["amber14-obc1"]
    assert not {"GBSAOBCForce", "CustomGBForce"} & kinds["amber14-vacuum"]
    assert systems.PRESETS["amber99sbildn-obc"].as_dict()["files"] == ["amber99sbildn.xml", "amber99_obc.xml"]
    with pytest.raises(ValueError, match="unknown force-field preset 'amber-nope'.*amber99sbildn-obc"):
        systems.create_system(topology, "amber-nope")


def test_hydrogen_mass_repartitioning_keeps_total_mass():
    topology, _ = systems.build_peptide("A", capped=True)
    plain = systems.create_system(topology)
    heavy = systems.create_system(topology, hydrogen_mass=3.0 * unit.amu)
    masses = lambda s: np.array([s.getParticleMass(i).value_in_unit(unit.amu) for i in range(s.getNumParticles())])
    hydrogens = [a.index for a in topology.atoms() if a.element.symbol == "H"]
    assert np.allclose(masses(heavy)[hydrogens], 3.0)
    assert masses(heavy).sum() == pytest.approx(masses(plain).sum())
    assert np.allclose(masses(systems.create_system(topology, hydrogen_mass=3.0)), masses(heavy))


def test_shipped_alanine_dipeptide_is_the_minimised_builder_output():
    topology, positions = systems.load_alanine_dipeptide()
    built, _ = systems.build_peptide("A", capped=True)
    assert topology.getNumAtoms() == 22
    assert [r.name for r in topology.residues()] == ["ACE", "ALA", "NME"]
    assert [(a.residue.name, a.name) for a in topology.atoms()] == [(a.residue.name, a.name) for a in built.atoms()]
    assert topology.getNumBonds() == built.getNumBonds() == 21
    system = systems.create_system(topology)
    energy = systems.potential_energy(system, positions).value_in_unit(unit.kilojoule_per_mole)
    _, again = systems.minimize(system, positions)
    assert math.isfinite(energy)
    assert energy - again.value_in_unit(unit.kilojoule_per_mole) < 0.5  # already at a minimum
    assert systems.sequence_of(topology) == ("A", True)
    # made by: build_peptide("A", capped=True), minimised with the default preset to 0.1 kJ/mol/nm
    _, built_positions = systems.build_peptide("A", capped=True)
    minimised, _ = systems.minimize(system, built_positions, tolerance=0.1 * unit.kilojoule_per_mole / unit.nanometer)
    assert np.abs(minimised.value_in_unit(unit.nanometer) - positions.value_in_unit(unit.nanometer)).max() < 2e-3


def test_names_and_platforms():
    assert systems.peptide_name("ak") == "AK"
    assert systems.peptide_name("A", capped=True) == "ACE-A-NME"
    assert systems.best_platform().getName() == "Reference"
    # measured: for alanine dipeptide with GBSAOBCForce, Reference is far faster than CPU
    topology, positions = systems.load_alanine_dipeptide()
    system = systems.create_system(topology)
    assert systems.best_platform(system, positions, seconds=0.05).getName() == "Reference"
    assert systems.platform_by_name("auto", system, positions).getName() == "Reference"
    with pytest.raises(ValueError, match="needs positions"):
        systems.best_platform(system)
    assert systems.reference_platform().getName() == "Reference"
    with pytest.raises(ValueError, match="no OpenMM platform named 'Nope'"):
        systems.platform_by_name("Nope")
    with pytest.raises(FileNotFoundError, match="alanine-dipeptide"):
        systems.structure_path("no-such-structure")


@pytest.mark.parametrize("letter", ["A", "V", "S", "L", "K"])
def test_equivalent_hydrogens_carry_one_order_whatever_the_start(letter):
    """Builds at other backbone torsions used to name methyl/methylene hydrogens in the other cyclic
    order: a permutational isomer that MD never turns back."""
    import torch

    from openmm_timewarp.chirality import CANONICAL_HYDROGEN_SIGN, chirality_signs, equivalent_hydrogen_groups, \
        tetrahedral_centres

    signatures = []
    for phi, psi in ((None, None), (70, -70), (60, 40), (-70, -40)):
        topology, positions = systems.build_peptide(letter, capped=True, phi=phi, psi=psi)
        numbers = [a.element.atomic_number for a in topology.atoms()]
        bonds = [(a.index, b.index) for a, b in topology.bonds()]
        groups = {centre for centre, _ in equivalent_hydrogen_groups(numbers, bonds)}
        rows = [r for r in tetrahedral_centres(numbers, bonds) if int(r[0]) in groups]
        signs = chirality_signs(torch.as_tensor(np.asarray(positions._value)), torch.as_tensor(np.asarray(rows)))
        assert len(rows) >= 2 and bool((signs == CANONICAL_HYDROGEN_SIGN).all())
        signatures.append(signs.tolist())
    assert all(s == signatures[0] for s in signatures)


def test_every_platform_present_can_be_timed():
    # a zero-length Verlet step gives NaN coordinates on the CPU platform, which used to drop it from the race
    import openmm

    topology, positions = systems.load_alanine_dipeptide()
    system = systems.create_system(topology, "amber14-obc1")
    for name in ("Reference", "CPU"):
        platform = openmm.Platform.getPlatformByName(name)
        assert systems._force_evaluations_per_second(system, positions, platform, 0.02) > 0
