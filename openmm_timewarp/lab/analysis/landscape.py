"""Free-energy surfaces F = -kT ln p from 2-D histograms, in units of kT."""

import numpy as np


def free_energy_from_counts(counts):
    """Free energy of every bin, -ln(p), shifted so the lowest bin is 0; NaN for empty bins.

    Parameters
    ----------
    counts : array_like
        Histogram counts (or weights).

    Returns
    -------
    numpy.ndarray of float, same shape
        F / kT.
    """
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        return np.full(counts.shape, np.nan)
    with np.errstate(divide="ignore"):
        free = -np.log(counts / total)
    free[counts <= 0] = np.nan
    return free - np.nanmin(free)


def histogram_2d(x, y, bins, ranges):
    """Counts of (x, y) on a fixed grid; samples outside ``ranges`` are dropped.

    Parameters
    ----------
    x, y : array_like, shape (n,)
    bins : int or (int, int)
    ranges : ((float, float), (float, float))
        Lower and upper edges of x and of y.

    Returns
    -------
    numpy.ndarray, shape (bins_x, bins_y)
        Rows are x bins.
    """
    counts, _, _ = np.histogram2d(np.ravel(x), np.ravel(y), bins=bins, range=ranges)
    return counts


def shared_ranges(samples, padding=0.02):
    """Common axis ranges covering every run's 2-D samples.

    Parameters
    ----------
    samples : sequence of array_like, each shape (n, 2)
    padding : float
        Fraction of the span added on each side.

    Returns
    -------
    ((float, float), (float, float))
    """
    stacked = np.concatenate([np.asarray(s, dtype=float)[:, :2] for s in samples], axis=0)
    low = stacked.min(axis=0)
    high = stacked.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    low = low - padding * span
    high = high + padding * span
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def rebin(counts, factor):
    """Sum ``factor`` x ``factor`` blocks of a 2-D histogram (coarser grid).

    Parameters
    ----------
    counts : array_like, shape (n, m), n and m divisible by ``factor``
    factor : int

    Returns
    -------
    numpy.ndarray, shape (n // factor, m // factor)
    """
    counts = np.asarray(counts)
    n, m = counts.shape
    if n % factor or m % factor:
        raise ValueError(f"a {n}x{m} histogram cannot be rebinned by {factor}")
    return counts.reshape(n // factor, factor, m // factor, factor).sum(axis=(1, 3))
