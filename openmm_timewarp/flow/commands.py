"""``openmm-timewarp export``: write a trained flow as a flow-contract-1 TorchScript file."""

import os


def add_arguments(parser):
    parser.add_argument("training", help="folder written by 'openmm-timewarp train'")
    parser.add_argument("-o", "--output", required=True, help="the .pt file to write")
    parser.add_argument("--finetuned", action="store_true", help="export TRAINING/finetune/finetuned.pt")
    parser.add_argument("--transferable", action="store_true",
                        help="declare num_atoms = 0 (any molecule of the known elements)")
    parser.add_argument("--note", action="append", default=[], metavar="KEY=VALUE",
                        help="extra metadata to store (repeatable)")


def run(args):
    import torch

    from ..contract import load_flow
    from ..training.finetune_commands import load_trained_flow
    from .export import export_flow

    from ..data.dataset import collate_pairs, pair_datasets
    from ..training.trainer import evaluate_nll

    flow, run_info, state = load_trained_flow(args.training)
    summary = run_info["data_summary"]
    metadata = {"training_data": summary, "train_config": run_info["train_config"],
                "likelihood_training_validation_nll_per_atom": state["history"][-1]["val_nll"] if state["history"] else None}
    if args.finetuned:
        tuned = torch.load(os.path.join(args.training, "finetune", "finetuned.pt"), weights_only=False)
        flow.load_state_dict(tuned["ema"])
        metadata["finetuned"] = True
    validation = pair_datasets(summary["data"], summary["lag_ps"], splits=summary.get("splits")).get("validation")
    if validation is not None and len(validation):
        metadata["validation_nll_per_atom"] = evaluate_nll(flow, validation, collate_pairs, max_pairs=2048,
                                                           align_targets=run_info["train_config"].get("align_targets", True))
    for note in args.note:
        key, _, value = note.partition("=")
        metadata[key] = value
    export_flow(flow, args.output, temperature=float(summary["temperature_K"]), tau_ps=float(summary["lag_ps"]),
                force_field=str(summary["preset"]), num_atoms=0 if args.transferable else int(summary["num_atoms"]),
                metadata=metadata)
    _, info = load_flow(args.output)
    print(f"wrote {args.output}: {info.num_atoms or 'any'} atoms, {info.temperature:g} K, tau {info.tau_ps:g} ps, "
          f"{info.force_field}, validation NLL {metadata.get('validation_nll_per_atom', float('nan')):.3f} per atom")
    return 0
