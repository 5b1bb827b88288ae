"""``openmm-timewarp finetune``: raise MH acceptance of a likelihood-trained cartesian flow (one molecule, resumable)."""

import os


def add_arguments(parser):
    parser.add_argument("training", help="folder written by 'openmm-timewarp train' (checkpoint.pt, run.json)")
    parser.add_argument("-o", "--output", help="fine-tuning folder (default: TRAINING/finetune)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--nll-weight", type=float, default=1.0)
    parser.add_argument("--acceptance-weight", type=float, default=0.1)
    parser.add_argument("--chirality-weight", type=float, default=10.0)
    parser.add_argument("--energy-clip", type=float, default=500.0, help="kJ/mol")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    import torch
    from openmm import app

    from ..atoms import atomic_numbers, bonds
    from ..lab.datasets.pairs import collate_pairs, pair_datasets
    from ..lab.systems import create_system
    from ..lab.training.finetune import FinetuneConfig, finetune_flow
    from ..lab.training.runs import load_trained_flow

    if args.threads:
        torch.set_num_threads(args.threads)
    flow, run_info, _ = load_trained_flow(args.training, args.device)
    if run_info["family"] != "cartesian":
        raise SystemExit(f"error: fine-tuning is implemented for the cartesian family; {args.training!r} holds a "
                         f"{run_info['family']} flow.")
    summary = run_info["data_summary"]
    if len(summary["peptides"]) != 1:
        raise SystemExit("fine-tuning needs the energies of one molecule; this training data has "
                         f"{len(summary['peptides'])} peptides.")
    datasets = pair_datasets(summary["data"], summary["lag_ps"], splits=summary.get("splits"))
    topology = app.PDBFile(summary["topology"]).topology
    system = create_system(topology, summary["preset"])
    config = FinetuneConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                            nll_weight=args.nll_weight, acceptance_weight=args.acceptance_weight,
                            chirality_weight=args.chirality_weight, energy_clip=args.energy_clip,
                            temperature=summary["temperature_K"], seed=args.seed, device=args.device)
    output = args.output or os.path.join(args.training, "finetune")
    tuned, rows = finetune_flow(flow, datasets["train"], collate_pairs, system, atomic_numbers(system, topology),
                                bonds(system, topology), config, output, progress=not args.no_progress)
    torch.save({"ema": tuned.state_dict()}, os.path.join(output, "finetuned.pt"))
    tail = rows[-min(50, len(rows)):]
    print(f"last {len(tail)} steps: mean alpha {sum(r['mean_alpha'] for r in tail) / len(tail):.3f}, "
          f"NLL {sum(r['nll'] for r in tail) / len(tail):.3f} -> {output}")
    return 0
