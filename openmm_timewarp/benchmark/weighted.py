"""Estimates from weighted samples (biased samplers that return importance weights).

A weighted average f_hat = sum(w f) / sum(w) is a ratio estimator. Linearised, its error is that
of the mean of u_i = w_i (f_i - f_hat) / mean(w), so with tau_u the integrated autocorrelation
time of u and var_w(f) the weighted variance of f,

    ESS = N var_w(f) / (tau_u var(u)),

which equals N / tau_f for equal weights. Several chains: the ESS of each chain, summed (f_hat
and var_w(f) taken over all chains). The block estimate replaces tau_u var(u) / N by the variance
of the mean of u from block means.
"""

import numpy as np

from ..analysis.autocorrelation import integrated_autocorrelation_time
from ..analysis.blocks import block_means


def weighted_mean(chains, weights):
    """Weighted mean over all chains.

    Parameters
    ----------
    chains, weights : sequence of array_like
        One 1-D series of values and of weights per chain.

    Returns
    -------
    float
    """
    x = np.concatenate([np.asarray(c, dtype=float) for c in chains])
    w = np.concatenate([np.asarray(c, dtype=float) for c in weights])
    return float(np.sum(w * x) / np.sum(w))


def _linearised(chains, weights):
    x_all = np.concatenate([np.asarray(c, dtype=float) for c in chains])
    w_all = np.concatenate([np.asarray(c, dtype=float) for c in weights])
    mean_w = w_all.mean()
    f_hat = np.sum(w_all * x_all) / np.sum(w_all)
    variance = np.sum(w_all * (x_all - f_hat) ** 2) / np.sum(w_all)
    u = [np.asarray(w, dtype=float) * (np.asarray(x, dtype=float) - f_hat) / mean_w for x, w in zip(chains, weights)]
    return u, float(variance)


def weighted_ess(chains, weights, method="sokal"):
    """Effective sample size of a weighted average (see the module docstring).

    Parameters
    ----------
    chains, weights : sequence of array_like
        Values and weights, one 1-D series each per chain.
    method : {"sokal", "geyer"}
        Autocorrelation-time estimator for u.

    Returns
    -------
    float
        0 for an observable constant under the weights.
    """
    u, variance = _linearised(chains, weights)
    if variance <= 0.0:
        return 0.0
    total = 0.0
    for series in u:
        var_u = series.var()
        if len(series) < 2 or var_u <= 0.0:
            continue
        tau = integrated_autocorrelation_time(series, method=method)
        if np.isfinite(tau):
            total += len(series) * variance / (tau * var_u)
    return float(total)


def weighted_block_ess(chains, weights, block_size):
    """Block-averaging effective sample size of a weighted average.

    Parameters
    ----------
    chains, weights : sequence of array_like
        Values and weights per chain.
    block_size : int
        Samples per block (blocks never straddle two chains).

    Returns
    -------
    float
        NaN with fewer than two blocks, 0 for a constant observable.
    """
    u, variance = _linearised(chains, weights)
    means = block_means(list(u), block_size)
    if len(means) < 2:
        return float("nan")
    if variance <= 0.0:
        return 0.0
    se2 = means.var(ddof=1) / len(means)
    if se2 == 0.0:
        return float(len(means) * block_size)
    return float(variance / se2)


def weighted_populations(indicators, weights, block_size):
    """Weighted state populations with block standard errors.

    Parameters
    ----------
    indicators : dict
        State name -> list of 0/1 series, one per chain.
    weights : sequence of array_like
        Weights per chain.
    block_size : int
        Samples per block.

    Returns
    -------
    dict
        ``populations`` and ``populations_stderr`` (state -> float), ``block_size``.
    """
    populations, errors = {}, {}
    for name, chains in indicators.items():
        populations[name] = weighted_mean(chains, weights)
        u, _ = _linearised(chains, weights)
        means = block_means(list(u), block_size)
        errors[name] = float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) >= 2 else float("nan")
    return {"populations": populations, "populations_stderr": errors, "block_size": int(block_size)}


def resample(values, weights, size=None, seed=0):
    """Draw samples with probability proportional to their weights (for histograms and plots).

    Parameters
    ----------
    values : sequence of array_like
        Arrays of the same length n (e.g. phi and psi).
    weights : array_like, shape (n,)
    size : int, optional
        Samples to draw (default n).
    seed : int

    Returns
    -------
    list of numpy.ndarray
        The arrays, resampled with the same indices.
    """
    weights = np.asarray(weights, dtype=float)
    size = len(weights) if size is None else int(size)
    index = np.random.default_rng(seed).choice(len(weights), size=size, p=weights / weights.sum())
    return [np.asarray(v)[index] for v in values]
