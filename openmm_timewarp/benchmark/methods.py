"""Sampling methods the benchmark compares, by name, each behind one driver function.

The driver contract
-------------------
A driver samples alanine dipeptide for a wall-clock budget in the calling process (one core) and
returns what it saw::

    result = driver(settings, budget_s, seed)                 # or, if it takes it,
    result = driver(settings, budget_s, seed, progress=callback)

Parameters

- ``settings`` (dict): the settings the user gave (plain JSON values, units in the key names:
  ``temperature_K``, ``record_interval_ps``, ...), restricted to the method's ``settings_keys``
  when it was registered with them. The driver supplies its own defaults for the rest (the
  built-in drivers use :data:`DEFAULT_SETTINGS` through :func:`resolve_settings`).
- ``budget_s`` (float): wall-clock seconds of sampling. Every driver sets up (System, model,
  equilibration, bias or replica set-up) before its clock starts, reports that time as
  ``setup_s``, and stops at the first sample recorded after ``budget_s``: the budget is the same
  for every method and counts sampling only (the benchmark records this as
  ``settings.budget_accounting``).
- ``seed`` (int, >= 1): seeds every random stream of the run.
- ``progress`` (optional keyword): a callable taking the elapsed seconds, called after each
  recorded sample (the caller throttles it). Drivers without this parameter get a bar driven by
  the clock.

Replica k of every built-in method starts from the same configuration, the shipped structure
equilibrated with the seed of replica k (:func:`equilibrated_state`), so that times to first visit
compare.

Returns a dict with

- ``wall_s``: float array (n,), wall-clock seconds at which each sample was recorded, since the
  start of the driver's clock;
- ``phi``, ``psi``: float arrays (n,), backbone torsions of the samples in degrees, (-180, 180];
- ``weights`` (optional): float array (n,) of non-negative importance weights (for biased
  samplers such as metadynamics); absent means equal weights;
- ``elapsed_s`` (optional): wall-clock seconds on the driver's clock at the end (default: the
  budget, or the last sample's time if later);
- ``setup_s`` (optional): wall-clock seconds spent before the clock started;
- ``sample_interval_ps`` (optional): simulated time between samples, or None when samples are not
  equally spaced in simulated time (Timewarp moves only);
- ``stats`` (or ``statistics``): dict of JSON-ready values; the benchmark sums ``samples``,
  ``md_steps``, ``simulated_ns``, ``moves``, ``proposals``, ``accepted`` (and the Timewarp timers)
  over replicas and reports ``accepted / proposals`` as the acceptance rate;
- ``estimates`` (optional): list of ``(wall_s, {state: population})`` in time order, the method's
  own population estimates made from what it had by then (metadynamics: from its free-energy
  surface);
- ``population_source`` (optional): ``"estimates"`` to have the accuracy metric score
  ``estimates`` rather than the samples (default ``"samples"``);
- ``settings`` (optional): every setting the driver used.

``estimates``, ``population_source`` and ``settings`` are kept in the per-replica records of
``benchmark.json``, as are other keys that are plain values.

Drivers must be module-level functions (the runner sends them to worker processes by reference).
Register new ones with :func:`register_method`; other modules of this package (for example
``openmm_timewarp.benchmark.peers``) are imported by :func:`list_methods` and :func:`get_method`
so that their ``register_method`` calls take effect.
"""

import functools
import importlib
import importlib.util
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, List, Optional

import numpy as np

# Settings every built-in driver understands (units in the names).
DEFAULT_SETTINGS = {
    "temperature_K": 310.0,
    "friction_per_ps": 1.0,
    "preset": "amber99sbildn-obc",
    "equilibration_ps": 10.0,
    "record_interval_ps": 0.5,  # MD methods: one sample every this much simulated time
    "timestep_fs": 1.0,  # MD part of timewarp-mixed (unconstrained, no HMR)
    "flow": None,  # Timewarp methods: shipped model name or TorchScript file
    "move_interval": 100,  # timewarp-mixed: MD steps between moves
    "proposals_per_move": 16,
    "batch_size": 16,
    "energy_threshold_kJ_mol": 300.0,  # timewarp-explore
    "device": "cpu",
    "flow_threads": 1,
}

