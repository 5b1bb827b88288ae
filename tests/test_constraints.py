"""Bond constraints: internal-coordinate proposals hold constrained bonds, and MH targets the constrained measure.

The measure constrained dynamics samples (``../shared/reference/constraints.md``, ``docs/constraints.md``)
carries a mass-metric factor sqrt(det G_M(x)). Checked here:

- the held flow: held bonds are set exactly, their noise is ignored, and the density covers the free
  coordinates only (sample and log_prob agree; the free density integrates to one);
- exactness on toy A of the reference (three particles a-b-c, both bonds constrained, masses
  50-1-50 amu so that the metric term is large) by pure MH moves with an asymmetric (perturbed)
  internal-coordinate proposal, against the quadrature of exp(-U/kT) sin(theta) sqrt(det G_M);
  the variant without the metric term fails by many standard errors;
- the current state's density after MD, and re-placed buffered proposals' densities, include the
  metric term (a variant without it fails); velocities after an accepted move satisfy the
  constraints; explore mode holds the bonds;
- the errors: HAngles (with and without a topology), a flow that cannot hold bonds (the shipped
  Cartesian model too), a constraint that is not a Z-matrix bond, a model made for more constraints
  than the System has, a periodic System, bad contract attributes;
- the README's script with constraints=HBonds, hydrogenMass=4 amu and a 4 fs step;
- constrained MD data (4 fs, 4 amu hydrogens), training that holds the bonds, the export's
  ``constraints``; the --constraints options of fit, train and simulate.
"""

import math

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.contract import FlowContractError, load_flow
from openmm_timewarp.flow.internal.proposal import InternalCoordinateProposal
from openmm_timewarp.flow.internal.zmatrix import InternalCoordinates, build_zmatrix
from openmm_timewarp.kernel.constraints import Holds, metric_coupling
from openmm_timewarp.testing import DriftGaussianFlow

from sampling import Z_LIMIT, batch_mean_z
from test_internal_flow import perturbed_internal_flow

TEMPERATURE = 300.0
KT = 0.0083144626181532 * TEMPERATURE  # kJ/mol
MASSES = (50.0, 1.0, 50.0)
BOND = 0.1
ANGLE_K, ANGLE_0 = 5.0, 1.9  # kJ/mol/rad^2, rad
REFERENCE = openmm.Platform.getPlatformByName("Reference")


# ---------------------------------------------------------------------------- toy A
def toy_system(masses=MASSES, constraints=((0, 1), (1, 2))):
    """Toy A: a-b-c with both bonds constrained and a CustomAngleForce (never a HarmonicAngleForce here:
    with a light central atom OpenMM's CCMA diverges, see the reference doc)."""
    system = openmm.System()
    for mass in masses:
        system.addParticle(mass)
    for i, j in constraints:
        system.addConstraint(i, j, BOND)
    angle = openmm.CustomAngleForce("0.5*k_angle*(theta-theta0)^2")
    angle.addGlobalParameter("k_angle", ANGLE_K)
    angle.addGlobalParameter("theta0", ANGLE_0)
    angle.addAngle(0, 1, 2)
    system.addForce(angle)
    topology = app.Topology()
    residue = topology.addResidue("TOY", topology.addChain())
    atoms = [topology.addAtom(name, app.element.carbon, residue) for name in ("A", "B", "C")]
    topology.addBond(atoms[0], atoms[1])
    topology.addBond(atoms[1], atoms[2])
    positions = np.array([[BOND, 0.0, 0.0], [0.0, 0.0, 0.0], [BOND * math.cos(ANGLE_0), BOND * math.sin(ANGLE_0), 0.0]])
    return system, topology, positions


def toy_prediction(metric=True):
    """<cos theta> by quadrature: exp(-U/kT) sin(theta) sqrt(det G_M), or without sqrt(det G_M)."""
    theta = np.linspace(1e-7, math.pi - 1e-7, 200001)
    weight = np.exp(-0.5 * ANGLE_K * (theta - ANGLE_0) ** 2 / KT) * np.sin(theta)
    if metric:  # G_M = [[1/m_a + 1/m_b, -+cos/m_b], [., 1/m_b + 1/m_c]]
        a, b, c = MASSES
        weight = weight * np.sqrt((1 / a + 1 / b) * (1 / b + 1 / c) - (np.cos(theta) / b) ** 2)
    weight = weight / weight.sum()
    mean = float((weight * np.cos(theta)).sum())
    return mean, float(np.sqrt((weight * np.cos(theta) ** 2).sum() - mean ** 2))


