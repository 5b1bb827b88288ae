"""``fit`` killed and re-run: workers die with their parent, one fit per folder, the spent time counts."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from openmm_timewarp.cli import main
from openmm_timewarp.lab._resumable import ResumableRecord, atomic_write, folder_lock, write_json_atomic
from openmm_timewarp.lab.fit import Fit, FitSettings


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        pass
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return False


def _child(code: str, tmp_path):
    """A python child running ``code``; returns it once it has printed its first line (and that line)."""
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True,
                               cwd=str(tmp_path))
    line = process.stdout.readline()
    assert line, "the child process died before it was ready"
    return process, line


def test_workers_die_with_a_sigkilled_parent(tmp_path):
    process, line = _child("""
        import time
        from openmm_timewarp.lab.workers import worker_pool
        with worker_pool(2) as pool:
            futures = [pool.submit(time.sleep, 120) for _ in range(2)]
            while len(pool.worker_pids()) < 2:
                time.sleep(0.05)
            time.sleep(1.0)
            print(" ".join(map(str, pool.worker_pids())), flush=True)
            time.sleep(120)
        """, tmp_path)
    workers = [int(pid) for pid in line.split()]
    assert workers and all(_alive(pid) for pid in workers)
    process.kill()
    process.wait()
    deadline = time.time() + 10.0
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def test_a_pool_left_by_an_exception_does_not_wait_for_its_tasks():
    from openmm_timewarp.lab.workers import worker_pool

    start = time.time()
    with pytest.raises(KeyboardInterrupt):
        with worker_pool(1) as pool:
            pool.submit(time.sleep, 120)
            while not pool.worker_pids():
                time.sleep(0.05)
            raise KeyboardInterrupt
    assert time.time() - start < 60.0
    assert not any(_alive(pid) for pid in pool.worker_pids())


def test_a_second_fit_on_a_folder_in_use_is_refused_and_the_lock_dies_with_its_holder(tmp_path, capsys):
    folder = tmp_path / "fit"
    process, _ = _child(f"""
        import time
        from openmm_timewarp.lab._resumable import folder_lock
        with folder_lock({str(folder)!r}):
            print("locked", flush=True)
            time.sleep(120)
        """, tmp_path)
    try:
        assert main(["fit", "A", "--capped", "-o", str(folder), "--minutes", "0.1", "--no-progress"]) == 2
        error = capsys.readouterr().err
        assert "in use" in error and str(process.pid) in error
        assert not (folder / "fit.json").exists()
    finally:
        process.kill()
        process.wait()
    with folder_lock(str(folder)):  # a SIGKILLed holder leaves no lock
        pass


def test_an_interrupted_stage_counts_against_the_budget(tmp_path, monkeypatch):
    settings = FitSettings(minutes=10.0, workers=1, check_seconds=5.0)
    fit = Fit(str(tmp_path / "fit"), "A", capped=True, settings=settings, progress=False)
    # as left by a kill: three stages done, the train stage 100 s in, 40 s of them in finished epochs and
    # 12 s in the part of an epoch the last checkpoint holds
    fit.record["stages"] = {"molecule": {"seconds": 10.0}, "explore": {"seconds": 90.0}, "seeds": {"seconds": 5.0},
                            "md": {"seconds": 200.0}}
    fit.record["running"] = {"train": {"seconds": 100.0, "started": "earlier"}}
    fit._save()
    os.makedirs(fit.path("train"))
    torch.save({"history": [{"seconds": 25.0}, {"seconds": 15.0}], "partial": {"seconds": 12.0}},
               tmp_path / "fit" / "train" / "checkpoint.pt")
    again = Fit(str(tmp_path / "fit"), "A", capped=True, settings=settings, progress=False)
    assert again.spent_s() == pytest.approx(405.0)
    # training may run for what is left, plus what its checkpoint already counts
    assert again.training_time_limit_s() == pytest.approx(600.0 - 405.0 - 5.0 - 30.0 + 52.0)


def test_the_stage_clock_records_elapsed_time_as_it_goes(tmp_path, monkeypatch):
    import openmm_timewarp.lab.fit as fit_module

    monkeypatch.setattr(fit_module, "HEARTBEAT_S", 0.05)
    fit = Fit(str(tmp_path / "fit"), "A", capped=True, settings=FitSettings(minutes=1.0, workers=1), progress=False)
    fit.record["running"] = {"explore": {"seconds": 30.0, "started": "earlier"}}
    with fit._clock("explore"):
        time.sleep(0.3)
        recorded = json.loads((tmp_path / "fit" / "fit.json").read_text())["running"]["explore"]
        assert recorded["seconds"] > 30.1
    assert fit.stage_seconds("explore") >= 30.3


def test_resumable_record_refuses_other_settings_naming_the_keys(tmp_path):
    record = ResumableRecord(str(tmp_path), "run.json", {"a": 1, "b": 2}, what="a run")
    record.data["done"] = 3
    record.save()
    assert ResumableRecord(str(tmp_path), "run.json", {"a": 1, "b": 2}).data["done"] == 3
    with pytest.raises(ValueError, match=r"other settings \(b: 2 there, 5 now\); use another folder or the "
                                         r"recorded settings"):
        ResumableRecord(str(tmp_path), "run.json", {"a": 1, "b": 5})


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    import numpy as np

    write_json_atomic(tmp_path / "a.json", {"x": 1})
    atomic_write(tmp_path / "b.npz", lambda tmp: np.savez(tmp, x=np.arange(3)), suffix=".npz")
    atomic_write(str(tmp_path / "c.txt"), "text")
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.npz", "c.txt"]
    assert np.load(tmp_path / "b.npz")["x"].tolist() == [0, 1, 2]


def test_an_interrupted_exploration_keeps_its_frames_and_runs_only_the_time_left(tmp_path):
    import numpy as np

    from openmm_timewarp.lab import fit as fit_module
    from openmm_timewarp.lab.molecule import load_molecule

    molecule = load_molecule("A", True, "amber99sbildn-obc", None, None)
    settings = FitSettings(workers=1, replicas=2)
    first = str(tmp_path / "first.npz")
    fit_module._explore(molecule, settings, 1.0, 5, first)
    with np.load(first) as run:
        frames = run["positions"]
    # as left by a kill: the frames of 1 s saved, not the finished file
    partial = tmp_path / "run.partial.npz"
    np.savez(partial, positions=frames, seconds=1.0, md_steps=1000, attempts=np.ones(1, dtype=np.int64),
             accepted=np.zeros(1, dtype=np.int64), segment=0)
    path = str(tmp_path / "run.npz")
    start = time.perf_counter()
    fit_module._explore(molecule, settings, 2.0, 5, path)
    assert time.perf_counter() - start < 1.0 + 10.0  # the set-up, and only the second left
    with np.load(path) as run:
        assert len(run["positions"]) > len(frames)
        assert np.array_equal(run["positions"][:len(frames)], frames)
    assert not partial.exists()


def test_tasks_not_started_by_the_deadline_are_left_out():
    from openmm_timewarp.lab.fit import _in_workers

    done = _in_workers(time.sleep, [(1.0,)] * 12, 2, "sleep", False, deadline=time.time() + 1.5)
    assert 1 <= len(done) <= 6  # what had started (workers take seconds to start), never all twelve
    assert len(_in_workers(time.sleep, [(0.01,)] * 3, 2, "sleep", False)) == 3  # no deadline: every task
