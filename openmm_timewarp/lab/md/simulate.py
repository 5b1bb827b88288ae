"""Molecular dynamics of one peptide: minimise, equilibrate, then save production frames.

``simulate`` builds the peptide (or reads a starting structure), minimises it, equilibrates it
(not saved) and runs production with ``LangevinMiddleIntegrator``, writing a run directory (see
``openmm_timewarp.lab.md.rundir``): the minimised topology, a DCD of production frames, checkpoints
and metadata. The same call (or command) continues an interrupted run from its last checkpoint,
bit for bit as an uninterrupted run on the same platform, and a longer ``production_ps`` than before
extends a finished run.

Frame k (0-based) is the configuration (k + 1) save intervals after equilibration.

Many peptides at once, in worker processes and shards: ``openmm_timewarp.lab.md.pool``.
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
from ..system_file import SystemFile, with_bonds
from ...units import as_quantity, in_unit, optional_quantity
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
        Set (by ``openmm_timewarp.lab.md.pool.simulate_many``) when the run failed.
    """

    name: str
    directory: str
    frames: int = 0
    new_frames: int = 0
    complete: bool = False
    error: Optional[str] = None


@dataclass(frozen=True)
class _Schedule:
    """The physical settings of one run as Quantities, and the step counts they give."""

    temperature: unit.Quantity
    timestep: unit.Quantity
    friction: unit.Quantity
    hydrogen_mass: Optional[unit.Quantity]
    constraints: str  # "none", "hbonds" or "allbonds"
    save_interval: unit.Quantity
    save_steps: int
    target_frames: int
    equilibration_steps: int


def _schedule(preset, temperature_K, timestep_ps, friction_per_ps, hydrogen_mass_amu, save_interval_ps,
              equilibration_ps, production_ps, constraints=None) -> _Schedule:
    """Check the settings (bare numbers in OpenMM units, or Quantities) and count the steps they take."""
    temperature = optional_quantity(temperature_K, unit.kelvin, "temperature_K")
    if temperature is None:
        temperature = preset.temperature
    timestep = as_quantity(timestep_ps, unit.picosecond, "timestep_ps")
    friction = as_quantity(friction_per_ps, unit.picosecond ** -1, "friction_per_ps")
    save_interval = as_quantity(save_interval_ps, unit.picosecond, "save_interval_ps")
    equilibration = as_quantity(equilibration_ps, unit.picosecond, "equilibration_ps")
    production = as_quantity(production_ps, unit.picosecond, "production_ps")
    hydrogen_mass = optional_quantity(hydrogen_mass_amu, unit.amu, "hydrogen_mass_amu")
    if timestep.value_in_unit(unit.femtosecond) <= 0:
        raise ValueError(f"timestep must be positive, got {timestep}.")
    save_steps = _whole(save_interval / timestep,
                        f"save_interval {save_interval} is not a whole number of time steps of {timestep}.")
    target_frames = _whole(production / save_interval,
                           f"production {production} is not a whole number (>= 1) of save intervals of {save_interval}.")
    constraints = systems.constraint_option(constraints)
    if constraints == "none" and hydrogen_mass is None and timestep > 1.5 * unit.femtosecond:
        warnings.warn(f"a {timestep} step without constraints or hydrogen mass repartitioning may be unstable; "
                      "use hydrogen_mass_amu=3 with 2 fs, or 1 fs.", RuntimeWarning, stacklevel=3)
    if constraints != "none" and timestep > 2.5 * unit.femtosecond and (
            hydrogen_mass is None or hydrogen_mass < 3.5 * unit.amu):
        warnings.warn(f"a {timestep} step with {constraints} constraints needs hydrogen mass repartitioning: use "
                      "hydrogen_mass_amu=4 with 4 fs, or 2 fs.", RuntimeWarning, stacklevel=3)
    return _Schedule(temperature, timestep, friction, hydrogen_mass, constraints, save_interval, save_steps,
                     target_frames, int(round(equilibration / timestep)))


