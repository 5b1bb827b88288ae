"""Accuracy of a sampling run against reference populations, as a function of wall-clock time.

Every method in the benchmark is scored the same way. At a set of checkpoint times t, the populations
of the alanine-dipeptide macrostates (``MACROSTATES``: beta_C7eq, alphaR, phi_positive, which partition
the Ramachandran plane) are estimated from what the run had produced by t, and compared with the
reference populations as free energies:

    error_s(t) = |ln(p_s(t) / p_ref_s)|   (kT),

infinite for a state with zero population (never visited) and for checkpoints before the first sample.
A run's error at t is the worst state's error. Over R repeats of a method, the curve reported is the
median of the worst error at each checkpoint, with its spread (min-max or quartiles).

- **time to threshold** (default 0.3 kT): the first checkpoint from which the median curve stays below
  the threshold until the end of the budget. A curve that dips below and comes back up is not there yet.
  A method that never gets there is censored: ``TimeToThreshold(value=None, censored=True, budget_s=...)``,
  never a made-up number.
- **ratio** of a peer's time to Timewarp's (> 1: Timewarp is faster). If Timewarp gets there and the
  peer is censored, only a lower bound is known, peer budget / Timewarp time; if Timewarp is censored
  and the peer is not, an upper bound, peer time / Timewarp budget; if both are censored it is undefined.

Populations at t come either from the samples with ``wall_s <= t`` (weighted when the run gives
``weights``), or, for a run that reports its own estimates (``population_source == "estimates"``, such
as a metadynamics free-energy surface), from the latest estimate made at or before t.

Only numpy is imported at module level; the plot imports matplotlib.
"""

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

MACROSTATES = ("beta_C7eq", "alphaR", "phi_positive")
DEFAULT_THRESHOLD_KT = 0.3
SPREADS = ("minmax", "quartiles")


def as_seconds(value):
    """Seconds as a float, from a float (seconds) or an openmm.unit time Quantity.

    Parameters
    ----------
    value : float or openmm.unit.Quantity

    Returns
    -------
    float
    """
    if hasattr(value, "value_in_unit"):
        from openmm import unit

        return float(value.value_in_unit(unit.second))
    return float(value)


def checkpoint_times(budget_s, num=50, first_s=None):
    """Checkpoint times, geometrically spaced up to and including the budget.

    Geometric spacing resolves a fast method's time to threshold as finely (relatively) as a slow
    one's, and suits the log-log error plot.

    Parameters
    ----------
    budget_s : float or openmm.unit.Quantity
        Wall-clock budget (seconds if a float); the last checkpoint.
    num : int
        Number of checkpoints (at least 2).
    first_s : float or openmm.unit.Quantity, optional
        First checkpoint; default a thousandth of the budget.

    Returns
    -------
    numpy.ndarray of float, shape (num,)
        Seconds, increasing; the last one equals the budget.
    """
    budget = as_seconds(budget_s)
    first = budget / 1000.0 if first_s is None else as_seconds(first_s)
    if budget <= 0 or not 0 < first <= budget:
        raise ValueError(f"need 0 < first_s <= budget_s, got first_s={first}, budget_s={budget}")
    if int(num) < 2:
        raise ValueError(f"need at least 2 checkpoints, got {num}")
    times = np.geomspace(first, budget, int(num))
    times[-1] = budget
    return times


def _state_matrix(phi, psi, states):
    from ..analysis import state_indicators

    indicators = state_indicators(phi, psi)
    unknown = [s for s in states if s not in indicators]
    if unknown:
        raise ValueError(f"unknown state(s) {unknown}; known: {sorted(indicators)}")
    return np.stack([indicators[s] for s in states], axis=-1).astype(float).reshape(-1, len(states))


