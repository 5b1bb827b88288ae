"""The samplers (:mod:`openmm_timewarp.lab.samplers`): the budget loop, replica exchange, metadynamics, MD, Timewarp.

Formulas are checked against hand or brute-force computations; replica exchange against the exact
population of a double well (and shown to fail with the wrong swap sign); every sampler runs for
about a second on alanine dipeptide.
"""

import math

import numpy as np
import openmm
import pytest
from openmm import unit

import openmm_timewarp
from openmm_timewarp.lab import systems
from openmm_timewarp.lab.analysis.peptide import PeptideObservables
from openmm_timewarp.lab.molecule import load_molecule
from openmm_timewarp.lab.samplers import (MDSettings, Metadynamics, MetadynamicsSettings, MolecularDynamics,
                                      ReplicaExchange, ReplicaExchangeSettings, Sampler, TimewarpSampler,
                                      TimewarpSettings, equilibrate, geometric_ladder, run_for)
from openmm_timewarp.lab.samplers import base
from openmm_timewarp.lab.samplers import replica_exchange as rex
from openmm_timewarp.lab.samplers.metadynamics import bias_offset
from openmm_timewarp.testing import double_well_exact, double_well_system

GAS_CONSTANT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)


@pytest.fixture(scope="module")
def molecule():
    return load_molecule(systems.structure_path("alanine-dipeptide"))


@pytest.fixture(scope="module")
def observables(molecule):
    return PeptideObservables(molecule.topology)


# --------------------------------------------------------------------------- replica exchange formulas

def test_geometric_ladder_endpoints_and_constant_ratio():
    ladder = geometric_ladder(310.0, 600.0, 8)
    assert len(ladder) == 8
    assert ladder[0] == pytest.approx(310.0) and ladder[-1] == pytest.approx(600.0)
    ratios = np.asarray(ladder[1:]) / np.asarray(ladder[:-1])
    assert np.allclose(ratios, (600.0 / 310.0) ** (1.0 / 7.0))  # evenly spaced in log T, not in T
    assert geometric_ladder(300.0, 1200.0, 3) == pytest.approx([300.0, 600.0, 1200.0])
    assert geometric_ladder(310.0, 600.0, 1) == [310.0]
    for bad in ((310.0, 600.0, 0), (600.0, 310.0, 4), (0.0, 600.0, 4), (310.0, 310.0, 2)):
        with pytest.raises(ValueError):
            geometric_ladder(*bad)


def test_swap_log_probability_is_the_metropolis_criterion():
    beta_low, beta_high = 1.0 / 2.5, 1.0 / 5.0
    # the low-temperature replica holds the higher energy: always swap
    assert rex.swap_log_probability(beta_low, beta_high, -10.0, -20.0) == 0.0
    # otherwise exp((beta_i - beta_j)(U_i - U_j)) = exp(0.2 * -10)
    assert rex.swap_log_probability(beta_low, beta_high, -20.0, -10.0) == pytest.approx(-2.0)
    rng = np.random.default_rng(3)
    for _ in range(50):
        bi, bj = rng.uniform(0.1, 1.0, 2)
        ei, ej = rng.normal(0.0, 20.0, 2)
        forward = rex.swap_log_probability(bi, bj, ei, ej)
        assert forward <= 0.0
        # detailed balance: p(x -> x') / p(x' -> x) = pi(x') / pi(x) = exp((bi - bj)(ei - ej))
        backward = rex.swap_log_probability(bi, bj, ej, ei)
        assert forward - backward == pytest.approx((bi - bj) * (ei - ej))


def test_replica_count_matches_its_calibration_and_grows_with_size_and_span():
    assert rex.replica_count(22) == rex.replica_count(42) == 8  # never fewer than 8
    span = math.log(600.0 / 310.0)
    for atoms in (120, 400, 1600):  # above ~100 atoms: sqrt(atoms) * ln-gap stays within the calibrated bound
        count = rex.replica_count(atoms)
        assert math.sqrt(atoms) * span / (count - 1) <= rex.MAX_SPACING_SQRT_ATOMS < math.sqrt(atoms) * span / (count - 2)
    assert rex.replica_count(400) > rex.replica_count(120)
    assert rex.replica_count(400, 310.0, 600.0 ** 2 / 310.0) > rex.replica_count(400)  # a wider span needs more


