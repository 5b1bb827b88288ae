"""The sampler protocol, the molecule a sampler samples, and the one wall-clock budget loop.

Every sampling method the package runs or compares (plain MD, replica exchange, metadynamics,
Timewarp) is a :class:`Sampler`: ``setup`` builds its Contexts from a starting configuration,
``advance`` does one unit of work (0.5 ps of MD, one exchange round, one MH step, ...),
``positions`` is the current sample at the target temperature and ``log_weight`` the log of its
reweighting factor (0 except for biased samplers). :func:`run_for` runs any of them for a wall-clock budget
and records a function of the positions after every ``advance``; set-up is on the clock too.
"""

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import openmm
from openmm import unit

from .. import systems
from ..molecule import Molecule


def langevin(temperature_K: float, friction_per_ps: float, timestep_fs: float, seed: int) -> openmm.LangevinMiddleIntegrator:
    """A seeded LangevinMiddleIntegrator (kelvin, 1/ps, fs)."""
    integrator = openmm.LangevinMiddleIntegrator(temperature_K * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(int(seed))
    return integrator


_PLATFORMS = {}


def fastest_platform(system: openmm.System, positions) -> openmm.Platform:
    """The fastest platform for Systems of this kind (:func:`~openmm_timewarp.lab.systems.best_platform`), timed once.

    Systems with the same number of particles and the same force types share one measurement, and
    another platform must be clearly faster than Reference to be chosen (see ``best_platform``). Small peptides with
    GBSAOBCForce keep Reference; the CustomGBForce of ``amber14-obc1`` runs ~5x faster on one CPU
    thread than on Reference.
    """
    key = (system.getNumParticles(), tuple(type(force).__name__ for force in system.getForces()))
    if key not in _PLATFORMS:
        _PLATFORMS[key] = systems.best_platform(system, positions).getName()
    return openmm.Platform.getPlatformByName(_PLATFORMS[key])


def context_at(system: openmm.System, integrator: openmm.Integrator, positions, temperature_K: float,
               seed: int) -> openmm.Context:
    """A Context on the fastest platform with these positions and velocities drawn at ``temperature_K``."""
    context = openmm.Context(system, integrator, fastest_platform(system, positions))
    context.setPositions(positions)
    if system.getNumConstraints():
        context.applyConstraints(1e-6)
    context.setVelocitiesToTemperature(temperature_K * unit.kelvin, int(seed))
    return context


def positions_of(context: openmm.Context) -> np.ndarray:
    """The Context's positions, nm (a State holds them in nm)."""
    return context.getState(getPositions=True).getPositions(asNumpy=True)._value


def steps_in(interval_ps: float, timestep_fs: float) -> int:
    """Time steps in an interval (at least one).

    Raises
    ------
    ValueError
        The interval is shorter than one step.
    """
    steps = int(round(interval_ps * 1000.0 / timestep_fs))
    if steps < 1:
        raise ValueError(f"an interval of {interval_ps} ps is shorter than one {timestep_fs} fs step.")
    return steps


def equilibrate(molecule: Molecule, picoseconds: float, seed: int, timestep_fs: float = 2.0,
                hydrogen_mass_amu: Optional[float] = 3.0) -> np.ndarray:
    """Langevin MD at the molecule's temperature from its positions; the final positions (nm)."""
    integrator = langevin(molecule.temperature_K, 1.0, timestep_fs, seed)
    context = context_at(molecule.system(hydrogen_mass_amu), integrator, molecule.positions,
                         molecule.temperature_K, seed)
    integrator.step(steps_in(picoseconds, timestep_fs) if picoseconds > 0 else 0)
    return positions_of(context)


class Sampler(ABC):
    """One sampling method on one molecule.

    Subclasses set ``unit`` (what one :meth:`advance` does, for reports) and implement
    :meth:`setup`, :meth:`advance` and :meth:`positions`.

    Parameters
    ----------
    molecule : Molecule
    seed : int
        Seeds every random stream of the run.
    """

    unit: str = ""
    boltzmann: bool = True  # whether the samples (with their weights) follow the Boltzmann distribution

    def __init__(self, molecule: Molecule, seed: int = 1):
        self.molecule = molecule
        self.seed = int(seed)

    @abstractmethod
    def setup(self, positions: np.ndarray) -> None:
        """Build what the sampler needs, starting from ``positions`` (nm)."""

    @abstractmethod
    def advance(self) -> None:
        """Do one unit of work; afterwards there is a new sample."""

    @abstractmethod
    def positions(self) -> np.ndarray:
        """The current sample at the target temperature, [N, 3] nm, in the topology's atom order."""

    def log_weight(self) -> float:
        """log of the current sample's reweighting factor (relative; 0 for unbiased samplers)."""
        return 0.0

    def statistics(self) -> Dict[str, Any]:
        """Counters of the run so far (JSON-ready)."""
        return {}


@dataclass
class Recording:
    """What :func:`run_for` saw: one row per ``advance``.

    Attributes
    ----------
    wall_s : numpy.ndarray
        Seconds since the clock started, when each sample was recorded.
    values : numpy.ndarray [n, ...]
        ``observe(positions)`` of each sample.
    log_weights : numpy.ndarray
        log of the samples' reweighting factors (zeros for unbiased samplers).
    setup_s : float
        Seconds spent in ``setup`` (on the clock).
    elapsed_s : float
        Seconds on the clock at the end.
    statistics : dict
    """

    wall_s: np.ndarray
    values: np.ndarray
    log_weights: np.ndarray
    setup_s: float
    elapsed_s: float
    statistics: Dict[str, Any]


def run_for(sampler: Sampler, positions: np.ndarray, budget_s: float, observe: Callable[[np.ndarray], np.ndarray],
            progress: Optional[Callable[[float], None]] = None) -> Recording:
    """Set up ``sampler`` and advance it until ``budget_s`` wall-clock seconds have passed.

    The clock starts before ``setup``: everything a method does counts against its budget. A
    sample is recorded after every ``advance``; the run stops at the first sample recorded after
    the budget (so there is always at least one).

    Parameters
    ----------
    sampler : Sampler
    positions : numpy.ndarray
        Starting configuration (nm).
    budget_s : float
    observe : callable
        positions [N, 3] -> the values to record (a 1-D array).
    progress : callable, optional
        ``progress(elapsed_s)`` after each sample.

    Returns
    -------
    Recording
    """
    if not budget_s > 0:
        raise ValueError(f"the budget must be positive, got {budget_s} s.")
    start = time.perf_counter()
    sampler.setup(positions)
    setup_s = time.perf_counter() - start
    wall: List[float] = []
    values: List[np.ndarray] = []
    log_weights: List[float] = []
    elapsed = setup_s
    while not wall or elapsed < budget_s:  # at least one sample, even if set-up took the whole budget
        sampler.advance()
        elapsed = time.perf_counter() - start
        wall.append(elapsed)
        values.append(np.asarray(observe(sampler.positions())))
        log_weights.append(sampler.log_weight())
        if progress is not None:
            progress(elapsed)
    return Recording(np.asarray(wall), np.asarray(values), np.asarray(log_weights), setup_s,
                     time.perf_counter() - start, sampler.statistics())
