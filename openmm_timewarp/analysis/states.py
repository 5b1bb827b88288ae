"""Metastable states of alanine dipeptide from its backbone torsions.

Angles in degrees, (-180, 180]; phi = C(ACE)-N-CA-C, psi = N-CA-C-N(NME).

==============  ==============================================
state           region
==============  ==============================================
phi_positive    0 <= phi < 120 (alphaL + C7ax)
beta_C7eq       not phi_positive, and (psi >= 100 or psi < -100)
alphaR          not phi_positive, and -100 <= psi < 100
alphaL          phi_positive and psi >= -45
C7ax            phi_positive and psi < -45
==============  ==============================================

The four states beta_C7eq, alphaR, alphaL, C7ax partition the torsion plane; phi_positive is the
union of the last two.
"""

import numpy as np

# The partition, in label order: assign_states returns an index into this tuple.
STATE_NAMES = ("beta_C7eq", "alphaR", "alphaL", "C7ax")
# Every region reported, partition first.
REGION_NAMES = STATE_NAMES + ("phi_positive",)


def phi_positive(phi):
    """Whether phi lies in the phi > 0 region, 0 <= phi < 120 degrees.

    Parameters
    ----------
    phi : array_like
        Degrees.

    Returns
    -------
    numpy.ndarray of bool
    """
    phi = np.asarray(phi)
    return (phi >= 0.0) & (phi < 120.0)


def state_indicators(phi, psi):
    """Boolean indicator of every region for every sample.

    Parameters
    ----------
    phi, psi : array_like, same shape
        Backbone torsions in degrees.

    Returns
    -------
    dict
        Region name (``REGION_NAMES``) -> bool array of the input shape.
    """
    phi = np.asarray(phi)
    psi = np.asarray(psi)
    if phi.shape != psi.shape:
        raise ValueError(f"phi and psi shapes differ: {phi.shape} vs {psi.shape}")
    positive = phi_positive(phi)
    beta_psi = (psi >= 100.0) | (psi < -100.0)
    return {
        "beta_C7eq": ~positive & beta_psi,
        "alphaR": ~positive & ~beta_psi,
        "alphaL": positive & (psi >= -45.0),
        "C7ax": positive & (psi < -45.0),
        "phi_positive": positive,
    }


def assign_states(phi, psi):
    """Label every sample with its state: an index into ``STATE_NAMES``.

    Parameters
    ----------
    phi, psi : array_like, same shape
        Backbone torsions in degrees.

    Returns
    -------
    numpy.ndarray of int
        0 beta_C7eq, 1 alphaR, 2 alphaL, 3 C7ax.
    """
    indicators = state_indicators(phi, psi)
    labels = np.zeros(np.shape(phi), dtype=int)
    for index, name in enumerate(STATE_NAMES):
        labels[indicators[name]] = index
    return labels


def count_entries(indicator):
    """Number of entries into a region: False -> True transitions (a run starting inside counts one).

    Parameters
    ----------
    indicator : array_like of bool, shape (n,)

    Returns
    -------
    int
    """
    inside = np.asarray(indicator, dtype=bool)
    if inside.size == 0:
        return 0
    return int(inside[0]) + int(np.count_nonzero(inside[1:] & ~inside[:-1]))
