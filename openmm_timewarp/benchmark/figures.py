"""PNG figures of a benchmark: Ramachandran plots side by side and ESS-per-second bars.

Rendered with matplotlib's Agg canvas, without touching pyplot's global state.
"""

import numpy as np

from . import weighted as _weighted


def ramachandran_figure(runs, path, reference_counts=None, title=None):
    """Ramachandran free-energy plots of every method, side by side, after a reference panel.

    Parameters
    ----------
    runs : dict
        Method name -> list of driver results (``phi``, ``psi``, optional ``weights``); the replicas
        are pooled, weighted ones resampled by weight.
    path : str or path-like
        Output PNG.
    reference_counts : array_like, optional
        Reference histogram (periodic grid), drawn first.
    title : str, optional

    Returns
    -------
    str
        ``path``.
    """
    from ..analysis import ramachandran_plot

    panels = {}
    for name, results in runs.items():
        phi = np.concatenate([np.asarray(r["phi"], dtype=float) for r in results])
        psi = np.concatenate([np.asarray(r["psi"], dtype=float) for r in results])
        if any(r.get("weights") is not None for r in results):
            weights = np.concatenate([np.ones(len(r["phi"])) if r.get("weights") is None else
                                      np.asarray(r["weights"], dtype=float) for r in results])
            phi, psi = _weighted.resample([phi, psi], weights)
        if len(phi):
            panels[name] = (phi, psi)
    return ramachandran_plot(panels, path, reference_counts=reference_counts, title=title)


def ess_rate_figure(summaries, path, title=None):
    """Grouped bars of ESS per wall-clock second, one group per observable, one bar per method.

    Left: the windowed (Sokal) estimate of every observable. Right: the block estimate of the
    state indicators. Log scale; a zero ESS is marked with an "x" on the axis; an ESS marked not
    meaningful (the method never visited a state the observable depends on) is drawn hatched and
    pale.

    Parameters
    ----------
    summaries : dict
        Method name -> :func:`.summary.summarize_method` result.
    path : str or path-like
        Output PNG.
    title : str, optional

    Returns
    -------
    str
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    methods = [m for m, s in summaries.items() if s["ess"]]
    observables = []
    for m in methods:
        observables += [o for o in summaries[m]["ess"] if o not in observables]
    panels = [("windowed (Sokal)", "ess_per_s", observables),
              ("blocks (indicators)", "ess_blocks_per_s", [o for o in observables if o.startswith("indicator_")])]
    figure = Figure(figsize=(14.0, 4.5), constrained_layout=True)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [max(len(p[2]), 1) for p in panels]})
    width = 0.8 / max(len(methods), 1)
    for ax, (label, key, names) in zip(axes, panels):
        values = np.array([[summaries[m]["ess"].get(o, {}).get(key, np.nan) for o in names] for m in methods],
                          dtype=float).reshape(len(methods), len(names))
        positive = values[np.isfinite(values) & (values > 0)]
        floor = positive.min() / 3.0 if positive.size else 1e-3
        meaningful = np.array([[summaries[m]["ess"].get(o, {}).get("meaningful", True) for o in names]
                               for m in methods], dtype=bool).reshape(len(methods), len(names))
        for k, method in enumerate(methods):
            x = np.arange(len(names)) + (k - (len(methods) - 1) / 2.0) * width
            shown = np.where(np.isfinite(values[k]) & (values[k] > 0), values[k], np.nan)
            ax.bar(x, np.where(meaningful[k], shown, np.nan), width, label=method, color=f"C{k}")
            ax.bar(x, np.where(meaningful[k], np.nan, shown), width, color=f"C{k}", alpha=0.35, hatch="//")
            zero = np.flatnonzero(values[k] == 0)
            ax.plot(x[zero], np.full(len(zero), floor), "x", color=f"C{k}", markersize=7)
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(bottom=floor / 1.5)
        ax.set_xticks(np.arange(len(names)))
        ax.set_xticklabels([n.replace("indicator_", "1[") + ("]" if n.startswith("indicator_") else "")
                            for n in names], rotation=30, ha="right")
        ax.set_title(label)
        ax.set_ylabel("ESS per wall-clock second")
    axes[0].legend(fontsize="small", title="hatched: not meaningful", title_fontsize="small")
    if title:
        figure.suptitle(title)
    figure.savefig(str(path), dpi=100)
    return str(path)
