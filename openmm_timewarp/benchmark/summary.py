"""Figures of merit of benchmark runs: ESS per second, speed-ups over the best MD baseline, exploration.

Sampling. Every method runs independent replicas (chains) for the same wall-clock budget on the
same number of cores. ESS is computed per chain and summed over chains, then divided by the
method's wall-clock time (the sum over rounds of the longest replica of each round), so ESS/s is
per machine, not per core. A chain on which an observable is constant counts 0 for it.
Observables: sin/cos of phi and psi and the state indicators; for indicators the block estimate
(:func:`~openmm_timewarp.analysis.block_ess`, twenty blocks per chain) is reported beside the
windowed (Sokal) one, and every ratio uses the same estimator on both sides.

Speed-up of a method on an observable = its ESS/s over that of the best MD baseline on that
observable (the baseline method with the highest ESS/s there), with the rules of
:func:`openmm_timewarp.analysis.speed_up`: a method that misses a state the reference visits gets
speed-up 0 on the observables that state affects; a baseline that misses such a state has its ESS
replaced by an upper bound of 1 (also when choosing the best baseline), and the speed-up is then a
lower bound, "> X".

ESS figures are marked ``meaningful: false`` on every observable that a state the method never
visited affects (:func:`mark_meaningful`): an ESS of a quantity whose distribution the chain has
only partly seen measures nothing.

Exploration. The wall-clock time until each state is first visited, per replica; the median over
replicas, censored ("> T") when the state is not reached within the budget in enough replicas to
fix the median; and its ratio to the best MD baseline's median for that state.

Time to accuracy (:func:`accuracy_curves`, :func:`accuracy_summary`, the metric of
:mod:`.accuracy`). Each replica is one repeat: one worker process on one core for the whole
budget, with its own seed. At log-spaced checkpoints of its clock the populations of the three
macrostates (beta_C7eq, alphaR, phi_positive) are estimated from what the replica had by then
(its samples, weighted where it gives weights, or its own ``estimates`` where its
``population_source`` is "estimates", as for metadynamics' free-energy surface); the error is the
worst state's |ln(p / p_ref)| in kT (infinite while a state is unvisited); the curve reported is
the median over repeats with its spread. The time to 0.3 kT is the first checkpoint from which the
median stays below 0.3 kT, censored ("> budget") when it is not below at the end. Timewarp's
(``timewarp-mh``) time is compared with every other Boltzmann sampler's as peer time / Timewarp
time, with the censoring rules of :func:`.accuracy.time_ratio` ("> X", "< X" or undefined).
"""

import math

import numpy as np

from ..analysis import (
    REGION_NAMES,
    SpeedUp,
    compare_populations,
    dipeptide_observables,
    ess_summary,
    missed_states,
    population_errors_kT,
    speed_up,
    state_indicators,
    state_populations,
)
from ..analysis.divergence import jensen_shannon_divergence, periodic_bin_index
from ..analysis.observables import is_indicator
from ..analysis.populations import default_block_size
from ..analysis.speedup import observable_affected
from ..analysis.states import count_entries
from . import accuracy as _accuracy
from . import weighted as _weighted

BLOCKS_PER_CHAIN = 20
JSD_BINS = 36
BASELINE_ESS_BOUND = 1.0
TIMEWARP_METHOD = "timewarp-mh"
ACCURACY_CHECKPOINTS = 40


def round_wall_time(runs):
    """Wall-clock seconds of a round of replicas run at once: the longest one.

    Parameters
    ----------
    runs : sequence of dict
        Driver results with ``elapsed_s``.

    Returns
    -------
    float
    """
    return float(max(r["elapsed_s"] for r in runs))


def first_visits(wall_s, phi, psi, names=REGION_NAMES):
    """Wall-clock time of the first sample in each region.

    Parameters
    ----------
    wall_s, phi, psi : array_like, shape (n,)
        Sample times (s) and torsions (degrees) of one run.
    names : sequence of str
        Regions (see :mod:`openmm_timewarp.analysis.states`).

    Returns
    -------
    dict
        Region -> seconds, or None if never visited.
    """
    wall_s = np.asarray(wall_s, dtype=float)
    indicators = state_indicators(np.asarray(phi, dtype=float), np.asarray(psi, dtype=float))
    out = {}
    for name in names:
        hits = np.flatnonzero(indicators[name])
        out[name] = float(wall_s[hits[0]]) if len(hits) else None
    return out


