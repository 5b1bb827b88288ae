"""References by long, resumable temperature replica exchange (openmmtools' ``ReplicaExchangeSampler``).

:func:`make_reference` runs parallel tempering of a :class:`~openmm_timewarp.lab.molecule.Molecule`
and writes the :class:`~openmm_timewarp.lab.analysis.reference.Reference` that the benchmark and
``analyze`` read. ``openmm-timewarp reference`` is its command (:mod:`.reference_commands`).

The run
-------
One replica per temperature of a geometric ladder from the molecule's temperature to
``temperature_max_K`` (600 K). Each iteration is ``iteration_ps`` (0.5 ps) of Langevin dynamics
(``LangevinMiddleIntegrator``, 2 fs steps with hydrogen masses of 3 amu, friction 1/ps) per replica,
then one round of neighbour swaps (even or odd pairs, at random). A swap exchanges two replicas'
temperatures; every replica's velocities are redrawn at its temperature at the start of each
iteration, which keeps the exchange exact. MD and energies run on the Reference platform, through
openmmtools' ``ContextCache`` on that platform.

Number of replicas
------------------
Neighbour acceptance falls with sqrt(atoms) * ln(T_k+1 / T_k) (energy fluctuations grow as
sqrt(N)). Measured at 310-600 K, with the package's own replica exchange (same dynamics, same
energies): alanine dipeptide (22 atoms), 8 replicas: 0.65-0.85 per pair (mean 0.74; 0.70-0.73 over
1340 iterations of this module's openmmtools run); ACE-AAA-NME
(42 atoms), 8 replicas: 0.50-0.77 (mean 0.59); the same with 5 replicas (sqrt(N) ln-gap 1.07):
0.33-0.42 (mean 0.37). These fit acceptance = erfc(c sqrt(N) ln-gap) with c = 0.53 (22 atoms) to
0.62 (42 atoms); with c = 0.62, a ln-gap of at most ``replica_exchange.MAX_SPACING_SQRT_ATOMS`` / sqrt(N)
(0.95 / sqrt(N)) predicts 0.4 per pair.
:func:`openmm_timewarp.lab.samplers.replica_exchange.replica_count` takes the fewest replicas that keep that gap, and never fewer than 8:
8 up to 101 atoms at 310-600 K (capped octa-alanine has 92), more above.

Files (in the output folder)
----------------------------
``replicas.nc``, ``replicas_checkpoint.nc``
    openmmtools' ``MultiStateReporter`` storage. Every iteration the first holds each replica's
    positions of the torsion atoms only, which replica is at which temperature, and the reduced
    potential of every replica at every temperature; the second holds all positions and
    velocities every ``checkpoint_iterations`` (10 ps).
``run.json``
    Wall-clock seconds spent so far, over all invocations.
``reference.json``, ``torsions.npz``
    The reference, and the target-temperature torsions (float32, one row per iteration after
    burn-in).

Resuming and MPI
----------------
A run killed at any moment continues from its last checkpoint when the same call (or command)
runs again; a longer ``target_ns`` extends a finished run, and the first iterations stay as they
were. Every invocation stops at a checkpoint (the target, or the first checkpoint after the
wall-clock budget), so nothing is redone after a clean stop. Under ``mpirun`` (with mpi4py)
openmmtools spreads the replicas over the ranks; rank 0 writes the files and the reference.

Weighting
---------
By default (``estimator="mbar"``) every replica's configuration of every iteration after burn-in
counts, weighted at the target temperature by MBAR (:mod:`openmm_timewarp.lab.analysis.mbar`, free
energies by pymbar 4 from the stored matrix of reduced potentials, every configuration at every
temperature). ``estimator="target"`` keeps only the configuration at the target temperature of each
iteration, with equal weights. Standard errors come from ``num_blocks`` consecutive blocks of
iterations (all replicas of an iteration in the same block) either way.

MBAR gains most where the run is long enough for the upper temperatures' samples to be
representative. Population +- standard error (10 blocks), target only vs MBAR, capped dipeptides,
8 replicas 310-600 K, the first 0.2 ns discarded:

==================================  ======================  ======================
run, state                          target only             MBAR
==================================  ======================  ======================
valine, 23.4 ns: beta               0.405 +- 0.019          0.407 +- 0.014
valine, 23.4 ns: phi_positive       0.0110 +- 0.0048        0.0109 +- 0.0043
asparagine, 14.5 ns: beta           0.553 +- 0.012          0.548 +- 0.011
asparagine, 14.5 ns: phi_positive   0.0164 +- 0.0050        0.0177 +- 0.0049
==================================  ======================  ======================

The block effective sample size p (1 - p) / stderr^2 of beta grows by 30-80% (asparagine 1643 ->
2110, valine 701 -> 1278); that of phi_positive by 10-25% (656 -> 712, 473 -> 592). On a short run
it can shrink instead: alanine dipeptide, 0.67 ns per replica, phi_positive 0.0038 +- 0.0026
target only, 0.0084 +- 0.0058 MBAR (block ESS 560 and 250; the 45.9 ns reference reads
0.0225 +- 0.0023), because a few visits of the hot replicas come in with small, bursty weights.
The rare states of a non-glycine dipeptide are limited by how often phi crosses zero at all: about
3 entries into phi > 0 per ns of the whole ladder (valine: 69 in 23.4 ns, 64 of them above 450 K),
so their error falls only as fast as such crossings accumulate.
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from openmm import unit

from ._resumable import atomic_write, check_settings
from .analysis import mbar
from .analysis.observables import observables_of
from .analysis.peptide import dihedrals
from .analysis.reference import Reference, reference_from_samples, save_reference
from .samplers.base import steps_in
from .samplers.replica_exchange import geometric_ladder, replica_count

STORAGE_FILE = "replicas.nc"
CHECKPOINT_FILE = "replicas_checkpoint.nc"
RUN_FILE = "run.json"
TORSIONS_FILE = "torsions.npz"
ESTIMATORS = ("mbar", "target")
METADATA_KEY = "openmm_timewarp_run"


@dataclass
class ReferenceSettings:
    """How a reference run samples, how long, and how it is analysed.

    Attributes
    ----------
    num_replicas : int, optional
        Default :func:`openmm_timewarp.lab.samplers.replica_exchange.replica_count` of the molecule.
    temperature_max_K : float
        Top of the geometric ladder (its bottom is the molecule's temperature).
    hydrogen_mass_amu, timestep_fs, friction_per_ps : float
        Langevin dynamics (LangevinMiddleIntegrator).
    iteration_ps : float
        MD per replica between swap rounds.
    target_ns : float
        Simulated time per replica to reach (over all invocations).
    minutes : float, optional
        Wall-clock budget of this invocation; it stops at the first checkpoint after it.
    burn_in_ns : float
        Discarded from the start of the run before analysis.
    checkpoint_iterations : int
        Iterations between checkpoints (what a killed run loses at most).
    num_blocks : int
        Consecutive blocks of the run for standard errors.
    estimator : str
        ``"mbar"``: every replica's samples, weighted at the target temperature by MBAR;
        ``"target"``: the target temperature's samples only, equal weights (see "Weighting").
    seed : int
        Seeds the swap draws (Langevin noise and velocities come from OpenMM's own seeds).
    """

    num_replicas: Optional[int] = None
    temperature_max_K: float = 600.0
    hydrogen_mass_amu: float = 3.0
    timestep_fs: float = 2.0
    friction_per_ps: float = 1.0
    iteration_ps: float = 0.5
    target_ns: float = 20.0
    minutes: Optional[float] = None
    burn_in_ns: float = 1.0
    checkpoint_iterations: int = 20
    num_blocks: int = 10
    estimator: str = "mbar"
    seed: int = 0

    def check(self, temperature_K: Optional[float] = None) -> None:
        """Raise ValueError for settings that cannot make a reference (at ``temperature_K``, if given)."""
        if not self.target_ns > 0:
            raise ValueError(f"the target length must be positive, got {self.target_ns} ns.")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"the wall-clock budget must be positive, got {self.minutes} minutes.")
        if not 0 <= self.burn_in_ns < self.target_ns:
            raise ValueError(f"the burn-in ({self.burn_in_ns} ns) must be at least 0 and shorter than the "
                             f"target length ({self.target_ns} ns).")
        if temperature_K is not None and not self.temperature_max_K > temperature_K:
            raise ValueError(f"the top temperature ({self.temperature_max_K} K) must be above the reference "
                             f"temperature ({temperature_K} K).")
        if self.num_replicas is not None and self.num_replicas < 2:
            raise ValueError(f"replica exchange needs at least 2 replicas, got {self.num_replicas}.")
        if self.checkpoint_iterations < 1 or self.num_blocks < 2:
            raise ValueError("checkpoint_iterations must be at least 1 and num_blocks at least 2.")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; choose one of {', '.join(ESTIMATORS)}.")
        steps_in(self.iteration_ps, self.timestep_fs)

    def temperatures_K(self, molecule) -> List[float]:
        """The ladder, lowest (the molecule's temperature) first."""
        count = self.num_replicas or replica_count(molecule.topology.getNumAtoms(), molecule.temperature_K,
                                                          self.temperature_max_K)
        return geometric_ladder(molecule.temperature_K, self.temperature_max_K, count)

    def iterations_in(self, nanoseconds: float) -> int:
        """Iterations of ``nanoseconds`` per replica, rounded up to a checkpoint."""
        iterations = math.ceil(round(nanoseconds * 1000.0 / self.iteration_ps, 6))
        return self.checkpoint_iterations * math.ceil(iterations / self.checkpoint_iterations)

    def burn_in_iterations(self) -> int:
        return int(math.ceil(round(self.burn_in_ns * 1000.0 / self.iteration_ps, 6)))


@dataclass
class RunData:
    """What the storage holds for analysis, iterations 0..n (iteration 0: the starting configuration).

    Attributes
    ----------
    states : numpy.ndarray [n + 1, R]
        Temperature index of every replica at every iteration.
    torsions : numpy.ndarray [n + 1, R, T]
        Every replica's torsions (degrees).
    swap_acceptance : list of float
        Accepted fraction of the swaps offered between temperatures k and k + 1.
    reduced_potentials : numpy.ndarray [n + 1, R, K]
        Every replica's reduced potential at every temperature.
    """

    states: np.ndarray
    torsions: np.ndarray
    swap_acceptance: List[float]
    reduced_potentials: np.ndarray

    @property
    def num_iterations(self) -> int:
        return len(self.states) - 1

    def target_torsions(self, first: int) -> np.ndarray:
        """Torsions at the lowest temperature of iterations ``first``..n, [n - first + 1, T]."""
        replica = np.argmax(self.states[first:] == 0, axis=1)
        return self.torsions[np.arange(first, len(self.states)), replica]

    def mbar_log_weights(self, first: int) -> np.ndarray:
        """MBAR log weights at the lowest temperature of every replica's samples of iterations ``first``..n.

        Samples are ordered iteration by iteration (the R replicas of an iteration together), as
        ``torsions[first:].reshape(-1, T)``.
        """
        u = self.reduced_potentials[first:]
        samples = u.reshape(-1, u.shape[2])
        counts = np.bincount(self.states[first:].ravel(), minlength=u.shape[2])
        try:
            return mbar.log_weights(samples, counts, mbar.free_energies(samples, counts), target=0)
        except ValueError as error:
            raise ValueError(f"MBAR cannot weight this run: {error} The estimator 'target' (--estimator target) "
                             f"uses the target temperature's samples alone.") from error


def torsion_atoms(observables) -> np.ndarray:
    """The atoms of every torsion (sorted, unique): what the storage keeps every iteration."""
    return np.unique(observables.quads())


def run_identity(molecule, settings: ReferenceSettings) -> Dict:
    """What a run cannot change once started (checked when it resumes)."""
    return {"molecule": molecule.name, "num_atoms": molecule.topology.getNumAtoms(), "preset": molecule.preset_name,
            "temperatures_K": [round(t, 6) for t in settings.temperatures_K(molecule)],
            "hydrogen_mass_amu": settings.hydrogen_mass_amu, "timestep_fs": settings.timestep_fs,
            "friction_per_ps": settings.friction_per_ps, "iteration_ps": settings.iteration_ps,
            "checkpoint_iterations": settings.checkpoint_iterations}


def _silenced():
    """A context in which stdout and stderr are swallowed (openmmtools' banners and citation notices)."""
    import contextlib
    import io

    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _quiet_openmmtools():
    """Import openmmtools' multistate modules without their import-time banners; warnings off."""
    import logging

    with _silenced():
        import pymbar  # noqa: F401
        from openmmtools import multistate  # noqa: F401
    for name in ("openmmtools", "pymbar", "mpiplus"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _reference_cache():
    from openmmtools.cache import ContextCache

    from . import systems

    return ContextCache(platform=systems.reference_platform(), capacity=None, time_to_live=None)


def _reporter(directory: Path, atoms: Sequence[int], settings: ReferenceSettings):
    from openmmtools import multistate

    return multistate.MultiStateReporter(str(directory / STORAGE_FILE), checkpoint_storage=CHECKPOINT_FILE,
                                         checkpoint_interval=settings.checkpoint_iterations,
                                         analysis_particle_indices=[int(a) for a in atoms], velocity_interval=0)


def _use_reference_platform(sampler) -> None:
    sampler.energy_context_cache = _reference_cache()
    sampler.sampler_context_cache = _reference_cache()


def _new_sampler(molecule, settings: ReferenceSettings, reporter, target_iterations: int):
    from openmmtools import mcmc, multistate, states

    system = molecule.system(settings.hydrogen_mass_amu)
    thermodynamic_states = [states.ThermodynamicState(system, t * unit.kelvin)
                            for t in settings.temperatures_K(molecule)]
    sampler_states = [states.SamplerState(molecule.positions * unit.nanometer) for _ in thermodynamic_states]
    move = mcmc.LangevinDynamicsMove(timestep=settings.timestep_fs * unit.femtosecond,
                                     collision_rate=settings.friction_per_ps / unit.picosecond,
                                     n_steps=steps_in(settings.iteration_ps, settings.timestep_fs),
                                     reassign_velocities=True)
    sampler = multistate.ReplicaExchangeSampler(mcmc_moves=move, number_of_iterations=target_iterations,
                                                replica_mixing_scheme="swap-neighbors", online_analysis_interval=None)
    metadata = {"title": f"openmm-timewarp reference: {molecule.name}",
                METADATA_KEY: json.dumps(run_identity(molecule, settings), sort_keys=True)}
    with _silenced():
        sampler.create(thermodynamic_states, sampler_states, reporter, metadata=metadata)
    _use_reference_platform(sampler)
    return sampler


def _stored_sampler(molecule, settings: ReferenceSettings, reporter, directory: Path):
    """The sampler of an existing run, at its last checkpoint.

    Raises
    ------
    ValueError
        The stored run was made with other settings or another molecule.
    """
    from openmmtools import multistate

    with _silenced():
        sampler = multistate.ReplicaExchangeSampler.from_storage(reporter)
    stored = json.loads(sampler.metadata.get(METADATA_KEY, "{}"))
    wanted = json.loads(json.dumps(run_identity(molecule, settings), sort_keys=True))
    check_settings(directory, "a run", stored, wanted, keys=sorted(set(stored) | set(wanted)))
    _use_reference_platform(sampler)
    return sampler


def _read_run_file(directory: Path) -> Dict:
    path = directory / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write_run_file(directory: Path, data: Dict) -> None:
    atomic_write(directory / RUN_FILE, json.dumps(data, indent=1) + "\n")


def is_root_rank() -> bool:
    """Whether this process writes the files (MPI rank 0, or no MPI)."""
    import mpiplus

    comm = mpiplus.get_mpicomm()
    return comm is None or comm.rank == 0


def _agreed(flag: bool) -> bool:
    """Rank 0's ``flag`` on every MPI rank (itself without MPI)."""
    import mpiplus

    comm = mpiplus.get_mpicomm()
    return flag if comm is None else comm.bcast(flag, root=0)


def open_sampler(molecule, settings: ReferenceSettings, directory, atoms):
    """A new run in ``directory``, or the stored one at its last checkpoint: (sampler, its reporter).

    Close the reporter when done.

    A run whose creation was interrupted (storage without the ``created`` mark in ``run.json``)
    is started afresh: it had no iterations.
    """
    _quiet_openmmtools()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = settings.iterations_in(settings.target_ns)
    run = _read_run_file(directory)
    reporter = _reporter(directory, atoms, settings)
    if (directory / STORAGE_FILE).exists() and run.get("created"):
        try:
            return _stored_sampler(molecule, settings, reporter, directory), reporter
        except Exception:
            reporter.close()
            raise
    if is_root_rank():
        for name in (STORAGE_FILE, CHECKPOINT_FILE):
            if (directory / name).exists():
                (directory / name).unlink()
    sampler = _new_sampler(molecule, settings, reporter, target)
    if is_root_rank():
        _write_run_file(directory, {"created": True, "wall_s": 0.0})
    return sampler, reporter


def run_sampler(sampler, settings: ReferenceSettings, directory, progress: bool = True,
                started: Optional[float] = None) -> int:
    """Run to the target length, or to the first checkpoint after the wall-clock budget; the last iteration.

    Wall time spent is added to ``run.json`` at every checkpoint.
    """
    from tqdm.auto import tqdm

    directory = Path(directory)
    started = time.monotonic() if started is None else started
    deadline = started + 60.0 * settings.minutes if settings.minutes is not None else math.inf
    target = settings.iterations_in(settings.target_ns)
    if sampler.number_of_iterations < target:
        sampler.number_of_iterations = target
    np.random.seed(settings.seed + sampler.iteration)
    root = is_root_rank()
    bar = tqdm(total=target, initial=min(sampler.iteration, target), disable=not (progress and root),
               desc="replica exchange", unit="it")
    counted = started
    try:
        while sampler.iteration < target:
            sampler.run(1)
            bar.update(1)
            if sampler.iteration % settings.checkpoint_iterations == 0:
                now = time.monotonic()
                if root:
                    run = _read_run_file(directory)
                    run["wall_s"] = run.get("wall_s", 0.0) + now - counted
                    _write_run_file(directory, run)
                counted = now
                if _agreed(now >= deadline):
                    break
    finally:
        bar.close()
    return sampler.iteration


def read_run(directory, observables, last_iteration: int) -> RunData:
    """The stored iterations 0..``last_iteration`` of a run (see :class:`RunData`)."""
    import netCDF4
    from openmmtools import multistate

    directory = Path(directory)
    reporter = multistate.MultiStateReporter(str(directory / STORAGE_FILE), open_mode="r",
                                             checkpoint_storage=CHECKPOINT_FILE)
    try:
        iterations = slice(0, last_iteration + 1)
        states = np.asarray(reporter.read_replica_thermodynamic_states(iterations), dtype=int)
        accepted, proposed = reporter.read_mixing_statistics(iterations)
        reduced_potentials = np.asarray(reporter.read_energies(iterations)[0], dtype=float)
    finally:
        reporter.close()
    with netCDF4.Dataset(str(directory / STORAGE_FILE), "r") as storage:
        atoms = np.asarray(storage.variables["analysis_particle_indices"][:], dtype=int)
        positions = np.asarray(storage.variables["positions"][:last_iteration + 1], dtype=np.float64)
    quads = np.searchsorted(atoms, observables.quads())
    accepted, proposed = accepted.sum(0), proposed.sum(0)
    pairs = range(states.shape[1] - 1)
    acceptance = [float(accepted[k, k + 1] / proposed[k, k + 1]) if proposed[k, k + 1] else float("nan") for k in pairs]
    return RunData(states, dihedrals(positions, quads), acceptance, reduced_potentials)


def analyse(molecule, settings: ReferenceSettings, data: RunData, provenance: Dict) -> Optional[Reference]:
    """The reference of a run's samples after burn-in, by ``settings.estimator`` (None: fewer iterations than blocks).

    With MBAR, the Kish effective sample size of the weights goes into the provenance.
    """
    first = settings.burn_in_iterations() + 1
    iterations = data.num_iterations - first + 1
    if iterations < settings.num_blocks:
        return None
    provenance = dict(provenance)
    if settings.estimator == "mbar":
        values = data.torsions[first:].reshape(-1, data.torsions.shape[2])
        log_w = data.mbar_log_weights(first)
        provenance["kish_effective_samples"] = round(mbar.kish_effective_size(log_w), 1)
    else:
        values, log_w = data.target_torsions(first), None
    return reference_from_samples(observables_of(molecule.topology), values, molecule=molecule.name,
                                  temperature_K=molecule.temperature_K, preset=molecule.preset_name,
                                  log_weights=log_w, num_blocks=settings.num_blocks,
                                  simulated_ns=iterations * settings.iteration_ps / 1000.0, provenance=provenance)


def provenance_of(settings: ReferenceSettings, temperatures_K: Sequence[float], data: RunData,
                  wall_s: float) -> Dict:
    """How a reference was made (JSON-ready)."""
    from .. import __version__

    used = max(0, data.num_iterations - settings.burn_in_iterations())
    samples = ("every replica's configuration of every iteration after burn-in, MBAR weights at the lowest "
               "temperature" if settings.estimator == "mbar" else
               "the lowest-temperature configuration of every iteration after burn-in, equal weights")
    return {"method": f"temperature replica exchange (openmmtools ReplicaExchangeSampler, neighbour swaps every "
                      f"{settings.iteration_ps:g} ps; LangevinMiddleIntegrator {settings.timestep_fs:g} fs, friction "
                      f"{settings.friction_per_ps:g}/ps, hydrogen mass {settings.hydrogen_mass_amu:g} amu, velocities "
                      f"redrawn every iteration; Reference platform); samples: {samples}; standard errors from "
                      f"{settings.num_blocks} consecutive blocks of iterations",
            "estimator": settings.estimator,
            "replicas": len(temperatures_K), "temperatures_K": [float(t) for t in temperatures_K],
            "iterations": int(data.num_iterations), "burn_in_ns": settings.burn_in_ns,
            "simulated_ns_per_replica": data.num_iterations * settings.iteration_ps / 1000.0,
            "simulated_ns_used": used * settings.iteration_ps / 1000.0,
            "swap_acceptance": [round(a, 4) for a in data.swap_acceptance], "wall_time_s": round(wall_s, 1),
            "openmm_timewarp_version": __version__}


def write_torsions(path, values: np.ndarray, names: Sequence[str], settings: ReferenceSettings) -> None:
    """The target-temperature torsions (float32, degrees), one row per iteration after burn-in."""
    atomic_write(path, lambda tmp: np.savez_compressed(
        tmp, torsions=values.astype(np.float32), names=np.asarray(list(names)), interval_ps=settings.iteration_ps,
        burn_in_ns=settings.burn_in_ns), suffix=".npz")


@dataclass
class ReferenceRun:
    """What :func:`make_reference` did: iterations stored, this invocation's new ones, the reference (or None)."""

    iterations: int
    new_iterations: int
    target_iterations: int
    reference: Optional[Reference]
    directory: str


def make_reference(molecule, directory, settings: Optional[ReferenceSettings] = None,
                   progress: bool = True) -> ReferenceRun:
    """Run (or continue) replica exchange in ``directory`` and write its reference there.

    Parameters
    ----------
    molecule : openmm_timewarp.lab.molecule.Molecule
    directory : str or Path
        Output folder (created); holds the storage, ``reference.json`` and ``torsions.npz``.
    settings : ReferenceSettings, optional
    progress : bool
        A progress bar over iterations.

    Returns
    -------
    ReferenceRun
        ``reference`` is None (nothing written) when the run has fewer samples after burn-in than
        blocks, and on MPI ranks other than 0.

    Raises
    ------
    ValueError
        Impossible settings, or a stored run with other settings.
    """
    started = time.monotonic()
    settings = settings or ReferenceSettings()
    settings.check(molecule.temperature_K)
    observables = observables_of(molecule.topology)
    if not observables.names:
        raise ValueError(f"{molecule.name} has no soft torsion: a reference of torsion states has nothing to "
                         "estimate.")
    atoms = torsion_atoms(observables)
    directory = Path(directory)
    sampler, reporter = open_sampler(molecule, settings, directory, atoms)
    first = sampler.iteration
    try:
        last = run_sampler(sampler, settings, directory, progress, started)
    finally:
        reporter.close()
    target = settings.iterations_in(settings.target_ns)
    if not is_root_rank():
        return ReferenceRun(last, last - first, target, None, str(directory))
    data = read_run(directory, observables, last)
    temperatures = settings.temperatures_K(molecule)
    provenance = provenance_of(settings, temperatures, data, _read_run_file(directory).get("wall_s", 0.0))
    reference = analyse(molecule, settings, data, provenance)
    if reference is not None:
        save_reference(reference, directory)
        write_torsions(directory / TORSIONS_FILE, data.target_torsions(settings.burn_in_iterations() + 1),
                       observables.names, settings)
    return ReferenceRun(last, last - first, target, reference, str(directory))


__all__ = ["ReferenceRun", "ReferenceSettings", "RunData", "is_root_rank", "make_reference",
           "read_run", "run_identity"]
