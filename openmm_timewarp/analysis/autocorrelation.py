"""Integrated autocorrelation times and effective sample sizes of correlated series.

Two automatic truncation rules are offered for the sum of the normalised autocorrelation
function rho(t) (estimated with an FFT, mean subtracted; by default each autocovariance is divided by
the number of pairs N - t, the convention of the packaged alanine-dipeptide reference figures, whose
values these functions reproduce; ``estimator="biased"`` divides by N instead):

- ``"sokal"``: tau(M) = 1 + 2 sum_{t=1..M} rho(t), with the window M the smallest lag for which
  M >= c * tau(M) (Sokal 1997; c = 5 by default).
- ``"geyer"``: Geyer's (1992) initial positive sequence. The pair sums
  Gamma_k = rho(2k) + rho(2k+1) are summed while positive; tau = -1 + 2 sum_k Gamma_k.
  ``monotone=True`` also applies Geyer's initial monotone sequence (Gamma_k clipped to be
  non-increasing).

The effective sample size of a series of N samples is ESS = N / tau. Several independent chains
(a list of 1-D arrays, or a 2-D array with one chain per row) get the sum of the per-chain ESS.
"""

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
        rho(t) = C(t) / C(0) for t = 0 .. n-1, so rho(0) = 1. All NaN if the series is constant.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, not {estimator!r}")
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D series, got shape {x.shape}")
    n = len(x)
    if n == 0:
        raise ValueError("empty series")
    centred = x - x.mean()
    size = 1 << int(2 * n - 1).bit_length()  # zero padding: no wrap-around
    spectrum = np.fft.rfft(centred, n=size)
    acov = np.fft.irfft(spectrum * np.conjugate(spectrum), n=size)[:n]
    if acov[0] <= 0.0 or not np.isfinite(acov[0]):
        return np.full(n, np.nan)
    if estimator == "unbiased":
        acov = acov * (n / (n - np.arange(n)))
    return acov / acov[0]


def _sokal(rho, c):
    taus = 2.0 * np.cumsum(rho) - 1.0  # taus[m] = 1 + 2 sum_{t=1..m} rho(t)
    lags = np.arange(len(rho))
    ok = lags >= c * taus
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
    return float(max(-1.0 + 2.0 * gamma.sum(), 1e-12)) if len(gamma) else 1.0


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
        tau_int = 1 + 2 sum_t rho(t) (1 for uncorrelated samples); NaN for a constant series.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    rho = autocorrelation(x, estimator=estimator)
    if np.isnan(rho[0]):
        return float("nan")
    if method == "sokal":
        return _sokal(rho, c)
    return _geyer(rho, monotone)


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
        The sum over chains of n_chain / tau_chain. A constant chain (for example the indicator of
        a state the chain never visits) contributes 0: it carries no information about fluctuations.
    """
    total = 0.0
    for chain in as_chains(x):
        tau = integrated_autocorrelation_time(chain, method=method, c=c, monotone=monotone, estimator=estimator)
        if np.isfinite(tau):
            total += len(chain) / tau
    return float(total)