# Modules imported before the registry is read; each may call register_method
# (peers registers "replica-exchange" and "metadynamics").
PLUGIN_MODULES = ("openmm_timewarp.benchmark.peers",)


@dataclass(frozen=True)
class Method:
    """A registered sampling method.

    Attributes
    ----------
    name : str
    driver : callable
        ``driver(settings, budget_s, seed, progress=None) -> dict`` (see the module docstring).
    description : str
        One line for listings and reports.
    boltzmann : bool
        Samples the Boltzmann distribution (possibly with weights); only such methods get ESS
        speed-ups.
    baseline : bool
        A plain-MD baseline: speed-ups are taken against the best baseline on each observable.
    needs_flow : bool
        Needs ``settings["flow"]``.
    settings_keys : frozenset of str or None
        The settings the driver accepts; the others are not passed to it (None: all are passed).
    """

    name: str
    driver: Callable
    description: str = ""
    boltzmann: bool = True
    baseline: bool = False
    needs_flow: bool = False
    settings_keys: Optional[FrozenSet[str]] = None

    def driver_settings(self, settings):
        """The part of ``settings`` this method's driver is given.

        Parameters
        ----------
        settings : dict

        Returns
        -------
        dict
        """
        settings = dict(settings or {})
        if self.settings_keys is None:
            return settings
        return {k: v for k, v in settings.items() if k in self.settings_keys}


_REGISTRY: Dict[str, Method] = {}
_plugins_loaded = False


def register_method(name, driver, *, description="", boltzmann=True, baseline=False, needs_flow=False,
                    settings_keys=None, replace=False):
    """Add a sampling method to the registry.

    Parameters
    ----------
    name : str
        Name used on the command line (``--methods``) and in reports.
    driver : callable
        A module-level function honouring the driver contract (module docstring).
    description : str
        One line.
    boltzmann : bool
        Whether the method samples the Boltzmann distribution (exploration heuristics do not).
    baseline : bool
        Whether it is a plain-MD baseline.
    needs_flow : bool
        Whether it needs a Timewarp flow (``settings["flow"]``).
    settings_keys : iterable of str, optional
        The settings keys the driver accepts (for example the keys of its defaults dict); others
        are not passed to it. Default: every setting is passed.
    replace : bool
        Allow replacing a method of the same name.

    Returns
    -------
    Method
    """
    if not callable(driver):
        raise TypeError(f"the driver of method {name!r} is not callable")
    if name in _REGISTRY and not replace:
        raise ValueError(f"a sampling method named {name!r} is already registered (pass replace=True)")
    keys = None if settings_keys is None else frozenset(settings_keys)
    method = Method(str(name), driver, description, bool(boltzmann), bool(baseline), bool(needs_flow), keys)
    _REGISTRY[method.name] = method
    return method


def _load_plugins():
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in PLUGIN_MODULES:
        if importlib.util.find_spec(module) is None:
            continue
        try:
            importlib.import_module(module)
        except Exception as error:  # a broken plugin must not take the built-in methods down with it
            warnings.warn(f"could not import {module} ({type(error).__name__}: {error}); its sampling methods "
                          "are not available", RuntimeWarning, stacklevel=3)


def list_methods():
    """Names of the registered methods, in registration order.

    Returns
    -------
    list of str
    """
    _load_plugins()
    return list(_REGISTRY)


