"""Run sampling methods side by side on one machine, for the same wall-clock budget and cores.

Each method runs ``cores`` independent replicas at once, one per core, as worker processes
(multiprocessing with "spawn", one torch and OpenMM thread each, every replica its own seed); with
more ``repeats`` than cores it runs several such rounds. Methods run one after another, so every
method has the whole machine. The replicas of a method give its ESS (summed over replicas), its
exploration times (median over replicas) and its time to accuracy (each replica is one repeat;
median over them); see :mod:`.summary` for the figures and rules.

Budget accounting, the same for every method (recorded as ``settings.budget_accounting``): building
the System, loading a model and equilibrating happen before a replica's clock starts and are
reported as ``setup_s``; the budget counts sampling only, and a replica stops at its first sample
recorded after the budget (``elapsed_s``).

:func:`run_benchmark` writes into its output folder

- ``benchmark.json``: the settings, the machine, every figure (:func:`run_benchmark` returns the same);
- ``samples.npz``: ``<method>__<replica>__{wall_s,phi,psi[,weights]}`` of every replica;
- ``ramachandran.png``, ``ess_per_s.png`` and ``error_vs_time.png`` (worst macrostate error against
  wall-clock time, median and spread over repeats, log-log).
"""

import json
import math
import os
import platform
import queue as _queue
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .methods import get_method, resolve_settings

BUDGET_ACCOUNTING = {
    "setup_on_clock": False,
    "text": "for every method, System building, model loading and equilibration happen before each replica's "
            "clock starts (setup_s, per run); the budget counts sampling only, and a replica stops at its first "
            "sample recorded after the budget (elapsed_s)",
}
SYSTEM_DESCRIPTION = ("alanine dipeptide (ACE-ALA-NME, 22 atoms), amber99sbildn + OBC implicit solvent, "
                      "no constraints, Reference platform")
PROGRESS_INTERVAL_S = 0.5
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENMM_CPU_THREADS")

_progress_queue = None


class BenchmarkError(RuntimeError):
    """A replica of a method failed; the message names the method and the cause."""


# ------------------------------------------------------------------------------------------------
# Worker side
# ------------------------------------------------------------------------------------------------

def _init_worker(progress_queue):
    global _progress_queue
    for name in _THREAD_VARIABLES:
        os.environ[name] = "1"
    import torch

    torch.set_num_threads(1)
    _progress_queue = progress_queue


def accepts_progress(driver):
    """Whether a driver takes the optional ``progress`` keyword.

    Parameters
    ----------
    driver : callable

    Returns
    -------
    bool
    """
    import inspect

    try:
        parameters = inspect.signature(driver).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "progress" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def normalize_result(result, budget_s):
    """Check a driver's result and fill in the optional entries (see :mod:`.methods`).

    Parameters
    ----------
    result : dict
        What the driver returned.
    budget_s : float
        The budget it was given.

    Returns
    -------
    dict
        ``result`` with ``wall_s``, ``phi``, ``psi`` (and ``weights``) as float arrays, ``elapsed_s``,
        ``setup_s`` and ``stats`` always present.

    Raises
    ------
    ValueError
        A required entry is missing or the arrays differ in length.
    """
    missing = {"wall_s", "phi", "psi"} - set(result)
    if missing:
        raise ValueError(f"the driver returned no {', '.join(sorted(missing))}")
    for key in ("wall_s", "phi", "psi", "weights"):
        if result.get(key) is not None:
            result[key] = np.asarray(result[key], dtype=float).ravel()
    lengths = {len(result[k]) for k in ("wall_s", "phi", "psi", "weights") if result.get(k) is not None}
    if len(lengths) > 1:
        raise ValueError("the driver returned wall_s, phi, psi (and weights) of different lengths")
    if result.get("elapsed_s") is None:
        last = float(result["wall_s"][-1]) if len(result["wall_s"]) else 0.0
        result["elapsed_s"] = max(float(budget_s), last)
    result["elapsed_s"] = float(result["elapsed_s"])
    result["setup_s"] = float(result.get("setup_s") or 0.0)
    if result.get("stats") is None:
        result["stats"] = dict(result.get("statistics") or {})
    result["stats"].setdefault("samples", int(len(result["phi"])))
    return result


