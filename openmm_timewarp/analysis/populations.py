"""State populations and free-energy differences with block-averaging error bars.

Populations are means of state indicators; their standard errors come from block means
(:mod:`.blocks`). Free energies are F_s = -ln p_s in units of kT, reported relative to a chosen
state; the error of ln(p_s / p_ref_state) is propagated from the covariance of the block means
(delta method).
"""

import numpy as np

from .blocks import block_means
from .states import REGION_NAMES, STATE_NAMES, state_indicators


def default_block_size(num_samples, num_blocks=20):
    """Block size giving ``num_blocks`` blocks (at least one sample per block).

    Parameters
    ----------
    num_samples : int
        Samples in the (shortest) chain.
    num_blocks : int
        Wanted number of blocks.

    Returns
    -------
    int
    """
    return max(1, int(num_samples) // int(num_blocks))


def _indicator_matrix(phi, psi, names):
    indicators = state_indicators(phi, psi)
    return np.stack([indicators[name] for name in names], axis=-1).astype(float)


def state_populations(phi, psi, block_size=None, relative_to="beta_C7eq", names=REGION_NAMES):
    """Populations and free energies of the alanine-dipeptide states, with block error bars.

    Parameters
    ----------
    phi, psi : array_like or sequence of array_like
        Torsions in degrees of one run, shape (n,), or lists of independent chains (blocks never
        straddle two chains; the population is the mean over all samples).
    block_size : int, optional
        Samples per block; default: a twentieth of the shortest chain.
    relative_to : str
        State whose free energy is zero.
    names : sequence of str
        Regions reported (default: the four states and phi_positive).

    Returns
    -------
    dict
        ``populations``, ``populations_stderr``, ``free_energy_kT`` (F_s - F_relative_to = -ln(p_s/p_rel),
        inf for an unvisited state) and ``free_energy_kT_stderr`` (NaN where undefined), each a dict
        keyed by state; plus ``num_samples``, ``block_size``, ``num_blocks``, ``relative_to``.
    """
    names = tuple(names)
    if relative_to not in names:
        names = names + (relative_to,)
    chains_phi = list(phi) if isinstance(phi, (list, tuple)) else [phi]
    chains_psi = list(psi) if isinstance(psi, (list, tuple)) else [psi]
    matrices = [_indicator_matrix(a, b, names) for a, b in zip(chains_phi, chains_psi)]
    samples = np.concatenate(matrices, axis=0)
    if block_size is None:
        block_size = default_block_size(min(len(m) for m in matrices))
    means = block_means(matrices, block_size)
    p = samples.mean(axis=0)
    if len(means) >= 2:
        cov = np.atleast_2d(np.cov(means, rowvar=False, ddof=1)) / len(means)
    else:
        cov = np.full((len(names), len(names)), np.nan)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    r = names.index(relative_to)
    with np.errstate(divide="ignore", invalid="ignore"):
        free = -np.log(p / p[r]) + 0.0  # no negative zero
        grad_var = cov.diagonal() / p**2 + cov[r, r] / p[r] ** 2 - 2.0 * cov[:, r] / (p * p[r])
        free_se = np.sqrt(np.clip(grad_var, 0.0, None))
    free_se[r] = 0.0
    free_se[~np.isfinite(free)] = np.nan
    return {
        "populations": {n: float(v) for n, v in zip(names, p)},
        "populations_stderr": {n: float(v) for n, v in zip(names, se)},
        "free_energy_kT": {n: float(v) for n, v in zip(names, free)},
        "free_energy_kT_stderr": {n: float(v) for n, v in zip(names, free_se)},
        "relative_to": relative_to,
        "num_samples": int(len(samples)),
        "block_size": int(block_size),
        "num_blocks": int(len(means)),
    }


def compare_populations(populations, stderr, reference, reference_stderr, names=None):
    """Agreement of a run's populations with a reference.

    Parameters
    ----------
    populations, stderr : dict
        The run's populations and their standard errors (state -> float).
    reference, reference_stderr : dict
        The reference populations and standard errors.
    names : sequence of str, optional
        States to compare (default: those in both ``populations`` and ``reference``).

    Returns
    -------
    dict
        State -> dict with ``population``, ``reference``, ``abs_log_ratio`` = |ln(p / p_ref)|
        (the free-energy error in kT; inf if the run never visits the state), ``delta_free_energy_kT``
        = -ln(p / p_ref) (F_run - F_ref), ``z`` = (p - p_ref) / sqrt(se^2 + se_ref^2)
        (NaN if both errors are zero or missing) and ``visited`` (p > 0).
    """
    if names is None:
        names = [n for n in populations if n in reference]
    result = {}
    for name in names:
        p, q = float(populations[name]), float(reference[name])
        se = float(stderr.get(name, np.nan)) if stderr is not None else np.nan
        se_ref = float(reference_stderr.get(name, np.nan)) if reference_stderr is not None else np.nan
        combined = np.sqrt(np.nan_to_num(se) ** 2 + np.nan_to_num(se_ref) ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(p / q) if q > 0 else (np.nan if p == 0 else np.inf)
        result[name] = {
            "population": p,
            "reference": q,
            "abs_log_ratio": float(abs(log_ratio)),
            "delta_free_energy_kT": float(-log_ratio),
            "z": float((p - q) / combined) if combined > 0 else float("nan"),
            "visited": bool(p > 0),
        }
    return result


def missed_states(populations, reference, names=STATE_NAMES):
    """States the reference visits (p_ref > 0) but the run never does (p == 0).

    Parameters
    ----------
    populations, reference : dict
        State -> population.
    names : sequence of str
        States to check.

    Returns
    -------
    list of str
    """
    return [n for n in names if reference.get(n, 0.0) > 0.0 and populations.get(n, 0.0) <= 0.0]