def get_method(name):
    """The registered method of that name.

    Parameters
    ----------
    name : str

    Returns
    -------
    Method

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown sampling method {name!r}; known: {', '.join(_REGISTRY)}") from None


def resolve_settings(settings=None):
    """:data:`DEFAULT_SETTINGS` updated with ``settings``.

    Parameters
    ----------
    settings : dict, optional

    Returns
    -------
    dict
        A new dict.
    """
    merged = dict(DEFAULT_SETTINGS)
    merged.update(settings or {})
    return merged


# ------------------------------------------------------------------------------------------------
# Building blocks shared by the drivers
# ------------------------------------------------------------------------------------------------

def dipeptide_system(settings, hydrogen_mass=None):
    """Alanine dipeptide (the shipped, minimised structure) and its unconstrained System.

    Parameters
    ----------
    settings : dict
        Uses ``preset``.
    hydrogen_mass : float, optional
        Hydrogen mass in amu (hydrogen mass repartitioning), e.g. 3.0 for a 2 fs step.

    Returns
    -------
    topology : openmm.app.Topology
    system : openmm.System
    positions : openmm.unit.Quantity
    """
    from .. import systems

    topology, positions = systems.load_alanine_dipeptide()
    system = systems.create_system(topology, settings["preset"], hydrogen_mass=hydrogen_mass)
    return topology, system, positions


def equilibrated_state(settings, seed):
    """The common starting configuration of replica ``seed`` of every method.

    The shipped, minimised structure, equilibrated with ``equilibration_ps`` of Langevin MD (1 fs,
    standard masses) at ``temperature_K`` in a separate Context. Methods differ only in what comes
    after: replica k of every method starts from the same configuration. Cached per process.

    Parameters
    ----------
    settings : dict
        Uses ``preset``, ``temperature_K``, ``friction_per_ps`` and ``equilibration_ps``.
    seed : int
        Seeds the velocities and the Langevin noise.

    Returns
    -------
    openmm.unit.Quantity
        Positions (numpy array, nm).
    """
    from openmm import unit

    positions = _equilibrate(settings["preset"], float(settings["temperature_K"]), float(settings["friction_per_ps"]),
                             float(settings["equilibration_ps"]), int(seed))
    return unit.Quantity(positions.copy(), unit.nanometer)


@functools.lru_cache(maxsize=64)
def _equilibrate(preset, temperature_K, friction_per_ps, equilibration_ps, seed):
    import openmm
    from openmm import unit

    from .. import systems

    topology, system, positions = dipeptide_system({"preset": preset})
    temperature = temperature_K * unit.kelvin
    integrator = openmm.LangevinMiddleIntegrator(temperature, friction_per_ps / unit.picosecond, 1.0 * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, systems.reference_platform())
    context.setPositions(positions)
    context.setVelocitiesToTemperature(temperature, seed)
    integrator.step(int(round(equilibration_ps * 1000.0)))
    positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    del context, integrator
    return np.asarray(positions)


class SampleRecorder:
    """Positions of a Context at chosen moments, with the wall-clock time of each since :meth:`start`.

    Parameters
    ----------
    topology : openmm.app.Topology
        For the torsions.
    """

    def __init__(self, topology):
        self._topology = topology
        self._positions: List[np.ndarray] = []
        self._wall: List[float] = []
        self._start: Optional[float] = None

    def start(self):
        """Start the clock."""
        self._start = time.perf_counter()

    def elapsed(self):
        """Seconds since :meth:`start`."""
        return time.perf_counter() - self._start

    def record(self, context):
        """Record the Context's positions now; returns the elapsed seconds."""
        from openmm import unit

        positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        elapsed = self.elapsed()
        self._positions.append(np.asarray(positions, dtype=np.float32))
        self._wall.append(elapsed)
        return elapsed

    def __len__(self):
        return len(self._wall)

    def torsions(self):
        """``wall_s``, ``phi`` and ``psi`` of the recorded samples (float arrays, degrees).

        Returns
        -------
        dict
        """
        from ..analysis import torsions_from_positions

        if not self._positions:
            empty = np.empty(0)
            return {"wall_s": empty, "phi": empty.copy(), "psi": empty.copy()}
        phi, psi = torsions_from_positions(np.stack(self._positions), self._topology)
        return {"wall_s": np.asarray(self._wall, dtype=float), "phi": phi[:, 0], "psi": psi[:, 0]}


def sample_for(budget_s, recorder, context, advance, progress=None):
    """Call ``advance()`` and record a sample until ``budget_s`` wall-clock seconds have passed.

    Parameters
    ----------
    budget_s : float
        Seconds of sampling.
    recorder : SampleRecorder
        Started here.
    context : openmm.Context
        Recorded after each ``advance()``.
    advance : callable
        Moves the simulation on by one sample interval.
    progress : callable, optional
        ``progress(elapsed_s)`` after each sample.

    Returns
    -------
    float
        Elapsed seconds.
    """
    recorder.start()
    elapsed = 0.0
    while elapsed < budget_s:
        advance()
        elapsed = recorder.record(context)
        if progress is not None:
            progress(elapsed)
    return recorder.elapsed()


# ------------------------------------------------------------------------------------------------
# Built-in drivers
# ------------------------------------------------------------------------------------------------

