"""Maximum-likelihood training of a flow, whatever its family.

AdamW with linear warm-up and cosine decay, gradient clipping, an exponential moving average of
the weights (used for validation and export), validation every epoch, a CSV log, and a
checkpoint after every epoch and every ``checkpoint_interval_s`` within one, from which a run
resumes exactly: the data order and every random draw of epoch k come from a generator seeded by
(seed, k), whose state a checkpoint within the epoch keeps with the number of batches done. A
killed run loses at most ``checkpoint_interval_s`` of training.

What a batch means is the family's business: :func:`train_flow` takes a ``loss(flow, batch,
generator, config, training)`` returning the mean negative log-likelihood per atom. The default,
:func:`pair_loss`, is the Cartesian family's (x(t), x(t + tau)) pairs with alignment and random
rotations.
"""

import copy
import csv
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

import torch

from .._resumable import atomic_write, changed_settings, settings_message


@dataclass
class TrainConfig:
    """Settings of :func:`train_flow`.

    Attributes
    ----------
    epochs : int
    batch_size : int
    learning_rate : float
        Peak learning rate after warm-up.
    weight_decay : float
    warmup_steps : int
    min_learning_rate_ratio : float
        Final learning rate as a fraction of the peak (cosine decay).
    grad_clip : float
        Maximum global gradient norm.
    ema_decay : float
    seed : int
    device : str
        "cpu" or "cuda"; the code is the same.
    rotations : bool
        Cartesian family: random rotations of each pair (data augmentation).
    align_targets : bool
        Cartesian family: superimpose x(t + tau) on x(t) (translation and rotation, Kabsch) before training. The
        Boltzmann distribution of an isolated molecule does not change under rigid motions, so
        MH stays exact; the flow is spared learning the molecule's tumbling over tau, which
        otherwise dominates the displacement and ruins the precision of internal geometry.
    pairs_per_epoch : int, optional
        Train each epoch on a fresh random subset of this many pairs (all pairs if None).
    max_validation_pairs : int
        Validate on at most this many pairs (evenly spaced through the validation set).
    time_limit_s : float, optional
        Stop once this many seconds of training (this run and the runs it resumed) have passed,
        within an epoch if need be (that epoch is then validated and checkpointed as the last);
        the learning-rate schedule still plans for ``epochs``.
    patience : int, optional
        Stop when the validation NLL has not improved for this many epochs (the weights kept are
        the best ones either way).
    checkpoint_interval_s : float
        Seconds of training between checkpoints within an epoch (a run may be resumed with another).
    """

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 5e-4
    weight_decay: float = 1e-5
    warmup_steps: int = 100
    min_learning_rate_ratio: float = 0.05
    grad_clip: float = 5.0
    ema_decay: float = 0.995
    seed: int = 0
    device: str = "cpu"
    rotations: bool = True
    align_targets: bool = True
    pairs_per_epoch: Optional[int] = None
    max_validation_pairs: int = 4096
    time_limit_s: Optional[float] = None
    patience: Optional[int] = None
    checkpoint_interval_s: float = 60.0


def random_rotations(count: int, generator: torch.Generator) -> torch.Tensor:
    """Uniformly distributed rotation matrices [count, 3, 3] (QR of Gaussian matrices, det +1)."""
    gaussian = torch.randn(count, 3, 3, generator=generator)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    flip = torch.det(q) < 0
    q[flip, :, 0] = -q[flip, :, 0]
    return q


def align_to(x_target, x_cond, mask):
    """Superimpose each x_target on its x_cond (optimal proper rotation and translation, Kabsch)."""
    keep = mask.unsqueeze(-1).to(x_cond.dtype)
    count = keep.sum(1, keepdim=True).clamp_min(1.0)
    c_cond = (x_cond * keep).sum(1, keepdim=True) / count
    c_target = (x_target * keep).sum(1, keepdim=True) / count
    a = ((x_target - c_target) * keep).double()
    b = ((x_cond - c_cond) * keep).double()
    u, _, vt = torch.linalg.svd(torch.matmul(a.transpose(1, 2), b))
    sign = torch.sign(torch.det(torch.matmul(u, vt)))
    correction = torch.ones(a.shape[0], 3, dtype=a.dtype, device=a.device)
    correction[:, 2] = sign
    rotation = torch.matmul(u * correction.unsqueeze(1), vt)  # a @ rotation ~ b
    aligned = torch.matmul(a, rotation).to(x_cond.dtype) + c_cond
    return torch.where(mask.unsqueeze(-1), aligned, x_target)


