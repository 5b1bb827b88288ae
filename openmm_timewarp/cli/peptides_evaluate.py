"""``openmm-timewarp peptides-evaluate``: zero-shot MH runs of a transferable model over many peptides.

Examples::

    # the 100 test dipeptides, 60 s of pure MH each, one per core
    openmm-timewarp peptides-evaluate peptides --group 2aa --split test --seconds 60 -o runs/eval-2aa
    # the held-out tetrapeptides, 2 minutes each
    openmm-timewarp peptides-evaluate peptides --group 4aa --split test --seconds 120 -o runs/eval-4aa
    # sequences of your own
    openmm-timewarp peptides-evaluate peptides --sequences AK GW --seconds 30 -o runs/eval-mine

Per peptide, ``OUTPUT/<name>.json``; the table goes to ``OUTPUT/summary.md`` and the figures to
``OUTPUT/summary.json``. A rerun continues with the peptides that have no result yet; see
:mod:`openmm_timewarp.lab.benchmark.zero_shot`.
"""


def add_arguments(parser):
    parser.add_argument("flow", help="model file or shipped name (for example: peptides)")
    parser.add_argument("-o", "--output", required=True, help="folder of the per-peptide results")
    parser.add_argument("--group", default="2aa", choices=["2aa", "capped", "4aa", "capped1"],
                        help="peptide group of the recorded splits (default 2aa)")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    parser.add_argument("--sequences", nargs="+", help="one-letter sequences instead of a group and split")
    parser.add_argument("--capped", action="store_true", help="with --sequences: ACE/NME caps")
    parser.add_argument("--seconds", type=float, default=60.0, help="pure MH time per peptide (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="peptides run at once, one per core (default 2)")
    parser.add_argument("--limit", type=int, help="at most this many peptides")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    import os

    from ..lab._resumable import write_json_atomic
    from ..lab.benchmark.zero_shot import evaluate_set, summary, table
    from ..lab.datasets.peptide_set import PeptideSpec, read_splits

    if args.sequences:
        specs = [PeptideSpec(s.upper(), args.capped, "capped" if args.capped else "mine", "mine") for s in args.sequences]
    else:
        sequences = read_splits()[args.group].get(args.split)
        if not sequences:
            raise ValueError(f"the recorded splits have no {args.split} peptides in group {args.group}.")
        specs = [PeptideSpec(s, args.group in ("capped", "capped1"), args.group, args.split) for s in sequences]
    specs = specs[:args.limit] if args.limit else specs
    results = evaluate_set(args.flow, specs, args.seconds, args.output, args.workers, args.seed,
                           progress=not args.no_progress)
    figures = summary(results)
    write_json_atomic(os.path.join(args.output, "summary.json"), dict(figures, seconds=args.seconds))
    with open(os.path.join(args.output, "summary.md"), "w") as handle:
        handle.write(table(results) + "\n")
    print(table(results))
    print(figures)
    return 0
