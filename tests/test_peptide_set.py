"""The transferable model's peptide set: recorded splits, the job's order and shards, packing and resuming."""

import json
import os

import numpy as np
import pytest

from openmm_timewarp.lab.datasets import peptide_set as ps
from openmm_timewarp.lab.datasets.pairs import Trajectory

SHARED_SPLITS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "dipeptide-splits.json")


def test_recorded_splits_are_the_seeded_ones():
    with open(ps.SPLITS_FILE) as handle:
        recorded = json.load(handle)
    assert ps.make_splits(recorded["2aa"], seed=recorded["seed"]) == recorded
    if os.path.isfile(SHARED_SPLITS):
        with open(SHARED_SPLITS) as handle:
            shared = json.load(handle)
        assert recorded["2aa"] == {split: shared[split] for split in ("train", "validation", "test")}


def test_held_out_peptides_appear_in_no_training_set():
    splits = ps.read_splits()
    training = {spec.name for spec in ps.peptides(splits, ("train", "validation"))}
    tests = ps.peptides(splits, ("test",))
    assert {spec.group for spec in tests} == {"2aa", "4aa", "capped1"}
    assert not training & {spec.name for spec in tests}
    assert len(splits["4aa"]["test"]) >= 10 and all(len(s) == 4 for s in splits["4aa"]["test"])
    assert sorted(splits["capped1"]["test"]) == sorted(ps.AMINO_ACIDS)
    capped_training = [s.sequence for s in ps.peptides(splits, ("train", "validation")) if s.capped]
    assert capped_training and all(len(s) in (2, 3) for s in capped_training)
    for group in splits.values():
        names = [s for values in group.values() for s in values]
        assert len(names) == len(set(names))


def test_the_job_order_interleaves_groups_and_shards_split_it():
    splits = ps.read_splits()
    order = ps.peptides(splits, ("train", "validation"))
    first = order[: len(order) // 4]
    counts = {group: sum(s.group == group for s in first) for group in ("2aa", "capped", "4aa")}
    totals = {group: sum(s.group == group and s.split == "train" for s in order) for group in counts}
    for group in counts:  # any prefix holds each group in proportion (within one peptide)
        assert abs(counts[group] - totals[group] * len(first) / sum(totals.values())) <= 2
    assert [s.split for s in order] == sorted((s.split for s in order), key=["train", "validation"].index)
    shards = [order[i::3] for i in range(3)]
    assert sorted(s.name for shard in shards for s in shard) == sorted(s.name for s in order)


TINY = ps.PeptideDataSettings(explore_s=2.0, seeds_2aa=2, equilibration_ps=0.5, production_ps=2.0,
                              save_interval_ps=0.5, seed=3)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    out = tmp_path_factory.mktemp("peptides")
    spec = ps.PeptideSpec("GA", False, "2aa", "train")
    record = ps.make_peptide_data(spec, str(out), str(out / "scratch"), TINY, keep_scratch=True)
    return out, spec, record


def test_coverage_additions_complete_a_prefix_with_the_shortest_peptides():
    order = ps.peptides(ps.read_splits(), ("train",))
    prefix = order[0::2][:84] + order[1::2][:84]
    slots = {slot for spec in prefix for slot in ps.residue_slots(spec)}
    assert "N:W" not in slots  # the prefix alone leaves N-terminal tryptophan without data
    additions = ps.coverage_additions(order, prefix)
    covered = {slot for spec in prefix + additions for slot in ps.residue_slots(spec)}
    assert covered == {f"{where}:{x}" for where in "NCM" for x in ps.AMINO_ACIDS}
    assert all(spec.split == "train" and spec not in prefix for spec in additions)
    assert all(len(spec.sequence) == 2 for spec in additions)
    assert ps.coverage_additions(order, order) == []


def test_a_packed_peptide_holds_its_md_to_the_stated_resolution(packed):
    out, spec, record = packed
    positions, stored, pdb = ps.load_packed(ps.packed_path(str(out), spec))
    assert stored == record and record["frames"] == len(positions) == 2 * 4
    assert "ATOM" in pdb and record["preset"] == "amber14-obc1" and record["temperature_K"] == 310.0
    md = np.concatenate([Trajectory(str(out / "scratch" / spec.name / "md" / f"seed-{k:03d}")).frames()
                         for k in range(2)]).astype(np.float64)
    md -= md.mean(axis=1, keepdims=True)
    error = np.abs(positions - md).max()
    assert error <= 0.5 * ps.POSITION_SCALE_NM + 1e-6
    assert error > 0.0  # really quantised: a float32 copy would pass the first check too
    assert abs(sum(v for k, v in record["populations"].items() if k.startswith("ALA2:")) - 1.0) < 1e-9


def test_a_packed_peptide_is_not_made_again_and_other_settings_are_refused(packed):
    out, spec, record = packed
    path = ps.packed_path(str(out), spec)
    before = os.stat(path).st_mtime_ns
    assert ps.make_peptide_data(spec, str(out), str(out / "scratch"), TINY) == record
    assert os.stat(path).st_mtime_ns == before
    ps._check_settings(str(out), TINY)  # records the settings
    with pytest.raises(ValueError, match="production_ps"):
        ps._check_settings(str(out), ps.PeptideDataSettings())


def test_the_command_refuses_a_bad_shard(tmp_path, capsys):
    from openmm_timewarp.cli import main

    assert main(["peptide-data", "-o", str(tmp_path), "--shard", "2/2", "--no-progress"]) == 2
    assert "0 <= i < n" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written before the error


def test_built_seeds_reach_phi_positive_of_every_residue_that_has_phi():
    from openmm_timewarp.lab.analysis.peptide import PeptideObservables
    from openmm_timewarp.lab.fit import built_structures
    from openmm_timewarp.lab.molecule import load_molecule

    molecule = load_molecule("AKV", True, "amber14-obc1", temperature_K=310.0)
    structures = built_structures("AKV", True, molecule.system(), 4)
    assert structures.shape == (4,) + molecule.positions.shape
    observables = PeptideObservables(molecule.topology)
    states = observables.indicators(observables.values(structures), extra=False)
    for residue in ("ALA2", "LYS3", "VAL4"):
        assert states[f"{residue}:phi_positive"].any() and states[f"{residue}:alphaR"].any()
