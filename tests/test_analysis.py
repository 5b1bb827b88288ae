"""Analysis: autocorrelation times and ESS, block averaging, states, populations, JSD, speed-ups, torsions."""

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from openmm_timewarp.analysis import (
    REGION_NAMES,
    STATE_NAMES,
    SpeedUp,
    analyze_dipeptide,
    assign_states,
    backbone_torsions,
    block_ess,
    block_standard_error,
    compare_populations,
    count_entries,
    dipeptide_torsions,
    effective_sample_size,
    first_visit_times,
    integrated_autocorrelation_time,
    jensen_shannon_divergence,
    load_reference,
    missed_states,
    population_errors_kT,
    reference_histogram,
    speed_up,
    speed_ups,
    state_indicators,
    state_populations,
    torsion_histogram,
    torsion_jsd,
    torsions_from_positions,
)
from openmm_timewarp.analysis.autocorrelation import autocorrelation
from openmm_timewarp.analysis.speedup import observable_affected
from openmm_timewarp.analysis.torsions import wrap_degrees

from test_analysis_geometry import dipeptide, dipeptide_topology, dipeptide_trajectory

N_SIGMA = 4.0


def ar1(rho, n, seed):
    """Stationary AR(1) series with unit variance: x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n)
    noise[0] /= math.sqrt(1.0 - rho**2)  # start from the stationary distribution
    return lfilter([math.sqrt(1.0 - rho**2)], [1.0, -rho], noise)


def ar1_tau(rho):
    return (1.0 + rho) / (1.0 - rho)


def sokal_relative_error(tau, n, c=5.0):
    """Sokal's large-sample relative standard deviation of a windowed tau estimate: sqrt(2 (2M + 1) / n)."""
    return math.sqrt(2.0 * (2.0 * c * tau + 1.0) / n)


# ---------------------------------------------------------------- autocorrelation time and ESS


@pytest.mark.parametrize("method", ["sokal", "geyer"])
@pytest.mark.parametrize("rho, seed", [(0.9, 11), (0.5, 12)])
def test_iat_of_ar1_matches_exact_value(method, rho, seed):
    n = 400_000
    tau = ar1_tau(rho)
    estimate = integrated_autocorrelation_time(ar1(rho, n, seed), method=method)
    tolerance = N_SIGMA * sokal_relative_error(tau, n)
    assert abs(estimate / tau - 1.0) < tolerance, (estimate, tau, tolerance)


def test_ess_of_ar1_is_n_over_tau_and_not_n():
    n, rho = 400_000, 0.9
    tau = ar1_tau(rho)
    x = ar1(rho, n, 3)
    tolerance = N_SIGMA * sokal_relative_error(tau, n)
    ess = effective_sample_size(x)
    assert abs(ess / (n / tau) - 1.0) < tolerance
    # an estimator that ignored the correlation (ESS = n) would be off by a factor tau = 19
    assert ess < n / 5


def test_ess_of_independent_samples_is_about_n():
    n = 100_000
    x = np.random.default_rng(5).standard_normal(n)
    tolerance = N_SIGMA * sokal_relative_error(1.0, n)
    for method in ("sokal", "geyer"):
        assert abs(effective_sample_size(x, method=method) / n - 1.0) < tolerance


def test_biased_and_unbiased_estimators_agree_on_a_long_series():
    x = ar1(0.8, 100_000, 9)
    a = integrated_autocorrelation_time(x, estimator="unbiased")
    b = integrated_autocorrelation_time(x, estimator="biased")
    assert abs(a / b - 1.0) < 0.01


def test_autocorrelation_of_ar1_decays_geometrically():
    rho = autocorrelation(ar1(0.7, 200_000, 4))
    assert rho[0] == pytest.approx(1.0)
    assert np.allclose(rho[1:4], 0.7 ** np.arange(1, 4), atol=0.02)


def test_ess_of_several_chains_is_the_sum():
    chains = [ar1(0.9, 50_000, 21), ar1(0.9, 30_000, 22)]
    total = effective_sample_size(chains)
    assert total == pytest.approx(effective_sample_size(chains[0]) + effective_sample_size(chains[1]))
    same_length = np.stack([ar1(0.5, 20_000, 23), ar1(0.5, 20_000, 24)])
    assert effective_sample_size(same_length) == pytest.approx(
        effective_sample_size(same_length[0]) + effective_sample_size(same_length[1]))


