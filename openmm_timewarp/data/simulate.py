"""Molecular dynamics of one peptide: minimise, equilibrate, then save production frames.

``simulate`` builds the peptide (or reads a starting structure), minimises it, equilibrates it
(not saved) and runs production with ``LangevinMiddleIntegrator``, writing a run directory (see
``openmm_timewarp.data.rundir``): the minimised topology, a DCD of production frames, checkpoints
and metadata. The same call (or command) continues an interrupted run from its last checkpoint,
bit for bit as an uninterrupted run on the same platform, and a longer ``production`` than before
extends a finished run.

Frame k (0-based) is the configuration (k + 1) save intervals after equilibration.

Many peptides at once, in worker processes and shards: ``openmm_timewarp.data.pool``.
"""

import os
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch  # noqa: F401  (torch before openmm; see openmm_timewarp._stack)
import openmm
from openmm import unit

from .. import systems
from ..units import as_quantity, in_unit
from .dcd import DCDWriter
from .rundir import RunDirectory, check_same_settings, new_metadata, read_metadata


def _whole(ratio: float, what: str) -> int:
    count = int(round(ratio))
    if count < 1 or abs(ratio - count) > 1e-6 * max(1.0, abs(ratio)):
        raise ValueError(what)
    return count


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
        Set (by ``openmm_timewarp.data.pool.simulate_many``) when the run failed.
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

    temperature_q = None if temperature is None else as_quantity(temperature, unit.kelvin, "temperature")
    timestep = as_quantity(timestep, unit.femtosecond, "timestep")
    friction = as_quantity(friction, unit.picosecond ** -1, "friction")
    save_interval = as_quantity(save_interval, unit.picosecond, "save_interval")
    equilibration = as_quantity(equilibration, unit.picosecond, "equilibration")
    production = as_quantity(production, unit.nanosecond, "production")
    hydrogen_mass = None if hydrogen_mass is None else as_quantity(hydrogen_mass, unit.amu, "hydrogen_mass")
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
    run = RunDirectory(os.path.join(output, name))
    run.create()
    directory = run.directory
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

    resume = run.can_resume()
    if resume:
        metadata = read_metadata(directory)
        check_same_settings(directory, metadata["settings"], settings)
        platform_name = metadata["platform"]
        if platform not in (None, "auto", platform_name):
            raise ValueError(f"{directory!r} was run on the {platform_name} platform; continue it there (its checkpoint "
                             f"is platform-specific) or use a new output directory.")
        topology, _ = systems.read_pdb(run.topology_path)
        system = systems.create_system(topology, preset, hydrogen_mass)
    else:
        if topology is None:
            topology, positions = systems.build_peptide(sequence, capped, phi=phi, psi=psi)
        system = systems.create_system(topology, preset, hydrogen_mass)
        positions, _ = systems.minimize(system, positions)  # on Reference: the same start on every machine
        systems.write_pdb(topology, positions, run.topology_path)
        # Continue from the file, as a resumed run does: the same topology gives the same System
        # (force terms in the same order), so a resumed trajectory is bit-for-bit the uninterrupted one.
        topology, positions = systems.read_pdb(run.topology_path)
        system = systems.create_system(topology, preset, hydrogen_mass)
        platform_name = systems.platform_by_name(platform, system, positions).getName()

    integrator = openmm.LangevinMiddleIntegrator(temperature_q, friction, timestep)
    integrator.setRandomNumberSeed(int(seed))
    context = openmm.Context(system, integrator, systems.platform_by_name(platform_name))

    if resume:
        frames, wall_time = run.resume(context)  # also cuts frames written after the checkpoint
    else:
        started = time.perf_counter()
        context.setPositions(positions)
        context.setVelocitiesToTemperature(temperature_q, int(seed))
        integrator.step(equilibration_steps)
        context.setTime(0.0)
        context.setStepCount(0)
        frames, wall_time = 0, 0.0
        metadata = new_metadata(name, settings, preset, system, topology, platform_name, save_interval,
                                equilibration_steps, timestep)
        metadata["equilibration_wall_time_s"] = time.perf_counter() - started
        run.write_metadata(metadata)
        run.save_checkpoint(context, 0, wall_time)

    metadata["production_frames_requested"] = max(target_frames, frames)
    if target_frames < frames:
        warnings.warn(f"{directory} already holds {frames} frames, more than the {target_frames} asked for; "
                      "nothing is removed.", RuntimeWarning, stacklevel=2)
    first_frames = frames
    save_ns = save_interval.value_in_unit(unit.nanosecond)
    with DCDWriter(run.trajectory_path, topology, timestep, save_steps, append=resume) as dcd:
        bar = tqdm(total=target_frames, initial=frames, unit="frame", desc=name, disable=not progress or frames >= target_frames,
                   dynamic_ncols=True, leave=True)
        segment_start = time.perf_counter()
        since_checkpoint = 0
        try:
            while frames < target_frames:
                integrator.step(save_steps)
                dcd.write(context.getState(getPositions=True).getPositions(asNumpy=True))
                frames += 1
                since_checkpoint += 1
                if since_checkpoint >= checkpoint_interval or frames == target_frames:
                    dcd.sync()
                    elapsed = time.perf_counter() - segment_start
                    run.save_checkpoint(context, frames, wall_time + elapsed)
                    run.update_metadata(metadata, frames, wall_time + elapsed, save_ns, save_steps)
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
        run.update_metadata(metadata, frames, wall_time, save_ns, save_steps)
    return RunResult(name, directory, frames, frames - first_frames, frames >= target_frames)


def _torsion_record(value):
    """Starting torsions as JSON (degrees): None, one angle, or a list with None entries."""
    if value is None:
        return None
    if unit.is_quantity(value) or np.ndim(value) == 0:
        return in_unit(value, unit.degree, "torsion")
    return [None if v is None else in_unit(v, unit.degree, "torsion") for v in value]
