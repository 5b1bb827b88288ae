"""Any molecule as a serialised System and a PDB: its bonds and soft torsions, clear errors, and every command.

``fit`` (a constrained DME fit whose model drives the integrator and the benchmark; a three-particle
toy with both bonds constrained whose fitted model samples exactly, and fails without the metric
term), ``simulate`` and ``train`` (the run's recorded graph, where the PDB alone loses it) and
``reference`` (soft-torsion states).
"""

import json
import os
from dataclasses import replace

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator, load_flow
from openmm_timewarp.cli import main
from openmm_timewarp.lab.analysis.soft_torsions import SoftTorsionObservables, soft_torsions
from openmm_timewarp.lab.fit import Fit, FitSettings
from openmm_timewarp.lab.molecule import load_molecule
from openmm_timewarp.kernel.constraints import Holds
from openmm_timewarp.lab.analysis.reference import load_reference
from openmm_timewarp.lab.datasets.pairs import Trajectory
from openmm_timewarp.lab.system_file import load_system_file

from sampling import Z_LIMIT, batch_mean_z
from test_constraints import TEMPERATURE as TOY_TEMPERATURE
from test_constraints import toy_chain, toy_prediction, toy_system

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
    # the benchmark takes the folder: its System (HBonds, as serialised), its model, its soft torsions
    out = tmp_path / "bench"
    assert main(["benchmark", "--system", str(folder), "--methods", "timewarp-mh", "md-2fs-hmr", "metadynamics",
                 "--budget", "2", "--repeats", "1", "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "benchmark.json").read_text())
    assert result["torsions"] == ["C1-O2-C3-C4", "O2-C3-C4-O5", "C3-C4-O5-C6"]
    assert result["methods"]["timewarp-mh"]["statistics"]["proposals"] > 0
    assert "O2-C3-C4-O5:trans" in result["methods"]["md-2fs-hmr"]["states"]
    # the same file, changed: the folder refuses to continue with another molecule
    system_variant(tmp_path, lambda s: s.setParticleMass(0, 13.0), source=HBONDS_XML, name="dme.xml")
    with pytest.raises(ValueError, match="other settings"):
        Fit(str(folder), str(source), settings=TINY, progress=False, structure=PDB)


def water_like_toy(tmp_path):
    """Toy A of the constraints reference as a System file: H-O-H, both bonds constrained to 0.1 nm, masses
    50-1-50 amu (the metric term is large), a CustomAngleForce; and its topology."""
    system, _, positions = toy_system()
    topology = app.Topology()
    residue = topology.addResidue("TOY", topology.addChain())
    atoms = [topology.addAtom(name, element, residue) for name, element in
             (("H1", app.element.hydrogen), ("O", app.element.oxygen), ("H2", app.element.hydrogen))]
    topology.addBond(atoms[0], atoms[1])
    topology.addBond(atoms[1], atoms[2])
    xml, pdb = tmp_path / "toy.xml", tmp_path / "toy.pdb"
    xml.write_text(openmm.XmlSerializer.serialize(system))
    with open(pdb, "w") as handle:
        app.PDBFile.writeFile(topology, positions * unit.nanometer, handle)
    return str(xml), str(pdb), topology


TOY_SAMPLES = 30000  # acceptance ~0.9: SE of <cos theta> ~0.003; the metric term moves it by 0.032


@pytest.fixture(scope="module")
def fitted_toy(tmp_path_factory):
    """A fit of the toy (3 atoms: its MD is cheap, so more of it than TINY's), its model and topology."""
    folder = tmp_path_factory.mktemp("toy")
    xml, pdb, topology = water_like_toy(folder)
    settings = replace(TINY, seed_production_ps=20.0, save_interval_ps=0.1, max_epochs=10)
    fit = Fit(str(folder / "fit"), xml, settings=settings, progress=False, structure=pdb, temperature_K=TOY_TEMPERATURE)
    fit.run()
    return fit.record, str(folder / "fit" / "model.pt"), topology


@pytest.mark.parametrize("broken", [False, True])
def test_a_constrained_three_particle_toy_is_fitted_and_its_model_samples_exactly(fitted_toy, monkeypatch, broken):
    """No torsions, both bonds held: fit, then pure MH with the fitted model against the quadrature of
    exp(-U/kT) sin(theta) sqrt(det G_M). Without the metric term the same chain misses it."""
    record, model, topology = fitted_toy
    assert record["request"]["constraints"] == "hbonds" and record["stages"]["check"]["mh_steps"] > 0
    assert load_flow(model)[1].num_atoms == 3
    if broken:
        monkeypatch.setattr(Holds, "half_log_det_metric", lambda self, x: torch.zeros(x.shape[0], dtype=torch.float64))
    series, integrator, context = toy_chain(TOY_SAMPLES, seed=3, flow=model, topology=topology)
    assert integrator.getAcceptanceRate() > 0.2
    z = batch_mean_z(series[500:], toy_prediction()[0])
    if broken:  # it samples the measure without the metric term instead
        assert z < -Z_LIMIT, (series.mean(), z)
        assert abs(batch_mean_z(series[500:], toy_prediction(metric=False)[0])) < Z_LIMIT, series.mean()
    else:
        assert abs(z) < Z_LIMIT, (series.mean(), toy_prediction()[0], z)
        positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        assert np.abs(np.linalg.norm(positions[[0, 2]] - positions[1], axis=-1) - 0.1).max() < 1e-6


def test_simulate_and_train_take_a_system_file_and_keep_its_graph(tmp_path):
    """A residue with a standard name (ALA) keeps no CONECT records in a PDB written back, so the run's topology
    PDB alone has no bonds: the run records the System's graph, and training builds the Z-matrix from it."""
    pdb = tmp_path / "dme-named-ala.pdb"
    pdb.write_text(open(PDB).read().replace(" DME ", " ALA "))
    runs, training, model = tmp_path / "runs", tmp_path / "train", tmp_path / "model.pt"
    assert main(["simulate", HBONDS_XML, str(pdb), "-o", str(runs), "--timestep-fs", "4", "--hydrogen-mass-amu", "4",
                 "--equilibration-ps", "1", "--production-ns", "0.008", "--save-interval-ps", "0.2",
                 "--no-progress"]) == 0
    run = Trajectory(str(runs / "dme-hbonds-system"))
    assert run.metadata["settings"]["constraints"] == "hbonds" and run.num_frames == 40
    assert app.PDBFile(run.topology_path()).topology.getNumBonds() == 0  # the PDB alone lost the graph
    assert sorted(run.bonds()) == sorted(load_system_file(HBONDS_XML, PDB)[2].bonds)
    assert main(["train", str(runs), "--family", "internal", "-o", str(training), "--epochs", "1", "--batch-size", "8",
                 "--config", "hidden=16", "--config", "depth=1", "--no-progress"]) == 0
    assert main(["export", str(training), "-o", str(model)]) == 0
    _, info = load_flow(str(model))
    assert info.num_atoms == 16 and info.constraints == "hbonds"
    assert sorted(map(tuple, info.bonds)) == sorted(run.bonds())


def test_simulate_refuses_peptide_options_for_a_system_file(tmp_path, capsys):
    assert main(["simulate", XML, "-o", str(tmp_path / "a"), "--no-progress"]) == 2
    assert "simulate system.xml structure.pdb" in capsys.readouterr().err
    assert main(["simulate", XML, PDB, "--preset", "amber14-obc1", "-o", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "--preset does not apply to a System file" in capsys.readouterr().err
    assert main(["simulate", HBONDS_XML, PDB, "--constraints", "none", "-o", str(tmp_path / "c"), "--no-progress"]) == 2
    assert "constraints are its own" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_reference_of_a_system_file_gives_its_soft_torsion_states(tmp_path, capsys):
    out = tmp_path / "ref"
    assert main(["reference", HBONDS_XML, PDB, "--replicas", "2", "--ns", "0.01", "--burn-in-ns", "0", "-o", str(out),
                 "--no-progress"]) == 0
    assert "O2-C3-C4-O5:trans" in capsys.readouterr().out
    reference = load_reference(out)
    assert reference.molecule == "dme-hbonds-system" and reference.num_samples == 40
    for torsion in SoftTorsionObservables(load_molecule(HBONDS_XML, structure=PDB).topology).names:
        assert sum(reference.population(f"{torsion}:{s}") for s in ("gauche+", "gauche-", "trans")) == \
            pytest.approx(1.0)
    assert main(["reference", XML, PDB, "--preset", "amber14-obc1", "-o", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "does not apply to a System file" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_forces_without_terms_are_left_out_and_the_energy_is_the_files():
    """CHARMM writes an empty CMAPTorsionForce (and CustomTorsionForce) for DME: they cost most of an MD step."""
    serialised = openmm.XmlSerializer.deserialize(open(XML).read())
    molecule = load_molecule(XML, structure=PDB)
    used = molecule.system()
    kinds = lambda system: {type(force).__name__ for force in system.getForces()}  # noqa: E731
    assert {"CMAPTorsionForce", "CustomTorsionForce"} <= kinds(serialised)
    assert not {"CMAPTorsionForce", "CustomTorsionForce"} & kinds(used)
    energies = []
    for system in (serialised, used):
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(molecule.positions)
        state = context.getState(getEnergy=True, getForces=True)
        energies.append((state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
                         state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)))
    assert energies[0][0] == pytest.approx(energies[1][0], rel=1e-9, abs=1e-9)
    assert np.allclose(energies[0][1], energies[1][1], rtol=1e-9, atol=1e-9)
