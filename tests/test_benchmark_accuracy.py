"""The benchmark's time-to-accuracy part: peers in the registry, the per-method summary, one tiny end-to-end run."""

import json
import math

import numpy as np
import pytest
import torch

from openmm_timewarp import cli
from openmm_timewarp.analysis import load_reference
from openmm_timewarp.benchmark import accuracy, methods, summary
from openmm_timewarp.benchmark.runner import _run_record
from openmm_timewarp.benchmark.weighted import weighted_block_ess, weighted_ess

torch.set_num_threads(1)

REFERENCE = load_reference()
POINTS = {"beta_C7eq": (-80.0, 150.0), "alphaR": (-80.0, -40.0), "phi_positive": (60.0, 30.0)}
PEERS = ("replica-exchange", "metadynamics")


def reference_like_run(n, budget_s, seed, states=("beta_C7eq", "alphaR", "phi_positive")):
    """Independent samples over ``states`` with the reference's proportions (renormalised), spread over the budget."""
    p = np.array([REFERENCE["populations"][s] for s in states])
    labels = np.random.default_rng(seed).choice(len(states), size=n, p=p / p.sum())
    phi = np.array([POINTS[states[k]][0] for k in labels])
    psi = np.array([POINTS[states[k]][1] for k in labels])
    wall = np.linspace(budget_s / n, budget_s, n)
    return {"wall_s": wall, "phi": phi, "psi": psi, "elapsed_s": budget_s}


# ------------------------------------------------------------------------------------------------ registry

def test_peers_are_registered_boltzmann_samplers(capsys):
    for name in PEERS:
        method = methods.get_method(name)
        assert method.boltzmann and not method.baseline and not method.needs_flow
        assert method.driver.__module__ == "openmm_timewarp.benchmark.peers"
    assert cli.main(["benchmark", "--list-methods"]) == 0
    listed = capsys.readouterr().out
    assert "replica-exchange" in listed and "metadynamics" in listed


def test_command_rejects_a_non_positive_threshold(capsys, tmp_path):
    assert cli.main(["benchmark", "--methods", "md-1fs", "--accuracy-threshold", "0", "--out", str(tmp_path)]) == 2
    assert "--accuracy-threshold" in capsys.readouterr().err


def test_run_records_keep_estimates_population_source_and_settings():
    result = {"wall_s": np.array([0.5, 1.0]), "phi": np.array([-80.0, 60.0]), "psi": np.array([150.0, 30.0]),
              "weights": np.array([1.0, 0.5]), "elapsed_s": 1.0, "setup_s": 0.2, "seed": 3, "round": 0,
              "estimates": [(0.5, {"beta_C7eq": np.float64(1.0)}), (1.0, {"beta_C7eq": 0.9})],
              "population_source": "estimates", "settings": {"bias_factor": 6.0}, "stats": {"samples": 2}}
    record = _run_record(result)
    assert record["population_source"] == "estimates" and record["settings"] == {"bias_factor": 6.0}
    assert record["estimates"] == [[0.5, {"beta_C7eq": 1.0}], [1.0, {"beta_C7eq": 0.9}]]
    assert record["setup_s"] == 0.2 and record["elapsed_s"] == 1.0 and record["samples"] == 2
    assert not {"wall_s", "phi", "psi", "weights"} & set(record)
    plain = _run_record({k: v for k, v in result.items() if k not in ("estimates", "population_source")})
    assert plain["population_source"] == "weighted samples" and "estimates" not in plain


# ------------------------------------------------------------------------------------------------ ESS marks

def test_ess_of_observables_a_missed_state_affects_is_marked_not_meaningful():
    runs = [reference_like_run(2000, 2.0, 1, states=("beta_C7eq", "alphaR"))]
    result = summary.summarize_method(runs, 2.0, REFERENCE)
    assert set(result["missed_states"]) == {"alphaL", "C7ax"}  # the phi > 0 states
    ess = result["ess"]
    for name in ("sin_phi", "cos_psi", "indicator_phi_positive", "indicator_alphaL"):
        assert not ess[name]["meaningful"] and ess[name]["unvisited_states"], name
    for name in ("indicator_beta_C7eq", "indicator_alphaR"):
        assert ess[name]["meaningful"] and ess[name]["unvisited_states"] == [], name
    assert ess["indicator_phi_positive"]["ess"] == 0.0 and ess["indicator_phi_positive"]["ess_blocks"] == 0.0