def populations_at(wall_s, phi, psi, times, weights=None, states=MACROSTATES):
    """State populations from the samples recorded by each checkpoint time.

    Parameters
    ----------
    wall_s : array_like, shape (n,)
        Wall-clock time of each sample (s), non-decreasing.
    phi, psi : array_like, shape (n,)
        Torsions in degrees.
    times : array_like, shape (m,)
        Checkpoint times (s).
    weights : array_like, shape (n,), optional
        Non-negative sample weights (e.g. from reweighting a biased run); default uniform.
    states : sequence of str
        Regions (names from ``openmm_timewarp.analysis.REGION_NAMES``).

    Returns
    -------
    dict
        State -> numpy.ndarray (m,): the weighted fraction of the samples with ``wall_s <= t`` in the
        state; NaN at checkpoints before the first sample (or with zero total weight).
    """
    wall = np.asarray(wall_s, dtype=float).reshape(-1)
    times = np.asarray(times, dtype=float).reshape(-1)
    if len(wall) and np.any(np.diff(wall) < 0):
        raise ValueError("wall_s must be non-decreasing")
    w = np.ones(len(wall)) if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    if len(w) != len(wall) or np.size(phi) != len(wall) or np.size(psi) != len(wall):
        raise ValueError(f"wall_s, phi, psi and weights must have the same length ({len(wall)})")
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    states = tuple(states)
    inside = _state_matrix(np.reshape(phi, -1), np.reshape(psi, -1), states)
    cum_w = np.concatenate([[0.0], np.cumsum(w)])
    cum_s = np.vstack([np.zeros((1, len(states))), np.cumsum(inside * w[:, None], axis=0)])
    count = np.searchsorted(wall, times, side="right")
    total = cum_w[count]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(total[:, None] > 0, cum_s[count] / total[:, None], np.nan)
    return {s: p[:, k] for k, s in enumerate(states)}


def estimates_at(estimates, times, states=MACROSTATES):
    """The populations in effect at each checkpoint: the latest estimate made at or before it.

    Parameters
    ----------
    estimates : sequence of (float, dict)
        (wall-clock time in s, {state: population}), in time order.
    times : array_like, shape (m,)
    states : sequence of str

    Returns
    -------
    dict
        State -> numpy.ndarray (m,); NaN before the first estimate.
    """
    times = np.asarray(times, dtype=float).reshape(-1)
    stamps = np.array([float(t) for t, _ in estimates], dtype=float)
    if len(stamps) and np.any(np.diff(stamps) < 0):
        raise ValueError("estimates must be in time order")
    index = np.searchsorted(stamps, times, side="right") - 1
    out = {}
    for s in states:
        values = np.array([float(e[s]) for _, e in estimates] + [np.nan])
        out[s] = values[np.where(index >= 0, index, len(stamps))]
    return out


def absolute_errors_kT(populations, reference, states=MACROSTATES):
    """|ln(p / p_ref)| per state, in kT; infinite for a zero or missing (NaN) population.

    Parameters
    ----------
    populations : dict
        State -> float or array.
    reference : dict
        State -> reference population (positive).
    states : sequence of str

    Returns
    -------
    dict
        State -> float or numpy.ndarray (the shape of the populations).
    """
    out = {}
    for s in states:
        p = np.asarray(populations[s], dtype=float)
        q = float(reference[s])
        if not q > 0:
            raise ValueError(f"reference population of {s} must be positive, got {q}")
        with np.errstate(divide="ignore", invalid="ignore"):
            error = np.abs(np.log(p / q))
        error = np.where(np.isfinite(error), error, np.inf)
        out[s] = float(error) if error.ndim == 0 else error
    return out


def worst_error(errors, states=None):
    """The largest error over states.

    Parameters
    ----------
    errors : dict
        State -> float or array (same shapes).
    states : sequence of str, optional
        Default: every key.

    Returns
    -------
    float or numpy.ndarray
    """
    states = tuple(errors) if states is None else tuple(states)
    worst = np.max(np.stack([np.asarray(errors[s], dtype=float) for s in states]), axis=0)
    return float(worst) if np.ndim(worst) == 0 else worst


