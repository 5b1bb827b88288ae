"""Analysis: autocorrelation times and ESS, block averaging, peptide macrostates, population estimates,
references and the Jensen-Shannon divergence."""

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from openmm_timewarp.lab.analysis import (
    PeptideObservables,
    block_ess,
    block_standard_error,
    effective_sample_size,
    integrated_autocorrelation_time,
    jensen_shannon_divergence,
    load_reference,
    log_ratio_error,
    population_errors_kT,
    reference_from_samples,
    save_reference,
    state_estimates,
    torsion_histogram,
    torsion_jsd,
    weighted_estimate,
    weighted_populations,
    z_score,
)
from openmm_timewarp.lab.analysis.autocorrelation import autocorrelation
from openmm_timewarp.lab.analysis.torsions import wrap_degrees

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


def telegraph(enter, leave, n, seed):
    """Indicator of a state in a two-state Markov chain (P(0 -> 1) = enter, P(1 -> 0) = leave)."""
    rng = np.random.default_rng(seed)
    pieces, state, total = [], 0, 0
    while total < n:
        length = int(rng.geometric(enter if state == 0 else leave))
        pieces.append(np.full(length, float(state)))
        total += length
        state = 1 - state
    return np.concatenate(pieces)[:n]


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


# ---------------------------------------------------------------- peptide macrostates


@pytest.fixture(scope="module")
def capped_vgp():
    """ACE-VAL-GLY-PRO-NME: a standard residue with chi1, glycine and proline."""
    from openmm_timewarp.lab import systems

    return systems.build_peptide("VGP", capped=True, phi=[-70.0, 80.0, -65.0], psi=[140.0, -30.0, 150.0])


@pytest.fixture(scope="module")
def zwitterion_ag():
    """ALA-GLY zwitterion: ALA1 has only psi, GLY2 only phi."""
    from openmm_timewarp.lab import systems

    return systems.build_peptide("AG")


def states_of(observables, residue, **angles):
    """The partition states of ``residue`` that hold for one row of torsions (others 0 degrees)."""
    row = np.zeros((1, len(observables.torsions)))
    for name, value in angles.items():
        row[0, observables.names.index(name)] = value
    indicators = observables.indicators(row, extra=True)
    return {name.split(":")[1] for name, mask in indicators.items() if name.startswith(residue + ":") and mask[0]}


def test_observables_of_a_capped_peptide(capped_vgp):
    topology, positions = capped_vgp
    observables = PeptideObservables(topology)
    assert observables.names == ["phi2", "psi2", "chi1_2", "phi3", "psi3", "phi4", "psi4"]
    assert [(r.label, r.kind) for r in observables.residues] == [("VAL2", "standard"), ("GLY3", "glycine"),
                                                                  ("PRO4", "psi")]
    assert observables.state_names() == ["VAL2:beta", "VAL2:alphaR", "VAL2:phi_positive", "GLY3:beta",
                                         "GLY3:alphaR", "GLY3:alphaL", "PRO4:alpha", "PRO4:beta"]
    assert observables.state_names(extra=True)[3:5] == ["VAL2:alphaL", "VAL2:C7ax"]
    values = observables.values(np.asarray(positions.value_in_unit(positions.unit)))
    built = dict(zip(observables.names, values))
    for name, angle in [("phi2", -70.0), ("psi2", 140.0), ("phi3", 80.0), ("psi3", -30.0), ("phi4", -65.0),
                        ("psi4", 150.0)]:
        assert built[name] == pytest.approx(angle, abs=0.01)
    assert observables.joint_labels(values[None])[0] == "beta|alphaL|beta"


@pytest.mark.parametrize(
    "phi, psi, expected",
    [
        (-80.0, 150.0, {"beta"}),
        (-150.0, -170.0, {"beta"}),
        (-60.0, 100.0, {"beta"}),                      # psi >= 100
        (-60.0, 99.9, {"alphaR"}),
        (-60.0, -100.0, {"alphaR"}),                   # -100 <= psi
        (-60.0, -100.1, {"beta"}),
        (0.0, 50.0, {"phi_positive", "alphaL"}),       # phi = 0 is phi-positive
        (-0.1, 50.0, {"alphaR"}),
        (60.0, -45.0, {"phi_positive", "alphaL"}),     # psi >= -45
        (60.0, -45.1, {"phi_positive", "C7ax"}),
        (119.9, -60.0, {"phi_positive", "C7ax"}),
        (120.0, -60.0, {"alphaR"}),                    # phi < 120 only
        (150.0, 40.0, {"alphaR"}),
        (120.0, 160.0, {"beta"}),
        (180.0, 180.0, {"beta"}),
    ],
)
def test_states_of_a_standard_residue(capped_vgp, phi, psi, expected):
    observables = PeptideObservables(capped_vgp[0])
    assert states_of(observables, "VAL2", phi2=phi, psi2=psi, chi1_2=60.0) == expected