def rotate_pairs(x_cond, x_target, mask, rotations):
    """Rotate both structures of each pair about the centroid of the conditioning structure."""
    keep = mask.unsqueeze(-1).to(x_cond.dtype)
    centroid = (x_cond * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1.0)
    r = rotations.transpose(1, 2).to(x_cond.dtype)
    return (torch.bmm(x_cond - centroid, r) + centroid) * keep, (torch.bmm(x_target - centroid, r) + centroid) * keep


def nll_per_atom(flow, x_cond, x_target, atomic_numbers, mask, generator=None):
    """Mean over the batch of -log q(x_target, v | x_cond) / atoms, with fresh auxiliary noise v ~ N(0, I)."""
    v = torch.randn(x_target.shape, generator=generator, dtype=x_target.dtype).to(x_target.device)
    log_q = flow.log_prob_batch(x_cond, atomic_numbers, x_target, v * mask.unsqueeze(-1), mask)
    return (-log_q / mask.sum(-1).to(log_q.dtype)).mean()


class ExponentialMovingAverage:
    """Shadow copy of a module's floating-point parameters and buffers."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval()
        for parameter in self.shadow.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module):
        # parameters() and buffers() list a tensor once even where modules share it
        for shadow, live in zip(self.shadow.parameters(), module.parameters()):
            shadow.mul_(self.decay).add_(live.detach(), alpha=1.0 - self.decay)
        for shadow, live in zip(self.shadow.buffers(), module.buffers()):
            shadow.copy_(live)


def _learning_rate_factor(step: int, warmup: int, total: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


_BATCH_KEYS = ("x_cond", "x_target", "atomic_numbers", "mask")


def batch_tensors(batch):
    """(x_cond, x_target, atomic_numbers, mask) from a collated batch (a dict with those keys, or a tuple)."""
    if isinstance(batch, dict):
        return tuple(batch[key] for key in _BATCH_KEYS)
    return tuple(batch)


def _order(dataset, generator: torch.Generator, shuffle: bool, limit: Optional[int] = None) -> List[int]:
    """The items of an epoch: a random permutation (drawn from ``generator``), or evenly spaced ones."""
    if shuffle:
        return torch.randperm(len(dataset), generator=generator).tolist()[:limit]
    stride = max(1, len(dataset) // limit) if limit else 1
    return list(range(0, len(dataset), stride))[:limit]


def _batches(dataset, batch_size: int, generator: torch.Generator, collate: Callable, shuffle: bool,
             limit: Optional[int] = None, order: Optional[List[int]] = None, skip: int = 0):
    """Collated batches of ``order`` (default :func:`_order`), from batch ``skip`` on."""
    order = _order(dataset, generator, shuffle, limit) if order is None else order
    for start in range(skip * batch_size, len(order), batch_size):
        yield collate([dataset[i] for i in order[start:start + batch_size]])


def pair_loss(flow, batch, generator: torch.Generator, config: "TrainConfig", training: bool) -> torch.Tensor:
    """The Cartesian family's loss: NLL per atom of x(t + tau) given x(t), aligned and (in training) rotated."""
    x_cond, x_target, numbers, mask = batch_tensors(batch)
    if config.align_targets:
        x_target = align_to(x_target, x_cond, mask)
    if training and config.rotations:
        x_cond, x_target = rotate_pairs(x_cond, x_target, mask, random_rotations(x_cond.shape[0], generator))
    device = torch.device(config.device)
    x_cond, x_target, numbers, mask = (t.to(device) for t in (x_cond, x_target, numbers, mask))
    return nll_per_atom(flow, x_cond, x_target, numbers, mask, generator)


