"""The benchmark: its figures of merit on synthetic recordings worked out by hand, the method registry,
one short end-to-end run of the command, and the clear errors for bad arguments."""

import json
import math
import warnings

import numpy as np
import pytest

from openmm_timewarp import cli
from openmm_timewarp.lab import systems
from openmm_timewarp.lab.analysis.peptide import PeptideObservables
from openmm_timewarp.lab.analysis.reference import PACKAGED_REFERENCE, Reference, reference_from_samples, save_reference
from openmm_timewarp.lab.benchmark import DEFAULT_METHODS, get_method, method_names, metrics, run_benchmark
from openmm_timewarp.lab.benchmark.metrics import CensoredRatio, censored_median, compare, ratio, summarize, \
    time_to_accuracy
from openmm_timewarp.lab.molecule import load_molecule
from openmm_timewarp.lab.samplers import Metadynamics, MolecularDynamics, ReplicaExchange, TimewarpSampler
from openmm_timewarp.lab.samplers.replica_exchange import replica_count

# (phi, psi) in degrees inside each alanine-dipeptide state
BETA, ALPHA_R, ALPHA_L = (-80.0, 150.0), (-80.0, -40.0), (60.0, 40.0)


@pytest.fixture(scope="module")
def observables():
    topology, _ = systems.load_alanine_dipeptide()
    return PeptideObservables(topology)


# --------------------------------------------------------------------------- censored ratios and medians

def test_censored_ratio_text():
    assert CensoredRatio(1.23456).text() == "1.23"
    assert CensoredRatio(12.3456, ">").text() == "> 12.3"
    assert CensoredRatio(0.0123456, "<").text(2) == "< 0.012"
    assert CensoredRatio(float("nan")).text() == "-"
    assert CensoredRatio(4.0, ">").to_json() == {"value": 4.0, "bound": ">", "text": "> 4"}


def test_ratio_is_a_lower_bound_with_the_floor_when_the_denominator_is_zero():
    assert ratio(6.0, 2.0, 0.5) == CensoredRatio(3.0)
    assert ratio(6.0, 0.0, 0.5) == CensoredRatio(12.0, ">")  # 6 / 0.5, at least
    assert ratio(0.0, 0.0, 0.5) == CensoredRatio(0.0)
    assert ratio(0.0, 2.0, 0.5) == CensoredRatio(0.0)


def test_censored_median():
    assert censored_median([3.0, 1.0, 2.0], 10.0) == CensoredRatio(2.0)
    assert censored_median([4.0, 1.0, 3.0, 2.0], 10.0) == CensoredRatio(2.5)
    assert censored_median([1.0, 2.0, None], 10.0) == CensoredRatio(2.0)  # a third censored: still exact
    # exactly half censored: the median is (t + T) / 2 with T > limit, so more than (t + limit) / 2
    assert censored_median([4.0, None], 10.0) == CensoredRatio(7.0, ">")
    assert censored_median([1.0, None, 3.0, None], 10.0) == CensoredRatio(6.5, ">")
    # more than half: more than the limit
    assert censored_median([1.0, None, None], 10.0) == CensoredRatio(10.0, ">")
    assert censored_median([None, None], 10.0) == CensoredRatio(10.0, ">")
    assert censored_median([], 10.0).text() == "-"


# --------------------------------------------------------------------------- time to accuracy

HALF_HALF = {"A": 0.5, "B": 0.5}


def indicator_pair(a):
    a = np.asarray(a, dtype=bool)
    return {"A": a, "B": ~a}