def toy_proposal(seed=2, conditional=False, constraints="none", scale=0.1):
    """An internal-coordinate proposal for the toy, perturbed away from the identity (asymmetric)."""
    zmatrix = build_zmatrix([6, 6, 6], [(0, 1), (1, 2)], [0, 1, 2])
    flow = perturbed_internal_flow(3, conditional, seed, bond=(BOND, 0.01), angle=(1.71, 0.47), scale=scale)
    return InternalCoordinateProposal(
        InternalCoordinates(zmatrix), [flow], [1.0], ["local" if conditional else "global"], temperature=TEMPERATURE,
        tau_ps=0.0, force_field="toy", atomic_numbers=[6, 6, 6], bonds=[[0, 1], [1, 2]], handedness=[],
        metadata_json="{}", constraints=constraints)


def cosines(positions):
    a, c = positions[..., 0, :] - positions[..., 1, :], positions[..., 2, :] - positions[..., 1, :]
    return (a * c).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(c, axis=-1)


def toy_chain(samples, seed, flow=None, topology=None, **settings):
    """cos(theta) after every pure MH move on toy A (one MH step per move), and the integrator."""
    system, own_topology, positions = toy_system()
    topology = topology or own_topology
    settings = {"moveInterval": 0, "proposalsPerMove": 1, "batchSize": 256, **settings}
    integrator = TimewarpIntegrator(TEMPERATURE, 1.0, 0.001, flow=flow or torch.jit.script(toy_proposal()),
                                    topology=topology, **settings)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, REFERENCE)
    context.setPositions(positions)
    out = np.empty(samples)
    for i in range(samples):
        integrator.step(1)
        out[i] = cosines(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
    return out, integrator, context


SAMPLES = 80000  # ~2 10^4 effective samples: SE of <cos theta> ~0.003; the metric term moves it by 0.032


def test_metric_matrix_of_the_toy():
    pairs = np.array([[0, 1], [1, 2]])
    x = torch.tensor(toy_system()[2], dtype=torch.float64)[None]
    holds = Holds(torch.as_tensor(pairs), torch.full((2,), BOND), metric_coupling(pairs, np.array(MASSES)), "allbonds")
    cos = math.cos(ANGLE_0)
    expected = 0.5 * math.log((1 / 50 + 1) ** 2 - cos ** 2)
    assert abs(float(holds.half_log_det_metric(x)[0]) - expected) < 1e-10
    # bonds that share no atom do not couple; the sign of the pair's order does not matter
    flipped = np.array([[1, 0], [1, 2]])
    other = Holds(torch.as_tensor(flipped), torch.full((2,), BOND), metric_coupling(flipped, np.array(MASSES)), "")
    assert abs(float(other.half_log_det_metric(x)[0]) - expected) < 1e-10
    assert metric_coupling(np.array([[0, 1], [2, 3]]), np.ones(4))[0, 1] == 0.0


def test_held_bonds_are_exact_and_the_density_covers_the_free_coordinates():
    proposal = torch.jit.script(toy_proposal(scale=0.3))
    numbers = torch.tensor([6, 6, 6])
    x = torch.tensor(toy_system()[2], dtype=torch.float32)[None].expand(4000, 3, 3)
    z = torch.randn(4000, 3, 6, generator=torch.Generator().manual_seed(1))
    proposal.hold_bonds(torch.tensor([[1, 0], [2, 1]]), torch.tensor([0.1, 0.12]))
    with torch.no_grad():
        new, v, log_q = proposal.sample(x, numbers, z)
        again = proposal.log_prob(x, numbers, new, v)
        z_other = z.clone()
        z_other[:, 0, :2] = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2))  # the bonds' noise
        same = proposal.sample(x, numbers, z_other)
    lengths = np.linalg.norm((new[:, [0, 2]] - new[:, 1:2]).numpy(), axis=-1)
    assert np.abs(lengths - [0.1, 0.12]).max() < 1e-6
    finite = torch.isfinite(log_q)
    assert torch.allclose(log_q[finite], again[finite], atol=1e-3)
    # the noise of the held bonds is not used (the free angle takes the third noise value)
    assert torch.allclose(new, same[0], atol=1e-6) and torch.allclose(log_q, same[2], equal_nan=True)
    # the flow's density over the free angle alone integrates to one (the held bonds are not in it)
    python = toy_proposal(scale=0.3)  # indexing a scripted ModuleList gives back the Python modules
    python.hold_bonds(torch.tensor([[1, 0], [2, 1]]), torch.tensor([0.1, 0.12]))
    flow = python.flows[0]
    theta = torch.linspace(-6.0, 9.0, 30001)
    empty = torch.zeros(len(theta), 0)
    with torch.no_grad():
        density = flow.log_prob(torch.tensor([0.1, 0.12]).expand(len(theta), 2), theta[:, None], empty, empty, empty)
    assert abs(float(torch.trapezoid(torch.exp(density.double()), theta.double())) - 1.0) < 1e-3
    proposal.hold_bonds(torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0))  # released: the flow as before
    with torch.no_grad():
        free = proposal.sample(x, numbers, z)[0]
    assert not np.allclose(np.linalg.norm((free[:, 0] - free[:, 1]).numpy(), axis=-1), 0.1, atol=1e-4)