def _run_replica(driver, settings, budget_s, seed, key, report):
    """Run one replica in a worker; progress goes to the queue as ``(key, elapsed_s)``."""
    last = [-math.inf]

    def progress(elapsed_s):
        now = time.monotonic()
        if _progress_queue is not None and now - last[0] >= PROGRESS_INTERVAL_S:
            last[0] = now
            _progress_queue.put((key, float(elapsed_s)))

    if report:
        result = driver(dict(settings), float(budget_s), int(seed), progress=progress)
    else:
        result = driver(dict(settings), float(budget_s), int(seed))
    return normalize_result(result, budget_s)


@contextmanager
def _single_threaded_children():
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ReplicaPool:
    """Worker processes (spawn), one per core, that run driver replicas and report progress.

    Parameters
    ----------
    cores : int
        Number of worker processes.

    Use as a context manager; :meth:`run_round` runs up to ``cores`` replicas at once.
    """

    def __init__(self, cores):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.cores = int(cores)
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        with _single_threaded_children():
            self._executor = ProcessPoolExecutor(max_workers=self.cores, mp_context=context,
                                                 initializer=_init_worker, initargs=(self._queue,))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Stop the workers."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def run_round(self, driver, settings, budget_s, seeds, on_progress=None):
        """Run one replica per seed at once and wait for all of them.

        Parameters
        ----------
        driver : callable
            A module-level driver function.
        settings : dict
        budget_s : float
        seeds : sequence of int
            At most ``cores`` of them.
        on_progress : callable, optional
            ``on_progress(max_elapsed_s)``: the furthest replica's elapsed sampling time, as it goes
            (for a driver without ``progress``, the time since the round started).

        Returns
        -------
        list of dict
            Driver results, in the order of ``seeds``.
        """
        if len(seeds) > self.cores:
            raise ValueError(f"{len(seeds)} replicas for {self.cores} cores")
        report = accepts_progress(driver)
        started = time.monotonic()
        with _single_threaded_children():
            futures = [self._executor.submit(_run_replica, driver, settings, budget_s, seed, k, report)
                       for k, seed in enumerate(seeds)]
        elapsed = [0.0] * len(seeds)
        while not all(f.done() for f in futures):
            try:
                key, value = self._queue.get(timeout=0.2)
            except _queue.Empty:
                if not report and on_progress is not None:  # no reports: follow the clock
                    on_progress(min(time.monotonic() - started, budget_s))
                continue
            if 0 <= key < len(elapsed):
                elapsed[key] = max(elapsed[key], value)
                if on_progress is not None:
                    on_progress(max(elapsed))
        while True:  # messages of this round still queued
            try:
                self._queue.get_nowait()
            except _queue.Empty:
                break
        return [f.result() for f in futures]


# ------------------------------------------------------------------------------------------------
# Main side
# ------------------------------------------------------------------------------------------------

def _progress_bar(name, total_s, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=round(total_s, 1), desc=f"{name:<18}", unit="s", leave=True,
                disable=not enabled, bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                "[{elapsed}]{postfix}")


