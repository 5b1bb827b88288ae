"""MD data generation: files and metadata, exact resume after interruption, shards, workers, CLI."""

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time

import torch  # noqa: F401  (torch before openmm)
import numpy as np
import pytest
from openmm import unit

from openmm_timewarp import cli
from openmm_timewarp.lab import systems
from openmm_timewarp.lab.md import dcd, pool, rundir
from openmm_timewarp.lab.md import simulate as md
from openmm_timewarp.lab.datasets.pairs import Trajectory

# Tiny runs: 10 steps (10 fs) per frame.
FAST = dict(capped=True, save_interval_ps=0.01 * unit.picosecond, equilibration_ps=0.1 * unit.picosecond, progress=False)


class Interrupt(Exception):
    pass


def _frames(directory):
    """All frames of a run, read independently of the dataset code (mdtraj), nm."""
    import mdtraj

    path = os.path.join(directory, rundir.TRAJECTORY_FILE)
    return mdtraj.load_dcd(path, top=os.path.join(directory, rundir.TOPOLOGY_FILE)).xyz


def _assert_no_repeats(frames):
    steps = np.abs(np.diff(frames, axis=0)).reshape(len(frames) - 1, -1).max(axis=1)
    assert steps.min() > 1e-5, "two consecutive frames are identical (a duplicated frame)"


def test_run_writes_trajectory_topology_and_metadata(tmp_path):
    result = md.simulate(str(tmp_path), "A", production_ps=0.4 * unit.picosecond, hydrogen_mass_amu=3.0,
                         timestep_ps=2.0 * unit.femtosecond, seed=3, **dict(FAST, save_interval_ps=0.02 * unit.picosecond))
    assert result.complete and result.frames == result.new_frames == 20
    directory = tmp_path / "ACE-A-NME"
    assert result.directory == str(directory)
    meta = json.loads((directory / rundir.METADATA_FILE).read_text())
    assert meta["sequence"] == "A" and meta["capped"] is True
    assert meta["preset"]["name"] == "amber99sbildn-obc"
    assert meta["preset"]["files"] == ["amber99sbildn.xml", "amber99_obc.xml"]
    assert meta["temperature_K"] == 310.0 and meta["timestep_fs"] == 2.0 and meta["seed"] == 3
    assert meta["save_interval_ps"] == pytest.approx(0.02) and meta["save_interval_steps"] == 10
    assert meta["platform"] == "Reference"
    assert meta["num_frames"] == 20 and meta["complete"] is True
    assert meta["simulated_time_ns"] == pytest.approx(20 * 0.02e-3)
    assert meta["wall_time_s"] > 0
    masses = np.array(meta["masses_amu"])
    hydrogens = np.array(meta["atomic_numbers"]) == 1
    assert np.allclose(masses[hydrogens], 3.0) and meta["hydrogen_mass_amu"] == 3.0
    frames = _frames(str(directory))
    assert frames.shape == (20, 22, 3)
    _assert_no_repeats(frames)
    layout = dcd.read_dcd_layout(str(directory / rundir.TRAJECTORY_FILE))
    assert layout.frames_in_header == layout.frames_in_file == 20
    # the topology PDB is the minimised start and loads as a peptide
    topology, _ = systems.read_pdb(str(directory / rundir.TOPOLOGY_FILE))
    assert systems.sequence_of(topology) == ("A", True)
    # a repeated call has nothing left to do
    again = md.simulate(str(tmp_path), "A", production_ps=0.4 * unit.picosecond, hydrogen_mass_amu=3.0,
                        timestep_ps=2.0 * unit.femtosecond, seed=3, **dict(FAST, save_interval_ps=0.02 * unit.picosecond))
    assert again.frames == 20 and again.new_frames == 0 and again.complete


def test_resume_after_interruption_is_exact(tmp_path):
    settings = dict(FAST, production_ps=0.6 * unit.picosecond, checkpoint_interval=10, seed=11)
    reference = md.simulate(str(tmp_path / "whole"), "A", **settings)
    assert reference.frames == 60

    def stop_at_37(frames):
        if frames == 37:
            raise Interrupt()

    with pytest.raises(Interrupt):
        md.simulate(str(tmp_path / "cut"), "A", callback=stop_at_37, **settings)
    directory = str(tmp_path / "cut" / "ACE-A-NME")
    assert dcd.read_dcd_layout(os.path.join(directory, rundir.TRAJECTORY_FILE)).frames_in_file == 37
    assert rundir.read_metadata(directory)["num_frames"] == 30  # the last checkpoint

    resumed = md.simulate(str(tmp_path / "cut"), "A", **settings)
    assert resumed.frames == 60 and resumed.new_frames == 30 and resumed.complete
    whole, cut = _frames(reference.directory), _frames(directory)
    assert cut.shape == whole.shape
    _assert_no_repeats(cut)
    # the checkpoint carries the Langevin random state: the resumed run is the uninterrupted one
    np.testing.assert_array_equal(cut, whole)


