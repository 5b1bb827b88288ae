"""Resumable, sharded MD data generation for peptides.

One run writes a directory::

    <output>/<name>/            name = "AK", or "ACE-A-NME" for capped peptides
        topology.pdb            topology and the minimised starting structure
        trajectory.dcd          production frames, one every save interval
        checkpoint.npz          OpenMM checkpoint + number of frames it belongs to (atomic writes)
        metadata.json           settings, masses, frame count, simulated and wall time

A run minimises, equilibrates (not saved), then runs production with ``LangevinMiddleIntegrator``.
It can be killed at any moment: the same call (or command) continues from the last checkpoint.
Frames written after that checkpoint are cut from the DCD on restart, so the trajectory has no
gaps and no duplicated frames, and because the checkpoint carries the integrator's random state
the resumed trajectory is the one an uninterrupted run would have written (same platform).

A longer ``production`` than before extends a finished run.

Frame k (0-based) is the configuration (k + 1) save intervals after equilibration. metadata.json
records the sequence and termini, the force-field preset (name and files), temperature, time step,
friction, hydrogen mass, per-particle masses and atomic numbers, save interval, seed, platform,
the number of checkpointed frames (``num_frames``: the frames a reader may use), simulated
production time, production wall time (``wall_time_s``, summed over all segments) and whether the
requested production is complete. ``settings`` holds what must not change when a run continues.
"""

import json
import os
import struct
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch  # noqa: F401  (torch before openmm; see openmm_timewarp._stack)
import openmm
from openmm import app, unit

from .. import systems

FORMAT = "openmm-timewarp-md"
FORMAT_VERSION = 1
TRAJECTORY_FILE = "trajectory.dcd"
TOPOLOGY_FILE = "topology.pdb"
CHECKPOINT_FILE = "checkpoint.npz"
METADATA_FILE = "metadata.json"


# --------------------------------------------------------------------------------------------
# DCD layout (as openmm.app.DCDFile writes it: CHARMM flavour, little-endian)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DCDLayout:
    """Where things are in a DCD file.

    Attributes
    ----------
    path : str
    num_atoms : int
    header_bytes : int
        Offset of the first frame.
    frame_bytes : int
        Size of one frame (unit-cell record, if any, and the X, Y, Z records).
    has_unit_cell : bool
    frames_in_header : int
        The frame count the header states.
    frames_in_file : int
        Whole frames present, from the file size.
    """

    path: str
    num_atoms: int
    header_bytes: int
    frame_bytes: int
    has_unit_cell: bool
    frames_in_header: int
    frames_in_file: int

    def frame_dtype(self) -> np.dtype:
        """numpy record type of one frame: fields x, y, z (float32, Angstrom) and Fortran record markers."""
        fields = []
        if self.has_unit_cell:
            fields.append(("cell", "V56"))
        for axis in "xyz":
            fields += [(f"{axis}_begin", "<i4"), (axis, "<f4", (self.num_atoms,)), (f"{axis}_end", "<i4")]
        return np.dtype(fields)