def test_toy_a_is_sampled_exactly_with_the_metric_term():
    series, integrator, context = toy_chain(SAMPLES, seed=11)
    mean, spread = toy_prediction()
    z = batch_mean_z(series[500:], mean)
    assert abs(z) < Z_LIMIT, (series.mean(), mean, z)
    assert 0.3 < integrator.getAcceptanceRate() < 0.95
    positions = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    assert np.abs(np.linalg.norm(positions[[0, 2]] - positions[1], axis=-1) - BOND).max() < 1e-6


def test_toy_a_without_the_metric_term_fails(monkeypatch):
    monkeypatch.setattr(Holds, "half_log_det_metric", lambda self, x: torch.zeros(x.shape[0], dtype=torch.float64))
    series, _, _ = toy_chain(SAMPLES, seed=11)
    mean, _ = toy_prediction()
    z = batch_mean_z(series[500:], mean)
    assert z < -2 * Z_LIMIT, (series.mean(), mean, z)
    without, _ = toy_prediction(metric=False)  # it samples prediction (ii), -0.162, instead
    assert abs(batch_mean_z(series[500:], without)) < Z_LIMIT, (series.mean(), without)


def test_velocities_after_an_accepted_move_satisfy_the_constraints():
    system, topology, positions = toy_system()
    integrator = TimewarpIntegrator(TEMPERATURE, 1.0, 0.001, flow=torch.jit.script(toy_proposal()), topology=topology,
                                    moveInterval=5, proposalsPerMove=1, batchSize=16)
    integrator.setRandomNumberSeed(3)
    context = openmm.Context(system, integrator, REFERENCE)
    context.setPositions(positions)
    integrator.bind(context)
    kernel = integrator._kernel
    while not kernel.move(context, TEMPERATURE, redrawVelocities=True):
        pass
    state = context.getState(getPositions=True, getVelocities=True)
    x, v = state.getPositions(asNumpy=True)._value, state.getVelocities(asNumpy=True)._value
    for i, j in ((0, 1), (1, 2)):
        u = (x[i] - x[j]) / np.linalg.norm(x[i] - x[j])
        assert abs(np.dot(v[i] - v[j], u)) < 1e-4 * np.linalg.norm(v[i] - v[j])  # tangent to the constraints
    assert np.linalg.norm(v) > 0
    integrator.step(50)  # MD at 1 fs with the constraints, moves between
    x = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    assert np.abs(np.linalg.norm(x[[0, 2]] - x[1], axis=-1) - BOND).max() < 1e-5
    assert integrator.getNumAccepted() > 1


# ---------------------------------------------------------------------------- errors
def _bind(system, topology, positions, flow, temperature=TEMPERATURE, **settings):
    integrator = TimewarpIntegrator(temperature, 1.0, 0.001, flow=flow, topology=topology,
                                    **{"moveInterval": 0, **settings})
    context = openmm.Context(system, integrator, REFERENCE)
    context.setPositions(positions)
    integrator.bind(context)
    return integrator, context


def test_a_constraint_between_atoms_that_are_not_bonded_is_refused():
    system, topology, positions = toy_system(constraints=((0, 1), (1, 2), (0, 2)))
    with pytest.raises(ValueError, match=r"constraint 2 \(atoms 0 \(TOY\d*:A\) and 2 \(TOY\d*:C\).*HAngles"):
        _bind(system, topology, positions, torch.jit.script(toy_proposal()))


