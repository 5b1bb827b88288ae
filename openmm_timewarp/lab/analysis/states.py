"""The per-state table of a run: the figures ``openmm-timewarp analyze`` and the benchmark report.

One row (:class:`StateFigures`) per macrostate: population with its block standard error, block
ESS and (for unweighted samples) the windowed Sokal ESS, both per wall-clock second where the
wall time is known, the first visit, and the agreement with a reference.

First visits follow one convention: a frame's time is the time at which it was recorded, the end
of the interval that produced it. Frames recorded at a fixed interval dt (simulated ps between
saved MD frames, or a run's wall-clock seconds spread evenly over its frames) put frame k
(0-based) at (k + 1) dt; a sampler that records the wall-clock time of each sample after
producing it (the benchmark) gives those times directly.
"""

from dataclasses import dataclass, fields
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from .autocorrelation import effective_sample_size
from .estimates import log_ratio_error, state_estimates, z_score


@dataclass(frozen=True)
class StateFigures:
    """The figures of one state.

    Attributes
    ----------
    population, stderr : float
        Population (weighted, with weights) and its block standard error.
    ess_block : float
        Block ESS.
    ess_window : float or None
        Windowed (Sokal) ESS summed over chains; None for weighted samples.
    ess_block_per_s, ess_window_per_s : float or None
        ESS per wall-clock second (None without a wall time).
    timed : bool
        Whether first visits were asked for (frame times given).
    first_visit_ps : float or None
        Simulated time of the first frame in the state (see the module docstring); None if never visited.
    first_visit_wall_s : float or None
        The same in wall-clock seconds.
    reference, reference_stderr : float or None
        The reference population and its error (None without a reference for this state).
    error_kT : float or None
        |ln(p / p_ref)| in kT; None where neither the run nor the reference visits the state.
    z : float or None
        (p - p_ref) / sqrt(se^2 + se_ref^2).
    """

    population: float
    stderr: float
    ess_block: float
    ess_window: Optional[float] = None
    ess_block_per_s: Optional[float] = None
    ess_window_per_s: Optional[float] = None
    timed: bool = False
    first_visit_ps: Optional[float] = None
    first_visit_wall_s: Optional[float] = None
    reference: Optional[float] = None
    reference_stderr: Optional[float] = None
    error_kT: Optional[float] = None
    z: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        """The JSON entry: the figures that apply (``ess_window`` only unweighted, ``*_per_s`` with a
        wall time, first visits when timed, the reference keys with a reference)."""
        out: Dict[str, Any] = {"population": self.population, "stderr": self.stderr, "ess_block": self.ess_block}
        if self.ess_window is not None:
            out["ess_window"] = self.ess_window
        if self.ess_block_per_s is not None:
            out["ess_block_per_s"] = self.ess_block_per_s
            if self.ess_window_per_s is not None:
                out["ess_window_per_s"] = self.ess_window_per_s
        if self.timed:
            out["first_visit_ps"] = self.first_visit_ps
            if self.ess_block_per_s is not None:
                out["first_visit_wall_s"] = self.first_visit_wall_s
        if self.reference is not None:
            out.update(reference=self.reference, reference_stderr=self.reference_stderr, error_kT=self.error_kT,
                       z=self.z)
        return out

    to_json = to_dict

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> "StateFigures":
        """A row from its JSON entry (either writer's; unknown keys, e.g. the benchmark's ``checked``, ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in entry.items() if k in names}
        return cls(timed="first_visit_ps" in entry, **{k: v for k, v in values.items() if k != "timed"})


def frame_times(count: int, interval: float) -> np.ndarray:
    """Times of ``count`` frames recorded every ``interval``: frame k at (k + 1) x interval."""
    return (np.arange(count) + 1.0) * float(interval)


def first_visit(indicator: np.ndarray, times: Union[float, np.ndarray]) -> Optional[float]:
    """Time of the first frame in a state; None if never visited.

    Parameters
    ----------
    indicator : numpy.ndarray of bool
    times : float or numpy.ndarray
        The frames' recorded times, or the interval between frames (frame k at (k + 1) x interval).
    """
    hits = np.flatnonzero(indicator)
    if not len(hits):
        return None
    if np.ndim(times) == 0:
        return float((hits[0] + 1) * float(times))
    return float(np.asarray(times)[hits[0]])


def windowed_ess(series: np.ndarray, lengths: Optional[Sequence[int]] = None) -> float:
    """Sokal-window ESS summed over the chains of ``series`` (split by ``lengths``); chains of fewer
    than two samples are left out (0 when none is longer)."""
    series = np.asarray(series, dtype=float)
    chains = np.split(series, np.cumsum(lengths)[:-1]) if lengths is not None else [series]
    chains = [c for c in chains if len(c) > 1]
    return effective_sample_size(chains) if chains else 0.0


def reference_comparison(population: float, stderr: float, reference: Mapping[str, float]) -> Dict[str, Any]:
    """p_ref, its error, |ln(p / p_ref)| (kT; None where neither visits the state) and the z-score of one state."""
    p_ref, se_ref = reference["population"], reference["stderr"]
    error = None if population <= 0.0 and p_ref <= 0.0 else log_ratio_error(population, p_ref)
    return {"reference": p_ref, "reference_stderr": se_ref, "error_kT": error,
            "z": z_score(population, stderr, p_ref, se_ref)}


def state_table(indicators: Mapping[str, np.ndarray], num_blocks: int, *, frame_ps: Optional[float] = None,
                wall_s: Optional[float] = None, wall_times_s: Optional[np.ndarray] = None,
                log_weights: Optional[np.ndarray] = None, lengths: Optional[Sequence[int]] = None,
                reference_states: Optional[Mapping[str, Mapping[str, float]]] = None) -> Dict[str, StateFigures]:
    """The figures of every state.

    Parameters
    ----------
    indicators : dict
        State name -> bool array over the frames (chains one after another, see ``lengths``).
    num_blocks : int
        Blocks (per chain) for the standard error and block ESS.
    frame_ps : float, optional
        Simulated ps between frames of one run: adds first visits (frame k at (k + 1) x ``frame_ps``).
    wall_s : float, optional
        Wall-clock seconds of the samples (summed over chains): adds ESS per second, and with
        ``frame_ps`` first visits in wall-clock seconds (at the recorded ``wall_times_s``, else
        ``wall_s`` spread evenly over the frames).
    wall_times_s : numpy.ndarray, optional
        Recorded wall-clock time of every frame: blocks are of equal wall-clock time within each chain.
    log_weights : numpy.ndarray, optional
        Importance weights of the frames; weighted tables have no windowed ESS.
    lengths : sequence of int, optional
        Frames per independent chain (default: one chain).
    reference_states : dict, optional
        State name -> {"population", "stderr"}: adds the reference comparison for the states it holds.

    Returns
    -------
    dict
        State name -> :class:`StateFigures`, in the order of ``indicators``.
    """
    estimates = state_estimates(dict(indicators), log_weights, lengths, num_blocks, times=wall_times_s)
    weighted = log_weights is not None and bool(np.any(np.asarray(log_weights) != 0))
    frames = len(next(iter(indicators.values()))) if indicators else 0
    if wall_s is not None and frame_ps is not None:
        wall_clock = wall_times_s if wall_times_s is not None else wall_s / max(frames, 1)
    table = {}
    for name, indicator in indicators.items():
        e = estimates[name]
        figures: Dict[str, Any] = {"population": e["population"], "stderr": e["stderr"], "ess_block": e["ess"]}
        if not weighted:
            figures["ess_window"] = windowed_ess(indicator, lengths)
        if wall_s is not None:
            figures["ess_block_per_s"] = e["ess"] / wall_s
            if not weighted:
                figures["ess_window_per_s"] = figures["ess_window"] / wall_s
        if frame_ps is not None:
            figures.update(timed=True, first_visit_ps=first_visit(indicator, frame_ps))
            if wall_s is not None:
                figures["first_visit_wall_s"] = first_visit(indicator, wall_clock)
        if reference_states and name in reference_states:
            figures.update(reference_comparison(e["population"], e["stderr"], reference_states[name]))
        table[name] = StateFigures(**figures)
    return table


def table_dict(table: Mapping[str, StateFigures]) -> Dict[str, Dict[str, Any]]:
    """State name -> JSON entry of a table (see :meth:`StateFigures.to_dict`)."""
    return {name: row.to_dict() for name, row in table.items()}