def _weighted_histogram(phi, psi, weights, bins):
    i = periodic_bin_index(phi, bins)
    j = periodic_bin_index(psi, bins)
    return np.bincount(i * bins + j, weights=weights, minlength=bins * bins).reshape(bins, bins)


def _weighted_entry(chains, weights, block_size):
    entry = {"ess": _weighted.weighted_ess(chains, weights, "sokal"),
             "ess_geyer": _weighted.weighted_ess(chains, weights, "geyer")}
    if block_size is not None:
        entry["ess_blocks"] = _weighted.weighted_block_ess(chains, weights, block_size)
    return entry


def ess_table(chains_phi, chains_psi, wall_s, block_size, chains_w=None):
    """ESS of every alanine-dipeptide observable, summed over independent chains, and per second.

    Unweighted chains use :func:`openmm_timewarp.analysis.ess_summary` (per-chain Sokal, Geyer and
    block estimates, summed; a constant chain counts 0), weighted ones the per-chain estimates of
    :mod:`.weighted`.

    Parameters
    ----------
    chains_phi, chains_psi : sequence of array_like
        Torsions (degrees) of each chain (at least two samples each).
    wall_s : float
        Wall-clock seconds the chains took together (the divisor of ``*_per_s``).
    block_size : int
        Samples per block for the block estimate of the state indicators.
    chains_w : sequence of array_like, optional
        Importance weights of each chain.

    Returns
    -------
    dict
        Observable (see :func:`openmm_timewarp.analysis.dipeptide_observables`) -> ``samples``,
        ``ess``, ``ess_geyer``, ``ess_blocks`` (indicators only), each also ``*_per_s``, and
        ``iat_samples`` (samples / ESS: the autocorrelation time in samples; NaN for ESS 0).
    """
    observables = {}
    for phi, psi in zip(chains_phi, chains_psi):
        for name, series in dipeptide_observables(phi, psi).items():
            observables.setdefault(name, []).append(series)
    if chains_w is None:
        table = ess_summary(observables, wall_s=float(wall_s), block_size=block_size)
        for entry in table.values():
            entry.pop("iat_time", None)  # iat_samples, and iat_wall_s added by the caller
        return table
    samples = int(sum(len(c) for c in chains_phi))
    table = {}
    for name, chains in observables.items():
        entry = {"samples": samples, **_weighted_entry(chains, chains_w, block_size if is_indicator(name) else None)}
        entry["iat_samples"] = samples / entry["ess"] if entry["ess"] > 0 else float("nan")
        for key in ("ess", "ess_geyer", "ess_blocks"):
            if key in entry:
                entry[f"{key}_per_s"] = entry[key] / float(wall_s)
        table[name] = entry
    return table


