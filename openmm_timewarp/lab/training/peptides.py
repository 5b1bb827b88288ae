"""Training the transferable peptide model: maximum likelihood over many peptides, data-parallel.

Each step, every process takes ``peptides_per_step`` training peptides at random and
``frames_per_peptide`` frames of each, and the loss is the mean over peptides of the mean
-log q(x) per atom (log q(x) = log q(c) - log J(c), the density MH sees), so that every peptide
counts alike whatever its size. AdamW with warm-up and cosine decay, gradient clipping, an
exponential moving average of the weights (validated and exported), a checkpoint every
``checkpoint_every_s`` seconds and at the end, from which a run resumes; the random draws of
step k come from generators seeded by (seed, k, rank). A resumed run may change its stopping
rules (``steps``, ``minutes``): more steps extend the learning-rate schedule from there on.

Data-parallel training: started by ``torchrun`` (``WORLD_SIZE`` > 1), every process joins one
process group (gloo on CPU, NCCL on GPU), the loss module is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` (gradients averaged over processes), and
only rank 0 writes. The same command runs on one core, on two, or on a cluster::

    openmm-timewarp peptides-train data/peptides -o runs/peptides-train --minutes 240
    torchrun --nproc_per_node 2 -m openmm_timewarp.cli peptides-train data/peptides -o runs/peptides-train
"""

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

from ... import __version__
from ...flow.peptides.binder import PeptideKnowledge, knowledge_of
from ...flow.peptides.network import PeptideFlow, PeptideFlowConfig
from ...flow.peptides.proposal import PeptideProposal
from .._resumable import atomic_write, changed_settings, settings_message, write_json_atomic
from ..datasets.peptide_coordinates import PeptideExample, TrainingSet, load_training_set
from .internal import INDEPENDENT_SETTINGS
from .trainer import ExponentialMovingAverage, _learning_rate_factor

PRESET = "amber14-obc1"


@dataclass
class PeptideTrainConfig:
    """Settings of :func:`train_peptides` (per process; see the module docstring)."""

    steps: int = 20000
    peptides_per_step: int = 8
    frames_per_peptide: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 200
    min_learning_rate_ratio: float = 0.05
    grad_clip: float = 5.0
    ema_decay: float = 0.998
    validate_every: int = 250
    validation_frames: int = 64
    checkpoint_every_s: float = 120.0
    seed: int = 0
    minutes: Optional[float] = None  # stopping rules (steps, minutes) may change on resume

_STOPPING = ("steps", "minutes")


class PeptideLoss(nn.Module):
    """Mean over peptides of the mean -log q(x) per atom of some of their frames (one forward for DDP)."""

    def __init__(self, flow: PeptideFlow):
        super().__init__()
        self.flow = flow

    def forward(self, examples: List[PeptideExample], rows: List[torch.Tensor]) -> torch.Tensor:
        losses = []
        for example, index in zip(examples, rows):
            log_q = self.flow.log_prob(example.coordinates[index], example.bound.tensors) - example.log_jacobian[index]
            losses.append(-log_q.mean() / example.num_atoms)
        return torch.stack(losses).mean()


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def validation_nll(flow: PeptideFlow, examples: List[PeptideExample], frames: int) -> Dict[str, float]:
    """Mean -log q(x) per atom of (up to) ``frames`` evenly spaced frames of every example."""
    out = {}
    with torch.no_grad():
        for example in examples:
            index = torch.linspace(0, len(example.coordinates) - 1, min(frames, len(example.coordinates))).long()
            log_q = flow.log_prob(example.coordinates[index], example.bound.tensors) - example.log_jacobian[index]
            out[example.name] = float(-log_q.mean() / example.num_atoms)
    return out


@dataclass
class PeptideTrainResult:
    flow: PeptideFlow
    data: TrainingSet
    history: List[Dict[str, float]] = field(default_factory=list)
    steps: int = 0
    frames: int = 0


def _draw(data: TrainingSet, config: PeptideTrainConfig, step: int, rank: int):
    generator = torch.Generator().manual_seed((config.seed * 1_000_003 + step) * 64 + rank)
    chosen = torch.randint(len(data.train), (config.peptides_per_step,), generator=generator).tolist()
    examples = [data.train[k] for k in chosen]
    rows = [torch.randint(len(e.coordinates), (config.frames_per_peptide,), generator=generator) for e in examples]
    return examples, rows


def _checkpoint(path, flow, ema, optimizer, step, history, config, flow_config, spent, data: TrainingSet):
    state = {"flow": flow.state_dict(), "ema": ema.shadow.state_dict(), "optimizer": optimizer.state_dict(),
             "step": step, "history": history, "config": _resumable_settings(config), "flow_config": flow_config,
             "seconds": spent, "knowledge": data.knowledge.to_json(), "peptides": _names(data)}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _names(data: TrainingSet) -> Dict[str, List[str]]:
    return {"train": [e.name for e in data.train], "validation": [e.name for e in data.validation]}


