"""Integrated autocorrelation times and effective sample sizes of correlated series.

Two automatic truncation rules are offered for the sum of the normalised autocorrelation
function rho(t) (estimated with an FFT, mean subtracted; by default each autocovariance is divided by
the number of pairs N - t, the convention of the packaged alanine-dipeptide reference figures, whose
values these functions reproduce; ``estimator="biased"`` divides by N instead):

- ``"sokal"``: tau(M) = 1 + 2 sum_{t=1..M} rho(t), with the window M the smallest lag for which
  M >= c * max(tau(M), 1) (Sokal 1997; c = 5 by default). Sokal's rule M >= c tau(M) presumes
  tau >= 1; taking tau at least 1 in the rule only means the window is never shorter than c lags.
  Without it, a strongly negative rho(1) (an oscillation aliased by the sampling interval, such
  as a torsion libration sampled every 0.5 ps) makes tau(1) tiny or negative and closes the
  window at lag 1, before the slow positive correlations are seen.
- ``"geyer"``: Geyer's (1992) initial positive sequence. The pair sums
  Gamma_k = rho(2k) + rho(2k+1) are summed while positive; tau = -1 + 2 sum_k Gamma_k.
  ``monotone=True`` also applies Geyer's initial monotone sequence (Gamma_k clipped to be
  non-increasing).

Lower bound on tau. Negative correlations can make tau_int < 1 (ESS > N): genuinely so for an
antithetic chain, but far more often on short series as an estimation artefact. Both estimators
therefore return at least ``min_tau(N) = 1 / max(1, log10 N)``, the bound Stan uses (its ESS is
at most N log10 N): an ESS may exceed N, by at most a factor log10 N (2.5 for N = 324, 5 for
N = 10^5), never by the factor of ~20 seen from a 324-sample window. For N <= 10 the bound is
tau >= 1 (ESS <= N).

A constant series (every value the same, e.g. the indicator of a state never visited) has no
fluctuations to measure: its autocorrelation is NaN and its tau_int NaN, and it counts 0 ESS.

The effective sample size of a series of N samples is ESS = N / tau. Several independent chains
(a list of 1-D arrays, or a 2-D array with one chain per row) get the sum of the per-chain ESS.
"""

import math
from typing import Sequence, Union

import numpy as np

SeriesOrChains = Union[np.ndarray, Sequence[np.ndarray]]

METHODS = ("sokal", "geyer")


ESTIMATORS = ("unbiased", "biased")