@pytest.mark.parametrize(
    "phi, psi, expected",
    [
        (-60.0, -40.0, "alphaR"),
        (-0.1, 0.0, "alphaR"),
        (180.0, 99.9, "alphaR"),      # phi = 180 = -180
        (-179.9, -100.0, "alphaR"),
        (0.0, 0.0, "alphaL"),
        (60.0, 40.0, "alphaL"),
        (150.0, -60.0, "alphaL"),     # glycine's phi > 0 reaches 180, not 120
        (179.9, -100.0, "alphaL"),
        (-80.0, 150.0, "beta"),
        (80.0, 150.0, "beta"),        # beta on either side of phi = 0
        (10.0, 100.0, "beta"),
        (10.0, -100.1, "beta"),
    ],
)
def test_states_of_glycine(capped_vgp, phi, psi, expected):
    observables = PeptideObservables(capped_vgp[0])
    assert states_of(observables, "GLY3", phi3=phi, psi3=psi) == {expected}


@pytest.mark.parametrize(
    "phi, psi, expected",
    [(-65.0, -40.0, "alpha"), (-65.0, 150.0, "beta"), (-65.0, 100.0, "beta"), (-65.0, -100.0, "alpha"),
     (-65.0, -100.1, "beta"), (60.0, 40.0, "alpha"), (60.0, 170.0, "beta")],  # proline: phi plays no part
)
def test_states_of_proline(capped_vgp, phi, psi, expected):
    observables = PeptideObservables(capped_vgp[0])
    assert states_of(observables, "PRO4", phi4=phi, psi4=psi) == {expected}


def test_states_of_uncapped_termini(zwitterion_ag):
    observables = PeptideObservables(zwitterion_ag[0])
    assert observables.names == ["psi1", "phi2"]
    assert [(r.label, r.kind) for r in observables.residues] == [("ALA1", "psi"), ("GLY2", "glycine_phi")]
    assert states_of(observables, "ALA1", psi1=-100.0) == {"alpha"}
    assert states_of(observables, "ALA1", psi1=100.0) == {"beta"}
    assert states_of(observables, "GLY2", phi2=0.0) == {"phi_positive"}
    assert states_of(observables, "GLY2", phi2=179.9) == {"phi_positive"}
    assert states_of(observables, "GLY2", phi2=180.0) == {"phi_negative"}
    assert states_of(observables, "GLY2", phi2=-0.1) == {"phi_negative"}


@pytest.mark.parametrize("phi, expected", [(-150.0, "beta"), (-90.1, "beta"), (-90.0, "alphaR"), (-0.1, "alphaR"),
                                           (0.0, "phi_positive"), (119.9, "phi_positive"), (120.0, "beta"),
                                           (180.0, "beta")])
def test_states_of_a_c_terminal_residue_with_phi_only(phi, expected):
    from openmm_timewarp.lab.systems import build_peptide

    observables = PeptideObservables(build_peptide("GV")[0])
    assert [(r.label, r.kind, r.states) for r in observables.residues][1] == (
        "VAL2", "phi", ("beta", "alphaR", "phi_positive"))
    assert states_of(observables, "VAL2", phi2=phi) == {expected}


def test_a_topology_without_backbone_torsions_is_not_a_peptide():
    from openmm import app

    topology = app.Topology()
    residue = topology.addResidue("HOH", topology.addChain())
    for name, element in (("O", "O"), ("H1", "H"), ("H2", "H")):
        topology.addAtom(name, app.Element.getBySymbol(element), residue)
    with pytest.raises(ValueError, match="not a peptide"):
        PeptideObservables(topology)


# ---------------------------------------------------------------- population estimates


def test_state_estimates_of_independent_samples():
    p = np.array([0.55, 0.40, 0.05])
    n = 100_000
    labels = np.random.default_rng(19).choice(3, size=n, p=p)
    estimates = state_estimates({f"s{k}": labels == k for k in range(3)}, num_blocks=100)
    for k in range(3):
        e = estimates[f"s{k}"]
        expected_se = math.sqrt(p[k] * (1 - p[k]) / n)
        assert abs(e["population"] - p[k]) < N_SIGMA * expected_se
        assert e["population"] == pytest.approx(np.mean(labels == k), abs=1e-12)
        assert abs(e["stderr"] / expected_se - 1.0) < N_SIGMA * math.sqrt(0.5 / 99)
        share = e["population"]
        assert e["ess"] == pytest.approx(share * (1.0 - share) / e["stderr"] ** 2, rel=1e-9)


