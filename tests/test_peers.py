"""Peer methods of the benchmark: replica exchange (checked on an exact double well) and metadynamics."""

import math

import numpy as np
import openmm
import pytest
from openmm import app, unit

from openmm_timewarp.analysis import REGION_NAMES, block_standard_error, torsions_from_positions
from openmm_timewarp.benchmark import accuracy, peers
from openmm_timewarp.testing import double_well_exact, double_well_system

# A tilted double well in x (wells at +-0.1 nm, barrier 20 kJ/mol = 8 kT at 300 K, right well 3 kJ/mol
# higher): plain MD at 300 K crosses about once per nanosecond, so the lowest replica's population of
# the right well is only right if the exchanges are.
WELL = dict(barrier=20.0, tilt=1.5, width=0.1, spring=500.0, stiffening=0.0)
LADDER_K = (300.0, 1600.0, 5)
Z_LIMIT = 4.0


def double_well_run(cycles=15000, seed=5):
    """P(x > 0) at the lowest temperature from replica exchange, its block standard error, the acceptance."""
    system, positions = double_well_system(num_particles=1, mass=100.0, **WELL)
    sampler = peers.ParallelTempering(system, positions * unit.nanometer, peers.geometric_ladder(*LADDER_K),
                                      0.1 * unit.picosecond, 10.0 * unit.femtosecond, 10.0 / unit.picosecond,
                                      seed=seed)
    for _ in range(200):
        sampler.run_cycle()
    sampler.reset_statistics()
    right = np.empty(cycles)
    for k in range(cycles):
        sampler.run_cycle()
        right[k] = sampler.positions(0)[0][0].value_in_unit(unit.nanometer) > 0.0
    return right.mean(), block_standard_error(right, cycles // 25), sampler.swap_acceptance


def double_well_z(p, error):
    exact = double_well_exact(temperature=LADDER_K[0], **WELL)["p_right"]
    return (p - exact) / error


def test_swap_criterion_sign():
    beta_low, beta_high = 1.0 / 2.5, 1.0 / 5.0
    # a high-energy configuration at the low temperature always goes up
    assert peers.swap_log_probability(beta_low, beta_high, -10.0, -20.0) > 0
    assert peers.swap_log_probability(beta_low, beta_high, -20.0, -10.0) == pytest.approx(-2.0)


def test_geometric_ladder():
    ladder = [t.value_in_unit(unit.kelvin) for t in peers.geometric_ladder(310.0 * unit.kelvin, 600.0, 8)]
    assert ladder[0] == pytest.approx(310.0) and ladder[-1] == pytest.approx(600.0)
    assert np.allclose(np.diff(np.log(ladder)), math.log(600.0 / 310.0) / 7)


def test_replica_exchange_reproduces_the_exact_double_well_population():
    p, error, acceptance = double_well_run()
    assert error < 0.03
    assert abs(double_well_z(p, error)) < Z_LIMIT
    assert np.all((acceptance > 0.3) & (acceptance < 0.95))


def test_double_well_check_fails_with_the_wrong_swap_sign(monkeypatch):
    correct = peers.swap_log_probability
    monkeypatch.setattr(peers, "swap_log_probability", lambda *args: -correct(*args))
    p, error, _ = double_well_run()
    assert abs(double_well_z(p, error)) > Z_LIMIT


def test_fes_integration_of_a_flat_surface_gives_area_fractions():
    grid = peers.periodic_grid_degrees(90)  # 89 cells: state boundaries fall inside cells
    fractions = peers.state_cell_fractions(grid, grid)
    populations = peers.populations_from_free_energy(np.zeros((89, 89)), 2.5, fractions)
    exact = {"phi_positive": 1.0 / 3.0, "beta_C7eq": 2.0 / 3.0 * 160.0 / 360.0,
             "alphaR": 2.0 / 3.0 * 200.0 / 360.0, "alphaL": 1.0 / 3.0 * 225.0 / 360.0,
             "C7ax": 1.0 / 3.0 * 135.0 / 360.0}
    for state, value in exact.items():
        assert populations[state] == pytest.approx(value, abs=2e-3)
    assert sum(populations[s] for s in ("beta_C7eq", "alphaR", "alphaL", "C7ax")) == pytest.approx(1.0)
    assert peers.bias_offset(np.zeros((89, 89)), 2.5, 6.0) == pytest.approx(0.0, abs=1e-12)


def test_metadynamics_variables_and_grid_orientation():
    from openmm_timewarp import systems

    topology, positions = systems.load_alanine_dipeptide()
    system = systems.create_system(topology)
    variables = [app.BiasVariable(peers.torsion_variable(atoms), -math.pi, math.pi, 0.35, True, 73)
                 for atoms in peers.dipeptide_torsion_atoms(topology)]
    meta = app.Metadynamics(system, variables, 310.0 * unit.kelvin, 6.0, 1.0 * unit.kilojoule_per_mole, 10)
    simulation = app.Simulation(topology, system, openmm.VerletIntegrator(0.5 * unit.femtosecond),
                                systems.reference_platform())
    simulation.context.setPositions(positions)
    meta.step(simulation, 10)  # one Gaussian, at the current (phi, psi)
    angles = np.degrees(meta.getCollectiveVariables(simulation))
    state = simulation.context.getState(getPositions=True)
    phi, psi = torsions_from_positions(state.getPositions(asNumpy=True), topology)
    assert angles == pytest.approx([phi[0, 0], psi[0, 0]], abs=1e-3)
    free = peers.free_energy_grid(meta)
    assert free.shape == (72, 72)
    grid = peers.periodic_grid_degrees(73)
    i, j = np.unravel_index(np.argmin(free), free.shape)
    assert abs((grid[i] - angles[0] + 180.0) % 360.0 - 180.0) <= 2.5
    assert abs((grid[j] - angles[1] + 180.0) % 360.0 - 180.0) <= 2.5


def check_result(result, budget_s):
    for key in ("wall_s", "phi", "psi", "elapsed_s", "setup_s", "sample_interval_ps", "stats", "estimates",
                "population_source", "settings"):
        assert key in result
    wall = result["wall_s"]
    assert len(wall) > 1 and len(result["phi"]) == len(wall) == len(result["psi"])
    assert np.all(np.diff(wall) >= 0)
    assert wall[-2] < budget_s <= wall[-1] <= result["elapsed_s"]  # stops at the first sample after the budget
    assert np.all((result["phi"] > -180.0) & (result["phi"] <= 180.0))
    assert result["stats"]["samples"] == len(wall) and result["stats"]["md_steps"] > 0
    stamps = [t for t, _ in result["estimates"]]
    assert stamps and stamps == sorted(stamps) and stamps[0] <= budget_s
    for _, populations in result["estimates"]:
        assert set(REGION_NAMES) <= set(populations)
        assert sum(populations[s] for s in ("beta_C7eq", "alphaR", "phi_positive")) == pytest.approx(1.0)
    curve = accuracy.error_curve(result, accuracy.checkpoint_times(budget_s, 10))
    assert curve["worst"].shape == (10,)


def test_replica_exchange_driver_end_to_end():
    settings = {"num_replicas": 3, "temperature_max_K": 400.0, "swap_interval_ps": 0.1, "equilibration_ps": 1.0,
                "flow": "ignored by this method"}
    seen = []
    result = peers.PEER_METHODS["replica-exchange"](settings, 3.0, 7, progress=seen.append)
    check_result(result, 3.0)
    assert seen == list(result["wall_s"])
    assert result["population_source"] == "samples" and result["sample_interval_ps"] == 0.1
    recorded = result["settings"]
    assert "flow" not in recorded and recorded["swap_interval_ps"] == 0.1
    assert recorded["temperatures_K"] == pytest.approx([310.0, 310.0 * (400.0 / 310.0) ** 0.5, 400.0])
    stats = result["stats"]
    assert len(stats["swap_acceptance"]) == 2 and sum(stats["swap_attempts"]) > 0
    assert stats["sampled_ns"] == pytest.approx(1e-4 * len(result["wall_s"]))
    assert stats["md_steps"] == 3 * 100 * len(result["wall_s"])
    with pytest.raises(ValueError, match="temperature_K"):
        peers.run_replica_exchange({"temperatures_K": [300.0, 400.0]}, 1.0, 1)


def test_metadynamics_driver_end_to_end():
    settings = {"equilibration_ps": 1.0, "frequency_steps": 100, "record_interval_ps": 0.1}
    result = peers.PEER_METHODS["metadynamics"](settings, 3.0, 7)
    check_result(result, 3.0)
    assert result["population_source"] == "estimates" and result["sample_interval_ps"] == pytest.approx(0.1)
    weights = result["weights"]
    assert len(weights) == len(result["wall_s"]) and np.all(np.isfinite(weights)) and np.all(weights > 0)
    assert weights.max() == 1.0
    recorded = result["settings"]
    assert recorded["bias_factor"] == 6.0 and recorded["height_kJ_mol"] == 1.2
    assert recorded["frequency_steps"] == 100 and recorded["width_rad"] == pytest.approx(math.radians(20.0))
    assert recorded["grid_points"] == 90
    stats = result["stats"]
    assert stats["gaussians"] == len(result["wall_s"]) and stats["max_bias_kJ_mol"] > 0
    assert sum(stats["final_populations"][s] for s in ("beta_C7eq", "alphaR", "phi_positive")) == pytest.approx(1.0)
    # the estimate in effect at the end of the budget was made by the last sample within it
    within = result["wall_s"][result["wall_s"] < 3.0]
    assert any(t == within[-1] for t, _ in result["estimates"])
    reweighted = accuracy.error_curve(result, [3.0], source="samples")
    assert reweighted["worst"].shape == (1,)