def _starting_structure(sequence, capped, start_pdb, phi, psi):
    """(sequence, capped, start record, topology, positions) of a run; topology and positions are None
    for a peptide still to be built."""
    if start_pdb is not None:
        topology, positions = systems.read_pdb(start_pdb)
        pdb_sequence, pdb_capped = systems.sequence_of(topology)
        if sequence is not None and (systems.normalize_sequence(sequence), capped) != (pdb_sequence, pdb_capped):
            raise ValueError(f"start_pdb {start_pdb!r} holds {systems.peptide_name(pdb_sequence, pdb_capped)}, "
                             f"not {systems.peptide_name(sequence, capped)}.")
        if phi is not None or psi is not None:
            raise ValueError("phi/psi set the torsions of a built peptide; they cannot be combined with start_pdb.")
        return pdb_sequence, pdb_capped, {"kind": "pdb", "path": os.path.abspath(start_pdb)}, topology, positions
    if sequence is None:
        raise ValueError("give a sequence (e.g. 'AK') or start_pdb.")
    start = {"kind": "built", "phi_deg": _torsion_record(phi), "psi_deg": _torsion_record(psi)}
    return systems.normalize_sequence(sequence), capped, start, None, None


def _system_file_start(preset, sequence, start_pdb, phi, psi, name):
    """(topology, positions, start record, molecule name) of a run of a System file's molecule."""
    if start_pdb is None or name is None:
        raise ValueError("a run of a System file needs start_pdb (a PDB of its atoms) and a name.")
    if sequence is not None or phi is not None or psi is not None:
        raise ValueError("sequence, phi and psi describe built peptides; a System file's run starts from start_pdb.")
    topology, positions = systems.read_pdb(start_pdb)
    if topology.getNumAtoms() != preset.system().getNumParticles():
        raise ValueError(f"{start_pdb!r} has {topology.getNumAtoms()} atoms, not those of the System in "
                         f"{preset.path!r}.")
    return (with_bonds(topology, preset.bonds), positions, {"kind": "pdb", "path": os.path.abspath(start_pdb)},
            preset.molecule_name)