# A tilted double well in x (wells at +-0.1 nm, barrier 20 kJ/mol = 8 kT at 300 K, right well 3 kJ/mol
# higher): plain MD at 300 K almost never crosses in this run, so the lowest replica's population of
# the right well is only right if the exchanges are.
WELL = dict(barrier=20.0, tilt=1.5, width=0.1, spring=500.0, stiffening=0.0)


class DoubleWell:
    """Just what :class:`ReplicaExchange` needs of a :class:`~openmm_timewarp.lab.molecule.Molecule`."""

    def __init__(self, temperature_K=300.0):
        self._system, self.positions = double_well_system(num_particles=1, mass=100.0, **WELL)
        self.temperature_K = temperature_K
        self.kT = GAS_CONSTANT * temperature_K

    def system(self, hydrogen_mass_amu=None, constraints=None):  # the Molecule.system signature
        return openmm.XmlSerializer.clone(self._system)


def double_well_replica_exchange(seed=5, rounds=5000):
    molecule = DoubleWell()
    settings = ReplicaExchangeSettings(num_replicas=5, temperature_max_K=1600.0, swap_interval_ps=0.1,
                                       timestep_fs=10.0, hydrogen_mass_amu=None, friction_per_ps=10.0)
    sampler = ReplicaExchange(molecule, seed, settings)
    sampler.setup(molecule.positions)
    for _ in range(200):
        sampler.advance()
    right = np.empty(rounds)
    for k in range(rounds):
        sampler.advance()
        right[k] = sampler.positions()[0, 0] > 0.0
    blocks = right.reshape(25, -1).mean(axis=1)
    error = blocks.std(ddof=1) / math.sqrt(len(blocks))
    z = (right.mean() - double_well_exact(temperature=300.0, **WELL)["p_right"]) / error
    return sampler, z, error


def test_replica_exchange_reproduces_the_exact_double_well_population():
    sampler, z, error = double_well_replica_exchange()
    assert error < 0.035
    assert abs(z) < 4.0
    stats = sampler.statistics()
    assert stats["rounds"] == 5200
    assert all(0.3 < a < 0.95 for a in stats["swap_acceptance"])
    # the bookkeeping: a permutation, every Context's integrator at the temperature of its slot
    assert sorted(sampler.at_temperature) == list(range(5))
    for k, index in enumerate(sampler.at_temperature):
        integrator = sampler.contexts[index].getIntegrator()
        assert integrator.getTemperature().value_in_unit(unit.kelvin) == pytest.approx(sampler.temperatures[k])
    assert np.array_equal(sampler.positions(), sampler.all_positions()[0])


def test_the_double_well_check_fails_with_the_wrong_swap_sign(monkeypatch):
    monkeypatch.setattr(rex, "swap_log_probability", lambda bi, bj, ei, ej: min(0.0, -(bi - bj) * (ei - ej)))
    _, z, _ = double_well_replica_exchange()
    assert abs(z) > 4.0


def test_a_swap_rescales_velocities_and_resets_the_thermostat():
    molecule = DoubleWell()
    sampler = ReplicaExchange(molecule, 1, ReplicaExchangeSettings(num_replicas=3, temperature_max_K=1200.0,
                                                                   hydrogen_mass_amu=None))
    sampler.setup(molecule.positions)
    context = sampler.contexts[0]
    context.setVelocities(np.array([[0.3, -0.2, 0.1]]))
    sampler._move(0, 0, 2)
    velocities = context.getState(getVelocities=True).getVelocities(asNumpy=True)._value
    assert np.allclose(velocities, np.array([[0.3, -0.2, 0.1]]) * math.sqrt(1200.0 / 300.0))
    assert context.getIntegrator().getTemperature().value_in_unit(unit.kelvin) == pytest.approx(1200.0)


# --------------------------------------------------------------------------- metadynamics

def brute_force_offset(free_energy, kT, bias_factor):
    """c = kT ln( sum exp(-F/kT) / sum exp(-(F + V)/kT) ) with the well-tempered bias V = -(1 - 1/gamma) F."""
    f = [float(x) for x in np.ravel(free_energy)]
    biased = [x - (1.0 - 1.0 / bias_factor) * x for x in f]  # F + V

    def log_sum(energies):  # ln sum exp(-E/kT), shifted so that nothing underflows
        low = min(energies)
        return -low / kT + math.log(sum(math.exp(-(e - low) / kT) for e in energies))

    return kT * (log_sum(f) - log_sum(biased))


