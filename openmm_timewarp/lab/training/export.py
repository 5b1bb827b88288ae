"""Export training folders (and mixtures of them) to one flow-contract file."""

import os


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

    from ...contract import load_flow
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
