"""A molecule that is not a peptide, from its serialised System: fit, an independent reference, and a benchmark.

For each System given (by default the test molecule, 1,2-dimethoxyethane with CGenFF, without and
with ``constraints=HBonds``), runs in turn, each step resumable (the same command continues; a
finished benchmark is kept):

1. ``openmm-timewarp fit SYSTEM PDB --minutes M -o OUT/<name>/fit``;
2. ``openmm-timewarp reference SYSTEM PDB --ns NS --burn-in-ns 0.5 -o OUT/<name>/reference`` (replica exchange of the
   same System, MBAR at the target temperature, 10 blocks);
3. ``openmm-timewarp benchmark --system OUT/<name>/fit --reference OUT/<name>/reference --methods
   timewarp-mh md-2fs-hmr --budget B --repeats R --out OUT/<name>/benchmark``.

Then prints, per System, the fitted model's MH acceptance and, per method, every soft torsion's
three states and six 60-degree bins against the reference: population, reference, z (block errors
of both) and the largest |z|. Writes the figures to ``OUT/small-molecule.json``.

Usage::

    python benchmarks/small_molecule.py -o runs/small-molecule
    python benchmarks/small_molecule.py -o runs/small-molecule --minutes 15 --ns 5 --budget 150 --repeats 4
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "small-molecule")
DEFAULT_SYSTEMS = [os.path.join(DATA, "dme-system.xml"), os.path.join(DATA, "dme-hbonds-system.xml")]
METHODS = ("timewarp-mh", "md-2fs-hmr")


def command(*arguments):
    """Run ``openmm-timewarp ARGUMENTS`` in this interpreter; stop on failure."""
    line = [sys.executable, "-m", "openmm_timewarp.cli", *map(str, arguments)]
    print("$ openmm-timewarp " + " ".join(map(str, arguments)), flush=True)
    subprocess.run(line, check=True)


def run_one(system, pdb, folder, args):
    fit, reference, bench = (os.path.join(folder, name) for name in ("fit", "reference", "benchmark"))
    command("fit", system, pdb, "--minutes", args.minutes, "-o", fit, "--no-progress")
    command("reference", system, pdb, "--ns", args.ns, "--burn-in-ns", args.burn_in_ns, "--replicas", args.replicas,
            "-o", reference, "--no-progress")
    if not os.path.isfile(os.path.join(bench, "benchmark.json")):  # a finished benchmark is kept
        command("benchmark", "--system", fit, "--reference", reference, "--methods", *METHODS, "--budget",
                args.budget, "--repeats", args.repeats, "--seed", args.seed, "--out", bench, "--no-progress")
    with open(os.path.join(fit, "fit.json")) as handle:
        check = json.load(handle)["stages"]["check"]
    with open(os.path.join(bench, "benchmark.json")) as handle:
        result = json.load(handle)
    out = {"fit_check_acceptance": check["acceptance"], "reference": result["reference"]["provenance"],
           "methods": {}}
    for method in METHODS:
        summary = result["methods"][method]
        states = {name: {k: row.get(k) for k in ("population", "stderr", "reference", "reference_stderr", "z")}
                  for name, row in summary["states"].items() if row.get("z") is not None}
        out["methods"][method] = {
            "acceptance": summary["statistics"].get("acceptance_rate"),
            "samples": summary["samples"], "states": states,
            "max_abs_z": max(abs(s["z"]) for s in states.values()) if states else None,
        }
    return out


def report(name, figures):
    print(f"\n{name}: fit check acceptance {figures['fit_check_acceptance']:.3f}; reference "
          f"{figures['reference'].get('simulated_ns_per_replica')} ns per replica, "
          f"{figures['reference'].get('replicas')} replicas")
    for method, entry in figures["methods"].items():
        acceptance = entry["acceptance"]
        print(f"  {method}: {entry['samples']} samples"
              + (f", MH acceptance {acceptance:.3f}" if acceptance is not None else "")
              + f", max |z| {entry['max_abs_z']:.2f} over {len(entry['states'])} states and bins")
        for state, row in entry["states"].items():
            print(f"    {state:<28} {row['population']:.4f} +- {row['stderr']:.4f}   reference "
                  f"{row['reference']:.4f} +- {row['reference_stderr']:.4f}   z {row['z']:+.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("systems", nargs="*", default=DEFAULT_SYSTEMS, help="System XML files (default: DME, +-HBonds)")
    parser.add_argument("--pdb", default=os.path.join(DATA, "dme.pdb"), help="PDB of the Systems' atoms")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--minutes", type=float, default=15.0, help="fit budget (default 15)")
    parser.add_argument("--ns", type=float, default=5.0, help="reference ns per replica (default 5)")
    parser.add_argument("--burn-in-ns", type=float, default=0.5, help="reference burn-in per replica (default 0.5)")
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--budget", type=float, default=150.0, help="benchmark seconds per replica (default 150)")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = {}
    for system in args.systems:
        name = os.path.splitext(os.path.basename(system))[0]
        results[name] = run_one(os.path.abspath(system), os.path.abspath(args.pdb), os.path.join(args.output, name),
                                args)
        report(name, results[name])
    results["settings"] = vars(args)
    with open(os.path.join(args.output, "small-molecule.json"), "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