def test_time_to_accuracy_is_when_the_error_stays_below_for_good():
    # A = 1, 0, 1, 1, 1, 0, 0, 0: p(A) after n samples 1, 1/2, 2/3, 3/4, 4/5, 2/3, 4/7, 1/2
    wall = np.arange(1.0, 9.0)
    result = time_to_accuracy(wall, indicator_pair([1, 0, 1, 1, 1, 0, 0, 0]), np.zeros(8), HALF_HALF, wall)
    expected = [math.inf, 0.0, math.log(1.5), math.log(2.0), math.log(2.5), math.log(1.5), math.log(7 / 6), 0.0]
    assert result["worst_error_kT"] == pytest.approx(expected)
    assert result["time_s"] == 7.0  # below 0.3 kT at 2 s too, but not for good before 7 s


def test_time_to_accuracy_between_samples_and_never():
    wall = np.arange(1.0, 9.0)
    # checkpoints between samples use the samples recorded by then
    result = time_to_accuracy(wall, indicator_pair([1, 1, 0, 0, 1, 0, 1, 0]), np.zeros(8), HALF_HALF,
                              np.array([0.5, 2.5, 3.5, 8.0]))
    assert result["worst_error_kT"] == pytest.approx([math.inf, math.inf, math.log(1.5), 0.0])
    assert result["time_s"] == 8.0
    # a state never visited: infinite error, never accurate
    never = time_to_accuracy(wall, indicator_pair([1] * 8), np.zeros(8), HALF_HALF, wall)
    assert never["time_s"] is None and all(math.isinf(w) for w in never["worst_error_kT"])
    # accurate from the first checkpoint on
    early = time_to_accuracy(wall, indicator_pair([1, 0] * 4), np.zeros(8), HALF_HALF, np.array([2.0, 4.0]))
    assert early["time_s"] == 2.0


def test_time_to_accuracy_uses_the_weights():
    wall = np.array([1.0, 2.0])
    result = time_to_accuracy(wall, indicator_pair([1, 0]), np.array([math.log(3.0), 0.0]), {"A": 0.75, "B": 0.25},
                              wall)
    assert result["worst_error_kT"] == pytest.approx([math.inf, 0.0])  # (3 A + 1 B) / 4
    assert result["time_s"] == 2.0


# --------------------------------------------------------------------------- summarize

def replica(torsions, log_weights=None):
    values = np.asarray(torsions, dtype=float)
    n = len(values)
    return {"wall_s": np.arange(1.0, n + 1.0), "values": values,
            "log_weights": np.zeros(n) if log_weights is None else np.asarray(log_weights, dtype=float),
            "elapsed_s": n + 0.5, "setup_s": 0.5, "statistics": {"md_steps": 100 * n, "note": "same"}}


def two_replicas(log_weights=None):
    first = replica([BETA] * 5 + [ALPHA_R] * 5, log_weights)
    second = replica([ALPHA_R] * 4 + [ALPHA_L] * 2 + [ALPHA_R] * 4)
    return [first, second]


def test_summarize_pools_the_replicas(observables):
    summary = summarize(two_replicas(), observables, None, 10.0)
    states = summary["states"]
    expected = {"ALA2:beta": 0.25, "ALA2:alphaR": 0.65, "ALA2:phi_positive": 0.1, "ALA2:alphaL": 0.1,
                "ALA2:C7ax": 0.0}
    assert {s: states[s]["population"] for s in expected} == pytest.approx(expected)
    assert summary["replicas"] == 2 and summary["samples"] == 20 and summary["seconds"] == 21.0
    assert summary["weighted"] is False and summary["setup_s"] == [0.5, 0.5]
    for name, entry in states.items():
        assert entry["ess_block_per_s"] == pytest.approx(entry["ess_block"] / 21.0)
        assert entry["ess_window_per_s"] == pytest.approx(entry["ess_window"] / 21.0)
    assert states["ALA2:C7ax"]["ess_block"] == 0.0
    assert summary["missed"] == {"ALA2:beta": [1], "ALA2:phi_positive": [0], "ALA2:alphaL": [0],
                                 "ALA2:C7ax": [0, 1]}
    visits = summary["first_visit_s"]
    assert visits["ALA2:alphaR"]["value"] == 3.5 and visits["ALA2:alphaR"]["bound"] == "="  # 6 s and 1 s
    assert (visits["ALA2:beta"]["value"], visits["ALA2:beta"]["bound"]) == (5.5, ">")  # 1 s and never
    assert (visits["ALA2:alphaL"]["value"], visits["ALA2:alphaL"]["bound"]) == (7.5, ">")  # never and 5 s
    assert (visits["ALA2:C7ax"]["value"], visits["ALA2:C7ax"]["bound"]) == (10.0, ">")
    assert summary["statistics"] == {"md_steps": 2000, "note": "same"}  # counters summed over replicas
    assert "accuracy" not in summary and "error_kT" not in states["ALA2:beta"]


