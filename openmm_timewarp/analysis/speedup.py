"""Speed-up of a sampler over a baseline: the ratio of effective samples per wall-clock second.

Rules:

- **speed-up 0**: a run that misses a metastable state the reference visits has speed-up 0 for
  every observable that state affects (its own indicator, and global observables such as
  torsions or TICs; see :func:`observable_affected`), whatever its ESS.
- **censoring**: when the baseline never visits a state that the run does visit, the baseline's
  ESS for that state is not measured, only bounded: fewer than ``baseline_ess_bound`` (default 1)
  effective samples in its whole run. The speed-up is then reported as a lower bound, "> X",
  with X = (run ESS / run wall time) / (bound / baseline wall time).
  The same holds for a global observable (torsions, TICs) of a baseline that misses a state:
  its ESS describes only part of the distribution, so it is replaced by the bound.
- if neither the run nor the baseline visits the state, the speed-up is undefined.
"""

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class SpeedUp:
    """A speed-up figure.

    Attributes
    ----------
    value : float or None
        The speed-up (0 under the speed-up-0 rule); None when censored or undefined.
    lower_bound : float or None
        Set when censored: the speed-up is larger than this.
    censored : bool
        True when only a lower bound is known.
    reason : str
        "ratio", "run missed a state", "baseline never visited" or "undefined".
    """

    value: Optional[float]
    lower_bound: Optional[float] = None
    censored: bool = False
    reason: str = "ratio"

    def __str__(self):
        if self.censored:
            return f"> {self.lower_bound:.3g}"
        if self.value is None:
            return "n/a"
        return f"{self.value:.3g}"

    def to_dict(self):
        """The fields as a plain dict, plus ``text`` (``str(self)``)."""
        return {**asdict(self), "text": str(self)}


def ess_rate(ess, wall_s):
    """Effective samples per wall-clock second.

    Parameters
    ----------
    ess : float
        Effective sample size.
    wall_s : float
        Wall-clock seconds spent.

    Returns
    -------
    float
    """
    if wall_s <= 0:
        raise ValueError("wall_s must be positive")
    return float(ess) / float(wall_s)


def speed_up(run_ess, run_wall_s, baseline_ess, baseline_wall_s, run_missed=False, baseline_missed=False,
             baseline_ess_bound=1.0):
    """Speed-up = (run ESS / run seconds) / (baseline ESS / baseline seconds), with the special rules.

    Parameters
    ----------
    run_ess, run_wall_s : float
        The run's effective sample size for the observable and its wall-clock seconds.
    baseline_ess, baseline_wall_s : float
        The same for the baseline.
    run_missed : bool
        The run misses a state the reference visits that this observable depends on: speed-up 0.
    baseline_missed : bool
        The baseline never visits such a state (so its ESS for the observable is unmeasured).
    baseline_ess_bound : float
        Upper bound assumed for the ESS of a baseline that never visits the state.

    Returns
    -------
    SpeedUp
    """
    if run_missed:
        if baseline_missed:
            return SpeedUp(value=None, reason="undefined")
        return SpeedUp(value=0.0, reason="run missed a state")
    run_rate = ess_rate(run_ess, run_wall_s)
    if baseline_missed or not baseline_ess > 0:
        if not run_rate > 0:
            return SpeedUp(value=None, reason="undefined")
        bound = run_rate / ess_rate(baseline_ess_bound, baseline_wall_s)
        return SpeedUp(value=None, lower_bound=float(bound), censored=True, reason="baseline never visited")
    return SpeedUp(value=float(run_rate / ess_rate(baseline_ess, baseline_wall_s)))


def observable_affected(observable, state):
    """Whether missing ``state`` makes the ESS of ``observable`` meaningless.

    A state's own indicator (observable named after the state, e.g. ``"alphaL"`` or
    ``"indicator_alphaL"``) and the union it belongs to are affected by it; every other state
    indicator is not. All other observables (torsions, TICs) are global and affected by any
    missed state.

    Parameters
    ----------
    observable : str
        Observable name.
    state : str
        State name.

    Returns
    -------
    bool
    """
    from .states import REGION_NAMES

    name = observable[len("indicator_"):] if observable.startswith("indicator_") else observable
    if name not in REGION_NAMES:
        return True
    if name == state:
        return True
    return name == "phi_positive" and state in ("alphaL", "C7ax")


def speed_ups(run, baseline, run_missed_states=(), baseline_missed_states=(), baseline_ess_bound=1.0):
    """Speed-ups for every observable the run and the baseline share.

    Parameters
    ----------
    run, baseline : dict
        Each with ``wall_s`` (float) and ``ess`` (observable -> ESS).
    run_missed_states, baseline_missed_states : sequence of str
        States the reference visits but the run (baseline) never does.
    baseline_ess_bound : float
        See :func:`speed_up`.

    Returns
    -------
    dict
        Observable -> :class:`SpeedUp`.
    """
    out = {}
    for name in run["ess"]:
        if name not in baseline["ess"]:
            continue
        out[name] = speed_up(
            run["ess"][name], run["wall_s"], baseline["ess"][name], baseline["wall_s"],
            run_missed=any(observable_affected(name, s) for s in run_missed_states),
            baseline_missed=any(observable_affected(name, s) for s in baseline_missed_states),
            baseline_ess_bound=baseline_ess_bound,
        )
    return out


def first_visit_times(labels, sample_interval=1.0, names=None, offset=0.0):
    """Time at which each state is first visited.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        State label of each sample: an index into ``names`` (e.g. from :func:`.states.assign_states`).
    sample_interval : float
        Time between samples (ps, ns, or wall-clock seconds: the unit of the result).
    names : sequence of str, optional
        State names; default: the alanine-dipeptide ``STATE_NAMES``.
    offset : float
        Time of sample 0 (for example ``sample_interval`` when the first sample is recorded after
        one interval rather than at the start).

    Returns
    -------
    dict
        State name -> ``offset + index_of_first_sample * sample_interval``; None if never visited.
    """
    from .states import STATE_NAMES

    names = STATE_NAMES if names is None else tuple(names)
    labels = np.asarray(labels, dtype=int)
    out = {}
    for k, name in enumerate(names):
        hits = np.flatnonzero(labels == k)
        out[name] = float(offset + hits[0] * sample_interval) if len(hits) else None
    return out