def simulate(output: str, sequence: Optional[str] = None, *, capped: bool = False, start_pdb: Optional[str] = None,
             phi=None, psi=None, preset: str = systems.DEFAULT_PRESET, temperature_K=None,
             timestep_ps=0.001, friction_per_ps=1.0, hydrogen_mass_amu=None, save_interval_ps=1.0,
             equilibration_ps=100.0, production_ps=1000.0, seed: int = 0, platform: Optional[str] = None,
             checkpoint_interval: int = 100, progress: bool = True,
             callback: Optional[Callable[[int], None]] = None, name: Optional[str] = None,
             constraints: Optional[str] = None) -> RunResult:
    """Run (or continue) MD of one peptide and save its trajectory.

    Bare numbers are in OpenMM units (ps, 1/ps, K, amu); Quantities are converted.

    Parameters
    ----------
    output : str
        Parent directory; the run goes to ``output/<name>``.
    sequence : str, optional
        One-letter sequence (see ``systems.build_peptide``). Needed unless ``start_pdb`` is given
        (always given, with ``name``, for a System file's molecule).
    capped : bool
        ACE/NME caps (``"A"`` with ``capped=True`` is alanine dipeptide).
    start_pdb : str, optional
        Start from this structure (with hydrogens) instead of building one; its sequence must
        match ``sequence`` when both are given.
    phi, psi : float or openmm.unit.Quantity, optional
        Starting backbone torsions of a built peptide (degrees), e.g. phi=60, psi=40 to start in alphaL.
    preset : str or ForceFieldPreset
        Force-field preset, a key of ``systems.PRESETS``, or a
        :class:`openmm_timewarp.lab.system_file.SystemFile` (its System, as it is).
    temperature_K : float or openmm.unit.Quantity, optional
        Kelvin; default the preset's (310 K).
    timestep_ps : float or openmm.unit.Quantity
        Picoseconds (default 0.001, 1 fs). Without ``hydrogen_mass_amu`` keep it at 1 fs (no constraints).
    friction_per_ps : float or openmm.unit.Quantity
        Collision rate, 1/ps.
    hydrogen_mass_amu : float or openmm.unit.Quantity, optional
        Hydrogen mass repartitioning (amu), e.g. 3 for a 2 fs step.
    save_interval_ps : float or openmm.unit.Quantity
        Picoseconds between saved frames; a whole number of time steps.
    equilibration_ps : float or openmm.unit.Quantity
        Picoseconds of MD after minimisation, not saved.
    production_ps : float or openmm.unit.Quantity
        Picoseconds to save (default 1000, 1 ns); a whole number of save intervals.
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
    constraints : {None, "none", "hbonds", "allbonds"}
        Bond constraints (recorded in the run's settings; training reads them); default none, or a
        System file's own. The fastest valid setting: ``constraints="hbonds", hydrogen_mass_amu=4,
        timestep_ps=0.004``.

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        Bad sequence or settings, or an existing run in that directory made with other settings.
    TypeError
        A Quantity in units of the wrong dimension.
    """
    preset = systems.get_preset(preset)
    if isinstance(preset, SystemFile):  # its own constraints, checked before anything is written
        preset.check_constraints(constraints)
        constraints = preset.constraints
    schedule = _schedule(preset, temperature_K, timestep_ps, friction_per_ps, hydrogen_mass_amu, save_interval_ps,
                         equilibration_ps, production_ps, constraints)
    if checkpoint_interval < 1:
        raise ValueError(f"checkpoint_interval must be at least 1 frame, got {checkpoint_interval}.")
    molecule = None
    if isinstance(preset, SystemFile):
        topology, positions, start, molecule = _system_file_start(preset, sequence, start_pdb, phi, psi, name)
    else:
        sequence, capped, start, topology, positions = _starting_structure(sequence, capped, start_pdb, phi, psi)

    name = name or systems.peptide_name(sequence, capped)
    run = RunDirectory(os.path.join(output, name))
    run.create()
    settings = {
        "sequence": sequence,
        "capped": capped,
        "preset": preset.name,
        "temperature_K": schedule.temperature.value_in_unit(unit.kelvin),
        "timestep_fs": schedule.timestep.value_in_unit(unit.femtosecond),
        "friction_per_ps": schedule.friction.value_in_unit(unit.picosecond ** -1),
        "hydrogen_mass_amu": None if schedule.hydrogen_mass is None else schedule.hydrogen_mass.value_in_unit(unit.amu),
        "save_interval_steps": schedule.save_steps,
        "seed": int(seed),
        "start": start,
    }
    if schedule.constraints != "none":  # runs made before the option existed resume with the same settings
        settings["constraints"] = schedule.constraints
    if molecule is not None:  # a PDB read back would take template bonds: the run records the System's graph
        settings.update(sequence=None, capped=False, molecule=molecule, bonds=[list(b) for b in preset.bonds])
    resume = run.can_resume()
    context, integrator, topology, metadata, frames, wall_time = _open_run(
        run, settings, preset, schedule, name, sequence, capped, phi, psi, topology, positions, platform, seed, resume)

    metadata["production_frames_requested"] = max(schedule.target_frames, frames)
    if schedule.target_frames < frames:
        warnings.warn(f"{run.directory} already holds {frames} frames, more than the {schedule.target_frames} asked "
                      "for; nothing is removed.", RuntimeWarning, stacklevel=2)
    first_frames = frames
    frames = _production(run, context, integrator, topology, metadata, schedule, name, frames, wall_time, resume,
                         checkpoint_interval, progress, callback)
    return RunResult(name, run.directory, frames, frames - first_frames, frames >= schedule.target_frames)


