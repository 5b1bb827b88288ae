"""``fit system.xml structure.pdb``: any molecule as a serialised System, its bonds, its soft torsions, clear errors."""

import os

import numpy as np
import openmm
import pytest
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator, load_flow
from openmm_timewarp.cli import main
from openmm_timewarp.lab.analysis.soft_torsions import SoftTorsionObservables, soft_torsions
from openmm_timewarp.lab.fit import Fit, FitSettings
from openmm_timewarp.lab.molecule import load_molecule
from openmm_timewarp.lab.system_file import load_system_file

DATA = os.path.join(os.path.dirname(__file__), "data", "small-molecule")
XML, HBONDS_XML, PDB = (os.path.join(DATA, name) for name in ("dme-system.xml", "dme-hbonds-system.xml", "dme.pdb"))
TINY = FitSettings(minutes=0.5, workers=1, explore_share=0.1, seeds=3, seed_equilibration_ps=1.0,
                   seed_production_ps=2.0, check_seconds=2.0, max_epochs=2, constraints=None,
                   flow={"hidden": 16, "depth": 1, "torsion_layers": 2, "geometry_layers": 1})


def system_variant(tmp_path, change, source=XML, name="variant.xml"):
    system = openmm.XmlSerializer.deserialize(open(source).read())
    change(system)
    path = tmp_path / name
    path.write_text(openmm.XmlSerializer.serialize(system))
    return str(path)


def test_the_bonds_constraints_and_soft_torsions_of_dimethoxyethane():
    topology, xyz, preset = load_system_file(XML, PDB)
    assert topology.getNumAtoms() == 16 == len(xyz) and topology.getNumBonds() == 15 == len(preset.bonds)
    assert preset.constraints == "none" and load_system_file(HBONDS_XML, PDB)[2].constraints == "hbonds"
    # the methyl rotors C-O are symmetric and left out; the three backbone torsions remain
    assert SoftTorsionObservables(topology).names == ["C1-O2-C3-C4", "O2-C3-C4-O5", "C3-C4-O5-C6"]


def test_soft_torsions_leave_out_rings_and_terminal_atoms():
    ring = [(k, (k + 1) % 6) for k in range(6)]  # cyclohexane's carbons: every bond in the ring
    assert soft_torsions([6] * 6, ring) == []
    butane = [(0, 1), (1, 2), (2, 3)]  # heavy atoms only: one torsion, about the middle bond
    assert soft_torsions([6] * 4, butane) == [(0, 1, 2, 3)]


def test_hydrogen_mass_repartitioning_keeps_the_total_mass():
    molecule = load_molecule(XML, structure=PDB)
    plain, heavy = molecule.system(), molecule.system(hydrogen_mass_amu=4.0)
    masses = [[s.getParticleMass(k).value_in_unit(unit.dalton) for k in range(s.getNumParticles())]
              for s in (plain, heavy)]
    hydrogens = [a.index for a in molecule.topology.atoms() if a.element.symbol == "H"]
    assert np.allclose([masses[1][k] for k in hydrogens], 4.0)
    assert sum(masses[0]) == pytest.approx(sum(masses[1]), abs=1e-9)


def test_a_constraint_option_other_than_the_files_is_refused():
    molecule = load_molecule(HBONDS_XML, structure=PDB)
    assert molecule.system().getNumConstraints() == 10  # its own, as serialised
    with pytest.raises(ValueError, match="constraints are its own"):
        molecule.system(constraints="none")


@pytest.mark.parametrize("change, message", [
    (lambda s: s.setDefaultPeriodicBoxVectors(openmm.Vec3(3, 0, 0), openmm.Vec3(0, 3, 0), openmm.Vec3(0, 0, 3))
     or [f.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic) for f in s.getForces()
         if isinstance(f, openmm.NonbondedForce)], "periodic"),
    (lambda s: s.addConstraint(0, 5, 0.24), "bonds to hydrogen only"),  # C1 and C3: heavy atoms, not a bond
    (lambda s: s.addConstraint(1, 4, 0.2), "does not bond"),  # H11 and O2: a hydrogen, but not its bond
    (lambda s: s.addParticle(1.0), "atoms but the System"),
])
def test_a_system_out_of_scope_is_refused_with_what_to_do(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        load_system_file(system_variant(tmp_path, change), PDB)


def test_a_pdb_without_elements_or_a_missing_file_is_refused(tmp_path):
    # an atom name OpenMM cannot guess an element from, and a blank element column
    lines = [line[:12] + " Q1 " + line[16:76] + "  " + line[78:]
             if line.startswith(("ATOM", "HETATM")) and line[12:16].strip() == "C1"
             else line for line in open(PDB).read().splitlines()]
    blank = tmp_path / "blank.pdb"
    blank.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="element"):
        load_system_file(XML, str(blank))
    with pytest.raises(FileNotFoundError, match="no PDB"):
        load_system_file(XML, str(tmp_path / "absent.pdb"))
    not_system = tmp_path / "integrator.xml"
    not_system.write_text(openmm.XmlSerializer.serialize(openmm.VerletIntegrator(0.001)))
    with pytest.raises(ValueError, match="not a System"):
        load_system_file(str(not_system), PDB)


def test_the_command_line_asks_for_the_structure_and_refuses_a_preset(tmp_path, capsys):
    assert main(["fit", XML, "-o", str(tmp_path / "a"), "--no-progress"]) == 2
    assert "give a PDB of its atoms" in capsys.readouterr().err
    assert main(["fit", XML, PDB, "--preset", "amber14-obc2", "-o", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "does not apply to a System file" in capsys.readouterr().err
    assert main(["fit", HBONDS_XML, PDB, "--constraints", "none", "-o", str(tmp_path / "c"), "--no-progress"]) == 2
    assert "constraints are its own" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_fit_of_a_constrained_system_file_drives_the_integrator_on_that_system(tmp_path):
    folder, source = tmp_path / "dme", tmp_path / "dme.xml"
    source.write_text(open(HBONDS_XML).read())
    fit = Fit(str(folder), str(source), settings=TINY, progress=False, structure=PDB)
    fit.run()
    assert fit.record["request"]["constraints"] == "hbonds"
    check = fit.record["stages"]["check"]
    assert check["mh_steps"] > 0 and "O2-C3-C4-O5:trans" in check["populations"]
    module, info = load_flow(str(folder / "model.pt"))
    assert info.num_atoms == 16
    system = openmm.XmlSerializer.deserialize(open(HBONDS_XML).read())
    pdb = app.PDBFile(str(folder / "structure.pdb"))
    integrator = TimewarpIntegrator(310, 1.0, 0.002, flow=str(folder / "model.pt"), topology=pdb.topology)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    context.applyConstraints(1e-8)  # a PDB's 0.001 A rounding: the constraints exact before the moves
    integrator.step(3)
    assert integrator.getNumProposals() == 3
    positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    for k in range(system.getNumConstraints()):  # every move, accepted or not, leaves the constraints held
        i, j, length = system.getConstraintParameters(k)
        assert np.linalg.norm(positions[i] - positions[j]) == pytest.approx(length.value_in_unit(unit.nanometer),
                                                                            abs=1e-5)
    # the same file, changed: the folder refuses to continue with another molecule
    system_variant(tmp_path, lambda s: s.setParticleMass(0, 13.0), source=HBONDS_XML, name="dme.xml")
    with pytest.raises(ValueError, match="other settings"):
        Fit(str(folder), str(source), settings=TINY, progress=False, structure=PDB)
