"""Run every method for the same wall-clock budget on the same cores, in one invocation.

Each method runs ``repeats`` independent replicas, ``cores`` at a time, one per core, in worker
processes ("spawn", one torch and OpenMM thread each); methods run one after another, so each
has the whole machine. Replica k of every method starts from the same configuration: the
molecule's minimised structure after 10 ps of MD seeded with k. Everything a method does after
that, set-up included (building Contexts, loading and binding a model), is on its clock, and a
sample is recorded after every unit of its work (:mod:`openmm_timewarp.lab.samplers`).

:func:`run_benchmark` writes into its output folder ``benchmark.json`` (settings, machine, every
figure), ``samples.npz`` (thinned torsion series of every replica, for figures) and PNGs, and
returns the JSON's content.
"""

import os
import platform
import time
from concurrent.futures import wait
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ... import __version__
from ..analysis.observables import observables_of
from ..jsonio import dump_json
from ..samplers import equilibrate, run_for
from ..workers import worker_pool
from . import metrics
from .methods import get_method

EQUILIBRATION_PS = 10.0
MAX_STORED_SAMPLES = 4000  # per replica in samples.npz


class BenchmarkError(RuntimeError):
    """A replica of a method failed; the message names the method and the cause."""


def _replica(method_name: str, molecule, seed: int, budget_s: float, options: Dict[str, Any],
             start: np.ndarray) -> Dict[str, Any]:
    """One replica of one method (in a worker process)."""
    method = get_method(method_name)
    observables = observables_of(molecule.topology)
    sampler = method.build(molecule, seed, options)
    recording = run_for(sampler, start, budget_s, observables.values)
    return {"wall_s": recording.wall_s, "values": recording.values.astype(np.float32),
            "log_weights": recording.log_weights, "setup_s": recording.setup_s, "elapsed_s": recording.elapsed_s,
            "statistics": recording.statistics, "unit": sampler.unit, "boltzmann": sampler.boltzmann}


def _progress_bar(total_s: float, description: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=round(total_s), desc=description, unit="s", disable=not enabled, leave=False)


def run_benchmark(molecule, methods: Sequence[str], budget_s: float, repeats: int = 4, cores: Optional[int] = None,
                  seed: int = 1, options: Optional[Dict[str, Any]] = None, reference=None, out: Optional[str] = None,
                  progress: bool = True, title: str = "") -> Dict[str, Any]:
    """Run ``methods`` on ``molecule`` and compute every figure of :mod:`.metrics`.

    Parameters
    ----------
    molecule : openmm_timewarp.lab.molecule.Molecule
    methods : sequence of str
        Registered method names (:mod:`.methods`).
    budget_s : float
        Wall-clock seconds per replica, set-up included.
    repeats : int
        Replicas per method.
    cores : int, optional
        Replicas at once (default: every core, at most ``repeats``).
    seed : int
        Replica k is seeded with ``seed + k`` (the same for every method).
    options : dict, optional
        ``flow`` (model name or file) and move settings for the Timewarp methods.
    reference : openmm_timewarp.lab.analysis.reference.Reference, optional
        What populations are scored against.
    out : str, optional
        Output folder.

    Raises
    ------
    BenchmarkError
        A replica failed (the message names the method).
    """
    options = dict(options or {})
    for name in methods:
        get_method(name)  # unknown names fail before any work
    cores = max(1, min(cores or os.cpu_count() or 1, repeats))
    observables = observables_of(molecule.topology)
    starts = [equilibrate(molecule, EQUILIBRATION_PS, seed + k) for k in range(repeats)]
    recordings: Dict[str, List[Dict[str, Any]]] = {}
    with worker_pool(cores) as pool:
        for name in methods:
            rounds = -(-repeats // cores)
            with _progress_bar(rounds * budget_s, name, progress) as bar:
                futures = [pool.submit(_replica, name, molecule, seed + k, budget_s, options, starts[k])
                           for k in range(repeats)]
                begun = time.perf_counter()
                pending = set(futures)
                while pending:
                    _, pending = wait(pending, timeout=0.5)
                    bar.n = min(round(time.perf_counter() - begun), bar.total)
                    bar.refresh()
            try:
                recordings[name] = [f.result() for f in futures]
            except Exception as error:
                raise BenchmarkError(f"method {name!r} failed: {type(error).__name__}: {error}") from error
    summaries = {name: metrics.summarize(recordings[name], observables, reference, budget_s,
                                         recordings[name][0]["boltzmann"]) for name in methods}
    for name in methods:
        summaries[name]["unit"] = recordings[name][0]["unit"]
        summaries[name]["role"] = get_method(name).role
        summaries[name]["description"] = get_method(name).description
    roles = {name: get_method(name).role for name in methods}
    result = {
        "title": title or molecule.name,
        "molecule": {"name": molecule.name, "atoms": len(molecule.positions), "preset": molecule.preset_name,
                     "temperature_K": molecule.temperature_K},
        "settings": {"budget_s": budget_s, "repeats": repeats, "cores": cores, "seed": seed, "options": options,
                     "methods": list(methods), "equilibration_ps": EQUILIBRATION_PS,
                     "budget_accounting": "every method's set-up (Contexts, model loading and binding) is on its "
                                          "clock; a sample is recorded after every unit of its work"},
        "reference": None if reference is None else {"molecule": reference.molecule, "provenance": reference.provenance,
                                                     "states": reference.states},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "openmm_timewarp": __version__},
        "torsions": observables.names,
        "methods": summaries,
        "comparisons": metrics.compare(summaries, [n for n in methods if roles[n] == "baseline"],
                                       [n for n in methods if roles[n] == "peer"]),
    }
    if out:
        os.makedirs(out, exist_ok=True)
        _write_samples(os.path.join(out, "samples.npz"), recordings)
        with open(os.path.join(out, "benchmark.json"), "w") as handle:
            dump_json(result, handle, nonfinite="number", indent=1)
        from .figures import write_figures

        result["figures"] = write_figures(result, recordings, observables, reference, out)
    return result


def _write_samples(path: str, recordings: Dict[str, List[Dict[str, Any]]]) -> None:
    """Thinned series of every replica: ``<method>__<k>__{wall_s,torsions,log_weights}``."""
    arrays = {}
    for name, replicas in recordings.items():
        for k, r in enumerate(replicas):
            stride = max(1, len(r["wall_s"]) // MAX_STORED_SAMPLES)
            arrays[f"{name}__{k}__wall_s"] = r["wall_s"][::stride].astype(np.float32)
            arrays[f"{name}__{k}__torsions"] = r["values"][::stride].astype(np.float32)
            arrays[f"{name}__{k}__log_weights"] = r["log_weights"][::stride].astype(np.float32)
    np.savez_compressed(path, **arrays)
