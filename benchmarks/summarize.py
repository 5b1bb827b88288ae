"""Markdown tables for docs/results.md from benchmark JSON files (``openmm-timewarp benchmark --out DIR``).

One table per file: every method's acceptance, block ESS/s of each checked macrostate, median time
to 0.3 kT, the largest |z| of the end populations against the reference, and the replicas that
missed a macrostate the reference holds at >= 1%. With ``--reference``, the end populations of
every Boltzmann-sampling method are scored again against another reference (a longer run of
``openmm-timewarp reference``): |ln(p/p_ref)| and the z-score from both errors, per macrostate the
benchmark judged that the new reference still holds at >= 1%.

Usage: python benchmarks/summarize.py DIR/benchmark.json [DIR2/benchmark.json ...] [--reference REF]
"""

import argparse
import json

from openmm_timewarp.lab.analysis.estimates import log_ratio_error, z_score
from openmm_timewarp.lab.analysis.reference import load_reference
from openmm_timewarp.lab.benchmark.metrics import CHECK_THRESHOLD


def _number(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def method_rows(result: dict):
    """(method, acceptance, {state: ESS/s}, time to 0.3 kT, max |z|, missed) for each method."""
    for name, summary in result["methods"].items():
        stats = summary.get("statistics") or {}
        acceptance = f"{stats['acceptance_rate']:.3f}" if "acceptance_rate" in stats else "-"
        checked = summary.get("checked_states") or [s for s, v in summary["states"].items() if v.get("checked")]
        ess = {state: summary["states"][state]["ess_block_per_s"] for state in summary["states"]}
        accuracy = summary.get("accuracy")
        time_text = accuracy["time_to_accuracy_s"]["text"] if accuracy else "not Boltzmann"
        z = [abs(summary["states"][s]["z"]) for s in checked if "z" in summary["states"][s]]
        missed = {s: r for s, r in (summary.get("missed") or {}).items() if s in checked}
        yield name, acceptance, ess, time_text, (max(z) if z else None), missed


def judged_states(result: dict):
    """(every macrostate of the benchmark in its order, the set any method was judged on)."""
    states = list(next(iter(result["methods"].values()))["states"])
    judged = {s for summary in result["methods"].values() for s in summary.get("checked_states") or []}
    return states, judged


def table(result: dict) -> str:
    states, judged = judged_states(result)
    states = [s for s in states if s in judged] or states
    header = ["method", "acceptance"] + [f"ESS/s {s}" for s in states] + ["time to 0.3 kT (s)", "max abs z",
                                                                          "replicas missing a state"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, acceptance, ess, time_text, z, missed in method_rows(result):
        miss = "; ".join(f"{s}: {len(r)}" for s, r in missed.items()) or "none"
        cells = [name, acceptance] + [_number(ess[s]) for s in states] + [
            time_text, "-" if z is None else f"{z:.1f}", miss]
        lines.append("| " + " | ".join(cells) + " |")
    settings = result["settings"]
    return (f"{result['title']}: {settings['repeats']} replicas x {settings['budget_s']:g} s per method, "
            f"seed {settings['seed']}\n\n" + "\n".join(lines))


def rescored(result: dict, reference) -> str:
    """End populations of the Boltzmann methods against ``reference``: p +- se, |ln(p/p_ref)| (kT) and z."""
    states, judged = judged_states(result)
    states = [s for s in states if s in judged and s in reference.states and reference.population(s) >= CHECK_THRESHOLD]
    if not states:
        raise SystemExit(f"the reference ({reference.molecule}) holds none of the macrostates this benchmark "
                         f"judged ({', '.join(sorted(judged))}) at >= {CHECK_THRESHOLD:g}: is it a reference "
                         f"for {result['title']}?")
    header = ["method"] + [f"{s} (ref {reference.population(s):.4f} +- {reference.stderr(s):.4f})" for s in states]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, summary in result["methods"].items():
        if not summary.get("boltzmann", True):
            continue
        cells = [name]
        for state in states:
            p, se = summary["states"][state]["population"], summary["states"][state]["stderr"]
            z = z_score(p, se, reference.population(state), reference.stderr(state))
            cells.append(f"{p:.4f} +- {se:.4f}: {log_ratio_error(p, reference.population(state)):.2f} kT, z {z:+.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    estimator = reference.provenance.get("estimator", "target")
    return (f"{result['title']} against {reference.molecule}, {reference.simulated_ns:g} ns per replica "
            f"({reference.num_samples} samples, {estimator})\n\n" + "\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--reference", help="score the end populations again against this reference "
                                            "(reference.json or a folder from 'openmm-timewarp reference')")
    args = parser.parse_args(argv)
    reference = load_reference(args.reference) if args.reference else None
    for path in args.files:
        with open(path) as handle:
            result = json.load(handle)
        print(table(result) + "\n")
        if reference is not None:
            print(rescored(result, reference) + "\n")


if __name__ == "__main__":
    main()