def summarize_method(runs, wall_s, reference, reference_counts=None):
    """ESS, populations, reference agreement and first visits of one method's replicas.

    Parameters
    ----------
    runs : sequence of dict
        Driver results (see :mod:`.methods`), one per replica.
    wall_s : float
        Wall-clock seconds the method took (sum over rounds of :func:`round_wall_time`).
    reference : dict
        With ``populations`` and ``populations_stderr`` (:func:`openmm_timewarp.analysis.load_reference`).
    reference_counts : array_like, optional
        Reference (phi, psi) histogram on a periodic grid of ``JSD_BINS`` bins per angle.

    Returns
    -------
    dict
        ``chains``, ``samples``, ``wall_s``, ``acceptance_rate`` (accepted / proposals over all
        replicas, None without proposals), ``totals`` (summed counters), ``weighted``,
        ``block_size``, ``ess`` (observable -> ``ess``, ``ess_geyer``, ``ess_blocks`` for
        indicators, each also ``*_per_s``, and ``iat_samples``, ``iat_wall_s``, ``meaningful`` and
        ``unvisited_states``, see :func:`mark_meaningful`), ``populations``,
        ``populations_stderr``, ``comparison``, ``free_energy_error_kT``, ``missed_states``, ``jsd``,
        ``entries_into_phi_positive``, ``first_visit_s`` (per replica) and ``elapsed_s`` (per replica).
    """
    usable = [r for r in runs if len(r["phi"]) >= 2]
    weighted = any(r.get("weights") is not None for r in usable)
    chains_phi = [np.asarray(r["phi"], dtype=float) for r in usable]
    chains_psi = [np.asarray(r["psi"], dtype=float) for r in usable]
    chains_w = None
    if weighted:
        chains_w = [np.ones(len(r["phi"])) if r.get("weights") is None else np.asarray(r["weights"], dtype=float)
                    for r in usable]
    samples = int(sum(len(r["phi"]) for r in runs))
    totals = {}
    for run in runs:
        for key, value in run.get("stats", {}).items():
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
                    and key in ("samples", "md_steps", "simulated_ns", "moves", "proposals", "accepted",
                                "discarded", "chirality_rejections", "flow_time", "energy_time", "md_time"):
                totals[key] = totals.get(key, 0) + value
    proposals = totals.get("proposals", 0)
    out = {
        "chains": len(runs),
        "samples": samples,
        "wall_s": float(wall_s),
        "elapsed_s": [float(r["elapsed_s"]) for r in runs],
        "setup_s": [float(r.get("setup_s", 0.0)) for r in runs],
        "acceptance_rate": totals["accepted"] / proposals if proposals else None,
        "totals": totals,
        "weighted": weighted,
        "first_visit_s": [first_visits(r["wall_s"], r["phi"], r["psi"]) for r in runs],
    }
    if not usable:
        out.update(block_size=None, ess={}, populations={n: 0.0 for n in REGION_NAMES}, populations_stderr={},
                   missed_states=missed_states({}, reference["populations"]), jsd=None,
                   entries_into_phi_positive=0, comparison={}, free_energy_error_kT={})
        return out

    block_size = default_block_size(min(len(c) for c in chains_phi), BLOCKS_PER_CHAIN)
    ess = ess_table(chains_phi, chains_psi, float(wall_s), block_size, chains_w)
    wall_per_sample = sum(float(r["elapsed_s"]) for r in usable) / sum(len(c) for c in chains_phi)
    for entry in ess.values():
        entry["iat_wall_s"] = entry["iat_samples"] * wall_per_sample
    if weighted:
        indicators = {}
        for phi, psi in zip(chains_phi, chains_psi):
            for name, mask in state_indicators(phi, psi).items():
                indicators.setdefault(name, []).append(mask.astype(float))
        populations = _weighted.weighted_populations(indicators, chains_w, block_size)
        histogram = _weighted_histogram(np.concatenate(chains_phi), np.concatenate(chains_psi),
                                        np.concatenate(chains_w), JSD_BINS)
    else:
        populations = state_populations(chains_phi, chains_psi, block_size=block_size)
        histogram = _weighted_histogram(np.concatenate(chains_phi), np.concatenate(chains_psi), None, JSD_BINS)
    pops, errors = populations["populations"], populations["populations_stderr"]
    missed = missed_states(pops, reference["populations"])
    mark_meaningful(ess, missed)
    out.update(
        block_size=int(block_size),
        ess=ess,
        populations=pops,
        populations_stderr=errors,
        comparison=compare_populations(pops, errors, reference["populations"], reference.get("populations_stderr")),
        free_energy_error_kT=population_errors_kT(pops, reference["populations"]),
        missed_states=missed,
        jsd=None if reference_counts is None else jensen_shannon_divergence(histogram, reference_counts),
        entries_into_phi_positive=int(sum(count_entries(state_indicators(phi, psi)["phi_positive"])
                                          for phi, psi in zip(chains_phi, chains_psi))),
    )
    return out


# ------------------------------------------------------------------------------------------------
# Sampling speed-ups
# ------------------------------------------------------------------------------------------------

def _missed_for(observable, missed):
    return any(observable_affected(observable, state) for state in missed)


def mark_meaningful(ess, missed):
    """Mark the ESS entries of observables that a missed state affects as not meaningful (in place).

    Parameters
    ----------
    ess : dict
        Observable -> ESS entry (:func:`ess_table`).
    missed : sequence of str
        States the reference visits and the method never did.

    Returns
    -------
    dict
        ``ess``, each entry with ``meaningful`` (bool) and ``unvisited_states`` (the missed states
        that affect it, :func:`openmm_timewarp.analysis.speedup.observable_affected`).
    """
    for observable, entry in ess.items():
        entry["unvisited_states"] = [state for state in missed if observable_affected(observable, state)]
        entry["meaningful"] = not entry["unvisited_states"]
    return ess


