"""Observables whose effective sample sizes are reported, and their ESS summary.

For alanine dipeptide: sin and cos of phi and psi, and the indicator of every state and of the
phi > 0 region. For larger peptides, TIC0 and TIC1 (see :mod:`.tica`) and the torsions of every
residue. Each observable is a 1-D series (one run) or a list of independent chains.
"""

import numpy as np

from .autocorrelation import as_chains, effective_sample_size
from .blocks import block_ess
from .states import REGION_NAMES, state_indicators


def angle_observables(name, degrees):
    """sin and cos of an angle.

    Parameters
    ----------
    name : str
        Angle name, e.g. ``"phi"``.
    degrees : array_like

    Returns
    -------
    dict
        ``sin_<name>``, ``cos_<name>`` -> float arrays.
    """
    radians = np.radians(np.asarray(degrees, dtype=float))
    return {f"sin_{name}": np.sin(radians), f"cos_{name}": np.cos(radians)}


def torsion_observables(phi, psi):
    """sin and cos of phi and psi.

    Parameters
    ----------
    phi, psi : array_like
        Degrees.

    Returns
    -------
    dict
        ``sin_phi``, ``cos_phi``, ``sin_psi``, ``cos_psi`` -> float arrays.
    """
    return {**angle_observables("phi", phi), **angle_observables("psi", psi)}


def dipeptide_observables(phi, psi):
    """Torsion observables and state indicators of alanine dipeptide.

    Parameters
    ----------
    phi, psi : array_like, shape (n,)
        Degrees.

    Returns
    -------
    dict
        The four torsion observables, then ``indicator_<region>`` (0/1 floats) for every region.
    """
    out = torsion_observables(phi, psi)
    for name, mask in state_indicators(phi, psi).items():
        out[f"indicator_{name}"] = mask.astype(float)
    return out


def is_indicator(name):
    """Whether an observable is a state indicator (named ``indicator_<region>``).

    Parameters
    ----------
    name : str

    Returns
    -------
    bool
    """
    return name.startswith("indicator_") and name[len("indicator_"):] in REGION_NAMES


def ess_summary(observables, sample_interval=1.0, wall_s=None, block_size=None, blocks_for="indicators"):
    """Autocorrelation time and ESS (Sokal and Geyer) of every observable, per wall-clock second too.

    Parameters
    ----------
    observables : dict
        Name -> 1-D series, or list of independent chains.
    sample_interval : float
        Time between samples (for example ps); sets the unit of ``iat_time``.
    wall_s : float, optional
        Wall-clock seconds the run took; adds ``*_per_s`` entries.
    block_size : int, optional
        Block length in samples for the block ESS.
    blocks_for : {"indicators", "all"}
        Which observables also get a block ESS (only if ``block_size`` is given).

    Returns
    -------
    dict
        Name -> dict with ``iat_samples`` (N / ESS_sokal: the autocorrelation time, for several
        chains their effective mean), ``iat_time``, ``ess`` (Sokal, c = 5), ``ess_geyer``,
        and where applicable ``ess_blocks``, ``ess_per_s``, ``ess_geyer_per_s``, ``ess_blocks_per_s``.
        A constant observable (a state never visited) has ESS 0 and NaN autocorrelation time.
    """
    table = {}
    for name, series in observables.items():
        chains = as_chains(series)
        total = sum(len(c) for c in chains)
        ess = effective_sample_size(chains, method="sokal")
        entry = {
            "samples": int(total),
            "iat_samples": float(total / ess) if ess > 0 else float("nan"),
            "ess": ess,
            "ess_geyer": effective_sample_size(chains, method="geyer"),
        }
        entry["iat_time"] = entry["iat_samples"] * sample_interval
        if block_size is not None and (blocks_for == "all" or is_indicator(name)):
            entry["ess_blocks"] = block_ess(chains, block_size)
        if wall_s is not None:
            for key in ("ess", "ess_geyer", "ess_blocks"):
                if key in entry:
                    entry[f"{key}_per_s"] = entry[key] / float(wall_s)
        table[name] = entry
    return table
