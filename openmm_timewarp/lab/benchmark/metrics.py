"""Figures of merit of a benchmark, from the recorded samples of every replica of every method.

Per method (replicas pooled as independent chains, blocks of equal wall-clock time within each):

- for every macrostate: population with block standard error, |ln(p / p_ref)| and the z-score
  against the reference (both errors), block ESS (and, for unweighted samples, the windowed Sokal
  ESS) and ESS per second per core (ESS summed over replicas / seconds summed over replicas);
- the recording check: block ESS of every second sample over that of all samples (near 1: samples
  were recorded often enough that ESS per second no longer rises);
- first-visit times of every state (median over replicas; per replica, the recorded wall-clock time
  of its first sample in the state, see :mod:`openmm_timewarp.lab.analysis.states`) and the states
  a replica never visited;
- time to accuracy: per replica, the time after which the worst |ln(p / p_ref)| over the checked
  states (reference population >= 1%) stays below 0.3 kT; the median over replicas.

Between methods: ESS-per-second speed-ups over the best plain-MD baseline and ratios of times to
accuracy, each a :class:`CensoredRatio` (a lower or upper bound where one side never got there).
"""

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..analysis.estimates import log_ratio_error, state_estimates
from ..analysis.states import first_visit, state_table

ACCURACY_KT = 0.3
CHECK_THRESHOLD = 0.01
NUM_BLOCKS = 20
NUM_CHECKPOINTS = 60


@dataclass(frozen=True)
class CensoredRatio:
    """A ratio or time that may be only a bound: ``value`` exactly ("="), at least (">") or at most ("<")."""

    value: float
    bound: str = "="

    def text(self, digits: int = 3) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "-"
        number = f"{self.value:.{digits}g}"
        return number if self.bound == "=" else f"{self.bound} {number}"

    def to_json(self) -> Dict[str, Any]:
        return {"value": self.value, "bound": self.bound, "text": self.text()}


def ratio(numerator: float, denominator: float, denominator_floor: float) -> CensoredRatio:
    """numerator / denominator; where the denominator is zero, a lower bound with it at ``denominator_floor``."""
    if not numerator > 0:
        return CensoredRatio(0.0)
    if denominator > 0:
        return CensoredRatio(numerator / denominator)
    return CensoredRatio(numerator / denominator_floor, ">")