def evaluate_nll(flow, dataset, collate: Callable, batch_size: int = 256, seed: int = 12345, device="cpu",
                 max_pairs: Optional[int] = None, align_targets: bool = True, loss: Callable = pair_loss) -> float:
    """Mean validation NLL per atom (fixed random draws, no augmentation), over at most ``max_pairs`` items."""
    generator = torch.Generator().manual_seed(seed)
    config = TrainConfig(device=str(device), align_targets=align_targets)
    total, count = 0.0, 0
    flow.eval()
    with torch.no_grad():
        for batch in _batches(dataset, batch_size, generator, collate, shuffle=False, limit=max_pairs):
            size = _batch_size(batch)
            total += float(loss(flow, batch, generator, config, False)) * size
            count += size
    return total / max(count, 1)


def _batch_size(batch) -> int:
    """Rows of a batch: the first tensor found in it (dicts and tuples are searched in order)."""
    while not isinstance(batch, torch.Tensor):
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return int(batch.shape[0])


@dataclass
class TrainResult:
    """What :func:`train_flow` returns: the EMA weights with the best validation NLL, the per-epoch
    history and the files it wrote."""

    flow: torch.nn.Module
    history: List[Dict[str, float]] = field(default_factory=list)
    checkpoint: Optional[str] = None
    log: Optional[str] = None


