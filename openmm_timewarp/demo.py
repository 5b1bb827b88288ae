"""``openmm-timewarp demo``: alanine dipeptide, the shipped model against the best MD baseline.

Runs Timewarp MH moves and plain MD (1 fs, and 2 fs with hydrogen mass repartitioning) for the
same few minutes each, one replica per core, with the benchmark runner
(:func:`openmm_timewarp.benchmark.run_benchmark`), then prints acceptance, ESS per second, the
speed-up over the better MD variant on each observable, the state populations against the
310 K reference and the time to 0.3 kT of each method, and writes the Ramachandran plots and the
error-vs-time plot into the output folder.
"""

import sys

TIMEWARP_METHOD = "timewarp-mh"
MD_METHODS = ("md-1fs", "md-2fs-hmr")


def add_arguments(parser):
    parser.add_argument("--minutes", type=float, default=2.0,
                        help="wall-clock minutes of sampling per method (default: %(default)s)")
    parser.add_argument("--flow", metavar="PATH_OR_NAME",
                        help="Timewarp flow file or model name (default: the shipped 'alanine-dipeptide')")
    parser.add_argument("--md", choices=("best",) + MD_METHODS, default="best",
                        help="MD baseline: 'best' runs both variants and takes the better one per observable "
                             "(default: %(default)s)")
    parser.add_argument("--cores", type=int, default=None, help="replicas at once (default: all cores)")
    parser.add_argument("--seed", type=int, default=1, help="replica k gets seed SEED+k (default: %(default)s)")
    parser.add_argument("--out", default="timewarp-demo", help="output folder (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def demo_table(result):
    """Acceptance, ESS per second, speed-up over the best MD baseline: one row per figure.

    Parameters
    ----------
    result : dict
        From :func:`openmm_timewarp.benchmark.run_benchmark` with ``timewarp-mh`` and MD methods.

    Returns
    -------
    str
    """
    from .benchmark.report import fmt, observable_label, observable_rows, text_table

    methods = list(result["methods"])
    speed = result["speed_ups"].get(TIMEWARP_METHOD)
    header = ("", *methods, "speed-up", "best MD")
    rows = [("acceptance", *[fmt(result["methods"][m]["acceptance_rate"], ".3f") for m in methods], "")]
    rows.append(("samples", *[str(result["methods"][m]["samples"]) for m in methods], ""))
    notes = ["", ""]
    for name, key in observable_rows(result, include_blocks=True):
        cells = [fmt(result["methods"][m]["ess"].get(name, {}).get(f"{key}_per_s"), ".3g") for m in methods]
        entry = None if speed is None else speed[key].get(name)
        rows.append(("ESS/s " + observable_label(name, key), *cells, "-" if entry is None else entry["text"]))
        notes.append("" if entry is None else entry["baseline"])
    rows.append(("JSD vs reference", *[fmt(result["methods"][m]["jsd"], ".3f") for m in methods], ""))
    notes.append("")
    return text_table(header, rows, 28, 14, notes)


def run(args):
    from .benchmark.commands import FlowNotFoundError, resolve_flow
    from .benchmark.report import accuracy_table, exploration_table, populations_table
    from .benchmark.runner import BenchmarkError, run_benchmark

    if args.minutes <= 0:
        print("error: --minutes must be positive", file=sys.stderr)
        return 2
    try:
        flow = resolve_flow(args.flow)
    except FlowNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    md = list(MD_METHODS) if args.md == "best" else [args.md]
    methods = md + [TIMEWARP_METHOD]
    budget_s = args.minutes * 60.0
    print(f"Alanine dipeptide at 310 K: Timewarp MH moves ({flow}) vs MD ({', '.join(md)}), "
          f"{budget_s:g} s of sampling per method, one replica per core.", flush=True)
    try:
        result = run_benchmark(methods, budget_s, cores=args.cores, settings={"flow": flow}, out=args.out,
                               seed=args.seed, progress=not args.no_progress,
                               title=f"alanine dipeptide, 310 K, {budget_s:g} s per method")
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print()
    print(demo_table(result))
    print()
    print(populations_table(result))
    print()
    print(exploration_table(result))
    print()
    print(accuracy_table(result))
    missed = {m: s["missed_states"] for m, s in result["methods"].items() if s["missed_states"]}
    if missed:
        print()
        print("Missed states the reference visits (speed-up 0 for the observables they affect): "
              + "; ".join(f"{m}: {', '.join(states)}" for m, states in missed.items()))
    print()
    print(f"wrote {result['files']['json']}, {result['figures']['ramachandran']}, {result['figures']['ess_per_s']}, "
          f"{result['figures']['error_vs_time']}")
    return 0