def run_method(pool, name, settings, budget_s, runs, seed, progress=True):
    """Run ``runs`` replicas of one method, ``pool.cores`` at a time, with a progress bar.

    Parameters
    ----------
    pool : ReplicaPool
    name : str
        Registered method name.
    settings : dict
        Settings given by the user (passed as :meth:`.methods.Method.driver_settings` selects).
    budget_s : float
        Wall-clock seconds per replica.
    runs : int
        Replicas in all (a multiple of ``pool.cores`` keeps every round full).
    seed : int
        Replica k gets seed ``seed + k``.
    progress : bool
        Show a tqdm bar of the elapsed budget.

    Returns
    -------
    results : list of dict
        Driver results, with ``seed`` and ``round`` added.
    wall_s : float
        Sum over rounds of each round's longest replica.

    Raises
    ------
    BenchmarkError
        A replica failed.
    """
    method = get_method(name)
    rounds = int(math.ceil(runs / pool.cores))
    bar = _progress_bar(name, rounds * budget_s, progress)
    results, wall_s = [], 0.0
    try:
        for r in range(rounds):
            seeds = [seed + k for k in range(r * pool.cores, min(runs, (r + 1) * pool.cores))]
            bar.set_postfix_str("setting up" + (f", round {r + 1}/{rounds}" if rounds > 1 else ""))
            done = r * budget_s

            def update(elapsed, done=done, r=r):
                bar.n = round(min(done + min(elapsed, budget_s), rounds * budget_s), 1)
                bar.set_postfix_str("sampling" + (f", round {r + 1}/{rounds}" if rounds > 1 else ""), refresh=False)
                bar.refresh()

            try:
                round_results = pool.run_round(method.driver, method.driver_settings(settings), budget_s, seeds,
                                               update)
            except Exception as error:
                raise BenchmarkError(f"method {name!r} failed: {type(error).__name__}: {error}") from error
            for s, result in zip(seeds, round_results):
                result["seed"], result["round"] = s, r
            results += round_results
            wall_s += max(float(x["elapsed_s"]) for x in round_results)
            update(budget_s)
        bar.set_postfix_str("done", refresh=True)
    finally:
        bar.close()
    return results, wall_s


