"""The benchmark's shared accuracy metric on synthetic runs and error curves with known answers."""

import math

import numpy as np
import pytest

from openmm_timewarp.benchmark import accuracy
from openmm_timewarp.benchmark.accuracy import TimeToThreshold, time_ratio, time_to_threshold

REFERENCE = {"beta_C7eq": 0.55, "alphaR": 0.42, "phi_positive": 0.03}
# One torsion pair inside each macrostate.
POINTS = {"beta_C7eq": (-80.0, 150.0), "alphaR": (-80.0, -40.0), "phi_positive": (60.0, 30.0)}


def synthetic_run(states, wall_s, weights=None):
    phi = np.array([POINTS[s][0] for s in states])
    psi = np.array([POINTS[s][1] for s in states])
    run = {"wall_s": np.asarray(wall_s, dtype=float), "phi": phi, "psi": psi}
    if weights is not None:
        run["weights"] = np.asarray(weights, dtype=float)
    return run


def test_checkpoint_times_are_geometric_and_end_at_the_budget():
    times = accuracy.checkpoint_times(600.0, num=4, first_s=0.6)
    assert np.allclose(times, [0.6, 6.0, 60.0, 600.0])
    assert accuracy.checkpoint_times(100.0, num=10)[0] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        accuracy.checkpoint_times(10.0, num=5, first_s=20.0)


def test_time_to_threshold_monotone_curve():
    times = np.arange(1.0, 7.0)
    result = time_to_threshold(times, [2.0, 1.0, 0.5, 0.25, 0.2, 0.1], 0.3)
    assert result == TimeToThreshold(4.0, False, 6.0, 0.3)
    assert str(result) == "4 s"


def test_time_to_threshold_counts_only_the_last_entry_below():
    times = np.arange(1.0, 8.0)
    # below at t=2, above again at t=3 and t=5, below for good from t=6
    result = time_to_threshold(times, [1.0, 0.2, 0.5, 0.25, 0.4, 0.2, 0.1], 0.3)
    assert result.value == 6.0 and not result.censored


def test_time_to_threshold_censored_when_it_ends_above():
    times = np.arange(1.0, 6.0)
    result = time_to_threshold(times, [1.0, 0.1, 0.1, 0.1, 0.35], 0.3, budget_s=5.0)
    assert result.value is None and result.censored and result.budget_s == 5.0
    assert str(result) == "> 5 s"
    never = time_to_threshold(times, [math.inf] * 5, 0.3)
    assert never.censored and never.value is None


def test_time_to_threshold_edge_cases():
    times = [1.0, 2.0, 3.0]
    assert time_to_threshold(times, [0.1, 0.1, 0.1]).value == 1.0       # below from the start
    assert time_to_threshold(times, [0.1, 0.3, 0.1]).value == 3.0       # equal to the threshold is not below
    assert time_to_threshold(times, [0.1, np.nan, 0.1]).value == 3.0    # NaN is not below
    assert time_to_threshold(times, [np.inf, 0.2, 0.1]).value == 2.0
    with pytest.raises(ValueError):
        time_to_threshold([1.0, 1.0, 2.0], [0.1, 0.1, 0.1])


def test_time_ratio_with_censoring():
    fast = TimeToThreshold(10.0, False, 600.0)
    slow = TimeToThreshold(200.0, False, 600.0)
    never = TimeToThreshold(None, True, 600.0)
    both = time_ratio(fast, slow)
    assert both.value == pytest.approx(20.0) and not both.censored and str(both) == "20"
    peer_censored = time_ratio(fast, never)
    assert peer_censored.value is None and peer_censored.censored
    assert peer_censored.lower_bound == pytest.approx(60.0) and str(peer_censored) == "> 60"
    timewarp_censored = time_ratio(never, slow)
    assert timewarp_censored.upper_bound == pytest.approx(200.0 / 600.0) and timewarp_censored.censored
    undefined = time_ratio(never, never)
    assert undefined.value is None and undefined.lower_bound is None and undefined.upper_bound is None
    assert str(undefined) == "undefined" and undefined.reason == "both censored"
    assert peer_censored.to_dict()["text"] == "> 60"


def test_quantile_handles_infinite_errors():
    values = np.array([[0.1, np.inf, 0.3], [np.inf, np.inf, 0.2], [0.5, 0.1, np.inf], [0.2, 0.2, 0.2]])
    assert np.allclose(accuracy.quantile(values, 0.0), [0.1, 0.1, 0.2])
    median = accuracy.quantile(values, 0.5)
    assert median[0] == pytest.approx(0.35) and median[1] == np.inf and median[2] == pytest.approx(0.25)
    assert not np.any(np.isnan([accuracy.quantile(values, q) for q in (0.25, 0.75, 1.0)]))
    assert np.all(accuracy.quantile(values, 1.0) == np.inf)