def _reference_populations(reference):
    if reference is None:
        from ..analysis import load_reference

        reference = load_reference()
    return reference.get("populations", reference)


def error_curve(result, times, reference=None, states=MACROSTATES, source=None):
    """Population error of one run at each checkpoint.

    Parameters
    ----------
    result : dict
        A method's output: ``wall_s``, ``phi``, ``psi`` (arrays), optional ``weights``, optional
        ``estimates`` (list of (wall_s, {state: population})) and ``population_source``.
    times : array_like
        Checkpoint times (s).
    reference : dict, optional
        Reference populations (state -> population), or a dict with ``populations`` such as
        ``openmm_timewarp.analysis.load_reference()`` (the default).
    states : sequence of str
    source : {"samples", "estimates"}, optional
        Where the populations come from; default ``result.get("population_source", "samples")``.

    Returns
    -------
    dict
        ``times``, ``populations`` and ``errors`` (state -> array), ``worst`` (array).
    """
    reference = _reference_populations(reference)
    times = np.asarray(times, dtype=float)
    source = result.get("population_source", "samples") if source is None else source
    if source == "samples":
        populations = populations_at(result["wall_s"], result["phi"], result["psi"], times,
                                     result.get("weights"), states)
    elif source == "estimates":
        populations = estimates_at(result["estimates"], times, states)
    else:
        raise ValueError(f"unknown population source {source!r}; use 'samples' or 'estimates'")
    errors = absolute_errors_kT(populations, reference, states)
    return {"times": times, "populations": populations, "errors": errors, "worst": worst_error(errors, states)}


def quantile(values, q):
    """Quantiles along the first axis (linear interpolation) that handle infinite values.

    ``numpy.quantile`` returns NaN when it interpolates towards +inf; here the result is +inf
    whenever the interpolation involves an infinite value with a non-zero weight.

    Parameters
    ----------
    values : array_like, shape (R, ...)
        No NaN; +inf allowed.
    q : float
        In [0, 1].

    Returns
    -------
    numpy.ndarray, shape (...)
    """
    ordered = np.sort(np.asarray(values, dtype=float), axis=0)
    if ordered.shape[0] == 0:
        raise ValueError("no values")
    h = float(q) * (ordered.shape[0] - 1)
    lo, hi = int(np.floor(h)), int(np.ceil(h))
    frac = h - lo
    a, b = ordered[lo], ordered[hi]
    if frac == 0.0:
        return a
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(b) | np.isinf(a), np.inf, a + frac * (b - a))


@dataclass(frozen=True)
class TimeToThreshold:
    """Wall-clock time after which an error curve stays below a threshold.

    Attributes
    ----------
    value : float or None
        Seconds; None when censored.
    censored : bool
        True when the curve is not below the threshold at the end of the budget: the time is only
        known to exceed ``budget_s``.
    budget_s : float
        The run's wall-clock budget (s).
    threshold_kT : float
    """

    value: Optional[float]
    censored: bool
    budget_s: float
    threshold_kT: float = DEFAULT_THRESHOLD_KT

    def __str__(self):
        return f"> {self.budget_s:.4g} s" if self.censored else f"{self.value:.4g} s"

    def to_dict(self):
        """The fields as a plain dict, plus ``text`` (``str(self)``)."""
        return {**asdict(self), "text": str(self)}


