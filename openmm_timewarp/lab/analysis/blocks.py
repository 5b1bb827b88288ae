"""Block averaging: means, standard errors and effective sample sizes from non-overlapping blocks.

A series is cut into consecutive blocks of ``block_size`` samples (a trailing partial block is
dropped; blocks never straddle two independent chains). When blocks are longer than the
correlation time, block means are nearly independent, so the variance of the overall mean is
var(block means) / n_blocks. This is the conservative estimate for rare, bursty observables
(for example the indicator of a state visited a few times), where a windowed autocorrelation
estimate tends to overstate the ESS.
"""

import numpy as np

from .autocorrelation import as_chains, is_constant, min_tau


def block_means(x, block_size):
    """Means of consecutive non-overlapping blocks, pooled over chains.

    Parameters
    ----------
    x : array_like or sequence of array_like
        One series of shape (n,) or (n, k) (k observables blocked together), or a list of such
        chains.
    block_size : int
        Samples per block.

    Returns
    -------
    numpy.ndarray, shape (n_blocks,) or (n_blocks, k)
        The block means of all chains, concatenated.
    """
    block_size = int(block_size)
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    chains = [np.asarray(c, dtype=float) for c in x] if isinstance(x, (list, tuple)) else [np.asarray(x, dtype=float)]
    means = []
    for chain in chains:
        usable = len(chain) // block_size * block_size
        if usable:
            means.append(chain[:usable].reshape(usable // block_size, block_size, *chain.shape[1:]).mean(axis=1))
    if not means:
        return np.empty((0, *chains[0].shape[1:]))
    return np.concatenate(means, axis=0)


def block_standard_error(x, block_size):
    """Standard error of the mean from block means: std(block means, ddof=1) / sqrt(n_blocks).

    Parameters
    ----------
    x : array_like or sequence of array_like
        One series or a list of independent chains (see :func:`block_means`).
    block_size : int
        Samples per block.

    Returns
    -------
    float or numpy.ndarray
        The standard error (per observable for 2-D input); NaN with fewer than two blocks.
    """
    means = block_means(x, block_size)
    if len(means) < 2:
        return np.full(means.shape[1:], np.nan) if means.ndim > 1 else float("nan")
    error = means.std(axis=0, ddof=1) / np.sqrt(len(means))
    return error if np.ndim(error) else float(error)


def chain_block_ess(chain, block_size):
    """Block-averaging effective sample size of one chain.

    ESS = var(x) / se^2, with var(x) the variance of the chain's samples (ddof=0, including a
    trailing partial block) and se^2 = var(block means, ddof=1) / n_blocks; at most
    n max(1, log10 n), the bound of :func:`~.autocorrelation.min_tau` (block means that vary less
    than independent ones would, as for an antithetic chain, are credited no more than that).

    Parameters
    ----------
    chain : array_like, shape (n,)
    block_size : int
        Samples per block.

    Returns
    -------
    float
        0 for a constant chain (whatever its length), NaN with fewer than two complete blocks.
    """
    chain = np.asarray(chain, dtype=float)
    if is_constant(chain):
        return 0.0
    means = block_means(chain, block_size)
    if len(means) < 2:
        return float("nan")
    ceiling = len(chain) / min_tau(len(chain))
    se2 = means.var(ddof=1) / len(means)
    if se2 == 0.0:
        return float(ceiling)
    return float(min(chain.var() / se2, ceiling))


def block_ess(x, block_size):
    """Effective sample size from the variance of block means, per chain and summed over chains.

    Each chain gets its own variance and its own block means (:func:`chain_block_ess`), as
    :func:`~.autocorrelation.effective_sample_size` does: chains are never pooled, so differences
    between the chains' means (a chain stuck in one state, another in a second) are not mistaken
    for fluctuations within a chain. For independent samples this is about the number of samples;
    for a chain much more correlated than one block it is smaller.

    Parameters
    ----------
    x : array_like or sequence of array_like
        One series, or several independent chains (list of 1-D series or a 2-D array with one
        chain per row); blocks are formed within each chain.
    block_size : int
        Samples per block; choose it several times longer than the correlation time.

    Returns
    -------
    float
        The sum over chains. A constant chain (a state never visited or never left) contributes 0;
        a varying chain with fewer than two complete blocks cannot be estimated and is left out.
        NaN when no chain can be estimated and some chain varies (0 if every chain is constant).
    """
    chains = as_chains(x)
    if int(block_size) < 1:
        raise ValueError("block_size must be at least 1")
    values = [chain_block_ess(chain, block_size) for chain in chains]
    varying = [v for c, v in zip(chains, values) if not is_constant(c)]
    if varying and not any(np.isfinite(v) for v in varying):
        return float("nan")
    return float(sum(v for v in values if np.isfinite(v)))