def test_summarize_reweights(observables):
    # the first replica's beta samples weigh 3: (5 * 3 + 5 + 10) = 30 in all
    summary = summarize(two_replicas([math.log(3.0)] * 5 + [0.0] * 5), observables, None, 10.0)
    states = summary["states"]
    assert summary["weighted"] is True
    assert states["ALA2:beta"]["population"] == pytest.approx(15 / 30)
    assert states["ALA2:alphaR"]["population"] == pytest.approx(13 / 30)
    assert states["ALA2:alphaL"]["population"] == pytest.approx(2 / 30)
    assert "ess_window" not in states["ALA2:beta"]


def test_summarize_scores_against_the_reference(observables):
    reference = Reference("ACE-A-NME", 310.0, "amber99sbildn-obc", {
        "ALA2:beta": {"population": 0.25, "stderr": 0.01}, "ALA2:alphaR": {"population": 0.6, "stderr": 0.02},
        "ALA2:phi_positive": {"population": 0.15, "stderr": 0.01}, "ALA2:alphaL": {"population": 0.14, "stderr": 0.01},
        "ALA2:C7ax": {"population": 0.01, "stderr": 0.005}})
    summary = summarize(two_replicas(), observables, reference, 10.0)
    states = summary["states"]
    assert summary["checked_states"] == ["ALA2:beta", "ALA2:alphaR", "ALA2:phi_positive"]  # partition, >= 1 %
    assert states["ALA2:beta"]["error_kT"] == pytest.approx(0.0, abs=1e-12)
    assert states["ALA2:alphaR"]["error_kT"] == pytest.approx(math.log(0.65 / 0.6))
    assert states["ALA2:phi_positive"]["error_kT"] == pytest.approx(math.log(1.5))
    assert math.isinf(states["ALA2:C7ax"]["error_kT"])
    alpha = states["ALA2:alphaR"]
    assert alpha["z"] == pytest.approx((0.65 - 0.6) / math.hypot(alpha["stderr"], 0.02))
    assert alpha["checked"] and not states["ALA2:alphaL"]["checked"]
    accuracy = summary["accuracy"]
    assert len(accuracy["worst_error_kT"]) == 2 and len(accuracy["checkpoints_s"]) == metrics.NUM_CHECKPOINTS
    assert accuracy["checkpoints_s"][0] == pytest.approx(0.01) and accuracy["checkpoints_s"][-1] == pytest.approx(10.0)
    assert accuracy["replica_times_s"] == [None, None]  # each replica misses a checked state
    assert accuracy["time_to_accuracy_s"]["text"] == "> 10"
    # a sampler that is not Boltzmann is not scored
    explore = summarize(two_replicas(), observables, reference, 10.0, boltzmann=False)
    assert "error_kT" not in explore["states"]["ALA2:beta"] and "accuracy" not in explore


# --------------------------------------------------------------------------- compare

def method_summary(seconds, block, window=None, missed=None, boltzmann=True, accuracy=None):
    states = {}
    for k, state in enumerate(("S1", "S2", "S3")):
        states[state] = {"ess_block_per_s": block[k]}
        if window is not None:
            states[state]["ess_window_per_s"] = window[k]
    summary = {"boltzmann": boltzmann, "seconds": seconds, "missed": missed or {}, "states": states}
    if accuracy is not None:
        summary["accuracy"] = {"time_to_accuracy_s": CensoredRatio(*accuracy).to_json()}
    return summary


