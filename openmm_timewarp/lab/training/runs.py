"""A training folder: ``run.json`` (family, configs, data summary) and ``checkpoint.pt`` (weights, EMA)."""

import json
import os
from dataclasses import asdict
from typing import Any, Dict, Tuple

import torch

from .._resumable import write_json_atomic
from .families import TrainingData, get_family

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.pt"


def write_run_info(folder: str, family: str, family_config, train_config, data: TrainingData) -> Dict[str, Any]:
    """Write ``run.json`` into ``folder`` and return its content."""
    os.makedirs(folder, exist_ok=True)
    info = {"family": family, "family_config": family_config.to_dict() if hasattr(family_config, "to_dict")
            else asdict(family_config), "family_state": data.family_state, "train_config": asdict(train_config),
            "data_summary": data.summary}
    write_json_atomic(os.path.join(folder, RUN_FILE), info)
    return info


def read_run_info(folder: str) -> Dict[str, Any]:
    """``run.json`` of a training folder (folders from before families existed are the cartesian family's).

    Raises
    ------
    FileNotFoundError
        No training folder there.
    """
    path = os.path.join(folder, RUN_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder!r} is not a training folder (no {RUN_FILE}); make one with "
                                "'openmm-timewarp train'.")
    with open(path) as handle:
        info = json.load(handle)
    if "family" not in info:
        info["family"], info["family_config"] = "cartesian", info["flow_config"]
    return info


def load_trained_flow(folder: str, device="cpu") -> Tuple[torch.nn.Module, Dict[str, Any], Dict[str, Any]]:
    """The EMA weights with the best validation NLL of a training folder, as a flow of its family, with
    ``run.json`` and the checkpoint.

    Raises
    ------
    FileNotFoundError
        No ``run.json`` or no checkpoint yet.
    """
    info = read_run_info(folder)
    path = os.path.join(folder, CHECKPOINT_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder!r} has no {CHECKPOINT_FILE} yet: training has not finished an epoch.")
    state = torch.load(path, map_location=device, weights_only=False)
    flow = get_family(info["family"]).restore(info)
    best = state.get("best")
    flow.load_state_dict(best["ema"] if best is not None else state["ema"])
    return flow, info, state