def test_state_estimates_of_a_correlated_indicator():
    # telegraph: p = a / (a + b) = 0.2, tau = (2 - a - b) / (a + b) = 79; var(mean) = p (1 - p) tau / n
    a, b, n = 0.005, 0.02, 200_000
    x = telegraph(a, b, n, 52)
    tau, p = (2.0 - a - b) / (a + b), a / (a + b)
    e = state_estimates({"s": x > 0}, num_blocks=50)["s"]
    expected_se = math.sqrt(p * (1 - p) * tau / n)
    assert abs(e["stderr"] / expected_se - 1.0) < N_SIGMA * math.sqrt(0.5 / 49)
    assert abs(e["ess"] / (n / tau) - 1.0) < N_SIGMA * math.sqrt(2.0 / 49)


def test_weighted_samples_equal_a_duplicated_unweighted_sample():
    rng = np.random.default_rng(18)
    n = 3000
    labels = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    copies = rng.integers(1, 4, size=n)  # integer weights 1..3
    times = np.arange(n) * 0.5  # equal-time blocks, so duplicated copies stay in their block
    weighted = state_estimates({f"s{k}": labels == k for k in range(3)}, np.log(copies), num_blocks=10, times=times)
    repeated = np.repeat(labels, copies)
    duplicated = state_estimates({f"s{k}": repeated == k for k in range(3)}, num_blocks=10,
                                 times=np.repeat(times, copies))
    for k in range(3):
        for key in ("population", "stderr", "ess"):
            assert weighted[f"s{k}"][key] == pytest.approx(duplicated[f"s{k}"][key], rel=1e-9)
        assert weighted[f"s{k}"]["population"] == pytest.approx(np.mean(repeated == k), rel=1e-12)
    populations = weighted_populations({"s0": labels == 0}, np.log(copies))
    assert populations["s0"] == pytest.approx(np.mean(repeated == 0), rel=1e-12)


def test_chains_stuck_in_different_states_give_a_large_error():
    # two chains of 1000 samples, one always in the state, one never: p = 1/2, and 40 block ratios of 0 or 1
    indicator = np.concatenate([np.ones(1000), np.zeros(1000)])
    e = state_estimates({"s": indicator}, lengths=[1000, 1000], num_blocks=20)["s"]
    assert e["population"] == 0.5
    assert e["stderr"] == pytest.approx(0.5 / math.sqrt(39))  # sqrt(40/39 * 40 * (1/40)^2 * 1/4)
    never = state_estimates({"s": np.zeros(500, dtype=bool)}, num_blocks=20)["s"]
    assert never["population"] == 0.0 and never["ess"] == 0.0


def test_weighted_estimate_shapes_and_checks():
    mean, stderr, ess = weighted_estimate(np.arange(100.0), num_blocks=10)
    assert mean == pytest.approx(49.5) and isinstance(stderr, float) and ess > 0
    with pytest.raises(ValueError):
        weighted_estimate(np.arange(100.0), lengths=[50, 60])


def test_log_ratio_error_and_z_score_with_hand_numbers():
    assert log_ratio_error(0.03, 0.02) == pytest.approx(math.log(1.5))
    assert log_ratio_error(0.02, 0.03) == pytest.approx(math.log(1.5))
    assert math.isinf(log_ratio_error(0.0, 0.02))
    assert z_score(0.03, 0.003, 0.02, 0.004) == pytest.approx(2.0)
    assert z_score(0.0, 0.0, 0.002, 0.0005) == pytest.approx(-4.0)
    assert population_errors_kT({"alphaR": 0.2}, {"alphaR": 0.4})["alphaR"] == pytest.approx(math.log(2.0))


# ---------------------------------------------------------------- references