def test_compare_against_the_best_baseline_and_the_peers():
    summaries = {
        "md-a": method_summary(10.0, [2.0, 0.5, 0.0], [1.0, 0.5, 0.0], {"S3": [0, 1]}, accuracy=(100.0, ">")),
        "md-b": method_summary(20.0, [4.0, 0.25, 0.0], [0.8, 1.0, 0.0], {"S3": [0, 1]}),
        "peer": method_summary(10.0, [2.0, 0.0, 0.1], None, {"S2": [0, 1]}, accuracy=(40.0, "=")),
        "tw": method_summary(10.0, [8.0, 1.0, 0.5], [2.0, 3.0, 0.2], accuracy=(20.0, "=")),
        "tw-missing": method_summary(10.0, [8.0, 1.0, 0.5], [2.0, 3.0, 0.2], {"S2": [1]}),
        "explore": method_summary(10.0, [9.0, 9.0, 9.0], [9.0, 9.0, 9.0], boltzmann=False),
    }
    out = compare(summaries, ["md-a", "md-b"], ["peer"])
    assert "explore" not in out
    tw = out["tw"]["speed_up"]
    assert (tw["S1"]["ess_block_per_s"]["value"], tw["S1"]["ess_block_per_s"]["baseline"]) == (2.0, "md-b")
    assert (tw["S1"]["ess_window_per_s"]["value"], tw["S1"]["ess_window_per_s"]["baseline"]) == (2.0, "md-a")
    assert (tw["S2"]["ess_block_per_s"]["value"], tw["S2"]["ess_block_per_s"]["baseline"]) == (2.0, "md-a")
    assert (tw["S2"]["ess_window_per_s"]["value"], tw["S2"]["ess_window_per_s"]["baseline"]) == (3.0, "md-b")
    assert tw["S1"]["ess_block_per_s"]["bound"] == "="
    # no baseline visited S3: a lower bound, with the baselines' rate at most one sample in the shorter run
    assert (tw["S3"]["ess_block_per_s"]["value"], tw["S3"]["ess_block_per_s"]["bound"]) == (pytest.approx(5.0), ">")
    assert tw["S3"]["ess_block_per_s"]["text"] == "> 5"
    assert (tw["S3"]["ess_window_per_s"]["value"], tw["S3"]["ess_window_per_s"]["bound"]) == (pytest.approx(2.0), ">")
    # a run that missed the state in a replica claims no speed-up there
    assert out["tw-missing"]["speed_up"]["S2"]["ess_block_per_s"]["value"] == 0.0
    assert out["tw-missing"]["speed_up"]["S1"]["ess_block_per_s"]["value"] == 2.0
    # baselines get no speed-up over themselves; the peer has no windowed ESS
    assert out["md-a"]["speed_up"] == {} and out["md-b"]["speed_up"] == {}
    assert set(out["peer"]["speed_up"]["S1"]) == {"ess_block_per_s"}
    # against the peer, state by state (a lower bound where the peer has no effective sample)
    peer = out["tw"]["vs_peers"]["peer"]
    assert peer["S1"]["value"] == 4.0 and peer["S3"]["value"] == pytest.approx(5.0)
    assert (peer["S2"]["value"], peer["S2"]["bound"]) == (pytest.approx(10.0), ">")
    # times to accuracy: 20 s against 40 s, and against "> 100 s"
    assert peer["time_to_accuracy"]["value"] == 0.5 and peer["time_to_accuracy"]["bound"] == "="
    against_md = out["tw"]["vs_peers"]["md-a"]["time_to_accuracy"]
    assert (against_md["value"], against_md["bound"]) == (0.2, "<")
    assert "time_to_accuracy" not in out["tw"]["vs_peers"].get("md-b", {})
    md_vs_peer = out["md-a"]["vs_peers"]["peer"]["time_to_accuracy"]  # "> 100 s" against 40 s
    assert (md_vs_peer["value"], md_vs_peer["bound"]) == (2.5, ">")