def censored_median(times: Sequence[Optional[float]], limit: float) -> CensoredRatio:
    """Median of times where None means "not within ``limit``": "> limit" when more than half are None, and
    "> (t + limit) / 2" when exactly half are (t the largest time that is not None)."""
    values = sorted(math.inf if t is None else float(t) for t in times)
    if not values:
        return CensoredRatio(float("nan"))
    lower = values[(len(values) - 1) // 2]
    middle = lower if len(values) % 2 else 0.5 * (lower + values[len(values) // 2])
    if not math.isfinite(middle):
        return CensoredRatio(0.5 * (lower + float(limit)) if math.isfinite(lower) else float(limit), ">")
    return CensoredRatio(middle)


def time_to_accuracy(wall_s: np.ndarray, indicators: Dict[str, np.ndarray], log_weights: np.ndarray,
                     reference: Dict[str, float], checkpoints: np.ndarray) -> Dict[str, Any]:
    """Worst |ln(p / p_ref)| over ``reference``'s states at each checkpoint, and the time it stays below 0.3 kT."""
    worst = []
    order_w = np.exp(log_weights - log_weights.max()) if len(log_weights) else log_weights
    cumulative_w = np.cumsum(order_w)
    cumulative = {s: np.cumsum(order_w * indicators[s]) for s in reference}
    for t in checkpoints:
        n = int(np.searchsorted(wall_s, t, side="right"))
        if n == 0:
            worst.append(math.inf)
            continue
        worst.append(max(log_ratio_error(cumulative[s][n - 1] / cumulative_w[n - 1], p) for s, p in reference.items()))
    worst = np.asarray(worst)
    below = worst < ACCURACY_KT
    time, bound = None, "="
    if below[-1]:
        last_bad = np.nonzero(~below)[0]
        if len(last_bad):
            time = float(checkpoints[last_bad[-1] + 1])
        else:  # accurate at the first checkpoint already: at most that
            time, bound = float(checkpoints[0]), "<"
    return {"worst_error_kT": [float(w) for w in worst], "time_s": time, "bound": bound}


def summarize(recordings: List[Dict[str, Any]], observables, reference, budget_s: float, boltzmann: bool = True
              ) -> Dict[str, Any]:
    """Every per-method figure (see the module docstring) from its replicas' recordings.

    Parameters
    ----------
    recordings : list of dict
        Per replica: ``wall_s``, ``values`` (torsions [n, T]), ``log_weights``, ``elapsed_s``,
        ``setup_s``, ``statistics``.
    observables : openmm_timewarp.lab.analysis.peptide.PeptideObservables
    reference : openmm_timewarp.lab.analysis.reference.Reference or None
    budget_s : float
    boltzmann : bool
        Whether the method samples the Boltzmann distribution (else populations are not scored).
    """
    names = observables.state_names(extra=True)
    lengths = [len(r["wall_s"]) for r in recordings]
    values = np.concatenate([r["values"] for r in recordings])
    wall = np.concatenate([r["wall_s"] for r in recordings])
    log_w = np.concatenate([r["log_weights"] for r in recordings])
    weighted = bool(np.any(log_w != 0))
    indicators = observables.indicators(values, extra=True)
    seconds = float(sum(r["elapsed_s"] for r in recordings))
    thinned = _thinned(indicators, log_w, lengths, wall)
    checked = reference.checked_states(observables, CHECK_THRESHOLD) if reference is not None else []
    table = state_table({s: indicators[s] for s in names}, NUM_BLOCKS, wall_s=seconds, wall_times_s=wall,
                        log_weights=log_w, lengths=lengths,
                        reference_states=reference.states if reference is not None and boltzmann else None)
    states = {}
    for name, row in table.items():
        entry = row.to_dict()
        entry["recording_ratio"] = thinned[name] / row.ess_block if row.ess_block > 0 else None
        if row.reference is not None:
            entry["checked"] = name in checked
        states[name] = entry
    offsets = np.cumsum([0] + lengths)
    visits, accuracy = {}, []
    checkpoints = np.geomspace(budget_s / 1000.0, budget_s, NUM_CHECKPOINTS)
    for k, r in enumerate(recordings):
        part = {s: indicators[s][offsets[k]:offsets[k + 1]] for s in names}
        visits[k] = {s: first_visit(part[s], r["wall_s"]) for s in names}  # at the recorded times
        if checked and boltzmann:
            accuracy.append(time_to_accuracy(r["wall_s"], part, r["log_weights"],
                                             {s: reference.population(s) for s in checked}, checkpoints))
    stats = _sum_statistics([r["statistics"] for r in recordings])
    summary = {
        "replicas": len(recordings), "samples": int(sum(lengths)), "seconds": seconds,
        "setup_s": [float(r["setup_s"]) for r in recordings], "weighted": weighted, "boltzmann": boltzmann,
        "states": states, "checked_states": checked,
        "first_visit_s": {s: censored_median([visits[k][s] for k in visits], budget_s).to_json() for s in names},
        "missed": {s: [k for k in visits if visits[k][s] is None] for s in names if any(visits[k][s] is None for k in visits)},
        "statistics": stats,
    }
    if accuracy:
        summary["accuracy"] = {"checkpoints_s": [float(c) for c in checkpoints],
                               "worst_error_kT": [a["worst_error_kT"] for a in accuracy],
                               "replica_times_s": [a["time_s"] for a in accuracy],
                               "time_to_accuracy_s": _accuracy_median(accuracy, budget_s).to_json()}
    return summary


def _accuracy_median(accuracy: List[Dict[str, Any]], budget_s: float) -> CensoredRatio:
    """The median time to accuracy; "<" when the median replica was accurate at the first checkpoint."""
    median = censored_median([a["time_s"] for a in accuracy], budget_s)
    if median.bound == "=" and all(a["bound"] == "<" for a in accuracy if a["time_s"] is not None and
                                   a["time_s"] >= median.value):
        return CensoredRatio(median.value, "<")
    return median


def _thinned(indicators, log_w, lengths, wall) -> Dict[str, float]:
    """Block ESS of every second sample (the recording check)."""
    keep = np.concatenate([np.arange(0, n, 2) + o for n, o in zip(lengths, np.cumsum([0] + lengths)[:-1])])
    half = [(n + 1) // 2 for n in lengths]
    est = state_estimates({s: v[keep] for s, v in indicators.items()}, log_w[keep], half, NUM_BLOCKS, wall[keep])
    return {s: e["ess"] for s, e in est.items()}


def _sum_statistics(statistics: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Counters summed over replicas (numbers), the first replica's value otherwise; acceptance recomputed."""
    total: Dict[str, Any] = {}
    for stats in statistics:
        for key, value in stats.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "acceptance_rate":
                total[key] = total.get(key, 0) + value
            elif isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values()):
                inner = total.setdefault(key, {})
                for k, v in value.items():
                    inner[k] = inner.get(k, 0) + v
            else:
                total.setdefault(key, value)
    if total.get("proposals"):
        total["acceptance_rate"] = total["accepted"] / total["proposals"]
        for name, count in total.get("component_proposals", {}).items():
            total.setdefault("component_acceptance", {})[name] = (total["component_accepted"][name] / count
                                                                  if count else None)
    return total


def compare(summaries: Dict[str, Dict[str, Any]], baselines: Sequence[str], peers: Sequence[str]) -> Dict[str, Any]:
    """Speed-ups over the best baseline per state (block and window ESS/s) and time-to-accuracy ratios."""
    out: Dict[str, Any] = {}
    baselines = [b for b in baselines if b in summaries]
    for method, summary in summaries.items():
        if not summary["boltzmann"]:
            continue
        entry: Dict[str, Any] = {"speed_up": {}, "vs_peers": {}}
        for state, figures in summary["states"].items():
            for key in ("ess_block_per_s", "ess_window_per_s"):
                if key not in figures or method in baselines or not baselines:
                    continue
                rates = [(summaries[b]["states"][state].get(key, 0.0) or 0.0, b) for b in baselines]
                best, name = max(rates)
                # used only when every baseline has none: at most one effective sample in any baseline's run
                floor = max(1.0 / summaries[b]["seconds"] for b in baselines)
                missed = summary["missed"].get(state)
                value = CensoredRatio(0.0) if missed else ratio(figures[key], best, floor)
                entry["speed_up"].setdefault(state, {})[key] = dict(value.to_json(), baseline=name)
            for peer in peers:
                if peer == method or peer not in summaries:
                    continue
                own = summary["states"][state].get("ess_block_per_s", 0.0)
                other = summaries[peer]["states"][state].get("ess_block_per_s", 0.0)
                entry["vs_peers"].setdefault(peer, {})[state] = ratio(own, other, 1.0 / summaries[peer]["seconds"]).to_json()
        if "accuracy" in summary:
            own = summary["accuracy"]["time_to_accuracy_s"]
            for peer in list(peers) + list(baselines):
                if peer == method or "accuracy" not in summaries.get(peer, {}):
                    continue
                other = summaries[peer]["accuracy"]["time_to_accuracy_s"]
                entry["vs_peers"].setdefault(peer, {})["time_to_accuracy"] = _time_ratio(own, other).to_json()
        out[method] = entry
    return out


def _time_ratio(own: Dict[str, Any], other: Dict[str, Any]) -> CensoredRatio:
    """own / other for two times that may be bounds ("<": at most, ">": more than)."""
    value = own["value"] / other["value"]
    if own["bound"] == "=" and other["bound"] == "=":
        return CensoredRatio(value)
    if own["bound"] in ("=", "<") and other["bound"] in ("=", ">"):
        return CensoredRatio(value, "<")
    if own["bound"] in ("=", ">") and other["bound"] in ("=", "<"):
        return CensoredRatio(value, ">")
    return CensoredRatio(float("nan"))