@pytest.mark.parametrize("value", [0.0, 0.1, 1.0 / 3.0, math.sin(math.radians(150.0))])
@pytest.mark.parametrize("n", [100, 324, 1000])
def test_constant_series_has_no_ess(value, n):
    # the mean of n copies of 0.1 is not exactly 0.1: the rounding offset must not count as a fluctuation
    x = np.full(n, value)
    assert math.isnan(integrated_autocorrelation_time(x))
    assert np.all(np.isnan(autocorrelation(x)))
    for method in ("sokal", "geyer"):
        assert effective_sample_size(x, method=method) == 0.0
    assert block_ess(x, 10) == 0.0
    assert block_ess([x, np.full(n, -value)], 10) == 0.0


def alternating_mixture(n, seed, variance=4.0):
    """A slow AR(1) (rho 0.95) plus a fast alternating one (rho -0.9, ``variance``): rho(1) < 0, tau_int >> 1.

    Like a torsion observable of MD sampled every 0.5 ps: a libration aliased into a period-2 oscillation
    on top of slow transitions. Exact tau_int: the variance-weighted mean of the two components' values.
    """
    x = ar1(0.95, n, seed) + math.sqrt(variance) * ar1(-0.9, n, seed + 1000)
    tau = (ar1_tau(0.95) + variance * ar1_tau(-0.9)) / (1.0 + variance)
    return x, tau


def test_sokal_window_is_not_closed_by_a_negative_lag_one_correlation():
    n = 200_000
    x, tau = alternating_mixture(n, 61)
    rho = autocorrelation(x)
    assert rho[1] < -0.4 and 1.0 + 2.0 * rho[1] < 0.2  # Sokal's rule alone would stop at lag 1 with tau < 0.2
    sokal = integrated_autocorrelation_time(x, method="sokal")
    geyer = integrated_autocorrelation_time(x, method="geyer")
    # the c = 5 window truncates the slow component's tail (decay time 19.5 lags): a known downward bias
    assert 0.7 < sokal / tau < 1.0 + N_SIGMA * sokal_relative_error(tau, n)
    assert abs(geyer / tau - 1.0) < N_SIGMA * sokal_relative_error(tau, n)


@pytest.mark.parametrize("method", ["sokal", "geyer"])
def test_ess_never_exceeds_n_log10_n_per_chain(method):
    # An antithetic chain (rho(t) = (-0.9)^t, tau_int = 0.053) is credited at most n log10 n per chain.
    n = 10_000
    x = ar1(-0.9, n, 62)
    assert integrated_autocorrelation_time(x, method=method) == pytest.approx(1.0 / math.log10(n))
    assert effective_sample_size(x, method=method) == pytest.approx(n * math.log10(n))
    assert effective_sample_size([x, x[:5000]], method=method) == pytest.approx(
        n * math.log10(n) + 5000 * math.log10(5000))
    assert block_ess(x, 100) == pytest.approx(n * math.log10(n))
    # short runs like 324 samples of MD at 0.5 ps: positive, and at most 324 log10 324 = 813
    for seed in range(5):
        short, _ = alternating_mixture(324, 70 + seed)
        assert 0.0 < effective_sample_size(short, method=method) <= 324 * math.log10(324) + 1e-9
    # below ten samples the bound is n itself
    tiny = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    assert effective_sample_size(tiny, method=method) == pytest.approx(6.0)


def test_iid_ess_is_not_affected_by_the_bounds():
    x = np.random.default_rng(63).standard_normal(20_000)
    assert abs(effective_sample_size(x) / len(x) - 1.0) < N_SIGMA * sokal_relative_error(1.0, len(x))
    assert abs(block_ess(x, 200) / len(x) - 1.0) < N_SIGMA * math.sqrt(2.0 / 99)


def test_unknown_method_and_column_vectors_are_rejected():
    with pytest.raises(ValueError):
        integrated_autocorrelation_time(np.arange(10.0), method="window")
    with pytest.raises(ValueError):
        effective_sample_size(np.arange(10.0)[:, None])  # ten chains of one sample: a mistake


# ---------------------------------------------------------------- block averaging


