"""Likelihood training learns what a Gaussian cannot, and resumes exactly."""

import os

import numpy as np
import pytest
import torch

from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow
from openmm_timewarp.lab.training.trainer import TrainConfig, random_rotations, train_flow

CONFIG = FlowConfig(embedding=8, hidden=24, blocks=1, layers=4, length_scales=[0.1, 0.3, 0.6], position_scale=0.05)
NUMBERS = torch.tensor([6, 1, 8, 7])


def toy_pairs(count, seed):
    """x(t+tau) = x(t) + 0.4 * (centred x(t)) + 0.01 noise: a displacement a Gaussian cannot predict."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 4, 3, generator=g) * 0.15 + torch.randn(count, 1, 3, generator=g)
    centred = x - x.mean(1, keepdim=True)
    y = x + 0.4 * centred + 0.01 * torch.randn(count, 4, 3, generator=g)
    return [(x[i], y[i], NUMBERS) for i in range(count)]


def collate(items):
    x, y, n = zip(*items)
    return torch.stack(x), torch.stack(y), torch.stack(n), torch.ones(len(items), 4, dtype=torch.bool)


def gaussian_baseline_nll(train, test):
    """NLL per atom of the best diagonal Gaussian for the displacement (fitted on train) times N(v; 0, I)."""
    d_train = torch.stack([y - x for x, y, _ in train]).reshape(len(train), -1).double()
    d_test = torch.stack([y - x for x, y, _ in test]).reshape(len(test), -1).double()
    mean, var = d_train.mean(0), d_train.var(0)
    nll_x = 0.5 * (((d_test - mean) ** 2) / var + torch.log(2 * np.pi * var)).sum(1).mean()
    nll_v = 0.5 * np.log(2 * np.pi) * d_test.shape[1] + 0.5 * d_test.shape[1]  # E[-log N(v)] exactly
    return float(nll_x + nll_v) / 4


def test_rotations_are_proper_and_uniformish():
    r = random_rotations(2000, torch.Generator().manual_seed(0))
    assert torch.allclose(torch.det(r), torch.ones(2000), atol=1e-5)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(2000, 3, 3), atol=1e-5)
    # a uniform rotation maps e_x to a uniform direction: mean ~ 0 (tolerance 5 standard errors)
    assert torch.all(r[:, :, 0].mean(0).abs() < 5 * (1 / 3) ** 0.5 / 2000 ** 0.5)


def test_training_beats_gaussian_baseline(tmp_path):
    from openmm_timewarp.lab.training.trainer import evaluate_nll

    torch.manual_seed(0)
    train, val = toy_pairs(512, 0), toy_pairs(256, 1)
    config = TrainConfig(epochs=6, batch_size=32, learning_rate=3e-3, warmup_steps=10, ema_decay=0.9, seed=0)
    result = train_flow(TimewarpFlow(CONFIG), train, val, collate, config, str(tmp_path), progress=False)
    baseline = gaussian_baseline_nll(train, val)
    final = evaluate_nll(result.flow, val, collate)
    assert final < baseline - 1.0, (final, baseline)  # nats per atom
    assert (tmp_path / "log.csv").read_text().count("\n") == config.epochs + 1


def test_resume_reproduces_uninterrupted_run(tmp_path):
    train, val = toy_pairs(64, 0), toy_pairs(32, 1)
    config = TrainConfig(epochs=3, batch_size=16, learning_rate=1e-3, warmup_steps=2, seed=3)
    torch.manual_seed(0)
    whole = train_flow(TimewarpFlow(CONFIG), train, val, collate, config, str(tmp_path / "a"), progress=False)
    torch.manual_seed(0)
    first = TimewarpFlow(CONFIG)
    # interrupt in the first batch of the third epoch, then resume from the checkpoint of the second
    import openmm_timewarp.lab.training.trainer as trainer

    original = trainer._learning_rate_factor
    calls = {"n": 0}

    def interrupt(*args):
        calls["n"] += 1
        if calls["n"] > 2 * 4:  # 4 batches per epoch
            raise KeyboardInterrupt
        return original(*args)

    trainer._learning_rate_factor = interrupt
    try:
        train_flow(first, train, val, collate, config, str(tmp_path / "b"), progress=False)
    except KeyboardInterrupt:
        pass
    finally:
        trainer._learning_rate_factor = original
    torch.manual_seed(0)
    resumed = train_flow(TimewarpFlow(CONFIG), train, val, collate, config, str(tmp_path / "b"), progress=False)
    for a, b in zip(whole.flow.state_dict().values(), resumed.flow.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["val_nll"] for h in whole.history] == [h["val_nll"] for h in resumed.history]


@pytest.mark.parametrize("broken", [False, True])
def test_a_run_killed_within_an_epoch_resumes_from_its_last_batch_exactly(tmp_path, monkeypatch, broken):
    """Checkpoints within an epoch (here after every batch) keep the batches done and the epoch's generator:
    a run interrupted in the middle of its second epoch ends as the uninterrupted one. Broken: a resume with
    the epoch's generator as at its start draws other rotations and noise, and the weights differ."""
    import openmm_timewarp.lab.training.trainer as trainer
    from openmm_timewarp.lab.training.trainer import trained_seconds

    train, val = toy_pairs(64, 0), toy_pairs(32, 1)
    config = TrainConfig(epochs=3, batch_size=16, learning_rate=1e-3, warmup_steps=2, seed=3,
                         checkpoint_interval_s=0.0)
    torch.manual_seed(0)
    whole = train_flow(TimewarpFlow(CONFIG), train, val, collate, config, str(tmp_path / "a"), progress=False)
    original, calls = trainer._learning_rate_factor, {"n": 0}

    def interrupt(*args):
        calls["n"] += 1
        if calls["n"] > 4 + 2:  # 4 batches per epoch: the third batch of the second epoch
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(trainer, "_learning_rate_factor", interrupt)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train_flow(TimewarpFlow(CONFIG), train, val, collate, config, str(tmp_path / "b"), progress=False)
    monkeypatch.setattr(trainer, "_learning_rate_factor", original)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1 and state["partial"]["batches"] == 2 and state["step"] == 6
    assert trained_seconds(str(tmp_path / "b")) >= state["history"][0]["seconds"] + state["partial"]["seconds"] > 0
    if broken:  # the epoch's generator as at its start, not as the checkpoint left it
        state["partial"]["generator"] = torch.Generator().manual_seed(config.seed * 100003 + 1).get_state()
        torch.save(state, tmp_path / "b" / "checkpoint.pt")
    torch.manual_seed(0)
    resumed = train_flow(TimewarpFlow(CONFIG), train, val, collate, config, str(tmp_path / "b"), progress=False)
    same = all(torch.equal(a, b) for a, b in zip(whole.flow.state_dict().values(), resumed.flow.state_dict().values()))
    assert same != broken
    if not broken:
        assert [h["val_nll"] for h in whole.history] == [h["val_nll"] for h in resumed.history]
        assert [h["train_nll"] for h in whole.history] == [h["train_nll"] for h in resumed.history]