def test_populations_at_checkpoints_use_only_earlier_samples_and_weights():
    run = synthetic_run(["beta_C7eq", "alphaR", "phi_positive", "beta_C7eq"], [1.0, 2.0, 3.0, 4.0],
                        weights=[1.0, 3.0, 1.0, 1.0])
    p = accuracy.populations_at(run["wall_s"], run["phi"], run["psi"], [0.5, 1.0, 2.5, 10.0], run["weights"])
    assert np.isnan(p["beta_C7eq"][0])
    assert p["beta_C7eq"][1] == 1.0
    assert p["alphaR"][2] == pytest.approx(0.75)
    assert p["beta_C7eq"][3] == pytest.approx(2.0 / 6.0) and p["phi_positive"][3] == pytest.approx(1.0 / 6.0)


def test_errors_are_infinite_for_unvisited_states():
    errors = accuracy.absolute_errors_kT({"beta_C7eq": 0.55, "alphaR": 0.45, "phi_positive": 0.0}, REFERENCE)
    assert errors["beta_C7eq"] == 0.0
    assert errors["alphaR"] == pytest.approx(abs(math.log(0.45 / 0.42)))
    assert errors["phi_positive"] == math.inf
    assert accuracy.worst_error(errors) == math.inf


def test_error_curve_from_samples():
    states = ["beta_C7eq"] * 55 + ["alphaR"] * 42 + ["phi_positive"] * 3
    order = np.random.default_rng(0).permutation(len(states))
    run = synthetic_run([states[k] for k in order], np.linspace(0.1, 10.0, len(states)))
    curve = accuracy.error_curve(run, [0.05, 10.0], REFERENCE)
    assert curve["worst"][0] == math.inf          # nothing sampled yet
    assert curve["worst"][1] == pytest.approx(0.0, abs=1e-12)


def test_error_curve_from_estimates_is_a_step_function():
    estimates = [(2.0, {"beta_C7eq": 0.5, "alphaR": 0.5, "phi_positive": 0.0}),
                 (5.0, dict(REFERENCE))]
    run = {"wall_s": np.empty(0), "phi": np.empty(0), "psi": np.empty(0), "estimates": estimates,
           "population_source": "estimates"}
    curve = accuracy.error_curve(run, [1.0, 2.0, 4.9, 5.0, 9.0], REFERENCE)
    assert list(np.isinf(curve["worst"])) == [True, True, True, False, False]
    assert curve["populations"]["beta_C7eq"][2] == 0.5
    assert curve["worst"][4] == pytest.approx(0.0, abs=1e-12)


def test_summary_median_over_repeats_and_ratios(tmp_path):
    times = np.array([1.0, 2.0, 4.0, 8.0])
    good = {"estimates": [(0.5, {"beta_C7eq": 0.4, "alphaR": 0.57, "phi_positive": 0.03}),
                          (3.0, dict(REFERENCE))]}
    late = {"estimates": [(0.5, {"beta_C7eq": 0.4, "alphaR": 0.57, "phi_positive": 0.03}),
                          (7.0, dict(REFERENCE))]}
    bad = {"estimates": [(0.5, {"beta_C7eq": 0.58, "alphaR": 0.42, "phi_positive": 0.0})]}
    for run in (good, late, bad):
        run["population_source"] = "estimates"
    summaries = {
        "timewarp": accuracy.summarize_repeats([good, good, late], times, REFERENCE),
        "md": accuracy.summarize_repeats([bad, bad, good], times, REFERENCE),
        "slow": accuracy.summarize_repeats([late, late, good], times, REFERENCE),
    }
    timewarp = summaries["timewarp"]
    assert timewarp["worst"].shape == (3, 4)
    assert timewarp["time_to_threshold"].value == 4.0
    assert timewarp["final_error"] == pytest.approx(0.0, abs=1e-12)
    assert summaries["md"]["time_to_threshold"].censored and summaries["md"]["final_error"] == math.inf
    assert summaries["md"]["minimum"][-1] == pytest.approx(0.0, abs=1e-12)
    ratios = accuracy.compare_methods(summaries)
    assert ratios["slow"].value == pytest.approx(2.0)
    assert ratios["md"].lower_bound == pytest.approx(8.0 / 4.0)
    path = accuracy.plot_error_curves(summaries, tmp_path / "errors.png", spread="quartiles")
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
