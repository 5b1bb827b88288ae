"""``openmm-timewarp train``: likelihood training of a flow of any family on MD runs (resumable)."""

import dataclasses
import json


def add_arguments(parser):
    from . import family_names

    parser.add_argument("data", nargs="+", help="directories with runs written by 'openmm-timewarp simulate'")
    parser.add_argument("-o", "--output", required=True, help="training folder (checkpoint.pt, log.csv, run.json)")
    parser.add_argument("--family", default="cartesian", choices=family_names(),
                        help="flow family (default: %(default)s; 'internal' for one molecule in internal coordinates)")
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
    import torch

    from . import get_family
    from .runs import write_run_info
    from .trainer import TrainConfig, train_flow

    if args.threads:
        torch.set_num_threads(args.threads)
    family = get_family(args.family)
    family_config = parse_config(family, args.config)
    try:
        data = family.training_data(args.data, args.lag, args.splits)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                         warmup_steps=args.warmup_steps, pairs_per_epoch=args.pairs_per_epoch, seed=args.seed,
                         device=args.device, align_targets=not args.no_align, patience=args.patience,
                         time_limit_s=None if args.minutes is None else 60.0 * args.minutes)
    torch.manual_seed(args.seed)
    flow = family.build(family_config, data)
    write_run_info(args.output, family.name, type(family_config)(**flow.config_dict), config, data)
    result = train_flow(flow, data.train, data.validation, data.collate, config, args.output,
                        progress=not args.no_progress, loss=data.loss)
    last = result.history[-1]
    print(f"epoch {last['epoch']}: train NLL {last['train_nll']:.3f}, validation NLL {last['val_nll']:.3f} per atom "
          f"-> {result.checkpoint}")
    return 0
