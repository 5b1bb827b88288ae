"""``openmm-timewarp export``: write a trained flow (or a mixture) as a flow-contract-1 TorchScript file."""

import os

_SETTING_NAMES = {"move-interval": "moveInterval", "proposals-per-move": "proposalsPerMove", "batch-size": "batchSize"}


def add_arguments(parser):
    parser.add_argument("training", help="folder written by 'openmm-timewarp train'")
    parser.add_argument("-o", "--output", required=True, help="the .pt file to write")
    parser.add_argument("--finetuned", action="store_true", help="export TRAINING/finetune/finetuned.pt")
    parser.add_argument("--mix", action="append", default=[], metavar="FOLDER:WEIGHT",
                        help="internal family: add another training folder of the same molecule as a mixture "
                             "component with this probability (repeatable); TRAINING gets the rest")
    parser.add_argument("--transferable", action="store_true",
                        help="cartesian family: declare num_atoms = 0 (any molecule of the known elements)")
    for flag, name in _SETTING_NAMES.items():
        parser.add_argument(f"--{flag}", type=int, dest=name,
                            help=f"internal family: recommended {name} stored in the model (default: the family's)")
    parser.add_argument("--note", action="append", default=[], metavar="KEY=VALUE",
                        help="extra metadata to store (repeatable)")


def export_training_folders(training, output, mix=(), finetuned=False, notes=None, **options):
    """Export a training folder (and mixture components) to ``output``; returns the FlowInfo read back.

    Parameters
    ----------
    training : str
        The main training folder.
    output : str
    mix : sequence of (folder, weight)
        Further components (the main folder gets 1 - sum of their weights).
    finetuned : bool
        Use ``training/finetune/finetuned.pt`` for the main folder.
    notes : dict, optional
        Extra metadata.
    options
        Family-specific export options.
    """
    import torch

    from ..contract import load_flow
    from . import get_family
    from .runs import load_trained_flow
    from .trainer import evaluate_nll

    flow, run_info, state = load_trained_flow(training)
    family = get_family(run_info["family"])
    metadata = {"training_data": run_info["data_summary"], "train_config": run_info["train_config"],
                "likelihood_training_validation_nll_per_atom": state["history"][-1]["val_nll"] if state["history"] else None}
    if finetuned:
        tuned = torch.load(os.path.join(training, "finetune", "finetuned.pt"), weights_only=False)
        flow.load_state_dict(tuned["ema"])
        metadata["finetuned"] = True
    data = family.training_data(run_info["data_summary"]["data"], run_info["data_summary"]["lag_ps"],
                                run_info["data_summary"].get("splits"))
    if len(data.validation):
        metadata["validation_nll_per_atom"] = evaluate_nll(
            flow, data.validation, data.collate, max_pairs=2048, loss=data.loss,
            align_targets=run_info["train_config"].get("align_targets", True))
    metadata.update(notes or {})
    runs, weights = [(flow, run_info)], [1.0 - sum(w for _, w in mix)]
    for folder, weight in mix:
        other, other_info, _ = load_trained_flow(folder)
        if other_info["family"] != family.name:
            raise ValueError(f"{folder!r} holds a {other_info['family']} flow; a mixture needs one family.")
        runs.append((other, other_info))
        weights.append(float(weight))
    if not all(w > 0 for w in weights):
        raise ValueError(f"mixture weights must be positive and sum to 1: {weights}")
    family.export(runs, output, weights=weights, metadata=metadata, **options)
    return load_flow(output)[1]


def run(args):
    mix = []
    for item in args.mix:
        folder, _, weight = item.rpartition(":")
        mix.append((folder, float(weight)))
    notes = dict(note.partition("=")[::2] for note in args.note)
    options = {}
    settings = {name: getattr(args, name) for name in _SETTING_NAMES.values() if getattr(args, name) is not None}
    if settings:
        options["recommended_settings"] = settings
    if args.transferable:
        options["transferable"] = True
    info = export_training_folders(args.training, args.output, mix, args.finetuned, notes, **options)
    nll = info.metadata.get("validation_nll_per_atom", float("nan"))
    print(f"wrote {args.output}: {info.num_atoms or 'any'} atoms, {info.temperature:g} K, tau {info.tau_ps:g} ps, "
          f"{info.force_field}, {'state-independent, ' if info.proposal_independent else ''}"
          f"validation NLL {nll:.3f} per atom")
    return 0
