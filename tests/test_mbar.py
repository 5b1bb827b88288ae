"""MBAR reweighting (``analysis/mbar.py``): a 6-D harmonic oscillator at several temperatures, where the answer is exact.

Samples are independent, so the block standard error of the reweighted estimate is honest and
the tolerance is a multiple of it. Variants with the free energies or the state counts left out
must miss by more than that tolerance.
"""

import math

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import chi2

from openmm_timewarp.lab.analysis import mbar
from openmm_timewarp.lab.analysis.estimates import weighted_estimate

DIMENSIONS = 6
TEMPERATURES = np.array([1.0, 1.4, 2.0, 2.8])  # kT units; U(x) = |x|^2 / 2, so x ~ N(0, T I)
COUNTS = np.array([300, 1200, 2500, 5000])  # unequal, so a dropped N_k shows
THRESHOLD = 12.0
EXACT = float(chi2.sf(THRESHOLD, DIMENSIONS))  # P(|x|^2 > 12) at T = 1: 0.062
TOLERANCE_SIGMAS = 4.0


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(11)
    r2 = np.concatenate([t * rng.chisquare(DIMENSIONS, n) for t, n in zip(TEMPERATURES, COUNTS)])
    rng.shuffle(r2)  # MBAR does not care which state drew which sample
    u = 0.5 * r2[:, None] / TEMPERATURES[None, :]
    return r2, u


def _estimate(x, log_w):
    mean, stderr, _ = weighted_estimate((x > THRESHOLD).astype(float), log_w, num_blocks=20)
    return float(mean), float(stderr)


def test_free_energies_match_the_partition_functions(samples):
    _, u = samples
    f = mbar.free_energies(u, COUNTS)
    exact = -0.5 * DIMENSIONS * np.log(TEMPERATURES / TEMPERATURES[0])  # -ln Z_k / Z_0, Z_k ~ T_k^(d/2)
    assert f[0] == 0.0
    # the statistical error of f_k - f_0 is below ~ 1 / sqrt(N_0): 0.06 here
    np.testing.assert_allclose(f, exact, atol=4.0 / math.sqrt(COUNTS[0]))


def test_reweighted_tail_probability_is_exact_within_its_error(samples):
    x, u = samples
    log_w = mbar.log_weights(u, COUNTS, mbar.free_energies(u, COUNTS), target=0)
    assert logsumexp(log_w) == pytest.approx(0.0, abs=1e-12)
    mean, stderr = _estimate(x, log_w)
    assert abs(mean - EXACT) < TOLERANCE_SIGMAS * stderr
    # pooling every temperature beats the target state's 300 samples alone
    only_target = math.sqrt(EXACT * (1 - EXACT) / COUNTS[0])
    assert stderr < 0.6 * only_target


@pytest.mark.parametrize("broken", ["no free energies", "no state counts", "equal weights"])
def test_broken_weights_miss(samples, broken):
    x, u = samples
    f = mbar.free_energies(u, COUNTS)
    if broken == "no free energies":
        log_w = mbar.log_weights(u, COUNTS, np.zeros_like(f))
    elif broken == "no state counts":
        log_w = -u[:, 0] - logsumexp(f[None, :] - u, axis=1)
    else:
        log_w = np.zeros(len(x))
    _, stderr = _estimate(x, mbar.log_weights(u, COUNTS, f))
    mean, _ = _estimate(x, log_w)
    assert abs(mean - EXACT) > TOLERANCE_SIGMAS * stderr


def test_kish_effective_size():
    assert mbar.kish_effective_size(np.zeros(50)) == pytest.approx(50.0)
    assert mbar.kish_effective_size(np.array([0.0, -50.0, -50.0])) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("u, counts, message", [
    (np.zeros((5, 3)), [2, 2], "states"),
    (np.zeros((5, 2)), [2, 2], "sum to the 5 samples"),
    (np.array([[0.0, np.nan], [1.0, 2.0]]), [1, 1], "NaN"),
])
def test_bad_input_is_a_clear_error(u, counts, message):
    with pytest.raises(ValueError, match=message):
        mbar.log_weights(u, counts, np.zeros(len(counts)))