def test_hangles_on_alanine_dipeptide_is_refused_naming_the_constraint():
    from openmm_timewarp.lab.systems import get_preset, load_alanine_dipeptide

    topology, positions = load_alanine_dipeptide()
    arguments = {**get_preset("amber99sbildn-obc").create_system_arguments(), "constraints": app.HAngles}
    system = get_preset("amber99sbildn-obc").force_field().createSystem(topology, **arguments)
    with pytest.raises(ValueError, match=r"constraint \d+ \(atoms \d+ \(\w+\d+:H\w*\) and \d+ \(\w+\d+:H\w*\).*HAngles"):
        _bind(system, topology, positions, "alanine-dipeptide", 310.0)
    with pytest.raises(ValueError, match="HAngles"):  # without a topology too (bonds from the System)
        _bind(system, None, positions, "alanine-dipeptide", 310.0)


def test_a_flow_that_cannot_hold_bonds_is_refused_with_what_to_do():
    system, topology, positions = toy_system()
    flow = DriftGaussianFlow(sigma=0.05, drift=0.02, temperature=TEMPERATURE)
    with pytest.raises(ValueError, match=r"cannot hold bonds.*constraints=None.*1 fs.*hydrogenMass=3\*amu.*2 fs"):
        _bind(system, topology, positions, flow)


def test_the_shipped_cartesian_model_is_refused_on_an_hbonds_system():
    from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide

    topology, positions = load_alanine_dipeptide()
    system = create_system(topology, constraints="hbonds", hydrogen_mass=4.0)
    with pytest.raises(ValueError, match=r"constraints \(first: constraint 0 .*Cartesian-family.*constraints=None"):
        _bind(system, topology, positions, "alanine-dipeptide-cartesian", 310.0)


def test_a_constraint_that_is_not_a_zmatrix_bond_is_refused():
    system, topology, positions = toy_system(constraints=((0, 1), (0, 2)))
    atoms = list(topology.atoms())
    topology.addBond(atoms[0], atoms[2])  # a three-membered ring: a-c closes it
    zmatrix = build_zmatrix([6, 6, 6], [(0, 1), (1, 2), (0, 2)], [0, 1, 2])
    proposal = toy_proposal()
    ring = InternalCoordinateProposal(
        InternalCoordinates(zmatrix), list(proposal.flows), [1.0], ["global"], temperature=TEMPERATURE, tau_ps=0.0,
        force_field="toy", atomic_numbers=[6, 6, 6], bonds=[[0, 1], [1, 2], [0, 2]], handedness=[],
        metadata_json="{}")
    with pytest.raises(ValueError, match=r"constraint 1 \(atoms 0 \(TOY\d*:A\) and 2 \(TOY\d*:C\).*not a Z-matrix bond"):
        _bind(system, topology, positions, torch.jit.script(ring))


def test_a_model_made_for_constraints_refuses_a_system_without_them():
    system, topology, positions = toy_system(constraints=())
    with pytest.raises(ValueError, match=r"made for constraints='allbonds', but the System has no constraints"):
        _bind(system, topology, positions, torch.jit.script(toy_proposal(constraints="allbonds")))
    # a model made for fewer constraints than the System has holds the rest (exact): allowed
    system, topology, positions = toy_system()
    with pytest.warns(RuntimeWarning, match="made for constraints='hbonds'"):
        _bind(system, topology, positions, torch.jit.script(toy_proposal(constraints="hbonds")))
    _bind(system, topology, positions, torch.jit.script(toy_proposal(constraints="none")))


def test_contract_attributes_for_constraints_are_checked():
    proposal = torch.jit.script(toy_proposal(constraints="hbonds"))
    info = load_flow(proposal)[1]
    assert info.constraints == "hbonds" and info.can_hold_bonds
    assert {frozenset(b) for b in info.holdable_bonds} == {frozenset((0, 1)), frozenset((1, 2))}
    flow = DriftGaussianFlow(temperature=TEMPERATURE)
    assert load_flow(flow)[1].constraints == "none" and not load_flow(flow)[1].can_hold_bonds  # older files
    flow.constraints = "hangles"
    with pytest.raises(FlowContractError, match="'constraints' must be one of none, hbonds, allbonds"):
        load_flow(flow)
    flow.constraints = "hbonds"
    with pytest.raises(FlowContractError, match="no hold_bonds method"):
        load_flow(flow)


def test_a_periodic_constrained_system_is_refused_as_out_of_scope():
    system, topology, positions = toy_system()
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in 3.0 * np.eye(3)))
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    for _ in range(3):
        force.addParticle(0.0, 0.1, 0.0)
    system.addForce(force)
    with pytest.raises(ValueError, match=r"periodic Systems.*out of scope.*implicit-solvent or vacuum"):
        _bind(system, topology, positions, torch.jit.script(toy_proposal()))