def test_packaged_reference():
    reference = load_reference()
    assert reference.molecule == "ACE-A-NME" and reference.temperature_K == 310.0
    pops = {name.split(":")[1]: reference.population(name) for name in reference.states}
    assert sum(pops[s] for s in ("beta", "alphaR", "phi_positive")) == pytest.approx(1.0)
    assert pops["phi_positive"] == pytest.approx(pops["alphaL"] + pops["C7ax"])
    assert pops["beta"] == pytest.approx(0.5574, abs=1e-4)
    assert pops["alphaR"] == pytest.approx(0.4201, abs=1e-4)
    assert pops["alphaL"] == pytest.approx(0.0207, abs=1e-4)
    assert pops["C7ax"] == pytest.approx(0.0019, abs=1e-4)
    assert reference.stderr("ALA2:C7ax") == pytest.approx(0.0004, abs=1e-4)
    counts = reference.histogram("ALA2", 36)
    assert counts.shape == (36, 36) and counts.sum() == reference.num_samples
    # the histogram agrees with the populations (phi bins 18..29 cover 0 <= phi < 120)
    assert counts[18:30].sum() / counts.sum() == pytest.approx(pops["phi_positive"], abs=1e-9)


def test_reference_from_samples_round_trip(tmp_path, capped_vgp):
    observables = PeptideObservables(capped_vgp[0])
    rng = np.random.default_rng(6)
    n = 4000
    values = rng.uniform(-180.0, 180.0, size=(n, len(observables.torsions)))
    reference = reference_from_samples(observables, values, molecule="ACE-VGP-NME", temperature_K=300.0,
                                       preset="test", lengths=[1000, 3000], num_blocks=5)
    indicators = observables.indicators(values)
    for name, mask in indicators.items():
        assert reference.population(name) == pytest.approx(mask.mean(), abs=1e-12)
        assert reference.stderr(name) > 0
    labels = observables.joint_labels(values)
    assert sum(s["population"] for s in reference.joint_states.values()) == pytest.approx(1.0)
    assert reference.joint_states["beta|alphaL|beta"]["population"] == pytest.approx(
        np.mean(labels == "beta|alphaL|beta"), abs=1e-12)
    assert set(reference.histograms) == {"VAL2", "GLY3"}  # proline's states use psi alone
    save_reference(reference, tmp_path)
    loaded = load_reference(tmp_path)
    assert loaded.states == reference.states and loaded.joint_states == reference.joint_states
    assert np.array_equal(loaded.histograms["GLY3"], torsion_histogram(values[:, 3], values[:, 4], 72))
    assert loaded.histogram("GLY3", 12).sum() == n
    assert loaded.checked_states(observables, 0.2) == [s for s in observables.state_names()
                                                        if indicators[s].mean() >= 0.2]
    with pytest.raises(FileNotFoundError):
        load_reference(tmp_path / "missing")


def test_weighted_reference_weights_its_histograms_too(capped_vgp):
    observables = PeptideObservables(capped_vgp[0])
    rng = np.random.default_rng(8)
    values = rng.uniform(-180.0, 180.0, size=(4000, len(observables.torsions)))
    kept = values[:, 0] < 0.0  # VAL2 phi < 0: every other sample gets weight e^-40 ~ 0
    reference = reference_from_samples(observables, values, molecule="ACE-VGP-NME", temperature_K=300.0,
                                       preset="test", log_weights=np.where(kept, 0.0, -40.0), num_blocks=5)
    assert reference.population("VAL2:phi_positive") == pytest.approx(0.0, abs=1e-12)
    counts = reference.histograms["VAL2"]
    assert counts.sum() == pytest.approx(len(values), abs=72 * 72)  # scaled to the sample count, rounded per bin
    assert counts[36:].sum() == 0  # rows 36.. hold phi >= 0
    expected = torsion_histogram(values[kept, 0], values[kept, 1], 72) * (len(values) / kept.sum())
    assert np.abs(counts - expected).max() <= 0.5 + 1e-9


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
    weighted = torsion_histogram([10.0, 10.0, -90.0], [0.0, 0.0, 0.0], weights=[0.5, 0.25, 2.0])
    assert weighted[19, 18] == pytest.approx(0.75) and weighted[9, 18] == pytest.approx(2.0)


def test_torsion_jsd_against_reference_is_small_for_reference_like_samples():
    counts = load_reference().histogram("ALA2", 36)
    rng = np.random.default_rng(4)
    flat = rng.choice(counts.size, size=200_000, p=(counts / counts.sum()).ravel())
    phi = -180.0 + 10.0 * (flat // 36 + rng.random(flat.size))
    psi = -180.0 + 10.0 * (flat % 36 + rng.random(flat.size))
    close = torsion_jsd(phi, psi, counts)
    shifted = torsion_jsd(wrap_degrees(phi + 90.0), psi, counts)
    assert close < 0.01 < shifted


def test_wrap_degrees_maps_onto_half_open_interval():
    assert np.allclose(wrap_degrees([-180.0, 180.0, 540.0, -190.0, 0.0]), [180.0, 180.0, 180.0, 170.0, 0.0])
