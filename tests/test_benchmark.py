"""The benchmark: aggregation rules on synthetic chains with known answers, and a tiny end-to-end run."""

import json
import math

import numpy as np
import pytest

from openmm_timewarp import cli
from openmm_timewarp.analysis import STATE_NAMES, effective_sample_size, load_reference
from openmm_timewarp.benchmark import methods as methods_module
from openmm_timewarp.benchmark import summary
from openmm_timewarp.benchmark.weighted import weighted_ess, weighted_populations

REFERENCE = load_reference()
# (phi, psi) in the middle of each state.
CENTRES = {"beta_C7eq": (-150.0, 150.0), "alphaR": (-70.0, -30.0), "alphaL": (60.0, 40.0), "C7ax": (70.0, -70.0)}
OBSERVABLES = ("sin_phi", "cos_phi", "sin_psi", "cos_psi") + tuple(
    f"indicator_{n}" for n in STATE_NAMES + ("phi_positive",))


def iid_run(n, seed, states=STATE_NAMES, elapsed_s=1.0, repeat=1):
    """A fake driver result: independent samples spread over ``states`` (each sample repeated ``repeat`` times)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(states), size=n)
    phi = np.array([CENTRES[states[k]][0] for k in labels]) + rng.normal(0.0, 8.0, n)
    psi = np.array([CENTRES[states[k]][1] for k in labels]) + rng.normal(0.0, 8.0, n)
    phi, psi = np.repeat(phi, repeat), np.repeat(psi, repeat)
    wall = np.linspace(elapsed_s / len(phi), elapsed_s, len(phi))
    return {"wall_s": wall, "phi": phi, "psi": psi, "elapsed_s": elapsed_s, "stats": {"samples": len(phi)}}


def summarize(runs):
    wall = summary.round_wall_time(runs)
    return summary.summarize_method(runs, wall, REFERENCE)


# ------------------------------------------------------------------------------------------------ ESS aggregation

def test_ess_is_summed_over_chains_and_divided_by_wall_time():
    runs = [iid_run(3000, 1, elapsed_s=2.0), iid_run(3000, 2, elapsed_s=2.5)]
    result = summarize(runs)
    assert result["wall_s"] == 2.5 and result["chains"] == 2 and result["samples"] == 6000
    for name in ("sin_phi", "indicator_alphaR"):
        series = [np.sin(np.radians(r["phi"])) if name == "sin_phi" else
                  ((r["phi"] < 0) & (r["psi"] >= -100) & (r["psi"] < 100)).astype(float) for r in runs]
        expected = sum(effective_sample_size(s) for s in series)
        assert result["ess"][name]["ess"] == pytest.approx(expected)
        assert result["ess"][name]["ess_per_s"] == pytest.approx(expected / 2.5)
        assert 0.8 * 6000 < result["ess"][name]["ess"] < 1.25 * 6000  # independent samples
    assert "ess_blocks" in result["ess"]["indicator_alphaR"] and "ess_blocks" not in result["ess"]["sin_phi"]
    assert result["missed_states"] == []


def test_constant_chain_counts_zero_for_every_estimate():
    stuck = {"wall_s": np.linspace(0.1, 1, 100), "phi": np.full(100, -150.0), "psi": np.full(100, 150.0),
             "elapsed_s": 1.0}
    other = dict(stuck, phi=np.full(100, -70.0), psi=np.full(100, -30.0))
    result = summarize([stuck, other])
    for entry in result["ess"].values():
        assert entry["ess"] == 0.0 and entry["ess_geyer"] == 0.0 and entry.get("ess_blocks", 0.0) == 0.0


def test_correlated_chain_has_proportionally_smaller_ess():
    fast = summarize([iid_run(4000, 3)])
    slow = summarize([iid_run(800, 3, repeat=5)])  # same length, each sample held for 5 steps
    ratio = fast["ess"]["sin_psi"]["ess"] / slow["ess"]["sin_psi"]["ess"]
    assert 3.5 < ratio < 7.0


# ------------------------------------------------------------------------------------------------ speed-ups

def test_speed_up_is_the_ess_rate_ratio_over_the_best_baseline():
    run = summarize([iid_run(4000, 4, elapsed_s=1.0)])
    slow_md = summarize([iid_run(4000, 5, elapsed_s=8.0)])
    fast_md = summarize([iid_run(4000, 6, elapsed_s=4.0)])
    summaries = {"tw": run, "md-a": slow_md, "md-b": fast_md}
    best = summary.best_baselines(summaries, ["md-a", "md-b"])
    assert {b["method"] for b in best.values()} == {"md-b"}
    ups = summary.method_speed_ups(run, best, summaries)
    assert set(ups) == set(OBSERVABLES)
    for name, entry in ups.items():
        expected = (run["ess"][name]["ess"] / 1.0) / (fast_md["ess"][name]["ess"] / 4.0)
        assert entry["value"] == pytest.approx(expected)
        assert 3.0 < entry["value"] < 5.3  # four times the samples per second, independent samples
        assert not entry["censored"] and entry["baseline"] == "md-b"


def test_speed_up_zero_when_the_run_misses_a_state():
    run = summarize([iid_run(4000, 7, states=("beta_C7eq", "alphaR", "alphaL"))])  # never C7ax
    md = summarize([iid_run(4000, 8)])
    assert run["missed_states"] == ["C7ax"]
    summaries = {"tw": run, "md": md}
    best = summary.best_baselines(summaries, ["md"])
    ups = summary.method_speed_ups(run, best, summaries)
    for name in ("sin_phi", "cos_psi", "indicator_C7ax", "indicator_phi_positive"):
        assert ups[name]["value"] == 0.0 and ups[name]["reason"] == "run missed a state", name
    for name in ("indicator_beta_C7eq", "indicator_alphaR", "indicator_alphaL"):
        assert ups[name]["value"] > 0.0 and ups[name]["reason"] == "ratio", name
    blocks = summary.method_speed_ups(run, summary.best_baselines(summaries, ["md"], "ess_blocks"), summaries,
                                      "ess_blocks")
    assert set(blocks) == {f"indicator_{n}" for n in STATE_NAMES + ("phi_positive",)}
    assert blocks["indicator_C7ax"]["value"] == 0.0 and blocks["indicator_alphaR"]["value"] > 0.0


def test_speed_up_censored_when_the_baseline_misses_a_state():
    run = summarize([iid_run(4000, 9, elapsed_s=2.0)])
    md = summarize([iid_run(4000, 10, states=("beta_C7eq", "alphaR"), elapsed_s=5.0)])  # MD never gets to phi > 0
    summaries = {"tw": run, "md": md}
    best = summary.best_baselines(summaries, ["md"])
    assert best["indicator_alphaL"]["censored"] and best["indicator_alphaL"]["ess_per_s"] == pytest.approx(1 / 5.0)
    ups = summary.method_speed_ups(run, best, summaries)
    for name in ("indicator_alphaL", "indicator_phi_positive", "sin_phi", "sin_psi"):
        entry = ups[name]
        assert entry["censored"] and entry["value"] is None
        assert entry["lower_bound"] == pytest.approx((run["ess"][name]["ess"] / 2.0) / (1.0 / 5.0))
        assert entry["text"].startswith("> ")
    assert not ups["indicator_beta_C7eq"]["censored"]  # a state both visit: a plain ratio
    assert ups["indicator_beta_C7eq"]["value"] == pytest.approx(
        (run["ess"]["indicator_beta_C7eq"]["ess"] / 2.0) / (md["ess"]["indicator_beta_C7eq"]["ess"] / 5.0))


def test_speed_up_undefined_when_both_miss_a_state():
    run = summarize([iid_run(2000, 11, states=("beta_C7eq", "alphaR"))])
    md = summarize([iid_run(2000, 12, states=("beta_C7eq", "alphaR"))])
    summaries = {"tw": run, "md": md}
    ups = summary.method_speed_ups(run, summary.best_baselines(summaries, ["md"]), summaries)
    assert ups["indicator_alphaL"]["reason"] == "undefined" and ups["indicator_alphaL"]["text"] == "n/a"
    assert ups["sin_phi"]["reason"] == "undefined"
    assert ups["indicator_alphaR"]["reason"] == "ratio"


def test_best_baseline_uses_the_bound_for_a_baseline_that_misses_a_state():
    visits_all = summarize([iid_run(4000, 13, elapsed_s=10.0)])
    misses = summarize([iid_run(4000, 14, states=("beta_C7eq", "alphaR"), elapsed_s=1.0)])
    best = summary.best_baselines({"a": visits_all, "b": misses}, ["a", "b"])
    # b is ten times faster where both are measured, but on observables that phi > 0 affects its ESS is bounded by 1.
    assert best["indicator_alphaR"]["method"] == "b" and not best["indicator_alphaR"]["censored"]
    assert best["sin_phi"]["method"] == "a" and best["indicator_alphaL"]["method"] == "a"


# ------------------------------------------------------------------------------------------------ exploration

def test_censored_median_and_time_ratio():
    plain = summary.censored_median([1.0, 2.0, None], [10.0, 10.0, 10.0])
    assert plain["median_s"] == 2.0 and not plain["censored"] and plain["visited"] == 2
    censored = summary.censored_median([1.0, None, None], [10.0, 12.0, 8.0])
    assert censored["censored"] and censored["lower_bound_s"] == 8.0 and censored["text"] == "> 8 s"
    even = summary.censored_median([1.0, None], [10.0, 10.0])
    assert even["censored"] and even["lower_bound_s"] == 5.5

    assert summary.time_speed_up(plain, summary.censored_median([8.0], [10.0]))["value"] == 4.0
    lower = summary.time_speed_up(plain, censored)
    assert lower["lower_bound"] == 4.0 and lower["text"] == "> 4"
    upper = summary.time_speed_up(censored, plain)
    assert upper["upper_bound"] == 0.25 and upper["text"] == "< 0.25"
    assert summary.time_speed_up(censored, censored)["text"] == "n/a"


def test_exploration_summary_against_the_best_baseline():
    def fake(first_alpha_l, elapsed):
        return {"first_visit_s": [{"beta_C7eq": 0.01, "alphaR": 1.0, "alphaL": t, "C7ax": None, "phi_positive": t}
                                  for t in first_alpha_l], "elapsed_s": elapsed}

    summaries = {"md-a": fake([None, None, 40.0], [60.0] * 3), "md-b": fake([30.0, 50.0, None], [60.0] * 3),
                 "tw": fake([2.0, 3.0, 5.0], [60.0] * 3)}
    result = summary.exploration_summary(summaries, ["md-a", "md-b"])
    assert result["median"]["md-a"]["alphaL"]["censored"]
    assert result["median"]["md-b"]["alphaL"]["median_s"] == 50.0
    assert result["best_baseline"]["alphaL"] == "md-b"
    assert result["speed_ups"]["tw"]["alphaL"]["value"] == pytest.approx(50.0 / 3.0)
    assert result["speed_ups"]["tw"]["C7ax"]["text"] == "n/a"
    assert set(result["speed_ups"]) == {"tw"}


def test_first_visits_from_wall_times():
    visits = summary.first_visits([0.5, 1.0, 1.5, 2.0], [-150, -70, 60, -150], [150, -30, 40, 150])
    assert visits == {"beta_C7eq": 0.5, "alphaR": 1.0, "alphaL": 1.5, "C7ax": None, "phi_positive": 1.5}


# ------------------------------------------------------------------------------------------------ weights, registry

def test_weighted_estimates_reduce_to_the_unweighted_ones_and_reweight():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=2000)) * 0.05
    x = np.sin(x)
    assert weighted_ess([x], [np.ones_like(x)]) == pytest.approx(effective_sample_size(x), rel=1e-9)
    beta = np.repeat([1.0, 0.0], 500)
    weights = np.where(beta > 0, 1.0, 3.0)
    pops = weighted_populations({"beta_C7eq": [beta], "alphaR": [1.0 - beta]}, [weights], 50)
    assert pops["populations"]["alphaR"] == pytest.approx(0.75)


def test_method_registry():
    names = methods_module.list_methods()
    for name in ("md-1fs", "md-2fs-hmr", "timewarp-mh", "timewarp-mixed", "timewarp-explore"):
        assert name in names
    assert methods_module.get_method("md-2fs-hmr").baseline
    assert not methods_module.get_method("timewarp-explore").boltzmann
    assert methods_module.get_method("timewarp-mh").needs_flow
    with pytest.raises(ValueError, match="known: .*md-1fs"):
        methods_module.get_method("no-such-method")
    with pytest.raises(ValueError, match="already registered"):
        methods_module.register_method("md-1fs", methods_module.md_1fs)
    try:
        added = methods_module.register_method("test-peer", methods_module.md_1fs, description="peer")
        assert methods_module.get_method("test-peer") is added and "test-peer" in methods_module.list_methods()
    finally:
        methods_module._REGISTRY.pop("test-peer", None)


def _peer_style_driver(settings, budget_s, seed):
    return {"wall_s": [0.5, 1.0], "phi": [-150.0, -70.0], "psi": [150.0, -30.0], "statistics": {"swaps": 3},
            "settings": settings}


def test_drivers_may_omit_progress_elapsed_and_stats():
    from openmm_timewarp.benchmark.runner import accepts_progress, normalize_result

    assert accepts_progress(methods_module.md_1fs) and not accepts_progress(_peer_style_driver)
    result = normalize_result(_peer_style_driver({}, 2.0, 1), 2.0)
    assert result["elapsed_s"] == 2.0 and result["setup_s"] == 0.0
    assert result["stats"] == {"swaps": 3, "samples": 2}
    assert isinstance(result["phi"], np.ndarray)
    with pytest.raises(ValueError, match="no psi"):
        normalize_result({"wall_s": [1.0], "phi": [1.0]}, 1.0)
    with pytest.raises(ValueError, match="different lengths"):
        normalize_result({"wall_s": [1.0], "phi": [1.0, 2.0], "psi": [1.0, 2.0]}, 1.0)
    try:
        method = methods_module.register_method("test-peer-keys", _peer_style_driver, settings_keys=["swap_ps"])
        assert method.driver_settings({"flow": "x", "swap_ps": 0.5}) == {"swap_ps": 0.5}
    finally:
        methods_module._REGISTRY.pop("test-peer-keys", None)
    assert methods_module.get_method("md-1fs").driver_settings({"flow": "x"}) == {"flow": "x"}


# ---------------------------------------------------------------------------------- command line, end to end

@pytest.fixture(scope="module")
def tiny_flow(tmp_path_factory):
    import torch

    from openmm_timewarp.flow.cartesian.export import export_flow
    from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow

    torch.manual_seed(0)
    flow = TimewarpFlow(FlowConfig(embedding=8, hidden=12, layers=2, length_scales=[0.1, 0.3], position_scale=0.002))
    path = str(tmp_path_factory.mktemp("flow") / "tiny.pt")
    export_flow(flow, path, temperature=310.0, tau_ps=0.0, force_field="amber99sbildn-obc", num_atoms=22)
    return path


def test_command_refuses_timewarp_without_a_flow(monkeypatch, capsys, tmp_path):
    import openmm_timewarp.models as models

    monkeypatch.setattr(models, "list_models", lambda: [])
    assert cli.main(["benchmark", "--methods", "md-1fs", "timewarp-mh", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "alanine-dipeptide" in error and "--flow" in error
    assert cli.main(["benchmark", "--methods", "no-such-method", "--out", str(tmp_path)]) == 2
    assert "unknown sampling method" in capsys.readouterr().err
    assert not (tmp_path / "benchmark.json").exists()


def test_command_lists_methods(capsys):
    assert cli.main(["benchmark", "--list-methods"]) == 0
    out = capsys.readouterr().out
    assert "md-2fs-hmr" in out and "timewarp-explore" in out and "exploration only" in out


def test_benchmark_end_to_end(tiny_flow, tmp_path, capsys):
    names = ["md-1fs", "md-2fs-hmr", "timewarp-mh", "timewarp-mixed", "timewarp-mixed-hmr", "timewarp-explore"]
    out = tmp_path / "bench"
    code = cli.main(["benchmark", "--methods", *names, "--budget", "1.5", "--cores", "1", "--repeats", "1",
                     "--flow", tiny_flow, "--proposals-per-move", "4", "--batch-size", "4", "--set",
                     "equilibration_ps=2", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Speed-up" in printed and "State populations" in printed and "first visit" in printed

    with open(out / "benchmark.json", encoding="utf-8") as handle:
        result = json.load(handle)
    assert result["settings"]["methods"] == names and result["settings"]["cores"] == 1
    assert result["settings"]["driver"]["flow"] == tiny_flow
    assert result["settings"]["driver"]["proposals_per_move"] == 4
    assert result["settings"]["driver"]["equilibration_ps"] == 2
    for name in names:
        m = result["methods"][name]
        assert m["chains"] == 1 and len(m["runs"]) == 1 and m["samples"] >= 2, name
        assert 1.5 <= m["wall_s"] < 10.0
        assert set(m["ess"]) == set(OBSERVABLES)
        for observable, entry in m["ess"].items():
            assert {"ess", "ess_per_s", "ess_geyer", "iat_samples", "iat_wall_s"} <= set(entry)
            assert ("ess_blocks_per_s" in entry) == observable.startswith("indicator_")
        assert set(m["populations"]) >= set(STATE_NAMES) | {"phi_positive"}
        assert isinstance(m["jsd"], float) and 0.0 <= m["jsd"] <= math.log(2.0)
        assert set(m["comparison"]) >= set(STATE_NAMES)
        assert set(result["exploration"]["median"][name]) >= set(STATE_NAMES)
    for name in ("timewarp-mh", "timewarp-mixed", "timewarp-mixed-hmr", "timewarp-explore"):
        assert result["methods"][name]["acceptance_rate"] is not None
        assert result["methods"][name]["totals"]["proposals"] > 0
    assert result["methods"]["md-1fs"]["totals"]["simulated_ns"] > 0
    assert result["methods"]["timewarp-mh"]["totals"]["simulated_ns"] == 0
    hmr = result["methods"]["timewarp-mixed-hmr"]["runs"][0]["stats"]
    assert hmr["timestep_fs"] == 2.0 and hmr["hydrogen_mass_amu"] == 3.0 and hmr["simulated_ns"] > 0
    assert set(result["speed_ups"]) == {"timewarp-mh", "timewarp-mixed", "timewarp-mixed-hmr"}
    for entry in result["speed_ups"]["timewarp-mh"]["ess"].values():
        assert entry["baseline"] in ("md-1fs", "md-2fs-hmr") and "text" in entry
    assert set(result["speed_ups"]["timewarp-mh"]["ess_blocks"]) == {o for o in OBSERVABLES if o.startswith("ind")}
    assert set(result["best_baseline"]["ess"]) == set(OBSERVABLES)
    assert set(result["exploration"]["speed_ups"]) == {"timewarp-mh", "timewarp-mixed", "timewarp-mixed-hmr",
                                                       "timewarp-explore"}
    for key in ("ramachandran", "ess_per_s"):
        path = out / f"{key}.png"
        assert result["figures"][key] == str(path) and path.stat().st_size > 1000
    with np.load(out / "samples.npz") as samples:
        for name in names:
            assert len(samples[f"{name}__0__phi"]) == result["methods"][name]["samples"]