def read_dcd_layout(path: str) -> DCDLayout:
    """Read and check a DCD header.

    Parameters
    ----------
    path : str
        A DCD file.

    Returns
    -------
    DCDLayout

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not a little-endian CHARMM DCD, or a header cut short; the message names the file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"trajectory file {path!r} does not exist.")
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(100)
        if len(head) < 100 or struct.unpack("<i", head[:4])[0] != 84 or head[4:8] != b"CORD":
            raise ValueError(f"{path!r} is not a DCD trajectory (or its header is corrupt or cut short): "
                             "delete it, or rerun the simulation into a new directory.")
        frames_in_header = struct.unpack("<i", head[8:12])[0]
        has_unit_cell = struct.unpack("<i", head[48:52])[0] != 0
        if struct.unpack("<i", head[52:56])[0] != 0:
            raise ValueError(f"{path!r} is a 4-D DCD, which is not supported.")
        title_bytes = struct.unpack("<i", head[92:96])[0]
        if title_bytes < 0 or 112 + title_bytes > size:
            raise ValueError(f"{path!r}: corrupt DCD header (title block of {title_bytes} bytes).")
        handle.seek(96 + title_bytes)
        tail = handle.read(16)
    if len(tail) < 16:
        raise ValueError(f"{path!r}: DCD header cut short.")
    end_title, begin_atoms, num_atoms, end_atoms = struct.unpack("<4i", tail)
    if end_title != title_bytes or begin_atoms != 4 or end_atoms != 4 or num_atoms <= 0:
        raise ValueError(f"{path!r}: corrupt DCD header (atom-count record).")
    header_bytes = 112 + title_bytes
    frame_bytes = (56 if has_unit_cell else 0) + 3 * (8 + 4 * num_atoms)
    return DCDLayout(path, num_atoms, header_bytes, frame_bytes, has_unit_cell,
                     frames_in_header, (size - header_bytes) // frame_bytes)


def truncate_dcd(path: str, num_frames: int) -> DCDLayout:
    """Cut a DCD file to its first ``num_frames`` frames and make the header say so.

    Parameters
    ----------
    path : str
        A DCD file written by ``openmm.app.DCDFile``.
    num_frames : int
        Frames to keep.

    Returns
    -------
    DCDLayout
        The layout after truncation.

    Raises
    ------
    ValueError
        The file holds fewer than ``num_frames`` whole frames.
    """
    layout = read_dcd_layout(path)
    if layout.frames_in_file < num_frames:
        raise ValueError(f"{path!r} holds {layout.frames_in_file} frames but its checkpoint says {num_frames} were "
                         "written: the trajectory was cut short or changed outside this program. Move the run "
                         "directory away and start again.")
    with open(path, "r+b") as handle:
        handle.truncate(layout.header_bytes + num_frames * layout.frame_bytes)
        handle.seek(8)
        handle.write(struct.pack("<i", num_frames))
        first_step, interval = struct.unpack("<2i", handle.read(8))
        handle.seek(20)
        handle.write(struct.pack("<i", first_step + max(num_frames - 1, 0) * interval))
        handle.flush()
        os.fsync(handle.fileno())
    return read_dcd_layout(path)


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------

def _quantity(value, default_unit, name: str) -> unit.Quantity:
    """A Quantity in ``default_unit``'s dimension; a plain number is taken in ``default_unit``."""
    if unit.is_quantity(value):
        if not value.unit.is_compatible(default_unit):
            raise ValueError(f"{name} must be in units compatible with {default_unit}, got {value}.")
        return value.in_units_of(default_unit)
    return float(value) * default_unit


def _whole(ratio: float, what: str) -> int:
    count = int(round(ratio))
    if count < 1 or abs(ratio - count) > 1e-6 * max(1.0, abs(ratio)):
        raise ValueError(what)
    return count


def _atomic_write(path: str, write: Callable) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _write_json(path: str, data: dict) -> None:
    _atomic_write(path, lambda handle: handle.write(json.dumps(data, indent=1).encode("utf-8")))


def read_metadata(directory: str) -> dict:
    """The metadata of a run directory.

    Raises
    ------
    FileNotFoundError
        The directory holds no ``metadata.json``.
    ValueError
        The file is not valid JSON or not this package's MD metadata.
    """
    path = os.path.join(directory, METADATA_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{directory!r} has no {METADATA_FILE}: it is not an MD run directory.")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path!r} is not valid JSON ({error}).") from None
    if data.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not {FORMAT} metadata.")
    return data


def _save_checkpoint(path: str, context: openmm.Context, frames: int, wall_time: float) -> None:
    checkpoint = np.frombuffer(context.createCheckpoint(), dtype=np.uint8)
    state = openmm.XmlSerializer.serialize(context.getState(getPositions=True, getVelocities=True, getParameters=True))
    def write(handle):
        np.savez(handle, openmm_checkpoint=checkpoint, openmm_state=np.array(state),
                 frames=np.int64(frames), wall_time_s=np.float64(wall_time), platform=np.array(context.getPlatform().getName()))
    _atomic_write(path, write)


def _load_checkpoint(path: str, context: openmm.Context) -> Tuple[int, float]:
    try:
        with np.load(path, allow_pickle=False) as data:
            frames = int(data["frames"])
            wall_time = float(data["wall_time_s"])
            checkpoint = data["openmm_checkpoint"].tobytes()
            state = str(data["openmm_state"])
    except Exception as error:
        raise ValueError(f"cannot read checkpoint {path!r} ({error}); move the run directory away and start again.") from None
    try:
        context.loadCheckpoint(checkpoint)
    except Exception as error:  # another platform or OpenMM version: continue from the saved State
        warnings.warn(f"{path}: OpenMM checkpoint not loadable here ({error}); continuing from the saved positions "
                      "and velocities with a fresh random stream.", RuntimeWarning)
        context.setState(openmm.XmlSerializer.deserialize(state))
    return frames, wall_time