def export_checkpoint(train_folder: str, path: str, notes: Optional[Dict[str, object]] = None) -> str:
    """Export the EMA weights of a training folder's checkpoint (with the knowledge it was trained with)."""
    state = torch.load(os.path.join(train_folder, "checkpoint.pt"), map_location="cpu", weights_only=False)
    knowledge = PeptideKnowledge.from_json(state["knowledge"])
    flow = PeptideFlow(PeptideFlowConfig(**state["flow_config"]), knowledge.vocabulary_sizes, len(knowledge.residues))
    flow.load_state_dict(state["ema"])
    result = PeptideTrainResult(flow, TrainingSet(knowledge, [], []), state["history"], state["step"])
    return export_peptides(result, path, dict(notes or {}, peptides=state["peptides"]))


def _resumable_settings(config: PeptideTrainConfig) -> Dict:
    return {k: v for k, v in asdict(config).items() if k not in _STOPPING}


def train_peptides(data_folder: str, output: str, flow_config: Optional[PeptideFlowConfig] = None,
                   config: Optional[PeptideTrainConfig] = None, progress: bool = True) -> PeptideTrainResult:
    """Train (or continue training) the transferable model on the packed peptides of ``data_folder``.

    Writes ``OUTPUT/checkpoint.pt`` and ``OUTPUT/log.json`` (rank 0). Under ``torchrun`` every
    process calls this with the same arguments.
    """
    flow_config = flow_config or PeptideFlowConfig()
    config = config or PeptideTrainConfig()
    if _distributed() and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    data = load_training_set(data_folder, flow_config.torsion_layers, flow_config.geometry_layers,
                             neighbours=flow_config.neighbours)
    torch.manual_seed(config.seed)
    flow = PeptideFlow(flow_config, data.knowledge.vocabulary_sizes, len(data.knowledge.residues))
    return train_on(data, flow, output, config, progress)


def load_pretrained(path: str) -> Tuple[PeptideFlow, PeptideKnowledge]:
    """The network (as a trainable Python module) and the knowledge of an exported peptides file."""
    scripted = torch.jit.load(path, map_location="cpu")
    knowledge = knowledge_of(scripted)
    metadata = json.loads(scripted.metadata_json)
    if "flow_config" not in metadata:
        raise ValueError(f"{path} does not say how its network was configured; re-export it with this version.")
    flow = PeptideFlow(PeptideFlowConfig(**metadata["flow_config"]), knowledge.vocabulary_sizes,
                       len(knowledge.residues))
    flow.load_state_dict(scripted.flow.state_dict())
    return flow, knowledge