def test_longer_production_extends_a_finished_run(tmp_path):
    short = md.simulate(str(tmp_path / "a"), "A", production_ps=0.2 * unit.picosecond, seed=5, **FAST)
    assert short.frames == 20
    longer = md.simulate(str(tmp_path / "a"), "A", production_ps=0.5 * unit.picosecond, seed=5, **FAST)
    assert longer.frames == 50 and longer.new_frames == 30
    whole = md.simulate(str(tmp_path / "b"), "A", production_ps=0.5 * unit.picosecond, seed=5, **FAST)
    np.testing.assert_array_equal(_frames(longer.directory), _frames(whole.directory))
    assert Trajectory(longer.directory).num_frames == 50


def test_killed_process_resumes_without_gaps_or_duplicates(tmp_path):
    args = ["simulate", "A", "--capped", "--save-interval-ps", "0.05", "--production-ns", "0.04",
            "--equilibration-ps", "0.1", "--checkpoint-interval", "25", "--seed", "7", "--no-progress"]
    killed_out, whole_out = str(tmp_path / "killed"), str(tmp_path / "whole")
    checkpoint = os.path.join(killed_out, "ACE-A-NME", rundir.CHECKPOINT_FILE)
    process = subprocess.Popen([sys.executable, "-m", "openmm_timewarp.cli", *args, "-o", killed_out],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        frames = 0
        while frames < 100 and time.time() < deadline and process.poll() is None:
            time.sleep(0.01)
            try:
                with np.load(checkpoint) as data:
                    frames = int(data["frames"])
            except (OSError, ValueError, KeyError):
                pass
        assert process.poll() is None, "the run finished before it could be killed: make it longer"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    directory = os.path.join(killed_out, "ACE-A-NME")
    assert rundir.read_metadata(directory)["complete"] is False

    assert cli.main([*args, "-o", killed_out]) == 0
    assert cli.main([*args, "-o", whole_out]) == 0
    killed, whole = _frames(directory), _frames(os.path.join(whole_out, "ACE-A-NME"))
    assert killed.shape == whole.shape == (800, 22, 3)
    _assert_no_repeats(killed)
    np.testing.assert_array_equal(killed, whole)


def test_resume_with_other_settings_is_refused(tmp_path):
    md.simulate(str(tmp_path), "A", production_ps=0.1 * unit.picosecond, **FAST)
    with pytest.raises(ValueError, match="other settings.*temperature_K"):
        md.simulate(str(tmp_path), "A", production_ps=0.2 * unit.picosecond, temperature_K=400.0, **FAST)


def test_bad_settings_have_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not a whole number of time steps"):
        md.simulate(str(tmp_path), "A", production_ps=1 * unit.picosecond, **dict(FAST, save_interval_ps=0.0105))
    with pytest.raises(ValueError, match="unknown residue letter"):
        md.simulate(str(tmp_path), "AZ", production_ps=1 * unit.picosecond, **FAST)
    with pytest.raises(ValueError, match="unknown force-field preset"):
        md.simulate(str(tmp_path), "A", preset="charmm", production_ps=1 * unit.picosecond, **FAST)


def test_bare_numbers_are_openmm_units_and_old_keywords_fail(tmp_path):
    run = md.simulate(str(tmp_path), "A", production_ps=0.05, timestep_ps=0.001, **dict(FAST, save_interval_ps=0.01))
    assert run.frames == 5
    assert rundir.read_metadata(run.directory)["settings"]["timestep_fs"] == pytest.approx(1.0)
    for old in ("timestep", "production", "save_interval", "equilibration", "friction", "temperature"):
        with pytest.raises(TypeError, match=old):
            md.simulate(str(tmp_path / "old"), "A", **{old: 1.0}, **FAST)
    with pytest.raises(TypeError, match="timestep_ps"):
        md.simulate(str(tmp_path / "nm"), "A", timestep_ps=1.0 * unit.nanometer, **FAST)


def test_truncate_dcd(tmp_path):
    run = md.simulate(str(tmp_path), "A", production_ps=0.1 * unit.picosecond, **FAST)
    path = os.path.join(run.directory, rundir.TRAJECTORY_FILE)
    before = _frames(run.directory)
    layout = dcd.truncate_dcd(path, 4)
    assert layout.frames_in_header == layout.frames_in_file == 4
    np.testing.assert_array_equal(_frames(run.directory), before[:4])
    with pytest.raises(ValueError, match="holds 4 frames but its checkpoint says 9"):
        dcd.truncate_dcd(path, 9)


def test_start_from_pdb_and_torsions(tmp_path):
    from openmm_timewarp.lab.systems import structure_path

    run = md.simulate(str(tmp_path), start_pdb=structure_path("alanine-dipeptide"), name="from-pdb",
                      production_ps=0.05 * unit.picosecond, temperature_K=600.0, **FAST)
    meta = rundir.read_metadata(run.directory)
    assert (meta["sequence"], meta["capped"], meta["temperature_K"]) == ("A", True, 600.0)
    assert meta["settings"]["start"]["kind"] == "pdb"
    with pytest.raises(ValueError, match="holds ACE-A-NME, not AK"):
        md.simulate(str(tmp_path), "AK", start_pdb=structure_path("alanine-dipeptide"), **dict(FAST, capped=False))

    # started in alphaL (phi > 0), a short run stays there
    import mdtraj

    run = md.simulate(str(tmp_path), "A", phi=60.0, psi=40.0, name="alphaL", production_ps=0.1 * unit.picosecond, **FAST)
    phi = mdtraj.compute_phi(mdtraj.load_dcd(os.path.join(run.directory, rundir.TRAJECTORY_FILE),
                                             top=os.path.join(run.directory, rundir.TOPOLOGY_FILE)))[1]
    assert np.all(phi > 0)
    assert rundir.read_metadata(run.directory)["settings"]["start"] == {"kind": "built", "phi_deg": 60.0, "psi_deg": 40.0}


ALL_DIPEPTIDES = ["".join(p) for p in itertools.product(sorted(systems.AMINO_ACIDS), repeat=2)]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_every_sequence_once(count):
    shuffled = ALL_DIPEPTIDES + ALL_DIPEPTIDES[:5]  # duplicates are run once
    random.Random(count).shuffle(shuffled)
    shards = [pool.shard_sequences(shuffled, i, count) for i in range(count)]
    together = [s for shard in shards for s in shard]
    assert sorted(together) == sorted(ALL_DIPEPTIDES)
    assert len(together) == len(set(together))
    # the partition does not depend on the order the list is given in
    assert shards == [pool.shard_sequences(sorted(ALL_DIPEPTIDES, reverse=True), i, count) for i in range(count)]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_parse_shard():
    assert pool.parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/3", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="shard"):
            pool.parse_shard(bad)


def test_many_peptides_in_worker_processes(tmp_path):
    results = pool.simulate_many(["GA", "AK", "ga"], str(tmp_path), workers=2, production_ps=0.05 * unit.picosecond,
                               **dict(FAST, capped=False, progress=False))
    assert [r.name for r in results] == ["AK", "GA"]
    assert all(r.error is None and r.frames == 5 for r in results)
    assert sorted(os.listdir(tmp_path)) == ["AK", "GA"]


def test_cli(tmp_path, capsys):
    out = str(tmp_path)
    common = ["--save-interval-ps", "0.01", "--production-ns", "0.0001", "--equilibration-ps", "0.01", "--no-progress",
              "-o", out]
    assert cli.main(["simulate", "AZ", *common]) == 2
    assert "unknown residue letter" in capsys.readouterr().err
    sequences = tmp_path / "splits.json"
    sequences.write_text(json.dumps({"train": ["AK", "GA", "DE"], "test": ["WY"]}))
    assert cli.main(["simulate", "--sequences-file", str(sequences), *common]) == 2
    assert "choose --split" in capsys.readouterr().err
    assert cli.main(["simulate", "--sequences-file", str(sequences), "--split", "train", "--shard", "1/2", *common]) == 0
    # sorted train list AK, DE, GA: shard 1 of 2 is DE
    assert sorted(os.listdir(out)) == ["DE", "splits.json"]
    assert "DE: 10 frames (10 new), complete" in capsys.readouterr().out
    # flags with units name them; the unitless spellings (or prefixes of the new ones) are refused
    for old in ("--production", "--save-interval", "--timestep", "--temperature"):
        with pytest.raises(SystemExit):
            cli.main(["simulate", "AK", old, "1", "-o", out])
        assert "unrecognized arguments" in capsys.readouterr().err
