"""PNG figures of free-energy surfaces: Ramachandran plots and TICA projections.

Runs being compared are drawn side by side on the same axes and the same colour scale
(F / kT from 0 to a shared maximum). Figures are rendered with matplotlib's Agg canvas, without
touching pyplot's global state.
"""

import numpy as np

from .divergence import torsion_histogram
from .landscape import free_energy_from_counts, histogram_2d, shared_ranges

RAMACHANDRAN_BINS = 72


def plot_free_energy_panels(panels, extent, path, xlabel, ylabel, max_kT=None, title=None, ticks=None):
    """Side-by-side free-energy surfaces with one colour scale, written as a PNG.

    Parameters
    ----------
    panels : mapping of str to array_like
        Panel title -> 2-D histogram counts, rows along x.
    extent : (float, float, float, float)
        x_min, x_max, y_min, y_max of every histogram.
    path : str or path-like
        Output PNG.
    xlabel, ylabel : str
        Axis labels.
    max_kT : float, optional
        Top of the colour scale; default: the largest finite free energy among the panels.
    title : str, optional
        Figure title.
    ticks : sequence of float, optional
        Tick positions for both axes.

    Returns
    -------
    str
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    surfaces = {name: free_energy_from_counts(c) for name, c in panels.items()}
    finite = [np.nanmax(f) for f in surfaces.values() if np.isfinite(f).any()]
    vmax = float(max_kT) if max_kT is not None else (max(finite) if finite else 1.0)
    vmax = vmax if vmax > 0 else 1.0
    count = max(len(surfaces), 1)
    figure = Figure(figsize=(4.0 * count + 1.2, 4.0), constrained_layout=True)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, count, squeeze=False, sharex=True, sharey=True)[0]
    image = None
    for ax, (name, free) in zip(axes, surfaces.items()):
        image = ax.imshow(np.ma.masked_invalid(free).T, origin="lower", extent=extent, aspect="auto",
                          cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        if ticks is not None:
            ax.set_xticks(ticks)
            ax.set_yticks(ticks)
    axes[0].set_ylabel(ylabel)
    if image is not None:
        figure.colorbar(image, ax=list(axes), label="F / kT")
    if title:
        figure.suptitle(title)
    figure.savefig(str(path), dpi=100)
    return str(path)


def ramachandran_plot(runs, path, bins=RAMACHANDRAN_BINS, reference_counts=None, max_kT=None, title=None):
    """Ramachandran free-energy plots, -ln p(phi, psi) in kT, of several runs side by side.

    Parameters
    ----------
    runs : mapping of str to tuple
        Run name -> (phi, psi) in degrees, or (phi, psi, weights) for weighted samples.
    path : str or path-like
        Output PNG.
    bins : int
        Bins per angle over [-180, 180).
    reference_counts : array_like, shape (b, b), optional
        A reference histogram on the periodic grid (see :func:`.divergence.torsion_histogram`),
        drawn as the first panel, "reference".
    max_kT : float, optional
        Top of the shared colour scale.
    title : str, optional

    Returns
    -------
    str
        ``path``.
    """
    panels = {}
    if reference_counts is not None:
        panels["reference"] = np.asarray(reference_counts, dtype=float)
    for name, run in runs.items():
        panels[name] = torsion_histogram(run[0], run[1], bins, run[2] if len(run) > 2 else None)
    return plot_free_energy_panels(panels, (-180.0, 180.0, -180.0, 180.0), path, "phi (degrees)",
                                   "psi (degrees)", max_kT=max_kT, title=title, ticks=np.arange(-180, 181, 90))


def tica_plot(runs, path, bins=60, ranges=None, max_kT=None, title=None):
    """Free energy over the first two TICs of several runs side by side, on shared axes.

    Parameters
    ----------
    runs : mapping of str to array_like
        Run name -> projections of shape (n, >= 2) (TIC0, TIC1, ...).
    path : str or path-like
        Output PNG.
    bins : int
        Bins per axis.
    ranges : ((float, float), (float, float)), optional
        Axis ranges; default: covering every run.
    max_kT : float, optional
        Top of the shared colour scale.
    title : str, optional

    Returns
    -------
    str
        ``path``.
    """
    runs = {name: np.asarray(tics, dtype=float) for name, tics in runs.items()}
    if ranges is None:
        ranges = shared_ranges(list(runs.values()))
    panels = {name: histogram_2d(t[:, 0], t[:, 1], bins, ranges) for name, t in runs.items()}
    extent = (ranges[0][0], ranges[0][1], ranges[1][0], ranges[1][1])
    return plot_free_energy_panels(panels, extent, path, "TIC 0", "TIC 1", max_kT=max_kT, title=title)