def train_on(data: TrainingSet, flow: PeptideFlow, output: str, config: PeptideTrainConfig,
             progress: bool = True) -> PeptideTrainResult:
    """The training loop of :func:`train_peptides` on given data, from the flow's current weights
    (fine-tuning: a pretrained flow and one molecule's examples)."""
    from tqdm.auto import tqdm

    flow_config = PeptideFlowConfig(**flow.config_dict)
    rank, world = _rank(), _world()
    ema = ExponentialMovingAverage(flow, config.ema_decay)
    optimizer = torch.optim.AdamW(flow.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    checkpoint_path = os.path.join(output, "checkpoint.pt")
    step, history, spent = 0, [], 0.0
    if os.path.isfile(checkpoint_path):
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        recorded = dict(state["config"], flow=state["flow_config"])
        requested = dict(_resumable_settings(config), flow=flow_config.to_dict())
        changed = changed_settings(recorded, requested, sorted(set(recorded) | set(requested)))
        if changed:
            raise ValueError(settings_message(output, "a peptides training run", changed))
        if state.get("peptides", _names(data)) != _names(data):
            raise ValueError(f"{output} was trained on other peptides than the data now hold (the embeddings and "
                             "statistics are made from the training peptides): train in a new folder.")
        flow.load_state_dict(state["flow"])
        ema.shadow.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, history, spent = state["step"], state["history"], state["seconds"]
    if rank == 0:
        os.makedirs(output, exist_ok=True)
    loss_module = PeptideLoss(flow)
    model = nn.parallel.DistributedDataParallel(loss_module) if dist.is_initialized() else loss_module
    limit_s = None if config.minutes is None else config.minutes * 60.0
    started, last_checkpoint = time.time(), time.time()
    bar = tqdm(total=config.steps, initial=step, disable=not progress or rank != 0, desc="train", unit="step")
    while step < config.steps:
        elapsed = spent + time.time() - started
        stop = torch.tensor([1.0 if limit_s is not None and elapsed >= limit_s else 0.0])
        if dist.is_initialized():
            dist.broadcast(stop, 0)  # every process stops at the same step
        if stop.item() > 0:
            break
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * _learning_rate_factor(step, config.warmup_steps, config.steps,
                                                                       config.min_learning_rate_ratio)
        examples, rows = _draw(data, config, step, rank)
        value = model(examples, rows)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        norm = torch.nn.utils.clip_grad_norm_(flow.parameters(), config.grad_clip)
        if torch.isfinite(norm):
            optimizer.step()
            ema.update(flow)
        step += 1
        bar.update(1)
        bar.set_postfix(nll=f"{value.item():.3f}")
        if step % config.validate_every == 0 or step == config.steps:
            history.append(_record(ema.shadow, data, config, step, value.item(), spent + time.time() - started))
        if rank == 0 and time.time() - last_checkpoint >= config.checkpoint_every_s:
            _checkpoint(checkpoint_path, flow, ema, optimizer, step, history, config, flow_config.to_dict(),
                        spent + time.time() - started, data)
            last_checkpoint = time.time()
    bar.close()
    if not history or history[-1]["step"] != step:
        history.append(_record(ema.shadow, data, config, step, float("nan"), spent + time.time() - started))
    if rank == 0:
        _checkpoint(checkpoint_path, flow, ema, optimizer, step, history, config, flow_config.to_dict(),
                    spent + time.time() - started, data)
        write_json_atomic(os.path.join(output, "log.json"), {"history": history, "data": data.summary(),
                                                              "world_size": world})
    return PeptideTrainResult(ema.shadow, data, history, step)


def _record(flow, data, config, step, train_nll, seconds) -> Dict[str, float]:
    per_peptide = validation_nll(flow, data.validation, config.validation_frames) if data.validation else {}
    values = list(per_peptide.values())
    return {"step": step, "train_nll": train_nll, "seconds": round(seconds, 1),
            "validation_nll": sum(values) / len(values) if values else float("nan")}


def export_peptides(result: PeptideTrainResult, path: str, notes: Optional[Dict[str, object]] = None) -> str:
    """Write the trained model as a contract-1 TorchScript file (with its :class:`PeptideKnowledge`)."""
    knowledge = result.data.knowledge
    residues = sorted({key.split("-", 1)[-1] for key in knowledge.residues})
    metadata = {
        "family": "peptides", "package_version": __version__, "preset": PRESET, "temperature_K": 310.0,
        "residues": residues, "templates": sorted(knowledge.residues), "max_residues": knowledge.max_residues,
        "training": dict(result.data.summary(), steps=result.steps,
                         last=result.history[-1] if result.history else None),
        "recommended_settings": dict(INDEPENDENT_SETTINGS),
        "flow_config": dict(result.flow.config_dict),
        "histidine": "HIE (the package's builder)",
    }
    metadata.update(notes or {})
    flow = copy.deepcopy(result.flow).eval()
    proposal = PeptideProposal(flow, knowledge.to_json(), temperature=310.0, force_field=PRESET,
                               metadata_json=json.dumps(metadata))
    scripted = torch.jit.script(proposal)
    atomic_write(path, lambda tmp: torch.jit.save(scripted, tmp))
    return path


# ------------------------------------------------------------------------------------------------ warm start
def _model_file(model: str) -> str:
    from ...models import list_models, model_path

    return model_path(model) if model in list_models() else model


def finetune_peptides(model: str, data: List[str], output: str, name: str, minutes: Optional[float] = None,
                      steps: int = 2000, seed: int = 1, progress: bool = True) -> PeptideTrainResult:
    """Fine-tune a transferable model on one molecule's MD runs (the warm start of ``fit --warm-start``).

    Every tenth frame is held out for validation; the rest train the pretrained network by
    maximum likelihood at a tenth of the pretraining learning rate, which keeps it near the
    pretrained density. Resumes from ``OUTPUT/checkpoint.pt``.
    """
    import numpy as np

    from ..datasets.peptide_coordinates import example_of
    from .internal import load_molecule_runs

    flow, knowledge = load_pretrained(_model_file(model))
    _, frames, topology = load_molecule_runs(data)
    numbers = [atom.element.atomic_number for atom in topology.atoms()]
    bonds = [(a.index, b.index) for a, b in topology.bonds()]
    positions = np.concatenate(frames)
    held_out = np.arange(len(positions)) % 10 == 9
    layers = (len(flow.torsion_layers), len(flow.geometry_layers), int(flow.config_dict["neighbours"]))
    train = example_of(knowledge, name, numbers, bonds, positions[~held_out], *layers)
    validation = example_of(knowledge, name, numbers, bonds, positions[held_out], *layers)
    validation.split = "validation"
    config = PeptideTrainConfig(steps=steps, peptides_per_step=1, frames_per_peptide=256, learning_rate=1e-4,
                                warmup_steps=20, validate_every=100, checkpoint_every_s=60.0, seed=seed,
                                minutes=minutes)
    result = train_on(TrainingSet(knowledge, [train], [validation]), flow, output, config, progress)
    result.frames = int(len(positions))
    return result


def export_finetuned(train_folder: str, model: str, path: str, name: str) -> str:
    """Export the fine-tuned weights (the EMA of ``train_folder/checkpoint.pt``) as a peptides file."""
    return export_checkpoint(train_folder, path, notes={"fine_tuned_for": name, "pretrained": model})
