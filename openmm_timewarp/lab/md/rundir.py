"""The directory of one MD run: its files, metadata and checkpoints, and how a run resumes.

One run writes a directory::

    <output>/<name>/            name = "AK", or "ACE-A-NME" for capped peptides
        topology.pdb            topology and the minimised starting structure
        trajectory.dcd          production frames, one every save interval
        checkpoint.npz          OpenMM checkpoint + number of frames it belongs to (atomic writes)
        metadata.json           settings, masses, frame count, simulated and wall time

Every checkpoint records the number of frames the trajectory held when it was written. A run can
be killed at any moment: on restart, frames written after the last checkpoint are cut from the DCD,
so the trajectory has no gaps and no duplicated frames, and because the checkpoint carries the
integrator's random state the resumed trajectory is the one an uninterrupted run would have
written (same platform).

metadata.json records the sequence and termini, the force-field preset (name and files),
temperature, time step, friction, hydrogen mass, per-particle masses and atomic numbers, save
interval, seed, platform, the number of checkpointed frames (``num_frames``: the frames a reader
may use), simulated production time, production wall time (``wall_time_s``, summed over all
segments) and whether the requested production is complete. ``settings`` holds what must not
change when a run continues.
"""

import json
import os
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np
import torch  # noqa: F401  (torch before openmm; see openmm_timewarp._stack)
import openmm
from openmm import unit

from ... import __version__
from .._resumable import atomic_write, check_settings, write_json_atomic
from .dcd import truncate_dcd

FORMAT = "openmm-timewarp-md"
FORMAT_VERSION = 1
TRAJECTORY_FILE = "trajectory.dcd"
TOPOLOGY_FILE = "topology.pdb"
CHECKPOINT_FILE = "checkpoint.npz"
METADATA_FILE = "metadata.json"


def _atomic_write(path: str, write: Callable) -> None:
    """Write ``path`` atomically with ``write(handle)`` (a binary file handle)."""
    def to(tmp):
        with open(tmp, "wb") as handle:
            write(handle)

    atomic_write(path, to)


def _write_json(path: str, data: dict) -> None:
    write_json_atomic(path, data)


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


def check_same_settings(directory: str, recorded: dict, requested: dict) -> None:
    """Refuse to continue a run with settings other than those it was made with.

    Parameters
    ----------
    directory : str
        The run directory (for the message).
    recorded : dict
        ``metadata["settings"]`` of the existing run.
    requested : dict
        The settings of this call.

    Raises
    ------
    ValueError
        A setting differs; the message lists each difference.
    """
    check_settings(directory, "a run", recorded, requested)


def new_metadata(name, settings, preset, system, topology, platform_name, save_interval, equilibration_steps,
                 timestep) -> dict:
    """The metadata of a run that has just been equilibrated and has no frames yet.

    Parameters
    ----------
    name : str
        The run's name.
    settings : dict
        What must not change when the run continues (sequence, termini, preset, temperature, ...).
    preset : systems.Preset
    system : openmm.System
        Gives the per-particle masses.
    topology : openmm.app.Topology
    platform_name : str
    save_interval, timestep : openmm.unit.Quantity
    equilibration_steps : int

    Returns
    -------
    dict
    """
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


@dataclass(frozen=True)
class RunDirectory:
    """The files of one run, and the operations that keep them consistent.

    Parameters
    ----------
    directory : str
        ``<output>/<name>``.

    Attributes
    ----------
    trajectory_path, topology_path, checkpoint_path, metadata_path : str
        Paths of the run's files.
    """

    directory: str

    @property
    def trajectory_path(self) -> str:
        return os.path.join(self.directory, TRAJECTORY_FILE)

    @property
    def topology_path(self) -> str:
        return os.path.join(self.directory, TOPOLOGY_FILE)

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.directory, CHECKPOINT_FILE)

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.directory, METADATA_FILE)

    def create(self) -> None:
        """Make the directory (and its parents) if it does not exist."""
        os.makedirs(self.directory, exist_ok=True)

    def can_resume(self) -> bool:
        """Whether a run to continue is here (it has a checkpoint).

        Raises
        ------
        ValueError
            A trajectory without a checkpoint: it cannot be continued, and a new run would overwrite it.
        """
        if os.path.isfile(self.checkpoint_path):
            return True
        if os.path.exists(self.trajectory_path):
            raise ValueError(f"{self.trajectory_path!r} exists but {self.checkpoint_path!r} does not, so it cannot be "
                             "continued; move the directory away or choose another output.")
        return False

    def save_checkpoint(self, context: openmm.Context, frames: int, wall_time: float) -> None:
        """Write a checkpoint (atomically) for a trajectory of ``frames`` frames.

        The trajectory's frames must be on disk first (``DCDWriter.sync``).

        Parameters
        ----------
        context : openmm.Context
        frames : int
            Frames in the trajectory now.
        wall_time : float
            Production wall time so far, seconds.
        """
        checkpoint = np.frombuffer(context.createCheckpoint(), dtype=np.uint8)
        state = openmm.XmlSerializer.serialize(context.getState(getPositions=True, getVelocities=True, getParameters=True))

        def write(handle):
            np.savez(handle, openmm_checkpoint=checkpoint, openmm_state=np.array(state), frames=np.int64(frames),
                     wall_time_s=np.float64(wall_time), platform=np.array(context.getPlatform().getName()))

        _atomic_write(self.checkpoint_path, write)

    def resume(self, context: openmm.Context) -> Tuple[int, float]:
        """Load the last checkpoint into ``context`` and cut the trajectory to its frame count.

        An OpenMM checkpoint that cannot be loaded here (another platform or OpenMM version) is
        replaced, with a warning, by the saved positions and velocities and a fresh random stream.

        Parameters
        ----------
        context : openmm.Context
            Made from the run's System and integrator.

        Returns
        -------
        frames : int
            Frames in the trajectory now.
        wall_time : float
            Production wall time so far, seconds.

        Raises
        ------
        ValueError
            An unreadable checkpoint, or a trajectory with fewer frames than the checkpoint records.
        """
        path = self.checkpoint_path
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
        truncate_dcd(self.trajectory_path, frames)
        return frames, wall_time

    def write_metadata(self, metadata: dict) -> None:
        """Write ``metadata.json`` (atomically)."""
        _write_json(self.metadata_path, metadata)

    def update_metadata(self, metadata: dict, frames: int, wall_time: float, save_ns: float, save_steps: int) -> None:
        """Record the frame count, simulated and wall time and completeness in ``metadata``, and write it.

        Parameters
        ----------
        metadata : dict
            Updated in place.
        frames : int
            Checkpointed frames.
        wall_time : float
            Production wall time, seconds.
        save_ns : float
            Nanoseconds between frames.
        save_steps : int
            Time steps between frames.
        """
        metadata.update({
            "num_frames": frames,
            "simulated_time_ns": frames * save_ns,
            "production_steps": frames * save_steps,
            "wall_time_s": wall_time,
            "steps_per_s": frames * save_steps / wall_time if wall_time > 0 else None,
            "complete": frames >= metadata["production_frames_requested"],
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        self.write_metadata(metadata)