def test_bias_offset_matches_a_brute_force_computation():
    rng = np.random.default_rng(7)
    kT = 2.577
    for bias_factor in (2.0, 6.0, 15.0):
        free = rng.uniform(-40.0, 0.0, size=(12, 12))
        assert bias_offset(free, kT, bias_factor) == pytest.approx(brute_force_offset(free, kT, bias_factor),
                                                                   rel=1e-9, abs=1e-9)
    assert bias_offset(np.zeros((5, 5)), kT, 6.0) == pytest.approx(0.0, abs=1e-12)  # no bias yet: no offset
    # large free energies: no overflow
    free = rng.uniform(-3000.0, 0.0, size=(30, 30))
    assert bias_offset(free, kT, 6.0) == pytest.approx(brute_force_offset(free, kT, 6.0), rel=1e-9)


def periodic_bilinear(grid, a, b):
    """Bilinear interpolation of a periodic grid whose points i = 0..n-1 sit at -pi + 2 pi i / (n - 1)."""
    n = grid.shape[0]
    h = 2.0 * math.pi / (n - 1)
    fa, fb = (a + math.pi) / h, (b + math.pi) / h
    i, j = int(fa) % (n - 1), int(fb) % (n - 1)
    da, db = fa - math.floor(fa), fb - math.floor(fb)
    return (grid[i, j] * (1 - da) * (1 - db) + grid[i + 1, j] * da * (1 - db) + grid[i, j + 1] * (1 - da) * db
            + grid[i + 1, j + 1] * da * db)


def test_metadynamics_weight_is_the_bias_the_sample_was_drawn_under(molecule, observables):
    """exp((V(s) - c) / kT) with V and c from before the Gaussian deposited at the sample itself."""
    sampler = Metadynamics(molecule, 2)
    sampler.setup(molecule.positions)
    assert sampler.log_weight() == 0.0  # no bias yet
    gamma, kT = sampler.settings.bias_factor, molecule.kT
    for _ in range(6):
        # one Gaussian per advance, at its end: the grid now is the one the next sample is drawn under
        drawn_under = sampler.metadynamics.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)
        sampler.advance()
        phi, psi = np.radians(observables.values(sampler.positions()))
        bias = -(1.0 - 1.0 / gamma) * drawn_under  # the grid is indexed [psi, phi]
        expected = (periodic_bilinear(bias, psi, phi) - brute_force_offset(drawn_under[:-1, :-1], kT, gamma)) / kT
        assert sampler.log_weight() == pytest.approx(expected, abs=0.02)
    assert sampler.statistics()["gaussians"] == 6


# --------------------------------------------------------------------------- the budget loop

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now


class CountingSampler(Sampler):
    """Each call costs fake seconds; the sample is the number of advances so far."""

    unit = "one tick"

    def __init__(self, clock, setup_cost, advance_cost=1.0):
        super().__init__(molecule=None, seed=1)
        self.clock, self.setup_cost, self.advance_cost = clock, setup_cost, advance_cost
        self.count = 0

    def setup(self, positions):
        self.clock.now += self.setup_cost
        self.start = np.asarray(positions)

    def advance(self):
        self.clock.now += self.advance_cost
        self.count += 1

    def positions(self):
        return self.start + self.count

    def log_weight(self):
        return -0.5 * self.count

    def statistics(self):
        return {"advances": self.count}