def test_error_figure_when_no_replica_ever_saw_every_checked_state(tmp_path):
    from openmm_timewarp.lab.benchmark.figures import error_vs_time_figure

    accuracy = {"checkpoints_s": [0.3, 1.0, 3.0], "worst_error_kT": [[math.inf] * 3, [math.inf] * 3]}
    result = {"title": "short run", "methods": {"md-2fs-hmr": {"accuracy": accuracy}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN medians
        path = error_vs_time_figure(result, str(tmp_path / "error_vs_time.png"))
    assert (tmp_path / "error_vs_time.png").stat().st_size > 1000 and path.endswith("error_vs_time.png")


# --------------------------------------------------------------------------- the methods

def test_every_default_method_is_registered_and_builds_its_sampler():
    molecule = load_molecule(systems.structure_path("alanine-dipeptide"))
    assert set(DEFAULT_METHODS) <= set(method_names())
    options = {"flow": "model.pt"}
    built = {name: get_method(name).build(molecule, 3, options) for name in DEFAULT_METHODS}
    for name in ("md-1fs", "md-2fs-hmr"):
        assert isinstance(built[name], MolecularDynamics) and get_method(name).role == "baseline"
    assert (built["md-1fs"].settings.timestep_fs, built["md-1fs"].settings.hydrogen_mass_amu) == (1.0, None)
    assert (built["md-2fs-hmr"].settings.timestep_fs, built["md-2fs-hmr"].settings.hydrogen_mass_amu) == (2.0, 3.0)
    assert isinstance(built["replica-exchange"], ReplicaExchange) and get_method("replica-exchange").role == "peer"
    assert built["replica-exchange"].settings.num_replicas == replica_count(22) == 8
    assert isinstance(built["metadynamics"], Metadynamics) and get_method("metadynamics").role == "peer"
    for name in ("timewarp-mh", "timewarp-mixed", "timewarp-explore"):
        assert isinstance(built[name], TimewarpSampler) and get_method(name).role == "timewarp"
        assert built[name].settings.flow == "model.pt" and built[name].seed == 3
    assert built["timewarp-mh"].settings.move_interval == 0 and built["timewarp-mh"].boltzmann
    assert built["timewarp-mixed"].settings.move_interval == 100
    assert built["timewarp-explore"].settings.mode == "explore" and not built["timewarp-explore"].boltzmann
    mixed = get_method("timewarp-mixed").build(molecule, 1, {"flow": "m.pt", "mixed_move_interval": 7,
                                                             "proposals_per_move": 3})
    assert (mixed.settings.move_interval, mixed.settings.proposals_per_move) == (7, 3)
    with pytest.raises(ValueError, match="unknown method 'md-3fs'; known: md-1fs"):
        get_method("md-3fs")
    with pytest.raises(ValueError, match="unknown method"):  # before any work
        run_benchmark(molecule, ["md-2fs-hmr", "md-3fs"], 1.0, repeats=1)


# --------------------------------------------------------------------------- the command

def test_benchmark_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench"
    code = cli.main(["benchmark", "--methods", "md-2fs-hmr", "metadynamics", "--budget", "3", "--repeats", "2",
                     "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    for name in ("benchmark.json", "report.txt", "samples.npz", "ramachandran-ALA2.png", "error_vs_time.png",
                 "ess_per_s.png"):
        assert (out / name).stat().st_size > 100, name
    report = (out / "report.txt").read_text()
    for text in ("Populations", "First visits", "Time to accuracy", "metadynamics", "md-2fs-hmr", "ALA2:beta"):
        assert text in report and text in printed, text
    result = json.loads((out / "benchmark.json").read_text())
    assert list(result["methods"]) == ["md-2fs-hmr", "metadynamics"]
    assert result["settings"]["repeats"] == 2 and result["settings"]["budget_s"] == 3.0
    assert result["molecule"]["name"] == "ACE-A-NME" and result["molecule"]["atoms"] == 22
    assert result["reference"]["molecule"] == "ACE-A-NME" and result["torsions"] == ["phi2", "psi2"]
    partition = ["ALA2:beta", "ALA2:alphaR", "ALA2:phi_positive"]
    for name, summary in result["methods"].items():
        assert summary["replicas"] == 2 and summary["samples"] >= 2 and summary["seconds"] >= 6.0
        assert summary["checked_states"] == partition
        populations = [summary["states"][s]["population"] for s in partition]
        assert all(0.0 <= p <= 1.0 for p in populations) and sum(populations) == pytest.approx(1.0)
        assert all("error_kT" in summary["states"][s] for s in partition)
        assert len(summary["accuracy"]["replica_times_s"]) == 2
    assert result["methods"]["md-2fs-hmr"]["weighted"] is False and result["methods"]["metadynamics"]["weighted"]
    assert result["methods"]["md-2fs-hmr"]["role"] == "baseline" and result["methods"]["metadynamics"]["role"] == "peer"
    speed = result["comparisons"]["metadynamics"]["speed_up"]
    assert set(speed) == set(result["methods"]["metadynamics"]["states"])
    assert all(v["ess_block_per_s"]["baseline"] == "md-2fs-hmr" for v in speed.values())
    with np.load(out / "samples.npz") as samples:
        for name in ("md-2fs-hmr", "metadynamics"):
            for k in range(2):
                wall, torsions = samples[f"{name}__{k}__wall_s"], samples[f"{name}__{k}__torsions"]
                assert torsions.shape == (len(wall), 2) and wall[-1] >= 3.0
                assert len(samples[f"{name}__{k}__log_weights"]) == len(wall)


def test_benchmark_command_refuses_an_unknown_method(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["benchmark", "--methods", "md-3fs", "--no-progress"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'md-3fs'" in capsys.readouterr().err


def test_benchmark_command_refuses_a_reference_of_another_molecule(tmp_path, capsys):
    topology, _ = systems.build_peptide("G", capped=True)
    glycine = PeptideObservables(topology)
    values = np.random.default_rng(1).uniform(-180.0, 180.0, size=(200, 2))
    reference = reference_from_samples(glycine, values, molecule=systems.peptide_name("G", True), temperature_K=310.0,
                                       preset="amber99sbildn-obc")
    save_reference(reference, tmp_path / "reference.json")
    out = tmp_path / "bench"
    code = cli.main(["benchmark", "--reference", str(tmp_path), "--methods", "md-2fs-hmr", "--budget", "1",
                     "--out", str(out), "--no-progress"])
    assert code == 2
    assert "the reference is for ACE-G-NME, the system is ACE-A-NME" in capsys.readouterr().err
    assert not out.exists()


def test_benchmark_command_refuses_other_bad_inputs(tmp_path, capsys):
    out = tmp_path / "bench"
    common = ["--methods", "md-2fs-hmr", "--budget", "1", "--out", str(out), "--no-progress"]
    # a reference at another temperature
    assert cli.main(["benchmark", "--system", "A", "--capped", "--temperature-k", "350", "--reference",
                     str(PACKAGED_REFERENCE)] + common) == 2
    assert "the reference is at 310 K, the system at 350 K" in capsys.readouterr().err
    # no reference there
    assert cli.main(["benchmark", "--reference", str(tmp_path / "missing")] + common) == 2
    assert "no reference at" in capsys.readouterr().err
    # no such model
    assert cli.main(["benchmark", "--flow", str(tmp_path / "missing.pt")] + common) == 2
    assert "neither a file nor an installed model" in capsys.readouterr().err
    assert not out.exists()
