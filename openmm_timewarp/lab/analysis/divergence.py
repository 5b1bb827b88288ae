"""Distribution errors: Jensen-Shannon divergence of torsion histograms, population errors in kT.

Binning is fixed so that numbers from different runs are comparable: by default 36 x 36 bins of
10 degrees over [-180, 180) x [-180, 180). Angles are binned periodically (an angle of exactly 180
degrees falls in the first bin, like -180). Histogram rows are phi bins, columns psi bins.

The Jensen-Shannon divergence uses the natural logarithm, so it lies in [0, ln 2]:
JSD(P, Q) = KL(P || M) / 2 + KL(Q || M) / 2 with M = (P + Q) / 2, and 0 log 0 = 0.
"""

import numpy as np

DEFAULT_BINS = 36


def periodic_bin_index(angles, bins=DEFAULT_BINS):
    """Bin index of angles in degrees, periodic over [-180, 180).

    Parameters
    ----------
    angles : array_like
        Degrees (any range; wrapped).
    bins : int
        Number of equal bins over 360 degrees.

    Returns
    -------
    numpy.ndarray of int
        Indices in [0, bins).
    """
    wrapped = np.mod(np.asarray(angles, dtype=float) + 180.0, 360.0)
    return np.minimum((wrapped * (bins / 360.0)).astype(int), bins - 1)


def torsion_histogram(phi, psi, bins=DEFAULT_BINS, weights=None):
    """2-D histogram of counts of (phi, psi) on the fixed periodic grid.

    Parameters
    ----------
    phi, psi : array_like, shape (n,)
        Degrees.
    bins : int
        Bins per angle.
    weights : array_like, shape (n,), optional
        Sample weights (then the counts are weighted sums, float).

    Returns
    -------
    numpy.ndarray of int, shape (bins, bins)
        Counts; row i covers phi in [-180 + i w, -180 + (i+1) w), w = 360 / bins; columns likewise for psi.
    """
    i = periodic_bin_index(np.ravel(phi), bins)
    j = periodic_bin_index(np.ravel(psi), bins)
    if i.shape != j.shape:
        raise ValueError("phi and psi must have the same number of samples")
    if weights is not None:
        return np.bincount(i * bins + j, weights=np.ravel(weights), minlength=bins * bins).reshape(bins, bins)
    return np.bincount(i * bins + j, minlength=bins * bins).reshape(bins, bins)


def jensen_shannon_divergence(p, q):
    """Jensen-Shannon divergence between two histograms (natural log, in [0, ln 2]).

    Parameters
    ----------
    p, q : array_like, same shape
        Non-negative counts or probabilities; each is normalised to sum 1.

    Returns
    -------
    float
        0 for identical distributions, ln 2 for distributions with disjoint support.
    """
    p = np.asarray(p, dtype=float).ravel()
    q = np.asarray(q, dtype=float).ravel()
    if p.shape != q.shape:
        raise ValueError(f"histogram shapes differ: {p.shape} vs {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("histograms must be non-negative with a positive total")
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)

    def kl_to_m(a):
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    value = 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)
    return float(min(max(value, 0.0), np.log(2.0)))


def torsion_jsd(phi, psi, reference_counts, bins=None):
    """Jensen-Shannon divergence of a run's (phi, psi) histogram from a reference histogram.

    Parameters
    ----------
    phi, psi : array_like
        The run's torsions in degrees.
    reference_counts : array_like, shape (bins, bins)
        Reference histogram on the same grid (see :func:`torsion_histogram`).
    bins : int, optional
        Bins per angle; default: taken from ``reference_counts``.

    Returns
    -------
    float
        JSD in nats.
    """
    reference_counts = np.asarray(reference_counts)
    bins = reference_counts.shape[0] if bins is None else bins
    return jensen_shannon_divergence(torsion_histogram(phi, psi, bins), reference_counts)


def population_errors_kT(populations, reference, names=None):
    """State-population differences as free energies: F_run - F_ref = -ln(p / p_ref) in kT.

    Parameters
    ----------
    populations, reference : dict
        State -> population.
    names : sequence of str, optional
        States to report (default: those in both).

    Returns
    -------
    dict
        State -> float; +inf where the run never visits a state the reference visits.
    """
    if names is None:
        names = [n for n in populations if n in reference]
    out = {}
    for name in names:
        p, q = float(populations[name]), float(reference[name])
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name] = float(-np.log(p / q)) if q > 0 else (float("nan") if p == 0 else float("-inf"))
    return out