def test_block_ess_of_ar1():
    n, rho, block = 400_000, 0.9, 1000
    tau = ar1_tau(rho)
    ess = block_ess(ar1(rho, n, 31), block)
    tolerance = N_SIGMA * math.sqrt(2.0 / (n // block - 1))
    assert abs(ess / (n / tau) - 1.0) < tolerance
    assert ess < n / 5


def telegraph(enter, leave, n, seed):
    """Indicator of a rare state in a two-state Markov chain (P(0 -> 1) = enter, P(1 -> 0) = leave)."""
    rng = np.random.default_rng(seed)
    pieces, state, total = [], 0, 0
    while total < n:
        length = int(rng.geometric(enter if state == 0 else leave))
        pieces.append(np.full(length, float(state)))
        total += length
        state = 1 - state
    return np.concatenate(pieces)[:n]


def test_block_ess_of_a_rare_bursty_indicator():
    # rho(t) = (1 - a - b)^t, so tau = (2 - a - b) / (a + b); the state holds a / (a + b) = 2.4 % of samples.
    a, b, n, block = 0.0005, 0.02, 400_000, 5000
    tau = (2.0 - a - b) / (a + b)
    x = telegraph(a, b, n, 51)
    tolerance = N_SIGMA * math.sqrt(2.0 / (n // block - 1))
    assert abs(block_ess(x, block) / (n / tau) - 1.0) < tolerance
    assert abs(effective_sample_size(x) / (n / tau) - 1.0) < N_SIGMA * sokal_relative_error(tau, n)
    # a chain that never enters the state adds samples but no information about it
    assert block_ess([x, np.zeros(50_000)], block) == pytest.approx(block_ess(x, block))
    assert effective_sample_size([x, np.zeros(50_000)]) == pytest.approx(effective_sample_size(x))


def test_block_ess_of_several_chains_is_the_per_chain_sum():
    # chains with different means (one in each of two states) must not count the difference as a fluctuation
    rng = np.random.default_rng(64)
    a, b = rng.standard_normal(20_000), 10.0 + rng.standard_normal(30_000)
    total = block_ess([a, b], 500)
    assert total == pytest.approx(block_ess(a, 500) + block_ess(b, 500))
    assert abs(total / 50_000 - 1.0) < N_SIGMA * math.sqrt(2.0 / 39)
    assert block_ess(np.stack([a[:10_000], b[:10_000]]), 500) == pytest.approx(
        block_ess(a[:10_000], 500) + block_ess(b[:10_000], 500))
    # a varying chain too short for two blocks is left out; NaN only if no varying chain can be estimated
    assert block_ess([a, b[:700]], 500) == pytest.approx(block_ess(a, 500))
    assert math.isnan(block_ess([b[:700], np.zeros(5000)], 500))


def test_block_standard_error_of_independent_samples():
    x = np.random.default_rng(8).standard_normal(200_000)
    se = block_standard_error(x, 1000)
    assert abs(se / (1.0 / math.sqrt(len(x))) - 1.0) < N_SIGMA * math.sqrt(0.5 / 199)


# ---------------------------------------------------------------- states


@pytest.mark.parametrize(
    "phi, psi, state",
    [
        (-80.0, 150.0, "beta_C7eq"),
        (-150.0, -170.0, "beta_C7eq"),
        (-60.0, 100.0, "beta_C7eq"),    # psi >= 100
        (-60.0, 99.9, "alphaR"),
        (-60.0, -100.0, "alphaR"),      # -100 <= psi
        (-60.0, -100.1, "beta_C7eq"),
        (-60.0, -40.0, "alphaR"),
        (0.0, 50.0, "alphaL"),          # phi = 0 is phi-positive
        (-0.1, 50.0, "alphaR"),
        (60.0, -45.0, "alphaL"),        # psi >= -45
        (60.0, -45.1, "C7ax"),
        (119.9, -60.0, "C7ax"),
        (120.0, -60.0, "alphaR"),       # phi < 120 only
        (120.0, 160.0, "beta_C7eq"),
        (180.0, 180.0, "beta_C7eq"),
    ],
)
def test_state_assignment_on_known_angles(phi, psi, state):
    label = assign_states(np.array([phi]), np.array([psi]))[0]
    assert STATE_NAMES[label] == state
    indicators = state_indicators(phi, psi)
    assert indicators[state]
    assert sum(bool(indicators[s]) for s in STATE_NAMES) == 1
    assert bool(indicators["phi_positive"]) == (state in ("alphaL", "C7ax"))


def test_count_entries():
    assert count_entries([0, 0, 1, 1, 0, 1, 0, 0, 1]) == 3
    assert count_entries([1, 1, 0, 1]) == 2
    assert count_entries([0, 0]) == 0


# ---------------------------------------------------------------- populations and reference agreement


def _labels_to_angles(labels):
    centres = {0: (-80.0, 150.0), 1: (-70.0, -30.0), 2: (60.0, 40.0), 3: (70.0, -80.0)}
    phi = np.array([centres[k][0] for k in labels])
    psi = np.array([centres[k][1] for k in labels])
    return phi, psi


def test_populations_free_energies_and_errors_of_independent_samples():
    p = np.array([0.55, 0.40, 0.04, 0.01])
    n = 100_000
    labels = np.random.default_rng(17).choice(4, size=n, p=p)
    result = state_populations(*_labels_to_angles(labels), block_size=1000)
    for k, name in enumerate(STATE_NAMES):
        expected_se = math.sqrt(p[k] * (1 - p[k]) / n)
        assert abs(result["populations"][name] - p[k]) < N_SIGMA * expected_se
        assert abs(result["populations_stderr"][name] / expected_se - 1.0) < N_SIGMA * math.sqrt(0.5 / 99)
        assert result["free_energy_kT"][name] == pytest.approx(
            -math.log(result["populations"][name] / result["populations"]["beta_C7eq"]))
    assert result["populations"]["phi_positive"] == pytest.approx(
        result["populations"]["alphaL"] + result["populations"]["C7ax"])
    # delta-method error of ln(p_C7ax / p_beta) for multinomial counts
    expected = math.sqrt((1 / p[3] + 1 / p[0]) / n)
    assert abs(result["free_energy_kT_stderr"]["C7ax"] / expected - 1.0) < 0.3
    assert result["num_blocks"] == 100


def test_unvisited_state_has_infinite_free_energy():
    phi, psi = _labels_to_angles(np.array([0, 1] * 500))
    result = state_populations(phi, psi, block_size=50)
    assert result["populations"]["alphaL"] == 0.0
    assert math.isinf(result["free_energy_kT"]["alphaL"])


def test_compare_populations_with_hand_numbers():
    comparison = compare_populations({"alphaL": 0.03}, {"alphaL": 0.003}, {"alphaL": 0.02}, {"alphaL": 0.004})
    entry = comparison["alphaL"]
    assert entry["abs_log_ratio"] == pytest.approx(math.log(1.5))
    assert entry["delta_free_energy_kT"] == pytest.approx(-math.log(1.5))
    assert entry["z"] == pytest.approx(0.01 / 0.005)
    missed = compare_populations({"C7ax": 0.0}, {"C7ax": 0.0}, {"C7ax": 0.002}, {"C7ax": 0.0005})["C7ax"]
    assert math.isinf(missed["abs_log_ratio"]) and not missed["visited"]
    assert missed["z"] == pytest.approx(-4.0)
    assert missed_states({"beta_C7eq": 0.6, "alphaR": 0.4, "alphaL": 0.0, "C7ax": 0.0},
                         {"beta_C7eq": 0.5, "alphaR": 0.4, "alphaL": 0.09, "C7ax": 0.01}) == ["alphaL", "C7ax"]
    assert population_errors_kT({"alphaR": 0.2}, {"alphaR": 0.4})["alphaR"] == pytest.approx(math.log(2.0))


def test_packaged_reference():
    reference = load_reference()
    pops = reference["populations"]
    assert set(REGION_NAMES) <= set(pops) and set(REGION_NAMES) <= set(reference["populations_stderr"])
    assert sum(pops[s] for s in STATE_NAMES) == pytest.approx(1.0)
    assert pops["beta_C7eq"] == pytest.approx(0.5574, abs=1e-4)
    assert pops["alphaR"] == pytest.approx(0.4201, abs=1e-4)
    assert pops["alphaL"] == pytest.approx(0.0207, abs=1e-4)
    assert pops["C7ax"] == pytest.approx(0.0019, abs=1e-4)
    assert reference["populations_stderr"]["C7ax"] == pytest.approx(0.0004, abs=1e-4)
    assert "provenance" in reference and set(reference["states"]) >= set(REGION_NAMES)
    counts = reference_histogram(reference, 36)
    assert counts.shape == (36, 36) and counts.sum() == reference["num_samples"]
    # the histogram agrees with the populations (phi bins 18..29 cover 0 <= phi < 120)
    assert counts[18:30].sum() / counts.sum() == pytest.approx(pops["phi_positive"], abs=1e-9)


# ---------------------------------------------------------------- Jensen-Shannon divergence


def test_jsd_properties():
    rng = np.random.default_rng(2)
    p = rng.random((36, 36))
    q = rng.random((36, 36))
    assert jensen_shannon_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon_divergence(p, 7.0 * p) == pytest.approx(0.0, abs=1e-12)  # normalised
    assert jensen_shannon_divergence(p, q) == pytest.approx(jensen_shannon_divergence(q, p))
    assert 0.0 < jensen_shannon_divergence(p, q) < math.log(2.0)
    disjoint_a = np.zeros(10)
    disjoint_b = np.zeros(10)
    disjoint_a[:5] = 1.0
    disjoint_b[5:] = 1.0
    assert jensen_shannon_divergence(disjoint_a, disjoint_b) == pytest.approx(math.log(2.0))
    # two-point distributions with a closed form
    a, b = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    m = (a + b) / 2
    exact = 0.5 * np.sum(a * np.log(a / m)) + 0.5 * np.sum(b * np.log(b / m))
    assert jensen_shannon_divergence(a, b) == pytest.approx(exact)


def test_torsion_histogram_is_periodic_and_fixed():
    counts = torsion_histogram([180.0, -180.0, -175.0, 179.9, 0.0], [0.0, 0.0, 0.0, 0.0, -180.0])
    assert counts.shape == (36, 36) and counts.sum() == 5
    assert counts[0, 18] == 3  # 180, -180 and -175 share the first phi bin
    assert counts[35, 18] == 1
    assert counts[18, 0] == 1


def test_torsion_jsd_against_reference_is_small_for_reference_like_samples():
    reference = load_reference()
    counts = reference_histogram(reference, 36)
    rng = np.random.default_rng(4)
    flat = rng.choice(counts.size, size=200_000, p=(counts / counts.sum()).ravel())
    phi = -180.0 + 10.0 * (flat // 36 + rng.random(flat.size))
    psi = -180.0 + 10.0 * (flat % 36 + rng.random(flat.size))
    close = torsion_jsd(phi, psi, counts)
    shifted = torsion_jsd(wrap_degrees(phi + 90.0), psi, counts)
    assert close < 0.01 < shifted


# ---------------------------------------------------------------- speed-ups, the speed-up-0 rule, censoring


def test_speed_up_is_the_ratio_of_ess_rates():
    result = speed_up(run_ess=100.0, run_wall_s=10.0, baseline_ess=50.0, baseline_wall_s=20.0)
    assert result.value == pytest.approx(4.0) and not result.censored and str(result) == "4"


def test_speed_up_on_synthetic_chains_with_known_answer():
    # Same length and wall time; the run's tau is 3, the baseline's 19: speed-up tau_b / tau_a = 19/3.
    n = 200_000
    run = {"wall_s": 100.0, "ess": {"sin_psi": effective_sample_size(ar1(0.5, n, 41))}}
    baseline = {"wall_s": 100.0, "ess": {"sin_psi": effective_sample_size(ar1(0.9, n, 42))}}
    result = speed_ups(run, baseline)["sin_psi"]
    tolerance = N_SIGMA * math.hypot(sokal_relative_error(3.0, n), sokal_relative_error(19.0, n))
    assert abs(result.value / (19.0 / 3.0) - 1.0) < tolerance


def _chain_with_states(visits, n=20_000, seed=0):
    """Labels cycling slowly through ``visits`` (state indices), as torsion angles."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.choice(visits, size=n // 50), 50)
    return _labels_to_angles(labels)


def test_speed_up_zero_rule_for_a_run_that_misses_a_state():
    reference = load_reference()
    run = analyze_dipeptide(*_chain_with_states([0, 1], seed=1), 1.0, wall_s=10.0, block_size=1000,
                            reference=reference)
    baseline = analyze_dipeptide(*_chain_with_states([0, 1, 2, 3], seed=2), 1.0, wall_s=1000.0,
                                 block_size=1000, reference=reference)
    assert run["reference"]["missed_states"] == ["alphaL", "C7ax"]
    assert baseline["reference"]["missed_states"] == []
    rates = [{"wall_s": r["wall_s"], "ess": {k: v["ess"] for k, v in r["ess"].items()}} for r in (run, baseline)]
    result = speed_ups(rates[0], rates[1], run["reference"]["missed_states"], [])
    # the run is 100x faster per effective sample of beta/alphaR, but misses alphaL and C7ax
    for name in ("indicator_alphaL", "indicator_C7ax", "indicator_phi_positive", "sin_phi", "cos_psi"):
        assert result[name].value == 0.0 and result[name].reason == "run missed a state"
    assert result["indicator_beta_C7eq"].value > 10.0
    assert result["indicator_alphaR"].value > 10.0


def test_censored_speed_up_when_the_baseline_never_visits():
    result = speed_up(run_ess=50.0, run_wall_s=10.0, baseline_ess=0.0, baseline_wall_s=2000.0)
    assert result.censored and result.value is None
    # baseline: fewer than 1 effective sample in 2000 s; run: 5 per s  ->  speed-up > 10000
    assert result.lower_bound == pytest.approx(10_000.0)
    assert str(result) == "> 1e+04"
    assert result.to_dict()["text"] == "> 1e+04"
    both = speed_up(run_ess=5.0, run_wall_s=10.0, baseline_ess=3.0, baseline_wall_s=10.0,
                    run_missed=True, baseline_missed=True)
    assert both.value is None and not both.censored and str(both) == "n/a"
    via_rule = speed_ups({"wall_s": 10.0, "ess": {"indicator_C7ax": 50.0, "indicator_alphaR": 50.0}},
                         {"wall_s": 2000.0, "ess": {"indicator_C7ax": 0.0, "indicator_alphaR": 400.0}},
                         baseline_missed_states=["C7ax"])
    assert via_rule["indicator_C7ax"].censored
    assert via_rule["indicator_alphaR"].value == pytest.approx(25.0)


def test_observables_affected_by_a_missed_state():
    assert observable_affected("indicator_C7ax", "C7ax")
    assert observable_affected("indicator_phi_positive", "alphaL")
    assert not observable_affected("indicator_beta_C7eq", "alphaL")
    assert observable_affected("TIC0", "alphaL") and observable_affected("sin_phi", "C7ax")


def test_first_visit_times():
    times = first_visit_times([0, 0, 1, 1, 0, 2], sample_interval=2.0)
    assert times == {"beta_C7eq": 0.0, "alphaR": 4.0, "alphaL": 10.0, "C7ax": None}
    assert first_visit_times([1, 0], 1.0, offset=1.0)["beta_C7eq"] == 2.0
    assert isinstance(SpeedUp(value=1.0), SpeedUp)


# ---------------------------------------------------------------- torsions


def test_torsions_of_built_dipeptide():
    phi = np.array([-75.0, -150.0, 60.0, 179.99, 0.0, -179.0])
    psi = np.array([150.0, -40.0, 40.0, -60.0, 180.0, 90.0])
    measured_phi, measured_psi = dipeptide_torsions(dipeptide_trajectory(phi, psi))
    assert np.allclose(wrap_degrees(measured_phi - phi), 0.0, atol=1e-3)
    assert np.allclose(wrap_degrees(measured_psi - psi), 0.0, atol=1e-3)
    assert np.all((measured_phi > -180.0) & (measured_phi <= 180.0))
    all_phi, all_psi = backbone_torsions(dipeptide_trajectory(phi, psi))
    assert all_phi.shape == (6, 1) and all_psi.shape == (6, 1)


def test_torsions_from_positions_with_an_openmm_topology():
    xyz = dipeptide([-63.0], [-42.0])
    topology = dipeptide_topology().to_openmm()
    phi, psi = torsions_from_positions(xyz, topology)
    assert phi[0, 0] == pytest.approx(-63.0, abs=1e-3) and psi[0, 0] == pytest.approx(-42.0, abs=1e-3)
    single_phi, _ = torsions_from_positions(xyz[0], dipeptide_topology())
    assert single_phi.shape == (1, 1)


def test_wrap_degrees_maps_onto_half_open_interval():
    assert np.allclose(wrap_degrees([-180.0, 180.0, 540.0, -190.0, 0.0]), [180.0, 180.0, 180.0, 170.0, 0.0])


def test_analyze_dipeptide_report():
    reference = load_reference()
    phi, psi = _chain_with_states([0, 1, 2, 3], n=10_000, seed=5)
    report = analyze_dipeptide(phi, psi, 0.5, wall_s=20.0, reference=reference,
                               reference_counts=reference["phi_psi_histogram"]["counts"])
    assert report["samples"] == 10_000 and report["time_ps"] == 5000.0
    assert set(report["ess"]) >= {"sin_phi", "cos_phi", "sin_psi", "cos_psi", "indicator_phi_positive"}
    assert "ess_blocks" in report["ess"]["indicator_C7ax"]
    assert report["ess"]["sin_psi"]["ess_per_s"] == pytest.approx(report["ess"]["sin_psi"]["ess"] / 20.0)
    assert 0.0 < report["reference"]["jsd"] <= math.log(2.0)
    assert report["reference"]["missed_states"] == []
    assert report["first_visit_ps"]["beta_C7eq"] is not None


def _dihedral(p0, p1, p2, p3):
    """IUPAC dihedral in degrees from four points (independent of mdtraj)."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.linalg.norm(b1)
    v = b0 - np.dot(b0, b1) * b1
    w = b2 - np.dot(b2, b1) * b1
    return math.degrees(math.atan2(np.dot(np.cross(b1, v), w), np.dot(v, w)))


def test_torsions_of_the_alanine_dipeptide_structure():
    from pathlib import Path

    import openmm_timewarp

    path = Path(openmm_timewarp.__file__).parent / "structures" / "alanine-dipeptide.pdb"
    if not path.exists():
        pytest.skip("alanine-dipeptide.pdb is not installed")
    from openmm import app, unit

    from openmm_timewarp.analysis import load_trajectory

    pdb = app.PDBFile(str(path))
    names = [(a.residue.name, a.name) for a in pdb.topology.atoms()]
    index = {key: k for k, key in enumerate(names)}
    xyz = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    expected_phi = _dihedral(*(xyz[index[k]] for k in [("ACE", "C"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "C")]))
    expected_psi = _dihedral(*(xyz[index[k]] for k in [("ALA", "N"), ("ALA", "CA"), ("ALA", "C"), ("NME", "N")]))
    phi, psi = torsions_from_positions(pdb.positions, pdb.topology)
    assert phi.shape == (1, 1) and psi.shape == (1, 1)
    assert phi[0, 0] == pytest.approx(expected_phi, abs=1e-3) and psi[0, 0] == pytest.approx(expected_psi, abs=1e-3)
    from_file = dipeptide_torsions(load_trajectory(path, path))
    assert from_file[0][0] == pytest.approx(expected_phi, abs=1e-3)


def test_build_write_and_load_a_reference(tmp_path):
    import json

    from openmm_timewarp.analysis.reference import build_reference, write_reference

    phi, psi = _labels_to_angles(np.random.default_rng(6).choice(4, size=3000, p=[0.5, 0.4, 0.08, 0.02]))
    np.savez(tmp_path / "pt_310K_phi_psi.npz", phi=phi.astype(np.float32), psi=psi.astype(np.float32),
             sample_interval_ps=0.5)
    runs = {"pt_a.npz": {"kind": "PT", "samples": 1000}, "pt_b.npz": {"kind": "PT", "samples": 2000},
            "md.npz": {"kind": "MD", "samples": 5}}
    states = {"phi_positive": "0 <= phi < 120", "angles": "degrees"}
    with open(tmp_path / "summary.json", "w", encoding="utf-8") as handle:
        json.dump({"runs": runs, "states": states}, handle)
    reference = build_reference(tmp_path, bins=36, block_ps=50.0)
    write_reference(reference, tmp_path / "reference.json")
    loaded = load_reference(tmp_path / "reference.json")
    assert loaded["num_samples"] == 3000 and loaded["populations_stderr"]["alphaL"] > 0
    assert loaded["populations"]["alphaL"] == pytest.approx(np.mean(assign_states(phi, psi) == 2))
    assert np.array_equal(reference_histogram(loaded, 36), torsion_histogram(phi, psi, 36))
    assert reference_histogram(loaded, 12).sum() == 3000