def best_baselines(summaries, baselines, key="ess", bound=BASELINE_ESS_BOUND):
    """The baseline with the highest ESS/s on each observable.

    A baseline that misses a state affecting the observable (or has no positive ESS) counts with
    ESS ``bound``, as in the censoring rule.

    Parameters
    ----------
    summaries : dict
        Method name -> :func:`summarize_method` result.
    baselines : sequence of str
        Names of the baseline methods among ``summaries``.
    key : {"ess", "ess_geyer", "ess_blocks"}
        Which ESS estimate.
    bound : float
        ESS bound of a baseline that misses a state.

    Returns
    -------
    dict
        Observable -> ``method``, ``ess``, ``wall_s``, ``ess_per_s`` (the rate used, bound-based when
        censored) and ``censored`` (the best baseline's ESS is only bounded).
    """
    best = {}
    for name in baselines:
        summary = summaries[name]
        for observable, entry in summary["ess"].items():
            if key not in entry:
                continue
            ess = entry[key]
            censored = _missed_for(observable, summary["missed_states"]) or not ess > 0
            rate = (bound if censored else ess) / summary["wall_s"]
            current = best.get(observable)
            if current is None or rate > current["ess_per_s"]:
                best[observable] = {"method": name, "ess": float(ess), "wall_s": summary["wall_s"],
                                    "ess_per_s": float(rate), "censored": bool(censored)}
    return best


def method_speed_ups(summary, baselines, summaries, key="ess", bound=BASELINE_ESS_BOUND):
    """Speed-up of one method on every observable over the best baseline there.

    Parameters
    ----------
    summary : dict
        The method's :func:`summarize_method` result.
    baselines : dict
        From :func:`best_baselines` (same ``key``).
    summaries : dict
        Method name -> summary (for the baselines' missed states).
    key : str
        ESS estimate, as in :func:`best_baselines`.
    bound : float
        ESS bound of a baseline that misses a state.

    Returns
    -------
    dict
        Observable -> :class:`~openmm_timewarp.analysis.SpeedUp` as a dict, plus ``baseline`` (its name).
    """
    out = {}
    missed = summary["missed_states"]
    for observable, base in baselines.items():
        entry = summary["ess"].get(observable)
        run_missed = _missed_for(observable, missed)
        run_ess = float("nan") if entry is None else float(entry.get(key, float("nan")))
        if not run_missed and not math.isfinite(run_ess):
            value = SpeedUp(value=None, reason="undefined")
        else:
            base_summary = summaries[base["method"]]
            value = speed_up(0.0 if run_missed else run_ess, summary["wall_s"], base["ess"], base["wall_s"],
                             run_missed=run_missed,
                             baseline_missed=_missed_for(observable, base_summary["missed_states"]),
                             baseline_ess_bound=bound)
        out[observable] = {**value.to_dict(), "baseline": base["method"]}
    return out


# ------------------------------------------------------------------------------------------------
# Exploration
# ------------------------------------------------------------------------------------------------

def censored_median(times, bounds):
    """Median of first-visit times, some of them censored (state not reached within the run).

    Parameters
    ----------
    times : sequence of float or None
        First-visit time per run; None where the run never got there.
    bounds : sequence of float
        Each run's length (a censored time exceeds it).

    Returns
    -------
    dict
        ``median_s`` (None when censored), ``lower_bound_s`` (set when censored: the median exceeds
        it), ``censored``, ``visited`` (runs that got there), ``runs`` and ``text`` ("12.3 s" or "> 30 s").
    """
    if not len(times):
        raise ValueError("no runs")
    with_inf = np.array([math.inf if t is None else float(t) for t in times])
    with_bound = np.array([float(b) if t is None else float(t) for t, b in zip(times, bounds)])
    median = float(np.median(with_inf))
    visited = int(sum(t is not None for t in times))
    if math.isfinite(median):
        return {"median_s": median, "lower_bound_s": None, "censored": False, "visited": visited,
                "runs": len(times), "text": f"{median:.3g} s"}
    lower = float(np.median(with_bound))
    return {"median_s": None, "lower_bound_s": lower, "censored": True, "visited": visited, "runs": len(times),
            "text": f"> {lower:.3g} s"}


def _time_value(entry):
    return entry["median_s"] if not entry["censored"] else entry["lower_bound_s"]


def time_speed_up(run, baseline):
    """Ratio of the baseline's median first-visit time to the run's, with censoring.

    Parameters
    ----------
    run, baseline : dict
        From :func:`censored_median`.

    Returns
    -------
    dict
        ``value`` (None unless both are measured), ``lower_bound`` (baseline censored: "> X"),
        ``upper_bound`` (run censored: "< X"), ``censored``, ``text``.
    """
    out = {"value": None, "lower_bound": None, "upper_bound": None, "censored": True}
    if run["censored"] and baseline["censored"]:
        return {**out, "text": "n/a"}
    run_t, base_t = _time_value(run), _time_value(baseline)
    ratio = base_t / run_t if run_t > 0 else math.inf
    if baseline["censored"]:
        return {**out, "lower_bound": ratio, "text": f"> {ratio:.3g}"}
    if run["censored"]:
        return {**out, "upper_bound": ratio, "text": f"< {ratio:.3g}"}
    return {**out, "value": ratio, "censored": False, "text": f"{ratio:.3g}"}