def test_weighted_ess_is_per_chain_and_never_pools_chains():
    rng = np.random.default_rng(2)
    stuck_a, stuck_b = np.zeros(400), np.ones(400)  # each chain constant: no information, whatever the other does
    w = [np.ones(400), np.ones(400)]
    assert weighted_ess([stuck_a, stuck_b], w) == 0.0
    assert weighted_block_ess([stuck_a, stuck_b], w, 20) == 0.0
    a, b = rng.standard_normal(4000), 5.0 + rng.standard_normal(3000)
    wa, wb = rng.uniform(0.5, 1.5, 4000), rng.uniform(0.5, 1.5, 3000)
    assert weighted_ess([a, b], [wa, wb]) == pytest.approx(weighted_ess([a], [wa]) + weighted_ess([b], [wb]))
    assert weighted_block_ess([a, b], [wa, wb], 100) == pytest.approx(
        weighted_block_ess([a], [wa], 100) + weighted_block_ess([b], [wb], 100))
    alternating = np.tile([0.0, 1.0], 500)  # antithetic: bounded by n log10 n
    assert weighted_ess([alternating], [np.ones(1000)]) <= 1000 * math.log10(1000) + 1e-9


# ------------------------------------------------------------------------------------------------ accuracy summary

def test_accuracy_summary_times_censoring_and_ratios():
    budget = 10.0
    all_runs = {
        "timewarp-mh": [reference_like_run(4000, budget, s) for s in (1, 2, 3)],
        "md-2fs-hmr": [reference_like_run(4000, budget, s, ("beta_C7eq", "alphaR")) for s in (4, 5, 6)],
        "slow": [reference_like_run(400, budget, s) for s in (7, 8, 9)],
        "timewarp-explore": [reference_like_run(4000, budget, s) for s in (10, 11, 12)],
    }
    curves = summary.accuracy_curves(all_runs, budget, REFERENCE)
    result = summary.accuracy_summary(all_runs, curves, budget, REFERENCE,
                                      {"timewarp-explore": False, "timewarp-mh": True})
    assert result["states"] == ["beta_C7eq", "alphaR", "phi_positive"] and result["threshold_kT"] == 0.3
    assert len(result["checkpoints_s"]) == summary.ACCURACY_CHECKPOINTS and result["checkpoints_s"][-1] == budget
    assert result["timewarp_method"] == "timewarp-mh"

    tw = result["methods"]["timewarp-mh"]
    assert tw["population_source"] == "samples" and tw["repeats"] == 3
    assert not tw["time_to_threshold"]["censored"] and 0 < tw["time_to_threshold"]["value"] <= budget
    assert tw["final_error_kT"] < 0.3 and len(tw["worst_kT"]) == 3
    assert tw["repeats_never_visiting"] == {"beta_C7eq": 0, "alphaR": 0, "phi_positive": 0}

    md = result["methods"]["md-2fs-hmr"]
    assert md["time_to_threshold"]["censored"] and md["time_to_threshold"]["value"] is None
    assert md["time_to_threshold"]["text"] == "> 10 s" and md["final_error_kT"] == math.inf
    assert md["repeats_never_visiting"]["phi_positive"] == 3
    assert md["final_populations"]["phi_positive"] == [0.0, 0.0, 0.0]

    ratio = result["ratios"]["md-2fs-hmr"]  # only Timewarp gets there: a lower bound
    assert ratio["censored"] and ratio["value"] is None
    assert ratio["lower_bound"] == pytest.approx(budget / tw["time_to_threshold"]["value"])
    assert ratio["text"].startswith("> ")
    slow = result["methods"]["slow"]["time_to_threshold"]
    if not slow["censored"]:
        assert result["ratios"]["slow"]["value"] == pytest.approx(slow["value"] / tw["time_to_threshold"]["value"])
    assert "timewarp-explore" not in result["ratios"] and "timewarp-explore" in result["not_compared"]
    assert "timewarp-explore" in result["methods"]

    without = summary.accuracy_summary({"md-2fs-hmr": all_runs["md-2fs-hmr"]}, {"md-2fs-hmr": curves["md-2fs-hmr"]},
                                       budget, REFERENCE)
    assert without["timewarp_method"] is None and without["ratios"] == {}