def test_patience_stops_after_the_best_epoch_and_keeps_its_weights(tmp_path, monkeypatch):
    import openmm_timewarp.lab.training.trainer as trainer

    scores = iter([3.0, 2.0, 2.5, 2.6, 1.0, 0.5])
    snapshots = []
    original = trainer.evaluate_nll

    def scripted(flow, *args, **kwargs):
        snapshots.append({k: v.clone() for k, v in flow.state_dict().items()})
        return next(scores)

    monkeypatch.setattr(trainer, "evaluate_nll", scripted)
    train, val = toy_pairs(64, 0), toy_pairs(32, 1)
    config = TrainConfig(epochs=6, batch_size=16, learning_rate=1e-3, warmup_steps=2, seed=3, patience=1)
    result = train_flow(TimewarpFlow(CONFIG), train, val, collate, config, str(tmp_path), progress=False)
    assert [h["val_nll"] for h in result.history] == [3.0, 2.0, 2.5]  # epoch 3 would be 2 past the best
    for key, value in result.flow.state_dict().items():
        assert torch.equal(value, snapshots[1][key])  # the weights of the best epoch
    monkeypatch.setattr(trainer, "evaluate_nll", original)
    longer = TrainConfig(epochs=6, batch_size=16, learning_rate=1e-3, warmup_steps=2, seed=3, patience=5,
                         time_limit_s=1e6)
    resumed = train_flow(TimewarpFlow(CONFIG), train, val, collate, longer, str(tmp_path), progress=False)
    assert len(resumed.history) == 6  # other stopping rules resume the same run


def test_patience_without_a_validation_set_is_refused(tmp_path):
    config = TrainConfig(epochs=2, batch_size=16, seed=3, patience=2)
    with pytest.raises(ValueError, match="stopping by patience needs a validation set"):
        train_flow(TimewarpFlow(CONFIG), toy_pairs(32, 0), [], collate, config, str(tmp_path), progress=False)
    assert not os.listdir(tmp_path)  # refused before anything was written


def test_the_time_limit_stops_within_an_epoch(tmp_path, monkeypatch):
    """A time limit shorter than an epoch stops mid-epoch; that epoch is validated and checkpointed."""
    import openmm_timewarp.lab.training.trainer as trainer

    clock = iter(float(k) for k in range(10_000))  # every call of time.time() is one second later
    monkeypatch.setattr(trainer.time, "time", lambda: next(clock))
    train, val = toy_pairs(256, 0), toy_pairs(32, 1)
    config = TrainConfig(epochs=3, batch_size=16, learning_rate=1e-3, warmup_steps=2, seed=3, time_limit_s=5.0)
    result = train_flow(TimewarpFlow(CONFIG), train, val, collate, config, str(tmp_path), progress=False)
    assert len(result.history) == 1 and result.history[0]["step"] < 256 // 16  # stopped inside epoch 0
    assert (tmp_path / "checkpoint.pt").is_file()


def test_trained_seconds_reads_either_trainers_checkpoint(tmp_path):
    from openmm_timewarp.lab.training.trainer import trained_seconds

    assert trained_seconds(str(tmp_path)) == 0.0
    torch.save({"history": [{"seconds": 5.0}, {"seconds": 7.0}], "partial": {"seconds": 2.5}}, tmp_path / "checkpoint.pt")
    assert trained_seconds(str(tmp_path)) == pytest.approx(14.5)
    torch.save({"history": [{"step": 10}], "seconds": 33.0}, tmp_path / "checkpoint.pt")  # peptides fine-tuning
    assert trained_seconds(str(tmp_path)) == pytest.approx(33.0)