# ---------------------------------------------------------------------------- the README's script
@pytest.mark.parametrize("move_interval", [None, 10])
def test_readme_script_with_hbonds_hydrogen_mass_4_and_4_fs(move_interval):
    from openmm_timewarp.lab.systems import structure_path

    pdb = app.PDBFile(structure_path("alanine-dipeptide"))
    forcefield = app.ForceField("amber99sbildn.xml", "amber99_obc.xml")
    system = forcefield.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds,
                                     hydrogenMass=4 * unit.amu)
    integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 4 * unit.femtosecond,
                                    flow="alanine-dipeptide", topology=pdb.topology, moveInterval=move_interval)
    simulation = app.Simulation(pdb.topology, system, integrator, REFERENCE)
    simulation.context.setPositions(pdb.positions)
    integrator.setRandomNumberSeed(2)
    simulation.step(300)
    assert integrator.getAcceptanceRate() > 0.15
    x = simulation.context.getState(getPositions=True).getPositions(asNumpy=True)._value
    for k in range(system.getNumConstraints()):
        i, j, length = system.getConstraintParameters(k)
        assert abs(np.linalg.norm(x[i] - x[j]) - length.value_in_unit(unit.nanometer)) < 1e-4
    energy = simulation.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert math.isfinite(energy) and energy < 500.0


def test_hbonds_without_a_topology_takes_the_constrained_bonds_as_bonds():
    """As openmmtools' TimewarpMove binds: createSystem leaves constrained bonds out of the bond force."""
    from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide

    topology, positions = load_alanine_dipeptide()
    system = create_system(topology, constraints="hbonds")
    integrator, context = _bind(system, None, positions, "alanine-dipeptide", temperature=310.0)
    holds = integrator._kernel.binding.holds
    assert holds is not None and len(holds.pairs) == system.getNumConstraints() == 12 and holds.kind == "hbonds"


def _kernel_density(kernel, positions):
    """log q(x) - 0.5 log det G_M(x) of System positions, computed outside the kernel."""
    from openmm_timewarp.kernel.walks import auxiliary_log_density

    x = torch.as_tensor(positions[kernel.binding.mapping], dtype=torch.float32)[None]
    with torch.no_grad():
        log_q = kernel.flow.log_prob(x, kernel.binding.numbers, x, torch.zeros_like(x)).double()
    return float(log_q - auxiliary_log_density(torch.zeros_like(x)) - kernel.binding.holds.half_log_det_metric(x))


@pytest.mark.parametrize("broken", [False, True])
def test_densities_after_md_and_of_replaced_proposals_include_the_metric(broken, monkeypatch):
    """The current state's density after MD (each move) and the buffered proposals re-placed in its frame."""
    from openmm_timewarp.kernel import walks

    original, seen = walks.log_prob, []

    def recorded(kernel, x_cond, x, v):
        out = (kernel.flow.log_prob(x_cond, kernel.binding.numbers, x, v).detach() if broken  # without the metric
               else original(kernel, x_cond, x, v))
        seen.append((x[0].numpy().astype(np.float64)[kernel.binding.inverse],
                     float(out[0] - walks.auxiliary_log_density(v[0]))))
        return out

    monkeypatch.setattr(walks, "log_prob", recorded)
    system, topology, positions = toy_system()
    integrator, context = _bind(system, topology, positions, torch.jit.script(toy_proposal()), moveInterval=5,
                                proposalsPerMove=2, batchSize=32)
    integrator.setRandomNumberSeed(7)
    kernel, errors = integrator._kernel, []
    for _ in range(12):
        integrator.step(5)
        buffer = kernel.cache.buffer
        usable = [i for i in range(buffer.next, len(buffer)) if buffer.finite[i]]
        errors += [abs(buffer.log_q_x[i] - _kernel_density(kernel, buffer.system_positions[i])) for i in usable[:4]]
    assert len(seen) == 12  # one density of the state MD left per move
    state_errors = [abs(log_q - _kernel_density(kernel, x)) for x, log_q in seen]
    assert kernel.cache.buffer.drawn is not None  # proposals were re-placed in the frame MD left
    assert max(errors) < 1e-3, max(errors)
    assert (max(state_errors) > 0.1) if broken else (max(state_errors) < 1e-3), state_errors


