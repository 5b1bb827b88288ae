"""``openmm-timewarp train``: likelihood training of a flow of any family on MD runs (resumable)."""

import dataclasses
import json


def add_arguments(parser):
    parser.add_argument("data", nargs="+", help="directories with runs written by 'openmm-timewarp simulate'")
    parser.add_argument("-o", "--output", required=True, help="training folder (checkpoint.pt, log.csv, run.json)")
    parser.add_argument("--family", default="cartesian",
                        help="flow family: cartesian (default) or internal (one molecule in internal coordinates), "
                             "or one registered with openmm_timewarp.lab.training.register_family")
    parser.add_argument("--lag", type=float, help="tau in picoseconds (a multiple of the save interval); the internal "
                                                  "family without --lag makes a state-independent proposal")
    parser.add_argument("--splits", help="JSON splits file: split by peptide (default: by time within each run)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a field of the family's config, e.g. hidden=96 (repeatable; JSON values)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--pairs-per-epoch", type=int, default=None, help="items drawn per epoch (default: all)")
    parser.add_argument("--patience", type=int, help="stop this many epochs after the best validation NLL")
    parser.add_argument("--minutes", type=float, help="stop after the epoch in which this much training time has passed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--constraints", choices=("none", "hbonds"),
                        help="the constraints of the runs, checked (default: as the runs were made). An internal-"
                             "family model of hbonds runs holds the bonds to hydrogen (docs/constraints.md)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--no-align", action="store_true",
                        help="cartesian family: do not superimpose x(t + tau) on x(t) before training")
    parser.add_argument("--no-progress", action="store_true")


def parse_config(family, pairs):
    """The family's config with ``KEY=VALUE`` overrides (values parsed as JSON, else kept as text).

    Raises
    ------
    SystemExit
        A key the family's config does not have.
    """
    fields = {f.name for f in dataclasses.fields(family.config_type)}
    values = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        if key not in fields:
            raise SystemExit(f"--config {key}: the {family.name} family's config has {', '.join(sorted(fields))}.")
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return family.config(values)


def run(args):
    from ..lab.training import get_family
    from ..lab.training.entry import TrainingDataError, train_family

    family = get_family(args.family)
    family_config = parse_config(family, args.config)
    train_config = dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                        warmup_steps=args.warmup_steps, pairs_per_epoch=args.pairs_per_epoch, seed=args.seed,
                        device=args.device, align_targets=not args.no_align, patience=args.patience,
                        time_limit_s=None if args.minutes is None else 60.0 * args.minutes)
    try:
        result = train_family(family.name, args.data, args.lag, args.splits, family_config, train_config,
                              args.output, progress=not args.no_progress, threads=args.threads,
                              constraints=args.constraints)
    except TrainingDataError as error:
        raise SystemExit(f"error: {error}") from None
    last = result.history[-1]
    print(f"epoch {last['epoch']}: train NLL {last['train_nll']:.3f}, validation NLL {last['val_nll']:.3f} per atom "
          f"-> {result.checkpoint}")
    return 0
