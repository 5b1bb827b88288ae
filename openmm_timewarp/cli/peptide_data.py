"""``openmm-timewarp peptide-data``: the transferable model's training data (resumable, sharded).

Examples::

    # everything of the train and validation splits, on one core
    openmm-timewarp peptide-data -o data/peptides
    # two machines (or two cores) split the work
    openmm-timewarp peptide-data -o data/peptides --shard 0/2
    openmm-timewarp peptide-data -o data/peptides --shard 1/2

Rerunning a command continues where it stopped; see :mod:`openmm_timewarp.lab.datasets.peptide_set`.
"""

def add_arguments(parser):
    parser.add_argument("-o", "--output", required=True, help="folder of the packed peptides (<name>.npz)")
    parser.add_argument("--scratch", help="folder for the per-peptide work in progress (default OUTPUT/scratch)")
    parser.add_argument("--splits", nargs="+", default=["train", "validation"], choices=["train", "validation", "test"],
                        help="which splits to make data for (default: train validation)")
    parser.add_argument("--shard", default="0/1", help="shard i of n of the fixed peptide order (default 0/1)")
    parser.add_argument("--limit", type=int, help="at most this many peptides of the shard")
    parser.add_argument("--cover", action="store_true",
                        help="with --limit: add the peptides that give every residue type in every terminus slot data")
    parser.add_argument("--keep-scratch", action="store_true", help="keep each peptide's MD runs after packing")
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    from ..lab.datasets.peptide_set import make_peptide_set
    from ..lab.md.pool import parse_shard

    result = make_peptide_set(args.output, args.scratch, tuple(args.splits), parse_shard(args.shard),
                              limit=args.limit, progress=not args.no_progress, keep_scratch=args.keep_scratch,
                              cover=args.cover)
    print(f"{result.done} of {result.total} peptides packed in {args.output} ({result.seconds / 60:.1f} min)")
    return 0