@dataclass
class RunResult:
    """What one run did.

    Attributes
    ----------
    name : str
    directory : str
    frames : int
        Frames in the trajectory now.
    new_frames : int
        Frames this call added.
    complete : bool
    error : str or None
        Set (by ``simulate_many``) when the run failed.
    """

    name: str
    directory: str
    frames: int = 0
    new_frames: int = 0
    complete: bool = False
    error: Optional[str] = None


def simulate(output: str, sequence: Optional[str] = None, *, capped: bool = False, start_pdb: Optional[str] = None,
             phi=None, psi=None, preset: str = systems.DEFAULT_PRESET, temperature=None,
             timestep=1.0 * unit.femtosecond, friction=1.0 / unit.picosecond, hydrogen_mass=None,
             save_interval=1.0 * unit.picosecond, equilibration=100.0 * unit.picosecond,
             production=1.0 * unit.nanosecond, seed: int = 0, platform: Optional[str] = None,
             checkpoint_interval: int = 100, progress: bool = True,
             callback: Optional[Callable[[int], None]] = None, name: Optional[str] = None) -> RunResult:
    """Run (or continue) MD of one peptide and save its trajectory.

    Parameters
    ----------
    output : str
        Parent directory; the run goes to ``output/<name>``.
    sequence : str, optional
        One-letter sequence (see ``systems.build_peptide``). Needed unless ``start_pdb`` is given.
    capped : bool
        ACE/NME caps (``"A"`` with ``capped=True`` is alanine dipeptide).
    start_pdb : str, optional
        Start from this structure (with hydrogens) instead of building one; its sequence must
        match ``sequence`` when both are given.
    phi, psi : float or openmm.unit.Quantity, optional
        Starting backbone torsions of a built peptide (degrees), e.g. phi=60, psi=40 to start in alphaL.
    preset : str
        Force-field preset, a key of ``systems.PRESETS``.
    temperature : openmm.unit.Quantity or float, optional
        Kelvin; default the preset's (310 K).
    timestep : openmm.unit.Quantity or float
        Femtoseconds. Without ``hydrogen_mass`` keep it at 1 fs (no constraints).
    friction : openmm.unit.Quantity or float
        Collision rate, 1/ps.
    hydrogen_mass : openmm.unit.Quantity or float, optional
        Hydrogen mass repartitioning (amu), e.g. 3 for a 2 fs step.
    save_interval : openmm.unit.Quantity or float
        Picoseconds between saved frames; a whole number of time steps.
    equilibration : openmm.unit.Quantity or float
        Picoseconds of MD after minimisation, not saved.
    production : openmm.unit.Quantity or float
        Nanoseconds to save; a whole number of save intervals.
    seed : int
        Seeds the initial velocities and the Langevin noise.
    platform : str, optional
        OpenMM platform name; default (None or "auto"): the fastest for this System, measured
        (``systems.best_platform``; Reference for dipeptides). A run continues on the platform it began on.
    checkpoint_interval : int
        Frames between checkpoints.
    progress : bool
        Show a tqdm progress bar with ns/day.
    callback : callable, optional
        Called with the frame count after every saved frame.
    name : str, optional
        Directory name; default ``systems.peptide_name(sequence, capped)``.

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        Bad sequence or settings, or an existing run in that directory made with other settings.
    """
    from tqdm.auto import tqdm

    temperature_q = None if temperature is None else _quantity(temperature, unit.kelvin, "temperature")
    timestep = _quantity(timestep, unit.femtosecond, "timestep")
    friction = _quantity(friction, unit.picosecond ** -1, "friction")
    save_interval = _quantity(save_interval, unit.picosecond, "save_interval")
    equilibration = _quantity(equilibration, unit.picosecond, "equilibration")
    production = _quantity(production, unit.nanosecond, "production")
    hydrogen_mass = None if hydrogen_mass is None else _quantity(hydrogen_mass, unit.amu, "hydrogen_mass")
    preset = systems.get_preset(preset)
    if temperature_q is None:
        temperature_q = preset.temperature
    if timestep.value_in_unit(unit.femtosecond) <= 0:
        raise ValueError(f"timestep must be positive, got {timestep}.")
    if checkpoint_interval < 1:
        raise ValueError(f"checkpoint_interval must be at least 1 frame, got {checkpoint_interval}.")
    save_steps = _whole(save_interval / timestep, f"save_interval {save_interval} is not a whole number of time steps of {timestep}.")
    target_frames = _whole(production / save_interval, f"production {production} is not a whole number (>= 1) of save intervals of {save_interval}.")
    equilibration_steps = int(round(equilibration / timestep))
    if hydrogen_mass is None and timestep > 1.5 * unit.femtosecond:
        warnings.warn(f"a {timestep} step without constraints or hydrogen mass repartitioning may be unstable; "
                      "use hydrogen_mass=3 amu with 2 fs, or 1 fs.", RuntimeWarning, stacklevel=2)

    if start_pdb is not None:
        topology, positions = systems.read_pdb(start_pdb)
        pdb_sequence, pdb_capped = systems.sequence_of(topology)
        if sequence is not None and (systems.normalize_sequence(sequence), capped) != (pdb_sequence, pdb_capped):
            raise ValueError(f"start_pdb {start_pdb!r} holds {systems.peptide_name(pdb_sequence, pdb_capped)}, "
                             f"not {systems.peptide_name(sequence, capped)}.")
        if phi is not None or psi is not None:
            raise ValueError("phi/psi set the torsions of a built peptide; they cannot be combined with start_pdb.")
        sequence, capped = pdb_sequence, pdb_capped
        start = {"kind": "pdb", "path": os.path.abspath(start_pdb)}
    elif sequence is None:
        raise ValueError("give a sequence (e.g. 'AK') or start_pdb.")
    else:
        sequence = systems.normalize_sequence(sequence)
        start = {"kind": "built", "phi_deg": _torsion_record(phi), "psi_deg": _torsion_record(psi)}
        topology = positions = None

    name = name or systems.peptide_name(sequence, capped)
    directory = os.path.join(output, name)
    os.makedirs(directory, exist_ok=True)
    paths = {key: os.path.join(directory, f) for key, f in (("trajectory", TRAJECTORY_FILE), ("topology", TOPOLOGY_FILE),
                                                            ("checkpoint", CHECKPOINT_FILE), ("metadata", METADATA_FILE))}
    settings = {
        "sequence": sequence,
        "capped": capped,
        "preset": preset.name,
        "temperature_K": temperature_q.value_in_unit(unit.kelvin),
        "timestep_fs": timestep.value_in_unit(unit.femtosecond),
        "friction_per_ps": friction.value_in_unit(unit.picosecond ** -1),
        "hydrogen_mass_amu": None if hydrogen_mass is None else hydrogen_mass.value_in_unit(unit.amu),
        "save_interval_steps": save_steps,
        "seed": int(seed),
        "start": start,
    }

    resume = os.path.isfile(paths["checkpoint"])
    if resume:
        metadata = read_metadata(directory)
        _check_same_settings(directory, metadata["settings"], settings)
        platform_name = metadata["platform"]
        if platform not in (None, "auto", platform_name):
            raise ValueError(f"{directory!r} was run on the {platform_name} platform; continue it there (its checkpoint "
                             f"is platform-specific) or use a new output directory.")
        topology, _ = systems.read_pdb(paths["topology"])
        system = systems.create_system(topology, preset, hydrogen_mass)
    else:
        if os.path.exists(paths["trajectory"]):
            raise ValueError(f"{paths['trajectory']!r} exists but {paths['checkpoint']!r} does not, so it cannot be "
                             "continued; move the directory away or choose another output.")
        if topology is None:
            topology, positions = systems.build_peptide(sequence, capped, phi=phi, psi=psi)
        system = systems.create_system(topology, preset, hydrogen_mass)
        positions, _ = systems.minimize(system, positions)  # on Reference: the same start on every machine
        systems.write_pdb(topology, positions, paths["topology"])
        # Continue from the file, as a resumed run does: the same topology gives the same System
        # (force terms in the same order), so a resumed trajectory is bit-for-bit the uninterrupted one.
        topology, positions = systems.read_pdb(paths["topology"])
        system = systems.create_system(topology, preset, hydrogen_mass)
        platform_name = systems.platform_by_name(platform, system, positions).getName()

    integrator = openmm.LangevinMiddleIntegrator(temperature_q, friction, timestep)
    integrator.setRandomNumberSeed(int(seed))
    context = openmm.Context(system, integrator, systems.platform_by_name(platform_name))

    if resume:
        frames, wall_time = _load_checkpoint(paths["checkpoint"], context)
        truncate_dcd(paths["trajectory"], frames)
    else:
        started = time.perf_counter()
        context.setPositions(positions)
        context.setVelocitiesToTemperature(temperature_q, int(seed))
        integrator.step(equilibration_steps)
        context.setTime(0.0)
        context.setStepCount(0)
        frames, wall_time = 0, 0.0
        metadata = _new_metadata(name, settings, preset, system, topology, platform_name, save_interval,
                                 equilibration_steps, timestep)
        metadata["equilibration_wall_time_s"] = time.perf_counter() - started
        _write_json(paths["metadata"], metadata)
        _save_checkpoint(paths["checkpoint"], context, 0, wall_time)

    metadata["production_frames_requested"] = max(target_frames, frames)
    if target_frames < frames:
        warnings.warn(f"{directory} already holds {frames} frames, more than the {target_frames} asked for; "
                      "nothing is removed.", RuntimeWarning, stacklevel=2)
    first_frames = frames
    save_ns = save_interval.value_in_unit(unit.nanosecond)
    mode = "r+b" if resume else "w+b"
    with open(paths["trajectory"], mode) as handle:
        dcd = app.DCDFile(handle, topology, timestep, firstStep=save_steps, interval=save_steps, append=resume)
        bar = tqdm(total=target_frames, initial=frames, unit="frame", desc=name, disable=not progress or frames >= target_frames,
                   dynamic_ncols=True, leave=True)
        segment_start = time.perf_counter()
        since_checkpoint = 0
        try:
            while frames < target_frames:
                integrator.step(save_steps)
                dcd.writeModel(context.getState(getPositions=True).getPositions(asNumpy=True))
                frames += 1
                since_checkpoint += 1
                if since_checkpoint >= checkpoint_interval or frames == target_frames:
                    handle.flush()
                    os.fsync(handle.fileno())
                    elapsed = time.perf_counter() - segment_start
                    _save_checkpoint(paths["checkpoint"], context, frames, wall_time + elapsed)
                    _update_metadata(paths["metadata"], metadata, frames, wall_time + elapsed, save_ns, save_steps)
                    since_checkpoint = 0
                bar.update(1)
                if progress and frames % 10 == 0:
                    elapsed = max(time.perf_counter() - segment_start, 1e-9)
                    bar.set_postfix_str(f"{(frames - first_frames) * save_ns / elapsed * 86400:.1f} ns/day", refresh=False)
                if callback is not None:
                    callback(frames)
        finally:
            bar.close()
    wall_time += time.perf_counter() - segment_start
    if frames == first_frames:
        _update_metadata(paths["metadata"], metadata, frames, wall_time, save_ns, save_steps)
    return RunResult(name, directory, frames, frames - first_frames, frames >= target_frames)


