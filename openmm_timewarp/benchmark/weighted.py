"""Estimates from weighted samples (biased samplers that return importance weights).

A weighted average f_hat = sum(w f) / sum(w) is a ratio estimator. Linearised, its error is that
of the mean of u_i = w_i (f_i - f_hat) / mean(w), so with tau_u the integrated autocorrelation
time of u and var_w(f) the weighted variance of f,

    ESS = N var_w(f) / (tau_u var(u)),

which equals N / tau_f for equal weights. Several chains: the ESS of each chain on its own (its
own f_hat and var_w(f), so that differences between the chains' means are not counted as
fluctuations), summed over chains, as :func:`openmm_timewarp.analysis.effective_sample_size` and
:func:`openmm_timewarp.analysis.block_ess` do for unweighted chains. The block estimate replaces
tau_u var(u) / N by the variance of the mean of u from block means. A chain on which the observable
is constant (under the weights) counts 0; each chain's ESS is at most N max(1, log10 N), the bound
of :func:`openmm_timewarp.analysis.autocorrelation.min_tau`.
"""

import numpy as np

from ..analysis.autocorrelation import integrated_autocorrelation_time, is_constant, min_tau
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


def _chain_weighted_ess(values, weights, method, block_size):
    """ESS of one weighted chain: windowed (``block_size`` None) or from block means."""
    values, weights = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    if len(values) < 2 or is_constant(values):
        return 0.0
    (u,), variance = _linearised([values], [weights])
    if variance <= 0.0 or is_constant(u):
        return 0.0
    ceiling = len(u) / min_tau(len(u))
    if block_size is None:
        tau = integrated_autocorrelation_time(u, method=method)
        return float(min(len(u) * variance / (tau * u.var()), ceiling))
    means = block_means(u, block_size)
    if len(means) < 2:
        return float("nan")
    se2 = means.var(ddof=1) / len(means)
    return float(ceiling if se2 == 0.0 else min(variance / se2, ceiling))


def _summed(chains, weights, method, block_size):
    values = [_chain_weighted_ess(c, w, method, block_size) for c, w in zip(chains, weights)]
    known = [v for v in values if np.isfinite(v)]
    if len(known) < len(values) and not any(v > 0 for v in known):  # no varying chain could be estimated
        return float("nan")
    return float(sum(known))


def weighted_ess(chains, weights, method="sokal"):
    """Effective sample size of a weighted average, per chain and summed (module docstring).

    Parameters
    ----------
    chains, weights : sequence of array_like
        Values and weights, one 1-D series each per chain.
    method : {"sokal", "geyer"}
        Autocorrelation-time estimator for u.

    Returns
    -------
    float
        0 for an observable constant (under the weights) on every chain.
    """
    return _summed(chains, weights, method, None)


def weighted_block_ess(chains, weights, block_size):
    """Block-averaging effective sample size of a weighted average, per chain and summed.

    Parameters
    ----------
    chains, weights : sequence of array_like
        Values and weights per chain.
    block_size : int
        Samples per block (blocks never straddle two chains).

    Returns
    -------
    float
        0 for an observable constant on every chain; chains with fewer than two complete blocks
        are left out (NaN if that is every chain on which the observable varies).
    """
    if int(block_size) < 1:
        raise ValueError("block_size must be at least 1")
    return _summed(chains, weights, None, int(block_size))


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
