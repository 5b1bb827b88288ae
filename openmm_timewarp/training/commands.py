"""``openmm-timewarp train``: likelihood training of a Timewarp flow on MD runs (resumable)."""

import json
import os

from ..flow.model import FlowConfig


def add_arguments(parser):
    parser.add_argument("data", nargs="+", help="directories with runs written by 'openmm-timewarp simulate'")
    parser.add_argument("-o", "--output", required=True, help="training folder (checkpoint.pt, log.csv, run.json)")
    parser.add_argument("--lag", type=float, required=True, help="tau in picoseconds (a multiple of the save interval)")
    parser.add_argument("--splits", help="JSON splits file: split by peptide (default: by time within each run)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--pairs-per-epoch", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    defaults = FlowConfig()
    parser.add_argument("--hidden", type=int, default=defaults.hidden)
    parser.add_argument("--layers", type=int, default=defaults.layers)
    parser.add_argument("--blocks", type=int, default=defaults.blocks)
    parser.add_argument("--embedding", type=int, default=defaults.embedding)
    parser.add_argument("--position-scale", type=float, default=defaults.position_scale,
                        help="typical displacement over tau, nm")
    parser.add_argument("--no-canonical-frame", action="store_true",
                        help="learn rotations from augmentation only (default: act in the structure's principal-axes frame)")
    parser.add_argument("--no-align", action="store_true",
                        help="do not superimpose x(t + tau) on x(t) before training (default: superimpose)")
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    import torch

    from ..data.dataset import collate_pairs, pair_datasets
    from ..flow.model import TimewarpFlow
    from .trainer import TrainConfig, train_flow

    if args.threads:
        torch.set_num_threads(args.threads)
    datasets = pair_datasets(args.data, args.lag, splits=args.splits)
    train_set, val_set = datasets["train"], datasets.get("validation", [])
    if len(train_set) == 0:
        raise SystemExit(f"no training pairs at lag {args.lag} ps under {', '.join(args.data)}")
    flow_config = FlowConfig(hidden=args.hidden, layers=args.layers, blocks=args.blocks, embedding=args.embedding,
                             position_scale=args.position_scale, canonical_frame=not args.no_canonical_frame)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                         warmup_steps=args.warmup_steps, pairs_per_epoch=args.pairs_per_epoch, seed=args.seed,
                         device=args.device, align_targets=not args.no_align)
    os.makedirs(args.output, exist_ok=True)
    first = train_set.segments[0][0]
    summary = {
        "data": [os.path.abspath(d) for d in args.data],
        "lag_ps": args.lag,
        "split": "by peptide: " + args.splits if args.splits else "by time within each run (0.8/0.1/0.1)",
        "splits": os.path.abspath(args.splits) if args.splits else None,
        "peptides": train_set.peptides(),
        "train_pairs": len(train_set),
        "validation_pairs": len(val_set),
        "preset": first.metadata.get("preset", {}).get("name"),
        "temperature_K": first.metadata.get("temperature_K"),
        "num_atoms": int(len(first.atomic_numbers)) if len(train_set.peptides()) == 1 else 0,
        "topology": first.topology_path(),
    }
    with open(os.path.join(args.output, "run.json"), "w") as handle:
        json.dump({"data_summary": summary, "train_config": config.__dict__, "flow_config": flow_config.to_dict()},
                  handle, indent=1)
    torch.manual_seed(args.seed)
    result = train_flow(TimewarpFlow(flow_config), train_set, val_set, collate_pairs, config, args.output,
                        progress=not args.no_progress)
    last = result.history[-1]
    print(f"epoch {last['epoch']}: train NLL {last['train_nll']:.3f}, validation NLL {last['val_nll']:.3f} per atom "
          f"-> {result.checkpoint}")
    return 0