def time_to_threshold(times, errors, threshold_kT=DEFAULT_THRESHOLD_KT, budget_s=None):
    """First checkpoint from which the error stays below the threshold to the end.

    Parameters
    ----------
    times : array_like, shape (m,)
        Increasing checkpoint times (s); the last is the end of the budget.
    errors : array_like, shape (m,)
        Error at each checkpoint (kT); inf and NaN count as not below.
    threshold_kT : float
        Strict: an error equal to the threshold is not below it.
    budget_s : float, optional
        Recorded in the result; default the last checkpoint time.

    Returns
    -------
    TimeToThreshold
    """
    times = np.asarray(times, dtype=float).reshape(-1)
    errors = np.asarray(errors, dtype=float).reshape(-1)
    if times.shape != errors.shape or len(times) == 0:
        raise ValueError(f"times and errors must be non-empty and of the same length ({len(times)}, {len(errors)})")
    if np.any(np.diff(times) <= 0):
        raise ValueError("checkpoint times must be increasing")
    budget = float(times[-1]) if budget_s is None else as_seconds(budget_s)
    below = errors < float(threshold_kT)  # NaN < x is False
    if not below[-1]:
        return TimeToThreshold(None, True, budget, float(threshold_kT))
    above = np.flatnonzero(~below)
    first = 0 if len(above) == 0 else int(above[-1]) + 1
    return TimeToThreshold(float(times[first]), False, budget, float(threshold_kT))


@dataclass(frozen=True)
class TimeRatio:
    """A peer's time to threshold over Timewarp's (> 1: Timewarp gets there sooner).

    Attributes
    ----------
    value : float or None
        The ratio when both times are known; otherwise None.
    lower_bound : float or None
        When only Timewarp gets there: the ratio exceeds peer budget / Timewarp time.
    upper_bound : float or None
        When only the peer gets there: the ratio is below peer time / Timewarp budget.
    censored : bool
        True when only a bound is known.
    reason : str
        "ratio", "peer censored", "timewarp censored" or "both censored".
    """

    value: Optional[float]
    lower_bound: Optional[float] = None
    upper_bound: Optional[float] = None
    censored: bool = False
    reason: str = "ratio"

    def __str__(self):
        if self.lower_bound is not None:
            return f"> {self.lower_bound:.3g}"
        if self.upper_bound is not None:
            return f"< {self.upper_bound:.3g}"
        if self.value is None:
            return "undefined"
        return f"{self.value:.3g}"

    def to_dict(self):
        """The fields as a plain dict, plus ``text`` (``str(self)``)."""
        return {**asdict(self), "text": str(self)}


def time_ratio(timewarp, peer):
    """Ratio of a peer's time to threshold to Timewarp's, with censoring.

    Parameters
    ----------
    timewarp, peer : TimeToThreshold

    Returns
    -------
    TimeRatio
    """
    if not timewarp.censored and not peer.censored:
        return TimeRatio(peer.value / timewarp.value)
    if not timewarp.censored:
        return TimeRatio(None, lower_bound=peer.budget_s / timewarp.value, censored=True, reason="peer censored")
    if not peer.censored:
        return TimeRatio(None, upper_bound=peer.value / timewarp.budget_s, censored=True, reason="timewarp censored")
    return TimeRatio(None, reason="both censored")


def summarize_repeats(results, times, reference=None, threshold_kT=DEFAULT_THRESHOLD_KT, budget_s=None,
                      states=MACROSTATES, source=None):
    """Error curves of R repeats of one method, their median and spread, and the time to threshold.

    Parameters
    ----------
    results : sequence of dict
        The repeats' outputs (see :func:`error_curve`).
    times : array_like, shape (m,)
        Checkpoint times (s), ending at the budget.
    reference : dict, optional
        See :func:`error_curve`.
    threshold_kT : float
    budget_s : float, optional
        Default: the last checkpoint.
    states : sequence of str
    source : str, optional
        See :func:`error_curve`.

    Returns
    -------
    dict
        ``times``; ``worst`` (R, m) per repeat; ``median``, ``minimum``, ``maximum``, ``lower_quartile``,
        ``upper_quartile`` (m,); ``time_to_threshold`` (:class:`TimeToThreshold` of the median curve);
        ``final_error`` (median worst error at the last checkpoint) and ``final_errors`` (per repeat).
    """
    if not results:
        raise ValueError("no repeats")
    times = np.asarray(times, dtype=float)
    worst = np.stack([error_curve(r, times, reference, states, source)["worst"] for r in results])
    median = quantile(worst, 0.5)
    return {
        "times": times,
        "worst": worst,
        "median": median,
        "minimum": worst.min(axis=0),
        "maximum": worst.max(axis=0),
        "lower_quartile": quantile(worst, 0.25),
        "upper_quartile": quantile(worst, 0.75),
        "time_to_threshold": time_to_threshold(times, median, threshold_kT, budget_s),
        "final_error": float(median[-1]),
        "final_errors": worst[:, -1].copy(),
    }