def _open_run(run: RunDirectory, settings: dict, preset, schedule: _Schedule, name: str, sequence, capped, phi, psi,
              topology, positions, platform, seed: int, resume: bool):
    """The Context of a run, at its last checkpoint (``resume``) or minimised and equilibrated (a new
    run, whose metadata and first checkpoint it writes): (context, integrator, topology, metadata,
    frames, wall-clock seconds so far)."""
    if resume:
        metadata = read_metadata(run.directory)
        check_same_settings(run.directory, metadata["settings"], settings)
        platform_name = metadata["platform"]
        if platform not in (None, "auto", platform_name):
            raise ValueError(f"{run.directory!r} was run on the {platform_name} platform; continue it there (its "
                             f"checkpoint is platform-specific) or use a new output directory.")
        topology, _ = systems.read_pdb(run.topology_path)
        system = systems.create_system(topology, preset, schedule.hydrogen_mass, schedule.constraints)
    else:
        topology, positions, system, platform_name = _minimised_start(run, preset, schedule, sequence, capped, phi,
                                                                      psi, topology, positions, platform)
    integrator = openmm.LangevinMiddleIntegrator(schedule.temperature, schedule.friction, schedule.timestep)
    integrator.setRandomNumberSeed(int(seed))
    context = openmm.Context(system, integrator, systems.platform_by_name(platform_name))
    if resume:
        frames, wall_time = run.resume(context)  # also cuts frames written after the checkpoint
        return context, integrator, topology, metadata, frames, wall_time
    started = time.perf_counter()
    context.setPositions(positions)
    context.setVelocitiesToTemperature(schedule.temperature, int(seed))
    integrator.step(schedule.equilibration_steps)
    context.setTime(0.0)
    context.setStepCount(0)
    metadata = new_metadata(name, settings, preset, system, topology, platform_name, schedule.save_interval,
                            schedule.equilibration_steps, schedule.timestep)
    metadata["equilibration_wall_time_s"] = time.perf_counter() - started
    run.write_metadata(metadata)
    run.save_checkpoint(context, 0, 0.0)
    return context, integrator, topology, metadata, 0, 0.0


def _minimised_start(run: RunDirectory, preset, schedule: _Schedule, sequence, capped, phi, psi, topology, positions,
                     platform):
    """Build (or take) the structure, minimise it and write the run's topology: (topology, positions,
    system, platform name) of a new run."""
    if topology is None:
        topology, positions = systems.build_peptide(sequence, capped, phi=phi, psi=psi)
    system = systems.create_system(topology, preset, schedule.hydrogen_mass, schedule.constraints)
    positions, _ = systems.minimize(system, positions)  # on Reference: the same start on every machine
    systems.write_pdb(topology, positions, run.topology_path)
    # Continue from the file, as a resumed run does: the same topology gives the same System
    # (force terms in the same order), so a resumed trajectory is bit-for-bit the uninterrupted one.
    topology, positions = systems.read_pdb(run.topology_path)
    system = systems.create_system(topology, preset, schedule.hydrogen_mass, schedule.constraints)
    return topology, positions, system, systems.platform_by_name(platform, system, positions).getName()


def _production(run: RunDirectory, context, integrator, topology, metadata: dict, schedule: _Schedule, name: str,
                frames: int, wall_time: float, resume: bool, checkpoint_interval: int, progress: bool,
                callback: Optional[Callable[[int], None]]) -> int:
    """Save frames up to ``schedule.target_frames``, with checkpoints; returns the frame count reached."""
    from tqdm.auto import tqdm

    target_frames, save_steps = schedule.target_frames, schedule.save_steps
    first_frames = frames
    save_ns = schedule.save_interval.value_in_unit(unit.nanosecond)
    with DCDWriter(run.trajectory_path, topology, schedule.timestep, save_steps, append=resume) as dcd:
        bar = tqdm(total=target_frames, initial=frames, unit="frame", desc=name,
                   disable=not progress or frames >= target_frames, dynamic_ncols=True, leave=True)
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
                    bar.set_postfix_str(f"{(frames - first_frames) * save_ns / elapsed * 86400:.1f} ns/day",
                                        refresh=False)
                if callback is not None:
                    callback(frames)
        finally:
            bar.close()
    wall_time += time.perf_counter() - segment_start
    if frames == first_frames:
        run.update_metadata(metadata, frames, wall_time, save_ns, save_steps)
    return frames


def _torsion_record(value):
    """Starting torsions as JSON (degrees): None, one angle, or a list with None entries."""
    if value is None:
        return None
    if unit.is_quantity(value) or np.ndim(value) == 0:
        return in_unit(value, unit.degree, "torsion")
    return [None if v is None else in_unit(v, unit.degree, "torsion") for v in value]