def test_metadynamics_style_runs_are_scored_on_their_estimates():
    estimates = [(1.0, {"beta_C7eq": 0.9, "alphaR": 0.09, "phi_positive": 0.01}),
                 (4.0, {s: REFERENCE["populations"][s] for s in ("beta_C7eq", "alphaR", "phi_positive")})]
    run = dict(reference_like_run(100, 8.0, 1, ("beta_C7eq",)), estimates=estimates, population_source="estimates")
    curves = summary.accuracy_curves({"metadynamics": [run, run]}, 8.0, REFERENCE)
    result = summary.accuracy_summary({"metadynamics": [run, run]}, curves, 8.0, REFERENCE)
    entry = result["methods"]["metadynamics"]
    assert entry["population_source"] == "estimates"
    times = np.asarray(result["checkpoints_s"])
    assert entry["time_to_threshold"]["value"] == pytest.approx(times[times >= 4.0][0])
    assert entry["repeats_never_visiting"]["phi_positive"] == 2  # its estimate covers a state it never sampled


# ------------------------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def untrained_flow(tmp_path_factory):
    from openmm_timewarp.flow.cartesian.export import export_flow
    from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow

    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("flow") / "untrained.pt")
    export_flow(TimewarpFlow(FlowConfig(position_scale=0.01)), path, temperature=310.0, tau_ps=0.0,
                force_field="amber99sbildn-obc", num_atoms=22)
    return path


def test_benchmark_with_peers_reports_time_to_accuracy(untrained_flow, tmp_path, capsys):
    names = ["replica-exchange", "metadynamics", "md-2fs-hmr", "timewarp-mh"]
    budget = 1.5
    out = tmp_path / "bench"
    code = cli.main(["benchmark", "--methods", *names, "--budget", str(budget), "--cores", "1", "--repeats", "2",
                     "--flow", untrained_flow, "--proposals-per-move", "4", "--batch-size", "4",
                     "--set", "equilibration_ps=2", "--set", "num_replicas=4", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Time to 0.3 kT" in printed and "vs timewarp-mh" in printed

    with open(out / "benchmark.json", encoding="utf-8") as handle:
        result = json.load(handle)
    assert result["settings"]["budget_accounting"]["setup_on_clock"] is False
    acc = result["accuracy"]
    assert set(acc["methods"]) == set(names) and acc["timewarp_method"] == "timewarp-mh"
    assert acc["checkpoints_s"][-1] == budget
    sources = {"replica-exchange": "samples", "metadynamics": "estimates", "md-2fs-hmr": "samples",
               "timewarp-mh": "samples"}
    for name in names:
        entry = acc["methods"][name]
        assert entry["population_source"] == sources[name] and entry["repeats"] == 2
        t = entry["time_to_threshold"]
        assert {"value", "censored", "budget_s", "threshold_kT", "text"} <= set(t)
        if t["censored"]:
            assert t["value"] is None and t["text"] == f"> {budget:g} s"
        else:
            assert 0 < t["value"] <= budget
        assert len(entry["median_kT"]) == len(acc["checkpoints_s"]) and len(entry["worst_kT"]) == 2
        runs = result["methods"][name]["runs"]
        assert len(runs) == 2 and {r["seed"] for r in runs} == {1, 2}
        for run in runs:
            assert run["elapsed_s"] >= budget and run["setup_s"] > 0
    # 1.5 s of MD never reaches phi > 0 (about once per 100 ns): censored, infinite error
    md = acc["methods"]["md-2fs-hmr"]
    assert md["time_to_threshold"]["censored"] and float(md["final_error_kT"]) == math.inf
    assert md["repeats_never_visiting"]["phi_positive"] == 2
    assert set(acc["ratios"]) == {"replica-exchange", "metadynamics", "md-2fs-hmr"}
    timewarp = accuracy.TimeToThreshold(**{k: v for k, v in acc["methods"]["timewarp-mh"]["time_to_threshold"].items()
                                           if k != "text"})
    for peer, ratio in acc["ratios"].items():
        peer_time = accuracy.TimeToThreshold(**{k: v for k, v in acc["methods"][peer]["time_to_threshold"].items()
                                                if k != "text"})
        assert ratio["text"] == str(accuracy.time_ratio(timewarp, peer_time))
    # the peers' own records survive into the JSON
    for name in PEERS:
        run = result["methods"][name]["runs"][0]
        assert run["estimates"] and run["settings"] and run["population_source"] == sources[name]
    assert result["methods"]["metadynamics"]["runs"][0]["settings"]["bias_factor"] == 6.0
    assert result["methods"]["replica-exchange"]["runs"][0]["settings"]["num_replicas"] == 4
    assert not result["methods"]["md-2fs-hmr"]["ess"]["indicator_phi_positive"]["meaningful"]
    with open(acc["figure"], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert acc["figure"] == str(out / "error_vs_time.png") == result["figures"]["error_vs_time"]