def run_md(settings, budget_s, seed, progress=None, *, timestep_fs=1.0, hydrogen_mass=None):
    """Plain Langevin MD (LangevinMiddleIntegrator, no constraints, Reference platform).

    One sample every ``settings["record_interval_ps"]``. Parameters and result as in the driver
    contract (``settings`` completed by :func:`resolve_settings`); ``timestep_fs`` and
    ``hydrogen_mass`` (amu) select the variant.
    """
    import openmm
    from openmm import unit

    from .. import systems

    settings = resolve_settings(settings)
    setup_start = time.perf_counter()
    topology, system, _ = dipeptide_system(settings, hydrogen_mass)
    positions = equilibrated_state(settings, seed)
    temperature = settings["temperature_K"] * unit.kelvin
    integrator = openmm.LangevinMiddleIntegrator(temperature,
                                                 settings["friction_per_ps"] / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(int(seed))
    context = openmm.Context(system, integrator, systems.reference_platform())
    context.setPositions(positions)
    context.setVelocitiesToTemperature(temperature, int(seed))
    steps_per_sample = max(1, int(round(settings["record_interval_ps"] * 1000.0 / timestep_fs)))
    recorder = SampleRecorder(topology)
    setup_s = time.perf_counter() - setup_start

    elapsed = sample_for(budget_s, recorder, context, lambda: integrator.step(steps_per_sample), progress)
    steps = len(recorder) * steps_per_sample
    result = recorder.torsions()
    result.update(
        elapsed_s=elapsed,
        setup_s=setup_s,
        sample_interval_ps=steps_per_sample * timestep_fs / 1000.0,
        stats={
            "samples": len(recorder),
            "md_steps": steps,
            "simulated_ns": steps * timestep_fs * 1e-6,
            "timestep_fs": timestep_fs,
            "hydrogen_mass_amu": hydrogen_mass,
            "md_steps_per_s": steps / elapsed if elapsed > 0 else 0.0,
        },
    )
    return result


def run_timewarp(settings, budget_s, seed, progress=None, *, mode="mh", moves_only=True, timestep_fs=None,
                 hydrogen_mass=None):
    """Timewarp moves with :class:`~openmm_timewarp.TimewarpIntegrator` (Reference platform).

    With ``moves_only`` (``moveInterval=0``) one sample is recorded after every move; otherwise
    Langevin MD (``settings["timestep_fs"]``) runs with a move every ``settings["move_interval"]``
    steps and a sample is recorded after a move every ``record_interval_ps`` or so. Parameters and
    result as in the driver contract (``settings`` completed by :func:`resolve_settings`); ``mode``
    is ``"mh"`` or ``"explore"``; ``timestep_fs`` and ``hydrogen_mass`` (amu) override the MD step
    and select hydrogen mass repartitioning (masses do not change the Boltzmann distribution of
    positions, which is all the moves see).
    """
    import openmm
    from openmm import unit

    from .. import systems
    from ..integrator import TimewarpIntegrator

    settings = resolve_settings(settings)
    if not settings.get("flow"):
        raise ValueError("Timewarp methods need settings['flow']: a shipped model name or a TorchScript file")
    setup_start = time.perf_counter()
    timestep_fs = float(settings["timestep_fs"] if timestep_fs is None else timestep_fs)
    topology, system, _ = dipeptide_system(settings, hydrogen_mass)
    positions = equilibrated_state(settings, seed)
    temperature = settings["temperature_K"] * unit.kelvin
    move_interval = 0 if moves_only else int(settings["move_interval"])
    if not moves_only and move_interval < 1:
        raise ValueError(f"MD with Timewarp moves needs move_interval >= 1, got {move_interval}")
    threads = settings.get("flow_threads")
    integrator = TimewarpIntegrator(
        temperature, settings["friction_per_ps"] / unit.picosecond,
        timestep_fs * unit.femtosecond, flow=settings["flow"], moveInterval=move_interval,
        proposalsPerMove=int(settings["proposals_per_move"]), batchSize=int(settings["batch_size"]), mode=mode,
        energyThreshold=settings["energy_threshold_kJ_mol"] * unit.kilojoule_per_mole, topology=topology,
        device=settings["device"], flowThreads=None if threads is None else int(threads))
    integrator.setRandomNumberSeed(int(seed))
    context = openmm.Context(system, integrator, systems.reference_platform())
    context.setPositions(positions)
    context.setVelocitiesToTemperature(temperature, int(seed))
    integrator.bind(context)  # checks System and flow (one flow call) before the clock starts
    integrator.resetStatistics()
    if moves_only:
        steps_per_sample = 1
    else:
        wanted = settings["record_interval_ps"] * 1000.0 / timestep_fs
        steps_per_sample = move_interval * max(1, int(round(wanted / move_interval)))
    recorder = SampleRecorder(topology)
    setup_s = time.perf_counter() - setup_start

    elapsed = sample_for(budget_s, recorder, context, lambda: integrator.step(steps_per_sample), progress)
    md_steps = 0 if moves_only else len(recorder) * steps_per_sample
    statistics = integrator.getStatistics()
    result = recorder.torsions()
    result.update(
        elapsed_s=elapsed,
        setup_s=setup_s,
        sample_interval_ps=None if moves_only else steps_per_sample * timestep_fs / 1000.0,
        stats={
            "samples": len(recorder),
            "md_steps": md_steps,
            "simulated_ns": md_steps * timestep_fs * 1e-6,
            "mode": mode,
            "timestep_fs": timestep_fs,
            "hydrogen_mass_amu": hydrogen_mass,
            "move_interval": move_interval,
            "proposals_per_move": int(settings["proposals_per_move"]),
            "batch_size": int(settings["batch_size"]),
            "moves_per_s": statistics["moves"] / elapsed if elapsed > 0 else 0.0,
            **statistics,
        },
    )
    return result


def md_1fs(settings, budget_s, seed, progress=None):
    """Driver: Langevin MD, 1 fs, no constraints, standard masses."""
    return run_md(settings, budget_s, seed, progress, timestep_fs=1.0)


def md_2fs_hmr(settings, budget_s, seed, progress=None):
    """Driver: Langevin MD, 2 fs, no constraints, hydrogen mass 3 amu."""
    return run_md(settings, budget_s, seed, progress, timestep_fs=2.0, hydrogen_mass=3.0)


def timewarp_mh(settings, budget_s, seed, progress=None):
    """Driver: Timewarp MH moves only (``moveInterval=0``)."""
    return run_timewarp(settings, budget_s, seed, progress, mode="mh", moves_only=True)


def timewarp_mixed(settings, budget_s, seed, progress=None):
    """Driver: Langevin MD with a Timewarp MH move every ``move_interval`` steps."""
    return run_timewarp(settings, budget_s, seed, progress, mode="mh", moves_only=False)


def timewarp_mixed_hmr(settings, budget_s, seed, progress=None):
    """Driver: Langevin MD at 2 fs with hydrogen mass 3 amu and a Timewarp MH move every ``move_interval`` steps."""
    return run_timewarp(settings, budget_s, seed, progress, mode="mh", moves_only=False, timestep_fs=2.0,
                        hydrogen_mass=3.0)


def timewarp_explore(settings, budget_s, seed, progress=None):
    """Driver: Timewarp exploration moves only (not Boltzmann sampling)."""
    return run_timewarp(settings, budget_s, seed, progress, mode="explore", moves_only=True)


register_method("md-1fs", md_1fs, baseline=True,
                description="Langevin MD, 1 fs, unconstrained, friction 1/ps (Reference platform)")
register_method("md-2fs-hmr", md_2fs_hmr, baseline=True,
                description="Langevin MD, 2 fs, unconstrained, hydrogen mass 3 amu")
register_method("timewarp-mh", timewarp_mh, needs_flow=True,
                description="Timewarp MH moves only (moveInterval=0), one sample per move")
register_method("timewarp-mixed", timewarp_mixed, needs_flow=True,
                description="Langevin MD (1 fs) with a Timewarp MH move every move_interval steps")
register_method("timewarp-mixed-hmr", timewarp_mixed_hmr, needs_flow=True,
                description="Langevin MD (2 fs, hydrogen mass 3 amu) with a Timewarp MH move every move_interval steps")
register_method("timewarp-explore", timewarp_explore, needs_flow=True, boltzmann=False,
                description="Timewarp exploration moves (energy threshold; not Boltzmann sampling)")
