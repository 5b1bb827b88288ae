"""``openmm-timewarp demo``: alanine dipeptide, the shipped model against plain MD, for a few minutes.

Runs Timewarp MH moves (the shipped model and its recommended settings) and plain MD (1 fs, and
2 fs with hydrogen mass repartitioning) for the same wall-clock time each, one replica per core,
with the benchmark (:func:`openmm_timewarp.lab.benchmark.run_benchmark`), then prints acceptance, ESS
per second and speed-ups, populations against the packaged 310 K reference, first visits and the
time to 0.3 kT, and writes the figures into the output folder.
"""

import os
import sys

TIMEWARP_METHOD = "timewarp-mh"
MD_METHODS = ("md-1fs", "md-2fs-hmr")


def add_arguments(parser):
    parser.add_argument("--minutes", type=float, default=2.0,
                        help="wall-clock minutes per method and replica (default: %(default)s)")
    parser.add_argument("--flow", metavar="PATH_OR_NAME", default="alanine-dipeptide",
                        help="Timewarp model file or name (default: the shipped %(default)r)")
    parser.add_argument("--cores", type=int, default=None, help="replicas at once (default: every core)")
    parser.add_argument("--seed", type=int, default=1, help="replica k gets seed SEED+k (default: %(default)s)")
    parser.add_argument("--out", default="timewarp-demo", help="output folder (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args):
    from ..lab.analysis.reference import load_reference
    from ..lab.benchmark.inputs import load_system, resolve_flow
    from ..lab.benchmark.report import accuracy_table, ess_table, methods_table, populations_table, visits_table
    from ..lab.benchmark.runner import BenchmarkError, run_benchmark

    if not args.minutes > 0:
        print("error: --minutes must be positive", file=sys.stderr)
        return 2
    flow = resolve_flow(args.flow)
    molecule, _ = load_system(None)
    cores = args.cores or min(2, os.cpu_count() or 1)
    budget_s = args.minutes * 60.0
    print(f"Alanine dipeptide at 310 K: Timewarp MH moves ({os.path.basename(flow)}) against MD "
          f"({', '.join(MD_METHODS)}), {budget_s:g} s per method and replica, {cores} replica(s) at once.", flush=True)
    try:
        result = run_benchmark(molecule, list(MD_METHODS) + [TIMEWARP_METHOD], budget_s, repeats=cores, cores=cores,
                               seed=args.seed, options={"flow": flow}, reference=load_reference(), out=args.out,
                               progress=not args.no_progress, title="alanine dipeptide, 310 K")
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for heading, text in (("", methods_table(result)), ("Effective samples per second (per core)", ess_table(result)),
                          ("Populations", populations_table(result)), ("First visits", visits_table(result)),
                          ("Time to accuracy", accuracy_table(result))):
        print(("\n" + heading) if heading else "")
        print(text)
    print(f"\nwrote {args.out}/benchmark.json and figures: {', '.join(sorted(result['figures']))}")
    return 0
