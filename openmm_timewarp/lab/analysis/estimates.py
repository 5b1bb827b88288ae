"""Weighted averages with block standard errors and effective sample sizes (pure numpy).

One implementation for every population estimate the package makes: references, the benchmark
(every method, including metadynamics' reweighted samples) and ``analyze``. Samples come in one
or more independent chains; each chain is cut into ``num_blocks`` consecutive blocks (of equal
length, or of equal wall-clock time when times are given), and the blocks of all chains are
pooled. With weights w the estimate is the ratio sum(w f) / sum(w); its variance is estimated
from the block ratios by the delta method,

    var = n_b / (n_b - 1) * sum_b (W_b / W)^2 (R_b - R)^2,

which for equal weights and equal blocks is var(block means) / n_b. A chain stuck in one state
while another sits in a second shows up as variance between blocks: chains are never assumed to
agree. The block effective sample size is var_pi(f) / var; for an indicator var_pi = p (1 - p).
"""

from typing import Dict, Optional, Sequence, Tuple

import numpy as np


def block_labels(lengths: Sequence[int], num_blocks: int, times: Optional[np.ndarray] = None) -> np.ndarray:
    """Block index of every sample of consecutive chains of ``lengths`` (blocks never straddle chains).

    With ``times`` (per sample, restarting at each chain), blocks are equal spans of time.
    """
    labels, offset, block = [], 0, 0
    for length in lengths:
        if times is None:
            position = np.arange(length) * num_blocks // max(length, 1)
        else:
            t = np.asarray(times[offset:offset + length], dtype=float)
            span = t[-1] if length else 1.0
            position = np.minimum((t / span * num_blocks).astype(int), num_blocks - 1) if span > 0 else \
                np.zeros(length, dtype=int)
        labels.append(position + block)
        offset += length
        block += num_blocks
    return np.concatenate(labels) if labels else np.zeros(0, dtype=int)


def weighted_estimate(values: np.ndarray, log_weights: Optional[np.ndarray] = None,
                      lengths: Optional[Sequence[int]] = None, num_blocks: int = 20,
                      times: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean, block standard error and block ESS of every column of ``values``.

    Parameters
    ----------
    values : numpy.ndarray [n] or [n, k]
        Samples of k observables (indicators or any function), chains concatenated.
    log_weights : numpy.ndarray [n], optional
        log reweighting factors (None: equal weights).
    lengths : sequence of int, optional
        Samples per chain (default: one chain).
    num_blocks : int
        Blocks per chain.
    times : numpy.ndarray [n], optional
        Time of each sample within its chain: blocks of equal time instead of equal length.

    Returns
    -------
    mean, stderr, ess : numpy.ndarray [k] (or scalars for 1-D input)
        stderr NaN with fewer than two non-empty blocks; ess 0 where the observable never varies
        (a state never visited, or never left), NaN where it cannot be estimated.
    """
    x = np.asarray(values, dtype=float)
    flat = x.ndim == 1
    x = x.reshape(len(x), -1)
    n = len(x)
    lengths = [n] if lengths is None else list(lengths)
    if sum(lengths) != n:
        raise ValueError(f"chain lengths sum to {sum(lengths)}, there are {n} samples.")
    if n == 0:
        nan = np.full(x.shape[1], np.nan)
        return (nan, nan, nan) if not flat else (np.nan, np.nan, np.nan)
    lw = np.zeros(n) if log_weights is None else np.asarray(log_weights, dtype=float)
    w = np.exp(lw - lw.max())
    labels = block_labels(lengths, num_blocks, times)
    count = labels.max() + 1
    block_w = np.bincount(labels, weights=w, minlength=count)
    block_wf = np.stack([np.bincount(labels, weights=w * x[:, j], minlength=count) for j in range(x.shape[1])], -1)
    mean = block_wf.sum(0) / block_w.sum()
    used = block_w > 0
    nb = int(used.sum())
    share = block_w[used] / block_w.sum()
    ratios = block_wf[used] / block_w[used, None]
    if nb >= 2:
        variance = nb / (nb - 1) * ((share[:, None] * (ratios - mean)) ** 2).sum(0)
    else:
        variance = np.full(x.shape[1], np.nan)
    population_variance = (w[:, None] * (x - mean) ** 2).sum(0) / w.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = np.where(population_variance > 0, population_variance / variance, 0.0)
    stderr = np.sqrt(variance)
    if flat:
        return float(mean[0]), float(stderr[0]), float(ess[0])
    return mean, stderr, ess


def state_estimates(indicators: Dict[str, np.ndarray], log_weights: Optional[np.ndarray] = None,
                    lengths: Optional[Sequence[int]] = None, num_blocks: int = 20,
                    times: Optional[np.ndarray] = None) -> Dict[str, Dict[str, float]]:
    """Population, standard error and block ESS of every state (name -> {"population", "stderr", "ess"})."""
    names = list(indicators)
    if not names:
        return {}
    matrix = np.stack([np.asarray(indicators[name], dtype=float) for name in names], axis=-1)
    mean, stderr, ess = weighted_estimate(matrix, log_weights, lengths, num_blocks, times)
    return {name: {"population": float(mean[k]), "stderr": float(stderr[k]), "ess": float(ess[k])}
            for k, name in enumerate(names)}


def log_ratio_error(population: float, reference: float) -> float:
    """|ln(p / p_ref)| (kT); infinite when the state was never seen."""
    if population <= 0 or reference <= 0:
        return float("inf")
    return abs(float(np.log(population / reference)))


def z_score(population: float, stderr: float, reference: float, reference_stderr: float) -> float:
    """(p - p_ref) / sqrt(se^2 + se_ref^2): agreement judged with both errors."""
    scale = np.sqrt(np.nan_to_num(stderr) ** 2 + np.nan_to_num(reference_stderr) ** 2)
    return float((population - reference) / scale) if scale > 0 else (0.0 if population == reference else float("inf"))
