"""MBAR: samples drawn at several thermodynamic states, reweighted to one of them.

Samples x_n, n = 1..N, are drawn from K states with reduced potentials u_k(x) (``counts[k]`` from
state k). MBAR's dimensionless free energies f_k solve

    f_i = -ln sum_n exp(-u_i(x_n)) / sum_k N_k exp(f_k - u_k(x_n)),

and the weight of sample n at state i is proportional to
exp(-u_i(x_n)) / sum_k N_k exp(f_k - u_k(x_n)): the mixture of all states is the importance-sampling
proposal. For temperature replica exchange, u_k(x) = U(x) / (k_B T_k), every replica's configuration
counts at the lowest temperature, not only the one that is there.

:func:`free_energies` solves for f (pymbar's solver); :func:`log_weights` is the pure weight formula.
"""

import numpy as np
from scipy.special import logsumexp


def _checked(reduced_potentials, counts):
    u = np.asarray(reduced_potentials, dtype=float)
    n = np.asarray(counts, dtype=int)
    if u.ndim != 2 or u.shape[1] != len(n):
        raise ValueError(f"reduced potentials must be [samples, {len(n)} states], got shape {u.shape}.")
    if n.sum() != len(u) or (n < 0).any():
        raise ValueError(f"the state counts ({n.tolist()}) must be non-negative and sum to the {len(u)} samples.")
    if not np.isfinite(u).all():
        raise ValueError("reduced potentials must be finite (a NaN or infinite energy in the run).")
    return u, n


def log_weights(reduced_potentials, counts, free_energies, target: int = 0) -> np.ndarray:
    """log MBAR weights of every sample at state ``target``, normalised to sum 1.

    Parameters
    ----------
    reduced_potentials : array_like [N, K]
        u_k(x_n): every sample's reduced potential at every state.
    counts : array_like of int [K]
        Samples drawn from each state.
    free_energies : array_like [K]
        Dimensionless free energies f_k (any additive constant).
    target : int
        The state to reweight to.

    Returns
    -------
    numpy.ndarray [N]
    """
    u, n = _checked(reduced_potentials, counts)
    f = np.asarray(free_energies, dtype=float)
    drawn = n > 0
    mixture = logsumexp(f[drawn] - u[:, drawn] + np.log(n[drawn]), axis=1)
    log_w = -u[:, target] - mixture
    return log_w - logsumexp(log_w)


def free_energies(reduced_potentials, counts) -> np.ndarray:
    """MBAR's dimensionless free energies f_k, f_0 = 0 (pymbar 4's robust solver).

    Parameters
    ----------
    reduced_potentials : array_like [N, K]
    counts : array_like of int [K]

    Returns
    -------
    numpy.ndarray [K]
    """
    u, n = _checked(reduced_potentials, counts)
    # pymbar is a dependency of openmmtools; reference runs are its only user. Its import prints a
    # banner (only the import: the solver's own warnings stay visible)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from pymbar import MBAR
    # MBAR's free energies do not depend on which state drew which sample (pymbar's docs: only its
    # BAR initialisation does, and the default is zeros)
    solver = MBAR(u.T, n, solver_protocol="robust")
    f = np.asarray(solver.f_k, dtype=float)
    return f - f[0]


def kish_effective_size(log_w) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of log weights."""
    log_w = np.asarray(log_w, dtype=float)
    return float(np.exp(2.0 * logsumexp(log_w) - logsumexp(2.0 * log_w)))


__all__ = ["free_energies", "kish_effective_size", "log_weights"]
