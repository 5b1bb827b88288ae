"""Temperature replica exchange (parallel tempering) as a loop over OpenMM Contexts in one process.

One Reference Context with a LangevinMiddleIntegrator per temperature; every ``swap_interval_ps``
the neighbour pairs (even and odd pairs alternating) are offered a swap, accepted with probability
min(1, exp((beta_i - beta_j)(U_i - U_j))); an accepted swap exchanges the two replicas'
temperatures (the integrators' set temperatures) and rescales their velocities by
sqrt(T_new / T_old). The sample is the configuration at the lowest temperature.

Why a loop of its own rather than openmmtools' ``ReplicaExchangeSampler`` for the benchmark: for a
small peptide the MD itself is tens of microseconds per step, and this loop's overhead is one
energy per replica per exchange (see ``benchmarks/replica_exchange_throughput.py`` for the two
measured side by side). Long, resumable references use openmmtools (``openmm-timewarp reference``).
"""

import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from openmm import unit

from .base import Sampler, context_at, langevin, positions_of, steps_in


def geometric_ladder(minimum: float, maximum: float, count: int) -> List[float]:
    """``count`` temperatures from ``minimum`` to ``maximum`` (kelvin), evenly spaced in log T."""
    if count < 1 or (count > 1 and not maximum > minimum > 0):
        raise ValueError(f"need count >= 1 and 0 < minimum < maximum, got {count}, {minimum}, {maximum}.")
    if count == 1:
        return [float(minimum)]
    return [float(minimum * (maximum / minimum) ** (k / (count - 1))) for k in range(count)]


MIN_REPLICAS = 8
MAX_SPACING_SQRT_ATOMS = 0.95  # sqrt(atoms) * ln(T_k+1 / T_k) at most: neighbour acceptance ~0.4


def replica_count(num_atoms: int, temperature_min_K: float = 310.0, temperature_max_K: float = 600.0) -> int:
    """Replicas of a geometric ladder whose neighbours swap with probability about 0.4 or more (at least 8).

    Energy fluctuations grow as sqrt(atoms), so neighbour acceptance falls with
    sqrt(atoms) * ln(T_k+1 / T_k); measured at 310-600 K: alanine dipeptide (22 atoms), 8 replicas,
    0.65-0.85 per pair; ACE-AAA-NME (42 atoms), 8 replicas, 0.50-0.77, and 5 replicas, 0.33-0.42.
    Keeping that product at most 0.95 predicts ~0.4; 8 replicas reach 101 atoms at 310-600 K.
    """
    gaps = math.ceil(math.sqrt(num_atoms) * math.log(temperature_max_K / temperature_min_K) / MAX_SPACING_SQRT_ATOMS)
    return max(MIN_REPLICAS, gaps + 1)


def swap_log_probability(beta_i: float, beta_j: float, energy_i: float, energy_j: float) -> float:
    """log of the acceptance probability of exchanging configurations i and j between inverse temperatures."""
    return min(0.0, (beta_i - beta_j) * (energy_i - energy_j))


@dataclass
class ReplicaExchangeSettings:
    """Attributes: ``num_replicas``, ``temperature_max_K`` (a geometric ladder from the molecule's
    temperature), ``swap_interval_ps``, ``timestep_fs``, ``hydrogen_mass_amu``, ``friction_per_ps``, ``constraints``."""

    num_replicas: int = 8
    temperature_max_K: float = 600.0
    swap_interval_ps: float = 0.5
    timestep_fs: float = 2.0
    hydrogen_mass_amu: Optional[float] = 3.0
    friction_per_ps: float = 1.0
    constraints: Optional[str] = None  # the molecule's own (none for a peptide, a System file's), or "hbonds"


class ReplicaExchange(Sampler):
    """Parallel tempering; one ``advance`` is one swap interval of MD for every replica and one round of swaps."""

    def __init__(self, molecule, seed=1, settings: Optional[ReplicaExchangeSettings] = None):
        super().__init__(molecule, seed)
        self.settings = settings or ReplicaExchangeSettings()
        self.temperatures = geometric_ladder(molecule.temperature_K, self.settings.temperature_max_K,
                                             self.settings.num_replicas)
        self.unit = f"{self.settings.swap_interval_ps:g} ps of MD per replica and one round of swaps"

    def setup(self, positions: np.ndarray) -> None:
        s = self.settings
        self._steps = steps_in(s.swap_interval_ps, s.timestep_fs)
        system = self.molecule.system(s.hydrogen_mass_amu, s.constraints)
        self.contexts = []
        for k, temperature in enumerate(self.temperatures):
            integrator = langevin(temperature, s.friction_per_ps, s.timestep_fs, self.seed * 1000 + k)
            self.contexts.append(context_at(system, integrator, positions, temperature, self.seed * 1000 + k))
        self.at_temperature = list(range(len(self.contexts)))  # at_temperature[k]: the context at temperature k
        self._rng = np.random.default_rng(self.seed)
        self._rounds = 0
        self._attempts = np.zeros(max(len(self.contexts) - 1, 0), dtype=np.int64)
        self._accepted = np.zeros_like(self._attempts)

    def advance(self) -> None:
        for context in self.contexts:
            context.getIntegrator().step(self._steps)
        energies = [c.getState(getEnergy=True).getPotentialEnergy()._value for c in self.contexts]
        gas_constant = self.molecule.kT / self.molecule.temperature_K  # kJ/mol/K
        for k in range(self._rounds % 2, len(self.temperatures) - 1, 2):
            i, j = self.at_temperature[k], self.at_temperature[k + 1]
            log_p = swap_log_probability(1.0 / (gas_constant * self.temperatures[k]),
                                         1.0 / (gas_constant * self.temperatures[k + 1]), energies[i], energies[j])
            self._attempts[k] += 1
            if math.log(self._rng.random()) < log_p:
                self._accepted[k] += 1
                self._move(i, k, k + 1)
                self._move(j, k + 1, k)
                self.at_temperature[k], self.at_temperature[k + 1] = j, i
        self._rounds += 1

    def _move(self, context_index: int, old: int, new: int) -> None:
        context = self.contexts[context_index]
        context.getIntegrator().setTemperature(self.temperatures[new] * unit.kelvin)
        velocities = context.getState(getVelocities=True).getVelocities(asNumpy=True)._value
        context.setVelocities(velocities * math.sqrt(self.temperatures[new] / self.temperatures[old]))

    def positions(self) -> np.ndarray:
        return positions_of(self.contexts[self.at_temperature[0]])

    def all_positions(self) -> np.ndarray:
        """Every replica's configuration, by rising temperature, [R, N, 3] nm."""
        return np.stack([positions_of(self.contexts[i]) for i in self.at_temperature])

    def statistics(self):
        rate = np.divide(self._accepted, self._attempts, out=np.zeros(len(self._attempts)), where=self._attempts > 0)
        steps = self._rounds * self._steps
        return {"rounds": self._rounds, "md_steps": steps * len(self.contexts),
                "simulated_ns": steps * self.settings.timestep_fs * 1e-6, "temperatures_K": self.temperatures,
                "swap_acceptance": [float(r) for r in rate]}


def replica_exchange_throughput(molecule, settings: ReplicaExchangeSettings, seconds: float, seed: int = 1):
    """ps of target-temperature samples per wall-clock second of this loop (for the throughput benchmark)."""
    import time

    sampler = ReplicaExchange(molecule, seed, settings)
    sampler.setup(molecule.positions)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.advance()
    return sampler.statistics()["simulated_ns"] * 1000.0 / (time.perf_counter() - start)