# ---------------------------------------------------------------------------- a model made for HBonds
def test_train_on_hbonds_runs_makes_a_model_that_holds_them(tmp_path):
    """Constrained MD (4 fs, 4 amu hydrogens), training that holds the bonds to hydrogen, and the export."""
    from openmm_timewarp.lab.md.simulate import simulate
    from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide
    from openmm_timewarp.lab.training.entry import TrainingDataError, train_family
    from openmm_timewarp.lab.training.export import export_training_folders

    runs = tmp_path / "runs"
    for seed in (1, 2):
        simulate(str(runs), "A", capped=True, timestep_ps=0.004, hydrogen_mass_amu=4.0, save_interval_ps=0.1,
                 equilibration_ps=1.0, production_ps=4.0, seed=seed, platform="Reference", progress=False,
                 name=f"run-{seed}", constraints="hbonds")
    small = {"hidden": 16, "depth": 1, "torsion_layers": 2, "geometry_layers": 1}
    settings = dict(epochs=1, batch_size=32, learning_rate=1e-3, warmup_steps=1, seed=0)
    with pytest.raises(TrainingDataError, match="made with constraints='hbonds', not 'none'"):
        train_family("internal", [str(runs)], None, None, small, settings, str(tmp_path / "no"), progress=False,
                     constraints="none")
    result = train_family("internal", [str(runs)], None, None, small, settings, str(tmp_path / "train"),
                          progress=False, constraints="hbonds")
    assert result.data.summary["constraints"] == "hbonds" and len(result.data.family_state["held_bonds"]["bonds"]) == 12
    info = export_training_folders(str(tmp_path / "train"), str(tmp_path / "model.pt"))
    assert info.constraints == "hbonds" and info.can_hold_bonds
    topology, positions = load_alanine_dipeptide()
    for constraints in ("hbonds", None):
        system = create_system(topology, hydrogen_mass=4.0, constraints=constraints)
        if constraints is None:  # the model proposes no bond lengths for bonds to hydrogen
            with pytest.raises(ValueError, match="made for constraints='hbonds', but the System has no constraints"):
                _bind(system, topology, positions, str(tmp_path / "model.pt"), 310.0)
        else:
            integrator, context = _bind(system, topology, positions, str(tmp_path / "model.pt"), 310.0)
            context.applyConstraints(1e-6)
            integrator.step(20)
            assert integrator.getNumProposals() > 0


def test_fit_train_and_simulate_take_the_constraint_option():
    import argparse

    from openmm_timewarp.cli import fit as fit_cli, simulate as simulate_cli, train as train_cli
    from openmm_timewarp.lab.fit import SEED_MD, FitSettings

    for module, extra in ((fit_cli, ["A", "-o", "x"]), (train_cli, ["data", "-o", "x"]), (simulate_cli, ["A", "-o", "x"])):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        assert parser.parse_args(extra + ["--constraints", "hbonds"]).constraints == "hbonds"
        with pytest.raises(SystemExit):
            parser.parse_args(extra + ["--constraints", "hangles"])
    assert SEED_MD["hbonds"] == (0.004, 4.0)  # the fastest valid setting: 4 fs with 4 amu hydrogens
    with pytest.raises(ValueError, match="constraints must be one of none, hbonds"):
        FitSettings(constraints="allbonds")


def test_explore_mode_holds_the_bonds_too():
    system, topology, positions = toy_system()
    integrator, context = _bind(system, topology, positions, torch.jit.script(toy_proposal()), mode="explore",
                                proposalsPerMove=4, batchSize=8)
    integrator.setRandomNumberSeed(5)
    integrator.step(20)
    x = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    assert integrator.getNumAccepted() > 0
    assert np.abs(np.linalg.norm(x[[0, 2]] - x[1], axis=-1) - BOND).max() < 1e-6


def test_an_internal_file_rebuilt_with_this_code_draws_the_same_proposals(tmp_path):
    """How the shipped model gained hold_bonds: rebuild_proposal checks its proposals against the file's."""
    from openmm_timewarp.lab.training.internal import rebuild_proposal
    from openmm_timewarp.models import model_path

    rebuilt = rebuild_proposal(model_path("alanine-dipeptide"), str(tmp_path / "again.pt"))
    assert rebuilt.constraints == "none" and len(rebuilt.holdable_bonds) == 21
    with pytest.raises(ValueError, match="not an internal-family model file"):
        rebuild_proposal(model_path("alanine-dipeptide-cartesian"), str(tmp_path / "no.pt"))