def _torsion_record(value):
    """Starting torsions as JSON (degrees): None, one angle, or a list with None entries."""
    if value is None:
        return None
    if unit.is_quantity(value):
        value = value.value_in_unit(unit.degree)
    if np.ndim(value) == 0:
        return float(value)
    return [None if v is None else float(v.value_in_unit(unit.degree) if unit.is_quantity(v) else v) for v in value]


def _check_same_settings(directory: str, recorded: dict, requested: dict) -> None:
    differences = [f"{key}: {recorded.get(key)!r} there, {requested[key]!r} now"
                   for key in requested if recorded.get(key) != requested[key]]
    if differences:
        raise ValueError(f"{directory!r} holds a run made with other settings ({'; '.join(differences)}); "
                         "repeat the original command to continue it, or use a new output directory.")


def _new_metadata(name, settings, preset, system, topology, platform_name, save_interval, equilibration_steps, timestep):
    from .. import __version__

    masses = [system.getParticleMass(i).value_in_unit(unit.amu) for i in range(system.getNumParticles())]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "sequence": settings["sequence"],
        "capped": settings["capped"],
        "settings": settings,
        "preset": preset.as_dict(),
        "temperature_K": settings["temperature_K"],
        "timestep_fs": settings["timestep_fs"],
        "friction_per_ps": settings["friction_per_ps"],
        "hydrogen_mass_amu": settings["hydrogen_mass_amu"],
        "integrator": "LangevinMiddleIntegrator",
        "save_interval_ps": save_interval.value_in_unit(unit.picosecond),
        "save_interval_steps": settings["save_interval_steps"],
        "equilibration_ps": equilibration_steps * timestep.value_in_unit(unit.picosecond),
        "seed": settings["seed"],
        "platform": platform_name,
        "num_atoms": topology.getNumAtoms(),
        "atomic_numbers": [atom.element.atomic_number for atom in topology.atoms()],
        "masses_amu": masses,
        "files": {"trajectory": TRAJECTORY_FILE, "topology": TOPOLOGY_FILE},
        "position_units": "nm (DCD stores Angstrom)",
        "num_frames": 0,
        "production_frames_requested": 0,
        "simulated_time_ns": 0.0,
        "wall_time_s": 0.0,
        "complete": False,
        "openmm_version": openmm.__version__,
        "openmm_timewarp_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _update_metadata(path, metadata, frames, wall_time, save_ns, save_steps):
    metadata.update({
        "num_frames": frames,
        "simulated_time_ns": frames * save_ns,
        "production_steps": frames * save_steps,
        "wall_time_s": wall_time,
        "steps_per_s": frames * save_steps / wall_time if wall_time > 0 else None,
        "complete": frames >= metadata["production_frames_requested"],
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    _write_json(path, metadata)


# --------------------------------------------------------------------------------------------
# Many peptides: shards and worker processes
# --------------------------------------------------------------------------------------------

def parse_shard(text: str) -> Tuple[int, int]:
    """Parse ``"i/n"`` (0 <= i < n) into ``(i, n)``.

    Raises
    ------
    ValueError
        Not of that form.
    """
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like 'i/n' with 0 <= i < n (e.g. '0/4'), got {text!r}.") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {text!r}: need 0 <= i < n.")
    return index, count


def shard_sequences(sequences: Iterable[str], index: int = 0, count: int = 1) -> List[str]:
    """This shard's share of a list of sequences.

    The sequences are upper-cased, de-duplicated and sorted; shard ``index`` of ``count`` takes
    every ``count``-th one from position ``index``. The shards of one list are disjoint and
    cover it, whatever order the list was given in.

    Parameters
    ----------
    sequences : iterable of str
    index, count : int
        0 <= index < count.

    Returns
    -------
    list of str
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= index < count.")
    unique = sorted({s.strip().upper() for s in sequences})
    return unique[index::count]


def _init_worker() -> None:
    os.environ["OPENMM_CPU_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _run_one(sequence: str, output: str, kwargs: dict) -> RunResult:
    name = systems.peptide_name(sequence, kwargs.get("capped", False)) if sequence else "?"
    try:
        return simulate(output, sequence, **kwargs)
    except Exception as error:  # one bad peptide must not stop the others
        return RunResult(name, os.path.join(output, name), error=f"{type(error).__name__}: {error}")


def simulate_many(sequences: Sequence[str], output: str, *, workers: int = 1, shard: Tuple[int, int] = (0, 1),
                  progress: bool = True, **kwargs) -> List[RunResult]:
    """Run ``simulate`` for many peptides, in worker processes with one thread each.

    Parameters
    ----------
    sequences : sequence of str
        One-letter sequences (all capped or all uncapped, as ``kwargs["capped"]`` says).
    output : str
        Parent directory; each peptide goes to ``output/<name>``.
    workers : int
        Worker processes (one core each). 1 runs in this process.
    shard : (int, int)
        ``(i, n)``: run only shard i of n (see ``shard_sequences``).
    progress : bool
        Per-run progress bars (one worker), or a bar over peptides (several).
    **kwargs
        Passed to ``simulate``.

    Returns
    -------
    list of RunResult
        In the order of this shard's sorted sequences; failed runs carry ``error``.
    """
    for sequence in sequences:
        systems.parse_sequence(sequence)  # fail early on bad input
    selected = shard_sequences(sequences, *shard)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    if workers == 1 or len(selected) <= 1:
        return [_run_one(s, output, dict(kwargs, progress=progress)) for s in selected]
    import multiprocessing

    from tqdm.auto import tqdm

    results: Dict[str, RunResult] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
        futures = {pool.submit(_run_one, s, output, dict(kwargs, progress=False)): s for s in selected}
        with tqdm(total=len(futures), unit="peptide", disable=not progress) as bar:
            for future in as_completed(futures):
                result = future.result()
                results[futures[future]] = result
                bar.set_postfix_str(result.name + (" failed" if result.error else ""), refresh=False)
                bar.update(1)
    return [results[s] for s in selected]