def compare_methods(summaries, timewarp="timewarp"):
    """Ratios of every peer's time to threshold to Timewarp's.

    Parameters
    ----------
    summaries : dict
        Method name -> :func:`summarize_repeats` output (or any dict with ``time_to_threshold``).
    timewarp : str
        The name of the Timewarp method among them.

    Returns
    -------
    dict
        Peer name -> :class:`TimeRatio`.
    """
    if timewarp not in summaries:
        raise KeyError(f"no method {timewarp!r} among {sorted(summaries)}")
    reference = summaries[timewarp]["time_to_threshold"]
    return {name: time_ratio(reference, s["time_to_threshold"]) for name, s in summaries.items() if name != timewarp}


def plot_error_curves(summaries, path, threshold_kT=DEFAULT_THRESHOLD_KT, spread="minmax", ceiling_kT=10.0,
                      title=None):
    """PNG of the worst-state error against wall-clock time for every method (log-log).

    Each method's median over repeats is a line; its spread (min-max or quartiles) a shaded band.
    Infinite errors (a state not yet visited) and errors above ``ceiling_kT`` are drawn at the ceiling.

    Parameters
    ----------
    summaries : dict
        Method name -> :func:`summarize_repeats` output.
    path : str or path-like
        Output PNG.
    threshold_kT : float
        Drawn as a horizontal line.
    spread : {"minmax", "quartiles"}
    ceiling_kT : float
        Top of the error axis.
    title : str, optional

    Returns
    -------
    str
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if spread not in SPREADS:
        raise ValueError(f"unknown spread {spread!r}; use one of {SPREADS}")
    low_key, high_key = ("minimum", "maximum") if spread == "minmax" else ("lower_quartile", "upper_quartile")
    figure = Figure(figsize=(6.4, 4.4), constrained_layout=True)
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    clip = lambda values: np.minimum(np.asarray(values, dtype=float), ceiling_kT)
    floor = ceiling_kT
    for name, summary in summaries.items():
        times = np.asarray(summary["times"], dtype=float)
        label = f"{name} ({summary['time_to_threshold']})" if "time_to_threshold" in summary else name
        line, = ax.plot(times, clip(summary["median"]), label=label)
        ax.fill_between(times, clip(summary[low_key]), clip(summary[high_key]), color=line.get_color(), alpha=0.2,
                        linewidth=0)
        finite = np.asarray(summary[low_key], dtype=float)
        finite = finite[np.isfinite(finite) & (finite > 0)]
        if len(finite):
            floor = min(floor, float(finite.min()))
    ax.axhline(threshold_kT, color="black", linestyle="--", linewidth=1, label=f"{threshold_kT:g} kT")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(min(floor, threshold_kT) / 2.0, ceiling_kT * 1.3)
    ax.set_xlabel("wall-clock time (s)")
    ax.set_ylabel("worst macrostate error |ln(p / p_ref)| (kT)")
    spread_text = "min-max" if spread == "minmax" else "quartiles"
    ax.set_title(title or f"median over repeats, band: {spread_text}; at {ceiling_kT:g} kT: a state not yet visited",
                 fontsize=9)
    ax.legend(fontsize=8)
    figure.savefig(str(path), dpi=120)
    return str(path)