def exploration_summary(summaries, baselines, names=REGION_NAMES):
    """Median first-visit times of every method and their ratio to the best baseline.

    Parameters
    ----------
    summaries : dict
        Method name -> :func:`summarize_method` result (``first_visit_s``, ``elapsed_s``).
    baselines : sequence of str
        Baseline method names.
    names : sequence of str
        Regions.

    Returns
    -------
    dict
        ``median`` (method -> region -> :func:`censored_median` result), ``best_baseline``
        (region -> method with the smallest median, censored ones counting with their bound) and
        ``speed_ups`` (non-baseline method -> region -> :func:`time_speed_up` result).
    """
    medians = {}
    for method, summary in summaries.items():
        medians[method] = {name: censored_median([v[name] for v in summary["first_visit_s"]], summary["elapsed_s"])
                           for name in names}
    best = {}
    for name in names:
        candidates = [b for b in baselines if b in medians]
        if candidates:
            best[name] = min(candidates, key=lambda b: (_time_value(medians[b][name]), medians[b][name]["censored"]))
    speed_ups = {}
    for method in summaries:
        if method in baselines or not best:
            continue
        speed_ups[method] = {name: {**time_speed_up(medians[method][name], medians[best[name]][name]),
                                    "baseline": best[name]} for name in names}
    return {"median": medians, "best_baseline": best, "speed_ups": speed_ups}


# ------------------------------------------------------------------------------------------------
# Time to accuracy
# ------------------------------------------------------------------------------------------------

def population_source(run):
    """Where a run's populations come from: "estimates", "weighted samples" or "samples".

    Parameters
    ----------
    run : dict
        Driver result.

    Returns
    -------
    str
    """
    if run.get("population_source") == "estimates":
        return "estimates"
    return "weighted samples" if run.get("weights") is not None else "samples"


def accuracy_curves(all_runs, budget_s, reference, threshold_kT=_accuracy.DEFAULT_THRESHOLD_KT,
                    num_checkpoints=ACCURACY_CHECKPOINTS, states=_accuracy.MACROSTATES):
    """Error-vs-time curves of every method over its repeats (one repeat per replica).

    Parameters
    ----------
    all_runs : dict
        Method name -> list of driver results (wall-clock times on each replica's own clock).
    budget_s : float
        Wall-clock budget of each replica (s): the last checkpoint.
    reference : dict
        With ``populations`` (:func:`openmm_timewarp.analysis.load_reference`), or state -> population.
    threshold_kT : float
    num_checkpoints : int
        Log-spaced from a thousandth of the budget to the budget (:func:`.accuracy.checkpoint_times`).
    states : sequence of str
        Macrostates scored.

    Returns
    -------
    dict
        Method name -> :func:`.accuracy.summarize_repeats` output.
    """
    times = _accuracy.checkpoint_times(float(budget_s), int(num_checkpoints))
    populations = reference.get("populations", reference)
    ref = {s: float(populations[s]) for s in states}
    return {name: _accuracy.summarize_repeats(runs, times, ref, threshold_kT, float(budget_s), states)
            for name, runs in all_runs.items() if runs}


def _final_populations(runs, budget_s, reference, states):
    finals = {s: [] for s in states}
    for run in runs:
        curve = _accuracy.error_curve(run, [float(budget_s)], reference, states)
        for s in states:
            finals[s].append(float(curve["populations"][s][0]))
    return finals


def _repeats_never_visiting(runs, states):
    """State -> number of repeats whose samples never entered it (whatever the population source)."""
    counts = {s: 0 for s in states}
    for run in runs:
        indicators = state_indicators(np.asarray(run["phi"], dtype=float), np.asarray(run["psi"], dtype=float))
        for s in states:
            counts[s] += int(not np.any(indicators[s]))
    return counts