def test_run_for_counts_setup_and_stops_at_the_first_sample_after_the_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(base, "time", clock)
    sampler = CountingSampler(clock, setup_cost=0.75)
    seen = []
    recording = run_for(sampler, np.zeros((2, 3)), 3.5, lambda x: x[:, 0], progress=seen.append)
    # set-up ends at 0.75 s; samples at 1.75, 2.75, 3.75: the last is the first after 3.5 s
    assert recording.setup_s == pytest.approx(0.75)
    assert np.allclose(recording.wall_s, [1.75, 2.75, 3.75])
    assert seen == pytest.approx([1.75, 2.75, 3.75])
    assert recording.elapsed_s == pytest.approx(3.75)
    assert np.array_equal(recording.values, [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # one row per advance
    assert np.allclose(recording.log_weights, [-0.5, -1.0, -1.5])
    assert recording.statistics == {"advances": 3}


def test_run_for_records_one_sample_when_setup_takes_the_whole_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(base, "time", clock)
    recording = run_for(CountingSampler(clock, setup_cost=5.0), np.zeros((1, 3)), 2.0, lambda x: x.ravel())
    assert recording.setup_s == pytest.approx(5.0)
    assert np.allclose(recording.wall_s, [6.0]) and recording.values.shape == (1, 3)


def test_run_for_rejects_a_non_positive_budget(monkeypatch):
    clock = FakeClock()
    for budget in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="budget"):
            run_for(CountingSampler(clock, 0.0), np.zeros((1, 3)), budget, lambda x: x)


# --------------------------------------------------------------------------- the samplers on alanine dipeptide

def test_equilibrate_is_seeded(molecule):
    first = equilibrate(molecule, 0.2, seed=3)
    assert first.shape == (22, 3) and np.all(np.isfinite(first))
    assert np.array_equal(first, equilibrate(molecule, 0.2, seed=3))
    assert not np.allclose(first, equilibrate(molecule, 0.2, seed=4))
    assert not np.allclose(first, molecule.positions)


def check_recording(sampler, recording, budget_s):
    assert sampler.positions().shape == (22, 3) and np.all(np.isfinite(sampler.positions()))
    n = len(recording.wall_s)
    assert n >= 1 and recording.values.shape == (n, 2) and recording.log_weights.shape == (n,)
    assert np.all(np.isfinite(recording.values)) and np.all(np.abs(recording.values) <= 180.0)
    assert np.all(np.diff(recording.wall_s) > 0)
    assert recording.wall_s[-1] >= budget_s and (n == 1 or recording.wall_s[-2] < budget_s)
    assert 0.0 < recording.setup_s < recording.wall_s[0]
    return n


def test_molecular_dynamics_runs_for_its_budget(molecule, observables):
    sampler = MolecularDynamics(molecule, 1, MDSettings(record_interval_ps=0.2))
    recording = run_for(sampler, molecule.positions, 1.0, observables.values)
    n = check_recording(sampler, recording, 1.0)
    assert np.all(recording.log_weights == 0.0)
    assert recording.statistics["md_steps"] == 100 * n
    assert recording.statistics["simulated_ns"] == pytest.approx(100 * n * 2e-6)


def test_replica_exchange_runs_for_its_budget(molecule, observables):
    settings = ReplicaExchangeSettings(num_replicas=4, swap_interval_ps=0.1)
    sampler = ReplicaExchange(molecule, 1, settings)
    recording = run_for(sampler, molecule.positions, 1.0, observables.values)
    n = check_recording(sampler, recording, 1.0)
    stats = recording.statistics
    assert stats["rounds"] == n and stats["md_steps"] == 4 * 50 * n
    assert stats["temperatures_K"] == pytest.approx(geometric_ladder(310.0, 600.0, 4))
    assert len(stats["swap_acceptance"]) == 3 and all(0.0 <= a <= 1.0 for a in stats["swap_acceptance"])
    assert np.array_equal(sampler.positions(), sampler.all_positions()[0])  # the sample is the 310 K replica
    assert np.all(np.isfinite(sampler.all_positions()))


def test_metadynamics_runs_for_its_budget_with_changing_weights(molecule, observables):
    sampler = Metadynamics(molecule, 1, MetadynamicsSettings(record_interval_ps=0.2, frequency_steps=100))
    recording = run_for(sampler, molecule.positions, 1.0, observables.values)
    n = check_recording(sampler, recording, 1.0)
    assert n >= 5
    assert np.all(np.isfinite(recording.log_weights))
    assert np.ptp(recording.log_weights) > 0.1  # the bias grows: the weights are not constant
    assert recording.statistics["gaussians"] == n
    assert recording.statistics["collective_variables"] == "phi and psi of the central residue"


def shipped_model():
    for name in ("alanine-dipeptide-cartesian", "alanine-dipeptide"):
        if name in openmm_timewarp.list_models():
            return name
    return None


@pytest.mark.skipif(shipped_model() is None, reason="no shipped alanine-dipeptide model is installed "
                                                    "(openmm_timewarp.list_models() has neither name)")
def test_timewarp_sampler_runs_for_its_budget(molecule, observables):
    sampler = TimewarpSampler(molecule, 1, TimewarpSettings(flow=shipped_model(), move_interval=0,
                                                            proposals_per_move=4, batch_size=4))
    recording = run_for(sampler, molecule.positions, 1.0, observables.values)
    n = check_recording(sampler, recording, 1.0)
    assert sampler.boltzmann and np.all(recording.log_weights == 0.0)
    stats = recording.statistics
    assert stats["proposals"] == 4 * n and 0 <= stats["accepted"] <= stats["proposals"]
    assert stats["md_steps"] == 0 and stats["move_interval"] == 0
    assert sampler.unit == "4 MH step(s)"
