"""PNG figures of a benchmark: Ramachandran plots per residue, worst error against time, ESS per second.

Rendered with matplotlib's Agg canvas, without touching pyplot's global state.
"""

import os
from typing import Any, Dict, List

import numpy as np

from ..analysis.plots import ramachandran_plot
from .metrics import ACCURACY_KT


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), constrained_layout=True)
    FigureCanvasAgg(figure)
    return figure


def write_figures(result: Dict[str, Any], recordings: Dict[str, List[Dict[str, Any]]], observables, reference,
                  out: str) -> Dict[str, str]:
    """Every figure of a benchmark into ``out``; returns name -> path."""
    paths = {}
    for residue in observables.residues:
        if residue.phi is None or residue.psi is None:
            continue
        runs = {}
        for name, replicas in recordings.items():
            values = np.concatenate([r["values"] for r in replicas])
            log_w = np.concatenate([r["log_weights"] for r in replicas])
            runs[name] = (values[:, residue.phi], values[:, residue.psi], np.exp(log_w - log_w.max()))
        counts = reference.histogram(residue.label, 72) if reference is not None else None
        path = os.path.join(out, f"ramachandran-{residue.label}.png")
        paths[f"ramachandran-{residue.label}"] = ramachandran_plot(runs, path, reference_counts=counts,
                                                                   title=f"{result['title']}: {residue.label}")
    paths["error_vs_time"] = error_vs_time_figure(result, os.path.join(out, "error_vs_time.png"))
    paths["ess_per_s"] = ess_figure(result, os.path.join(out, "ess_per_s.png"))
    return paths


def error_vs_time_figure(result: Dict[str, Any], path: str) -> str:
    """Median (and range) over replicas of the worst |ln(p / p_ref)| of the checked states against wall-clock time."""
    figure = _figure(7.0, 4.5)
    ax = figure.subplots()
    for name, summary in result["methods"].items():
        accuracy = summary.get("accuracy")
        if not accuracy:
            continue
        t = np.asarray(accuracy["checkpoints_s"])
        errors = np.asarray(accuracy["worst_error_kT"], dtype=float)
        shown = np.where(np.isfinite(errors), errors, np.nan)
        line, = ax.plot(t, np.nanmedian(shown, axis=0), label=name)
        ax.fill_between(t, np.nanmin(shown, axis=0), np.nanmax(shown, axis=0), color=line.get_color(), alpha=0.15)
        ax.set_xlim(t[0], t[-1])  # also when every error is infinite (nothing finite to autoscale to)
    ax.axhline(ACCURACY_KT, color="black", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall-clock seconds (per core)")
    ax.set_ylabel("worst |ln(p / p_ref)| (kT)")
    ax.set_title(f"{result['title']}: error of the checked states")
    if ax.get_legend_handles_labels()[0]:  # none without a reference
        ax.legend(fontsize="small")
    figure.savefig(path, dpi=100)
    return path


def ess_figure(result: Dict[str, Any], path: str) -> str:
    """Block ESS per second of every checked state, one bar per method (log scale)."""
    methods = [m for m, s in result["methods"].items() if s["boltzmann"]]
    states = next((s["checked_states"] for s in result["methods"].values() if s.get("checked_states")), [])
    figure = _figure(max(6.0, 1.5 * len(states) + 3), 4.5)
    ax = figure.subplots()
    width = 0.8 / max(len(methods), 1)
    for k, name in enumerate(methods):
        rates = [result["methods"][name]["states"][s]["ess_block_per_s"] for s in states]
        ax.bar(np.arange(len(states)) + k * width, np.maximum(rates, 1e-3), width, label=name)
    ax.set_xticks(np.arange(len(states)) + 0.4 - width / 2)
    ax.set_xticklabels(states, rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("block ESS per second per core")
    ax.set_title(f"{result['title']}: effective samples per second")
    ax.legend(fontsize="small")
    figure.savefig(path, dpi=100)
    return path