def train_flow(flow, train_set, val_set, collate: Callable, config: TrainConfig = None, out_dir: Optional[str] = None,
               progress: bool = True, loss: Callable = pair_loss) -> TrainResult:
    """Train ``flow`` by maximum likelihood; resume from ``out_dir/checkpoint.pt`` if it exists.

    Parameters
    ----------
    flow : torch.nn.Module
        With a ``config_dict`` attribute (checked on resume).
    train_set, val_set : sequence
        Map-style datasets whose items ``collate`` turns into batches ``loss`` understands (for
        :func:`pair_loss`: x_cond [B,N,3], x_target [B,N,3], atomic_numbers [B,N], mask [B,N]).
    collate : callable
    config : TrainConfig
    out_dir : str, optional
        Where ``checkpoint.pt`` (every epoch, and every ``config.checkpoint_interval_s`` within
        one) and ``log.csv`` go. Without it nothing is written.
    progress : bool
        Show a progress bar.
    loss : callable
        ``loss(flow, batch, generator, config, training) -> Tensor``, the mean NLL per atom.

    Returns
    -------
    TrainResult
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    if config.patience is not None and len(val_set) == 0:
        raise ValueError("stopping by patience needs a validation set, and this one is empty; train without "
                         "patience or with data that leaves validation items.")
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    flow = flow.to(device)
    ema = ExponentialMovingAverage(flow, config.ema_decay)
    optimizer = torch.optim.AdamW(flow.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(min(len(train_set), config.pairs_per_epoch or len(train_set)) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    start_epoch, step, history, partial = 0, 0, [], None
    checkpoint_path = os.path.join(out_dir, "checkpoint.pt") if out_dir else None
    log_path = os.path.join(out_dir, "log.csv") if out_dir else None
    if checkpoint_path and os.path.exists(checkpoint_path):
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        recorded = dict(_settings(state["config"]), flow=state["flow_config"])
        requested = dict(_settings(asdict(config)), flow=flow.config_dict)
        changed = changed_settings(recorded, requested, sorted(set(recorded) | set(requested)))
        if changed:
            raise ValueError(settings_message(out_dir, "a training run", changed))
        flow.load_state_dict(state["flow"])
        ema.shadow.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step, history = state["epoch"], state["step"], state["history"]
        best, partial = state.get("best"), state.get("partial")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    bar = tqdm(total=total_steps, initial=step, disable=not progress, desc="train", unit="batch")
    if not (checkpoint_path and os.path.exists(checkpoint_path)):
        best = None
    spent = sum(h["seconds"] for h in history)

    def save(epoch: int, within: Optional[Dict] = None):
        state = {"flow": flow.state_dict(), "ema": ema.shadow.state_dict(), "optimizer": optimizer.state_dict(),
                 "epoch": epoch, "step": step, "history": history, "config": asdict(config),
                 "flow_config": flow.config_dict, "best": best, "partial": within}
        atomic_write(checkpoint_path, lambda tmp: torch.save(state, tmp))

    for epoch in range(start_epoch, config.epochs):
        before = partial["seconds"] if partial is not None else 0.0  # of this epoch, by the run resumed
        if partial is None and config.time_limit_s is not None and spent >= config.time_limit_s:
            break
        if config.patience is not None and best is not None and epoch - best["epoch"] > config.patience:
            break
        generator = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        order = _order(train_set, generator, shuffle=True, limit=config.pairs_per_epoch)
        running, batches = 0.0, 0
        if partial is not None:  # resume within the epoch: the same order, the generator as it was
            generator.set_state(partial["generator"])
            running, batches = partial["running"], partial["batches"]
            partial = None
        flow.train()
        started, saved = time.time() - before, time.time()
        for batch in _batches(train_set, config.batch_size, generator, collate, shuffle=True, order=order,
                              skip=batches):
            if config.time_limit_s is not None and batches and spent + time.time() - started >= config.time_limit_s:
                break  # the time is up within the epoch: validate and keep what was learnt
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * _learning_rate_factor(
                    step, config.warmup_steps, total_steps, config.min_learning_rate_ratio)
            value = loss(flow, batch, generator, config, True)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(flow.parameters(), config.grad_clip)
            if torch.isfinite(grad_norm):
                optimizer.step()
                ema.update(flow)
            step += 1
            running += value.item()
            batches += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, nll=f"{running / batches:.3f}")
            if out_dir and time.time() - saved >= config.checkpoint_interval_s:
                save(epoch, {"batches": batches, "running": running, "seconds": time.time() - started,
                             "generator": generator.get_state()})
                saved = time.time()
        val = (evaluate_nll(ema.shadow, val_set, collate, device=device, max_pairs=config.max_validation_pairs,
                            align_targets=config.align_targets, loss=loss)
               if len(val_set) else float("nan"))
        record = {"epoch": epoch, "step": step, "train_nll": running / max(batches, 1), "val_nll": val,
                  "learning_rate": optimizer.param_groups[0]["lr"], "seconds": time.time() - started}
        history.append(record)
        spent += record["seconds"]
        if best is None or (val == val and val < best["val_nll"]):
            best = {"epoch": epoch, "val_nll": val, "ema": copy.deepcopy(ema.shadow.state_dict())}
        if out_dir:
            _write_log(log_path, history)
            save(epoch + 1)
    bar.close()
    if best is not None:
        ema.shadow.load_state_dict(best["ema"])
    return TrainResult(flow=ema.shadow, history=history, checkpoint=checkpoint_path, log=log_path)


_STOPPING = ("time_limit_s", "patience", "checkpoint_interval_s")


def trained_seconds(out_dir: str) -> float:
    """Seconds of training a run in ``out_dir`` has done: its finished epochs and the part of one
    its last checkpoint holds (0 without a checkpoint). A ``peptides`` fine-tuning checkpoint keeps
    its own count (``seconds``)."""
    path = os.path.join(out_dir, "checkpoint.pt")
    if not os.path.exists(path):
        return 0.0
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "seconds" in state:
        return float(state["seconds"])
    partial = state.get("partial")
    return sum(h["seconds"] for h in state["history"]) + (partial["seconds"] if partial else 0.0)


def _settings(config: Dict) -> Dict:
    """A training config without its stopping rules: a run may be resumed with other ones."""
    return {k: v for k, v in config.items() if k not in _STOPPING}


def _write_log(path: str, history: Iterable[Dict[str, float]]):
    rows = list(history)

    def write(tmp):
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)