def autocorrelation(x, estimator="unbiased"):
    """Normalised autocorrelation function of a 1-D series, by FFT.

    Parameters
    ----------
    x : array_like, shape (n,)
        The series.
    estimator : {"unbiased", "biased"}
        Divide the lag-t autocovariance by n - t (``"unbiased"``) or by n (``"biased"``).

    Returns
    -------
    numpy.ndarray, shape (n,)
        rho(t) = C(t) / C(0) for t = 0 .. n-1, so rho(0) = 1. All NaN if the series is constant
        (all values equal: rounding in the mean would otherwise leave a spurious offset whose
        "autocorrelation" is 1 at every lag).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, not {estimator!r}")
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D series, got shape {x.shape}")
    n = len(x)
    if n == 0:
        raise ValueError("empty series")
    if is_constant(x):
        return np.full(n, np.nan)
    centred = x - x.mean()
    size = 1 << int(2 * n - 1).bit_length()  # zero padding: no wrap-around
    spectrum = np.fft.rfft(centred, n=size)
    acov = np.fft.irfft(spectrum * np.conjugate(spectrum), n=size)[:n]
    if acov[0] <= 0.0 or not np.isfinite(acov[0]):
        return np.full(n, np.nan)
    if estimator == "unbiased":
        acov = acov * (n / (n - np.arange(n)))
    return acov / acov[0]


def is_constant(x):
    """Whether every value of a series is the same (no fluctuations; NaN-free input assumed).

    Parameters
    ----------
    x : array_like

    Returns
    -------
    bool
    """
    x = np.asarray(x, dtype=float)
    return x.size == 0 or bool(np.all(x == x.flat[0]))


def min_tau(n):
    """Smallest integrated autocorrelation time returned for a series of ``n`` samples.

    ``1 / max(1, log10 n)``: the per-chain ESS is at most ``n * max(1, log10 n)`` (Stan's bound,
    see the module docstring).

    Parameters
    ----------
    n : int

    Returns
    -------
    float
    """
    return 1.0 / max(1.0, math.log10(max(int(n), 1)))


def _sokal(rho, c):
    taus = 2.0 * np.cumsum(rho) - 1.0  # taus[m] = 1 + 2 sum_{t=1..m} rho(t)
    lags = np.arange(len(rho))
    ok = lags >= c * np.maximum(taus, 1.0)
    window = int(np.argmax(ok)) if ok.any() else len(rho) - 1
    return float(taus[window])


def _geyer(rho, monotone):
    n_pairs = len(rho) // 2
    gamma = rho[: 2 * n_pairs : 2] + rho[1 : 2 * n_pairs : 2]
    positive = gamma > 0.0
    stop = int(np.argmin(positive)) if not positive.all() else n_pairs
    gamma = gamma[:stop]
    if monotone and len(gamma):
        gamma = np.minimum.accumulate(gamma)
    return float(-1.0 + 2.0 * gamma.sum()) if len(gamma) else 1.0


def integrated_autocorrelation_time(x, method="sokal", c=5.0, monotone=False, estimator="unbiased"):
    """Integrated autocorrelation time of a 1-D series, in samples, with an automatic window.

    Parameters
    ----------
    x : array_like, shape (n,)
        The series (an observable evaluated on consecutive samples).
    method : {"sokal", "geyer"}
        Sokal's self-consistent window (smallest M with M >= c tau(M)) or Geyer's initial
        positive sequence.
    c : float
        Sokal's window constant (ignored by ``"geyer"``).
    monotone : bool
        Geyer only: also enforce the initial monotone sequence.
    estimator : {"unbiased", "biased"}
        Autocovariance normalisation, see :func:`autocorrelation`.

    Returns
    -------
    float
        tau_int = 1 + 2 sum_t rho(t) (1 for uncorrelated samples), at least :func:`min_tau` (n);
        NaN for a constant series.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    rho = autocorrelation(x, estimator=estimator)
    if np.isnan(rho[0]):
        return float("nan")
    tau = _sokal(rho, c) if method == "sokal" else _geyer(rho, monotone)
    return max(tau, min_tau(len(rho)))


def as_chains(x):
    """Split ``x`` into a list of 1-D chains.

    Parameters
    ----------
    x : array_like or sequence of array_like
        One series (1-D), a 2-D array with one chain per row, or a list/tuple of 1-D series of
        any lengths.

    Returns
    -------
    list of numpy.ndarray
        The chains, as float arrays.

    Raises
    ------
    ValueError
        A chain is not 1-D or has fewer than two samples (for example a column vector passed as a
        2-D array).
    """
    if isinstance(x, (list, tuple)):
        chains = [np.asarray(chain, dtype=float) for chain in x]
    else:
        array = np.asarray(x, dtype=float)
        if array.ndim == 1:
            chains = [array]
        elif array.ndim == 2:
            chains = list(array)
        else:
            raise ValueError(f"expected 1-D or 2-D input, got shape {array.shape}")
    for chain in chains:
        if chain.ndim != 1:
            raise ValueError(f"every chain must be 1-D, got shape {chain.shape}")
        if len(chain) < 2:
            raise ValueError("chains need at least two samples (a 2-D array holds one chain per row; "
                             "for a single column use x.ravel())")
    return chains


def effective_sample_size(x, method="sokal", c=5.0, monotone=False, estimator="unbiased"):
    """Effective sample size N / tau_int, summed over independent chains.

    Parameters
    ----------
    x : array_like or sequence of array_like
        One series, or several independent chains (a list of 1-D series, or a 2-D array with
        one chain per row).
    method, c, monotone, estimator
        As in :func:`integrated_autocorrelation_time`.

    Returns
    -------
    float
        The sum over chains of n_chain / tau_chain, each term at most n_chain max(1, log10 n_chain)
        (:func:`min_tau`). A constant chain (for example the indicator of a state the chain never
        visits) contributes 0: it carries no information about fluctuations.
    """
    total = 0.0
    for chain in as_chains(x):
        tau = integrated_autocorrelation_time(chain, method=method, c=c, monotone=monotone, estimator=estimator)
        if np.isfinite(tau):
            total += len(chain) / tau
    return float(total)