def _method_accuracy(runs, curve, budget_s, reference, states, boltzmann):
    finals = _final_populations(runs, budget_s, reference, states)
    sources = sorted({population_source(r) for r in runs})
    return {
        "population_source": sources[0] if len(sources) == 1 else sources,
        "boltzmann": bool(boltzmann),
        "repeats": len(runs),
        "time_to_threshold": curve["time_to_threshold"].to_dict(),
        "final_error_kT": curve["final_error"],
        "final_errors_kT": curve["final_errors"].tolist(),
        "final_populations": finals,
        "repeats_never_visiting": _repeats_never_visiting(runs, states),
        "median_kT": curve["median"].tolist(),
        "minimum_kT": curve["minimum"].tolist(),
        "maximum_kT": curve["maximum"].tolist(),
        "lower_quartile_kT": curve["lower_quartile"].tolist(),
        "upper_quartile_kT": curve["upper_quartile"].tolist(),
        "worst_kT": curve["worst"].tolist(),
    }


def accuracy_summary(all_runs, curves, budget_s, reference, boltzmann=None, timewarp=TIMEWARP_METHOD,
                     states=_accuracy.MACROSTATES):
    """The time-to-accuracy part of ``benchmark.json``: curves, times to threshold, Timewarp's ratios.

    Parameters
    ----------
    all_runs : dict
        Method name -> list of driver results.
    curves : dict
        From :func:`accuracy_curves` (same runs).
    budget_s : float
    reference : dict
        With ``populations``, or state -> population.
    boltzmann : dict, optional
        Method name -> whether it samples the Boltzmann distribution; only those are compared with
        Timewarp (default: all).
    timewarp : str
        The Timewarp method the ratios refer to.
    states : sequence of str

    Returns
    -------
    dict
        ``metric``, ``states``, ``reference_populations``, ``threshold_kT``, ``budget_s``,
        ``checkpoints_s``, ``repeat`` (what one repeat is), ``timewarp_method`` (None if not run),
        ``methods`` (name -> ``population_source``, ``boltzmann``, ``repeats``, ``time_to_threshold``
        (``value``, ``censored``, ``budget_s``, ``threshold_kT``, ``text``), ``final_error_kT``
        (median at the budget), ``final_errors_kT`` and ``final_populations`` (per repeat),
        ``repeats_never_visiting`` (state -> repeats whose samples never entered it: a method scored
        on its own estimates, such as metadynamics, can give a state a population without
        visiting it), ``median_kT``, ``minimum_kT``, ``maximum_kT``,
        ``lower_quartile_kT``, ``upper_quartile_kT`` (per checkpoint) and ``worst_kT`` (per repeat and
        checkpoint)), ``ratios`` (peer -> :class:`.accuracy.TimeRatio` as a dict), ``ratio_definition``
        and ``not_compared`` (methods left out of the ratios, with the reason).
    """
    populations = reference.get("populations", reference)
    ref = {s: float(populations[s]) for s in states}
    boltzmann = {name: True for name in curves} if boltzmann is None else dict(boltzmann)
    threshold = None
    methods = {}
    for name, curve in curves.items():
        threshold = curve["time_to_threshold"].threshold_kT
        methods[name] = _method_accuracy(all_runs[name], curve, budget_s, ref, states, boltzmann.get(name, True))
    ratios, not_compared = {}, {}
    if timewarp in curves:
        compared = {n: c for n, c in curves.items() if n == timewarp or boltzmann.get(n, True)}
        ratios = {n: r.to_dict() for n, r in _accuracy.compare_methods(compared, timewarp).items()}
        not_compared = {n: "not a Boltzmann sampler" for n in curves if n not in compared}
    times = next(iter(curves.values()))["times"] if curves else np.empty(0)
    return {
        "metric": "worst over the macrostates of |ln(p(t) / p_ref)| (kT), median over repeats",
        "states": list(states),
        "reference_populations": ref,
        "threshold_kT": threshold if threshold is not None else _accuracy.DEFAULT_THRESHOLD_KT,
        "budget_s": float(budget_s),
        "checkpoints_s": np.asarray(times).tolist(),
        "repeat": "one replica: one worker process on one core for the whole budget, its own seed; populations "
                  "at a checkpoint use only what that replica had produced by then",
        "timewarp_method": timewarp if timewarp in curves else None,
        "methods": methods,
        "ratios": ratios,
        "ratio_definition": f"peer's time to threshold / {timewarp}'s (> 1: {timewarp} gets there sooner); "
                            "'> X': only Timewarp gets there (X = peer budget / Timewarp time); '< X': only the "
                            "peer does (X = peer time / Timewarp budget); 'undefined': neither does",
        "not_compared": not_compared,
    }