def machine_info():
    """The machine and the software versions, for the record.

    Returns
    -------
    dict
    """
    import openmm
    import torch

    from .. import __version__

    info = {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "openmm": openmm.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "openmm_timewarp": __version__,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = list(os.getloadavg())
    return info


RECORD_ARRAYS = ("wall_s", "phi", "psi", "weights")  # in samples.npz, not in the JSON


def _run_record(result):
    """One replica's entry in ``benchmark.json``: everything but the sample arrays.

    Always has ``seed``, ``round``, ``samples``, ``elapsed_s``, ``setup_s`` and ``population_source``;
    keeps the driver's ``settings``, ``stats`` and ``estimates`` (list of ``[wall_s, {state:
    population}]``) and any other plain value.
    """
    from .summary import population_source

    record = {"seed": result.get("seed"), "round": result.get("round"), "samples": int(len(result["phi"])),
              "elapsed_s": float(result["elapsed_s"]), "setup_s": float(result.get("setup_s") or 0.0),
              "population_source": population_source(result)}
    if result.get("estimates") is not None:
        record["estimates"] = [[float(t), {k: float(v) for k, v in populations.items()}]
                               for t, populations in result["estimates"]]
    for key, value in result.items():
        if key in RECORD_ARRAYS or key == "statistics" or key in record:
            continue
        if value is None or isinstance(value, (str, int, float, bool, dict, list, tuple, np.generic)):
            record[key] = value
    return record


def _save_samples(all_runs, path):
    arrays = {}
    for name, results in all_runs.items():
        for k, result in enumerate(results):
            for key in ("wall_s", "phi", "psi", "weights"):
                if result.get(key) is not None:
                    arrays[f"{name}__{k}__{key}"] = np.asarray(result[key], dtype=float)
    np.savez_compressed(path, **arrays)
    return str(path)


def analyze(all_runs, walls, methods, reference=None, budget_s=None, threshold_kT=None, timewarp=None):
    """Every figure of merit of a set of runs (no files written).

    Parameters
    ----------
    all_runs : dict
        Method name -> list of driver results.
    walls : dict
        Method name -> wall-clock seconds (see :func:`run_method`).
    methods : sequence of str
        Registered method names (for their kind: baseline, Boltzmann).
    reference : dict, optional
        Default :func:`openmm_timewarp.analysis.load_reference`.
    budget_s : float, optional
        Each replica's budget, the end of the accuracy curves (default: the shortest replica's
        ``elapsed_s``).
    threshold_kT : float, optional
        Accuracy threshold (default 0.3 kT).
    timewarp : str, optional
        The method the accuracy ratios refer to (default ``timewarp-mh``).

    Returns
    -------
    dict
        ``methods`` (name -> summary), ``best_baseline`` and ``speed_ups`` (each for ``ess`` and
        ``ess_blocks``), ``exploration`` and ``accuracy`` (:func:`.summary.accuracy_summary`); and,
        not for the JSON, ``accuracy_curves`` (:func:`.summary.accuracy_curves`, for the figure).
    """
    from ..analysis import load_reference, reference_histogram
    from . import accuracy as _accuracy
    from . import summary as _summary

    reference = load_reference() if reference is None else reference
    counts = reference_histogram(reference, _summary.JSD_BINS) if "phi_psi_histogram" in reference else None
    kinds = {name: get_method(name) for name in methods}
    summaries = {name: _summary.summarize_method(all_runs[name], walls[name], reference, counts) for name in methods}
    baselines = [n for n in methods if kinds[n].baseline]
    best, speed_ups = {}, {}
    for key in ("ess", "ess_blocks"):
        best[key] = _summary.best_baselines(summaries, baselines, key)
    for name in methods:
        if kinds[name].baseline or not kinds[name].boltzmann or not baselines:
            continue
        speed_ups[name] = {key: _summary.method_speed_ups(summaries[name], best[key], summaries, key)
                           for key in ("ess", "ess_blocks")}
    if budget_s is None:
        budget_s = min(float(r["elapsed_s"]) for name in methods for r in all_runs[name])
    threshold_kT = _accuracy.DEFAULT_THRESHOLD_KT if threshold_kT is None else float(threshold_kT)
    timewarp = _summary.TIMEWARP_METHOD if timewarp is None else timewarp
    runs = {name: all_runs[name] for name in methods}
    curves = _summary.accuracy_curves(runs, budget_s, reference, threshold_kT)
    return {
        "methods": summaries,
        "best_baseline": best,
        "speed_ups": speed_ups,
        "exploration": _summary.exploration_summary(summaries, baselines),
        "accuracy": _summary.accuracy_summary(runs, curves, budget_s, reference,
                                              {name: kinds[name].boltzmann for name in methods}, timewarp),
        "accuracy_curves": curves,
    }


def check_flow(flow, num_atoms=22):
    """Load a flow once in this process to fail early (before any replica runs) if it cannot work.

    Parameters
    ----------
    flow : str
        Model name or TorchScript file.
    num_atoms : int
        Atoms of the benchmark molecule.

    Returns
    -------
    openmm_timewarp.contract.FlowInfo

    Raises
    ------
    ValueError
        Not a contract-1 flow, or made for another number of atoms.
    """
    from ..contract import load_flow

    _, info = load_flow(flow)
    if info.num_atoms not in (0, num_atoms):
        raise ValueError(f"the flow {flow} is made for {info.num_atoms} atoms; alanine dipeptide has {num_atoms}")
    return info


def run_benchmark(methods, budget_s, *, cores=None, repeats=None, settings=None, out="timewarp-benchmark",
                  seed=1, progress=True, title=None, threshold_kT=None, timewarp=None):
    """Run the methods, analyse them against the reference, write the JSON, samples and PNGs.

    Parameters
    ----------
    methods : sequence of str
        Registered method names (:func:`.methods.list_methods`).
    budget_s : float
        Wall-clock seconds of sampling per replica (setup not included, for every method).
    cores : int, optional
        Replicas at once, one worker process each (default: ``os.cpu_count()``).
    repeats : int, optional
        Independent repeats per method, each one replica (one core, its own seed), run ``cores`` at
        a time (default ``cores``); rounded up to a multiple of ``cores`` so that every round keeps
        all cores busy. ESS is summed over them, first-visit times and accuracy curves take the
        median over them.
    settings : dict, optional
        Settings for the drivers (e.g. ``{"flow": path}``); the built-in drivers complete them with
        :data:`.methods.DEFAULT_SETTINGS`, other methods get the keys they were registered for.
    out : str or path-like
        Output folder (created).
    seed : int
        Replica k of every method gets seed ``seed + k``.
    progress : bool
        Show one tqdm bar per method.
    title : str, optional
        Title of the figures.
    threshold_kT : float, optional
        Accuracy threshold of the time-to-accuracy metric (default 0.3 kT).
    timewarp : str, optional
        The method whose time to accuracy the others are compared with (default ``timewarp-mh``).

    Returns
    -------
    dict
        What ``benchmark.json`` holds (before conversion to JSON): ``settings`` (with
        ``budget_accounting``), ``machine``, ``reference``, ``methods`` (name -> description, kind,
        per-replica ``runs`` and the figures of :func:`.summary.summarize_method`),
        ``best_baseline``, ``speed_ups``, ``exploration``, ``accuracy``
        (:func:`.summary.accuracy_summary`), ``figures`` and ``files``.
    """
    from ..analysis import load_reference, reference_histogram
    from ..analysis.report import jsonable
    from . import figures
    from . import summary as _summary
    from .accuracy import plot_error_curves

    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ValueError("no methods given")
    kinds = {name: get_method(name) for name in methods}
    settings = dict(settings or {})
    flow_info = None
    if any(k.needs_flow for k in kinds.values()):
        if not settings.get("flow"):
            raise ValueError("the Timewarp methods need a flow: settings['flow'] (a model name or a TorchScript file)")
        flow_info = check_flow(settings["flow"])
    if budget_s <= 0:
        raise ValueError("budget_s must be positive")
    cores = int(cores or os.cpu_count() or 1)
    if cores < 1:
        raise ValueError("cores must be at least 1")
    repeats = cores if repeats is None else int(repeats)
    rounds = max(1, int(math.ceil(repeats / cores)))
    runs = rounds * cores
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reference = load_reference()

    machine = machine_info()
    all_runs, walls = {}, {}
    started = time.perf_counter()
    with ReplicaPool(cores) as pool:
        for name in methods:
            all_runs[name], walls[name] = run_method(pool, name, settings, budget_s, runs, seed, progress)
    total_s = time.perf_counter() - started
    if hasattr(os, "getloadavg"):
        machine["load_average_at_end"] = list(os.getloadavg())

    analysis = analyze(all_runs, walls, methods, reference, budget_s, threshold_kT, timewarp)
    curves = analysis.pop("accuracy_curves")
    for name in methods:
        analysis["methods"][name] = {"description": kinds[name].description, "boltzmann": kinds[name].boltzmann,
                                     "baseline": kinds[name].baseline,
                                     "runs": [_run_record(r) for r in all_runs[name]], **analysis["methods"][name]}
    files = {"json": str(out / "benchmark.json"), "samples": _save_samples(all_runs, out / "samples.npz")}
    figure_files = {
        "ramachandran": figures.ramachandran_figure(all_runs, out / "ramachandran.png",
                                                    reference_histogram(reference, 72), title=title),
        "ess_per_s": figures.ess_rate_figure({n: s for n, s in analysis["methods"].items() if s["boltzmann"]},
                                             out / "ess_per_s.png", title=title),
        "error_vs_time": plot_error_curves(curves, out / "error_vs_time.png", analysis["accuracy"]["threshold_kT"],
                                           title=title),
    }
    analysis["accuracy"]["figure"] = figure_files["error_vs_time"]
    result = {
        "format": "openmm-timewarp-benchmark",
        "format_version": 1,
        "system": SYSTEM_DESCRIPTION,
        "settings": {"methods": methods, "budget_s": float(budget_s), "cores": cores, "repeats": repeats,
                     "replicas_per_method": runs, "rounds": rounds, "seed": int(seed), "given": settings,
                     "driver": resolve_settings(settings),
                     "budget_accounting": BUDGET_ACCOUNTING,
                     "blocks_per_chain": _summary.BLOCKS_PER_CHAIN,
                     "baseline_ess_bound": _summary.BASELINE_ESS_BOUND},
        "machine": machine,
        "flow": None if flow_info is None else {"source": flow_info.source, "temperature_K": flow_info.temperature,
                                                "tau_ps": flow_info.tau_ps, "num_atoms": flow_info.num_atoms,
                                                "force_field": flow_info.force_field},
        "total_wall_s": total_s,
        "reference": {"populations": reference["populations"], "populations_stderr": reference["populations_stderr"],
                      "provenance": reference.get("provenance")},
        **analysis,
        "figures": figure_files,
        "files": files,
    }
    with open(out / "benchmark.json", "w", encoding="utf-8") as handle:
        json.dump(jsonable(result), handle, indent=1)
    return result
