"""Training pairs from MD runs: lag, splits without leaks, padding, lazy reading, bad input."""

import os
import pickle
import shutil

import torch  # torch before openmm
import numpy as np
import pytest
from openmm import unit

from openmm_timewarp.lab.datasets import pairs as ds
from openmm_timewarp.lab.md import rundir
from openmm_timewarp.lab.md import simulate as md

PEPTIDES = ["AK", "GA", "DE", "WY", "PQ", "HS"]
FRAMES = 30
SAVE_PS = 0.01


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Short runs of six uncapped dipeptides (two runs of AK) and alanine dipeptide; frames every 10 fs."""
    root = tmp_path_factory.mktemp("md")
    settings = dict(save_interval_ps=SAVE_PS, equilibration_ps=0.0, production_ps=FRAMES * SAVE_PS * unit.picosecond, progress=False)
    for sequence in PEPTIDES:
        md.simulate(str(root / "2aa"), sequence, **settings)
    md.simulate(str(root / "2aa-seed2"), "AK", seed=2, **settings)
    md.simulate(str(root / "ad"), "A", capped=True, **dict(settings, production_ps=2 * FRAMES * SAVE_PS * unit.picosecond))
    return root


def _reference_frames(trajectory):
    import mdtraj

    return mdtraj.load_dcd(trajectory.path, top=trajectory.topology_path()).xyz


def test_find_trajectories(data_root):
    trajectories = ds.find_trajectories(str(data_root))
    assert len(trajectories) == len(PEPTIDES) + 2
    assert sorted(t.peptide for t in trajectories) == sorted(PEPTIDES + ["AK", "ACE-A-NME"])
    ad = next(t for t in trajectories if t.capped)
    assert (ad.num_atoms, ad.num_frames, ad.save_interval_ps, ad.temperature_K) == (22, 2 * FRAMES, SAVE_PS, 310.0)
    assert ad.atomic_numbers.dtype == np.int64 and ad.atomic_numbers.tolist()[:6] == [6, 1, 1, 1, 6, 8]
    assert ds.find_trajectories(str(data_root), temperature=300 * unit.kelvin) == []
    assert len(ds.find_trajectories(str(data_root), preset="amber99sbildn-obc", temperature=310.0)) == len(trajectories)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ds.find_trajectories(str(data_root / "nope"))


@pytest.mark.parametrize("lag_frames", [1, 4])
def test_pairs_have_the_requested_lag(data_root, lag_frames):
    trajectories = ds.find_trajectories(str(data_root / "2aa"))
    dataset = ds.PairDataset(trajectories, lag=lag_frames * SAVE_PS * unit.picosecond)
    assert len(dataset) == len(trajectories) * (FRAMES - lag_frames)
    reference = {t.name: _reference_frames(t) for t in trajectories}
    for index in [0, 1, FRAMES - lag_frames - 1, FRAMES - lag_frames, len(dataset) - 1, -1]:
        trajectory, s, t = dataset.pair_frames(index)
        assert t - s == lag_frames
        item = dataset[index]
        assert item["x_cond"].dtype == torch.float32 and item["atomic_numbers"].dtype == torch.int64
        np.testing.assert_allclose(item["x_cond"].numpy(), reference[trajectory.name][s], atol=1e-6)
        np.testing.assert_allclose(item["x_target"].numpy(), reference[trajectory.name][t], atol=1e-6)
    # every pair of the first trajectory, in order
    first = [dataset.pair_frames(i)[1:] for i in range(FRAMES - lag_frames)]
    assert first == [(s, s + lag_frames) for s in range(FRAMES - lag_frames)]
    # lag as a plain number of picoseconds
    assert len(ds.PairDataset(trajectories, lag_frames * SAVE_PS)) == len(dataset)


@pytest.mark.parametrize("lag", [0.015, 0.0, -0.01, 0.025 * unit.picosecond])
def test_lag_must_be_a_multiple_of_the_save_interval(data_root, lag):
    trajectories = ds.find_trajectories(str(data_root / "ad"))
    with pytest.raises(ValueError, match=r"not a positive multiple of the save interval \(0.01 ps\) of .*trajectory.dcd"):
        ds.PairDataset(trajectories, lag)


def test_collate_pads_mixed_sizes(data_root):
    trajectories = ds.find_trajectories(str(data_root))
    dataset = ds.PairDataset(trajectories, lag=2 * SAVE_PS)
    loader = torch.utils.data.DataLoader(dataset, batch_size=len(dataset), collate_fn=ds.collate_pairs)
    batch = next(iter(loader))
    sizes = torch.tensor([dataset.pair_frames(i)[0].num_atoms for i in range(len(dataset))])
    n_max = int(sizes.max())
    assert len(set(sizes.tolist())) > 2  # really mixed
    assert batch["x_cond"].shape == batch["x_target"].shape == (len(dataset), n_max, 3)
    assert batch["x_cond"].dtype == torch.float32 and batch["atomic_numbers"].dtype == torch.int64
    assert batch["mask"].dtype == torch.bool and batch["mask"].shape == (len(dataset), n_max)
    assert torch.equal(batch["mask"].sum(1), sizes)
    padding = ~batch["mask"]
    assert torch.all(batch["x_cond"][padding] == 0) and torch.all(batch["atomic_numbers"][padding] == 0)
    assert torch.all(batch["atomic_numbers"][batch["mask"]] > 0)
    for i in [0, len(dataset) - 1]:
        n = int(sizes[i])
        assert torch.equal(batch["x_target"][i, :n], dataset[i]["x_target"])


def test_peptide_splits_do_not_leak(data_root):
    trajectories = ds.find_trajectories(str(data_root))
    splits = {"description": "test", "train": ["AK", "GA", "DE"], "validation": ["WY"], "test": ["PQ", "ACE-A-NME"]}
    with pytest.warns(RuntimeWarning, match="1 peptide.*HS"):
        groups = ds.split_by_peptide(trajectories, splits)
    assert sorted(groups) == ["test", "train", "validation"]
    assert len(groups["train"]) == 4  # AK has two runs
    datasets = {name: ds.PairDataset(group, lag=SAVE_PS) for name, group in groups.items()}
    seen = {}
    for name, dataset in datasets.items():
        peptides = {dataset.pair_frames(i)[0].peptide for i in range(len(dataset))}
        assert peptides == set(splits[name]) == set(dataset.peptides())
        for peptide in peptides:
            assert seen.setdefault(peptide, name) == name
    with pytest.raises(ValueError, match="'AK' is in both 'train' and 'test'"):
        ds.split_by_peptide(trajectories, {"train": ["AK"], "test": ["ak"]})


def test_splits_file(data_root, tmp_path):
    path = tmp_path / "splits.json"
    path.write_text('{"train": ["AK", "GA", "DE", "HS"], "validation": ["WY"], "test": ["PQ"]}')
    datasets = ds.pair_datasets(str(data_root / "2aa"), lag=3 * SAVE_PS, splits=str(path))
    assert {name: d.peptides() for name, d in datasets.items()} == {
        "train": ["AK", "DE", "GA", "HS"], "validation": ["WY"], "test": ["PQ"]}
    assert len(datasets["validation"]) == FRAMES - 3
    with pytest.raises(FileNotFoundError, match="splits file"):
        ds.load_splits(str(tmp_path / "missing.json"))


def test_time_blocks_do_not_overlap(data_root):
    trajectories = ds.find_trajectories(str(data_root / "ad"))
    lag = 3
    datasets = ds.pair_datasets(str(data_root / "ad"), lag=lag * SAVE_PS, fractions=(0.5, 0.25, 0.25))
    frames_used = {}
    for name, dataset in datasets.items():
        (trajectory, start, stop), = dataset.segments
        assert len(dataset) == stop - start - lag
        used = set()
        for i in range(len(dataset)):
            _, s, t = dataset.pair_frames(i)
            assert start <= s < t < stop and t - s == lag
            used.update((s, t))
        frames_used[name] = used
    assert not frames_used["train"] & frames_used["validation"]
    assert not frames_used["validation"] & frames_used["test"]
    assert [d.segments[0][1:] for d in datasets.values()] == [(0, 30), (30, 45), (45, 60)]
    with pytest.raises(ValueError, match="sum to 1"):
        ds.split_by_time(trajectories, (0.5, 0.2, 0.2))


def test_frames_are_read_lazily(data_root):
    trajectories = ds.find_trajectories(str(data_root))
    dataset = ds.PairDataset(trajectories, lag=SAVE_PS)
    dataset[0]
    assert isinstance(trajectories[0]._frames, np.memmap)
    # the index is one number per trajectory, not per pair; pickling (DataLoader workers) copies no frames
    assert dataset._ends.shape == (len(trajectories),)
    frame_bytes = sum(os.path.getsize(t.path) for t in trajectories)
    assert len(pickle.dumps(dataset)) < frame_bytes / 4
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[5]["x_target"], dataset[5]["x_target"])


def _copy_run(data_root, tmp_path, name="AK"):
    target = tmp_path / name
    shutil.copytree(data_root / "2aa" / name, target)
    return target


def test_truncated_trajectory_is_reported(data_root, tmp_path):
    run = _copy_run(data_root, tmp_path)
    path = run / rundir.TRAJECTORY_FILE
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - 100)
    with pytest.raises(ValueError, match=r"trajectory.dcd' is truncated: it holds 29 whole frames but its metadata records 30"):
        ds.Trajectory(str(run))


def test_corrupt_trajectory_is_reported(data_root, tmp_path):
    run = _copy_run(data_root, tmp_path)
    path = run / rundir.TRAJECTORY_FILE
    with open(path, "r+b") as handle:
        handle.write(b"garbage!")
    with pytest.raises(ValueError, match=r"trajectory.dcd' is not a DCD trajectory"):
        ds.Trajectory(str(run))

    run = _copy_run(data_root, tmp_path, "GA")
    trajectory = ds.Trajectory(str(run))
    with open(trajectory.path, "r+b") as handle:  # break the record marker of frame 3
        handle.seek(trajectory.layout.header_bytes + 3 * trajectory.layout.frame_bytes)
        handle.write(b"\xff\xff\xff\xff")
    trajectory = ds.Trajectory(str(run))
    trajectory.positions(2)
    with pytest.raises(ValueError, match=r"trajectory.dcd': frame 3 is corrupt"):
        trajectory.positions(3)


def test_missing_or_bad_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metadata.json"):
        ds.Trajectory(str(tmp_path))
    (tmp_path / rundir.METADATA_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="metadata.json' is not valid JSON"):
        ds.Trajectory(str(tmp_path))


def test_runs_with_the_other_hydrogen_order_are_relabelled(data_root, tmp_path):
    """A run made before build_peptide fixed the labels: CB's methyl hydrogens in the other cyclic order."""
    from openmm_timewarp.lab.training.internal import load_molecule_runs

    source = data_root / "ad" / "ACE-A-NME"
    good, bad = tmp_path / "runs" / "good", tmp_path / "runs" / "swapped"
    shutil.copytree(source, good)
    shutil.copytree(source, bad)
    trajectory = ds.Trajectory(str(bad))
    names = [line[12:16].strip() for line in open(trajectory.topology_path()) if line.startswith(("ATOM", "HETATM"))]
    hb2, hb3 = names.index("HB2"), names.index("HB3")
    frames = trajectory.frames()
    frames[:, [hb2, hb3]] = frames[:, [hb3, hb2]]
    records = np.memmap(trajectory.path, dtype=trajectory.layout.frame_dtype(), mode="r+",
                        offset=trajectory.layout.header_bytes, shape=(trajectory.num_frames,))
    for k, axis in enumerate("xyz"):
        records[axis] = frames[..., k] * 10.0  # DCD stores Angstrom
    records.flush()
    del records
    permutation = ds.Trajectory(str(bad)).hydrogen_relabelling()
    assert set(np.nonzero(permutation != np.arange(len(permutation)))[0].tolist()) == {hb2, hb3}
    assert np.array_equal(ds.Trajectory(str(good)).hydrogen_relabelling(), np.arange(len(permutation)))
    with pytest.warns(RuntimeWarning, match="swapped carries equivalent hydrogens in the other cyclic order"):
        _, loaded, _ = load_molecule_runs([str(tmp_path / "runs")])
    assert np.allclose(loaded[0], loaded[1], atol=1e-6)  # relabelled, the two runs are the same again


def test_internal_family_refuses_a_lag_longer_than_the_validation_blocks(data_root):
    from openmm_timewarp.lab.training import get_family

    family = get_family("internal")
    run = [str(data_root / "ad")]
    validation_ps = 0.1 * 2 * FRAMES * SAVE_PS
    assert len(family.training_data(run, lag_ps=SAVE_PS).validation) > 0
    with pytest.raises(ValueError, match="no validation pairs at a lag of .* Use a shorter --lag"):
        family.training_data(run, lag_ps=SAVE_PS * round(2 * validation_ps / SAVE_PS))
