"""The library behind ``openmm-timewarp analyze``: per-run state tables, references, figures (see the command)."""

import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..jsonio import dump_json
from . import states
from .divergence import jensen_shannon_divergence, torsion_histogram
from .estimates import weighted_estimate
from .peptide import PeptideObservables
from .reference import Reference
from .states import table_dict, windowed_ess

JSD_BINS = 36
MISSED_THRESHOLD = 0.01
MAX_JOINT_ROWS = 12
ALANINE_DIPEPTIDE = ("ACE", "ALA", "NME")


class AnalysisError(ValueError):
    """An input the analysis cannot use (the message says why)."""


# ---------------------------------------------------------------- inputs


def peptide_observables(topology, name: str = "the topology") -> PeptideObservables:
    """The observables of a peptide topology, or an :class:`AnalysisError` saying it is not one."""
    try:
        return PeptideObservables(topology)
    except ValueError as error:
        raise AnalysisError(f"{name}: {error}") from error


def is_alanine_dipeptide(topology, observables: PeptideObservables) -> bool:
    """Whether the topology is ACE-ALA-NME: the single residue ``ALA2`` between the caps."""
    names = tuple(residue.name for residue in topology.residues())
    return names == ALANINE_DIPEPTIDE and [r.label for r in observables.residues] == ["ALA2"]


def molecule_name(topology) -> str:
    """The peptide's name as references record it (``ACE-AA-NME``, ``AK``)."""
    from .. import systems

    try:
        return systems.peptide_name(*systems.sequence_of(topology))
    except ValueError as error:
        raise AnalysisError(f"cannot name the molecule to check a reference against: {error}") from error


def choose_reference(option: Optional[str], topology, observables: PeptideObservables) -> Optional[Reference]:
    """The reference to compare with: ``option`` (``""``: the packaged one); without it, the packaged
    one for alanine dipeptide and none otherwise.

    Raises
    ------
    AnalysisError
        The reference cannot be read, or is for another molecule.
    """
    from .reference import load_reference

    if option is None and not is_alanine_dipeptide(topology, observables):
        return None
    try:
        reference = load_reference(option or None)
    except (OSError, ValueError, KeyError) as error:
        raise AnalysisError(str(error)) from error
    molecule = molecule_name(topology)
    if reference.molecule != molecule:
        raise AnalysisError(f"the reference is for {reference.molecule}, the topology is {molecule}: give a "
                            f"reference of {molecule} (make one with 'openmm-timewarp reference').")
    return reference


def trajectory_atom_count(path) -> Optional[int]:
    """Atoms per frame of a trajectory file (None if the format does not say without a topology)."""
    import mdtraj

    try:
        with mdtraj.open(str(path)) as handle:
            return int(handle.read(n_frames=1)[0].shape[1])
    except Exception:  # formats that need a topology to read, or no frame at all
        return None


def load_run(path, top, num_atoms: int, stride: int):
    """A trajectory as mdtraj.Trajectory, after checking it has the topology's atoms."""
    from .torsions import load_trajectory

    if not Path(path).is_file():
        raise AnalysisError(f"no trajectory file at {str(path)!r}.")
    count = trajectory_atom_count(path)
    if count is not None and count != num_atoms:
        raise AnalysisError(f"{path} has {count} atoms per frame, the topology {top} has {num_atoms}: "
                            f"they are not the same molecule.")
    try:
        return load_trajectory(path, top, stride)
    except (OSError, ValueError) as error:
        raise AnalysisError(f"cannot read {path} with the topology {top}: {error}") from error


def frame_interval_ps(frame_ps: Optional[float], stride: int, path) -> float:
    """Simulated ps between the frames read: ``frame_ps``, else the DCD header, else 1 (with a warning)."""
    from .torsions import dcd_frame_interval_ps

    if frame_ps is not None:
        return frame_ps * stride
    if str(path).lower().endswith(".dcd"):
        value = dcd_frame_interval_ps(path)
        if value is not None:
            return value * stride
    print(f"warning: no frame interval known for {path}; using 1 ps per frame (set --frame-ps)", file=sys.stderr)
    return 1.0 * stride


# ---------------------------------------------------------------- one run


def joint_indicators(observables: PeptideObservables, values: np.ndarray,
                     extra_names: Sequence[str] = ()) -> Dict[str, np.ndarray]:
    """Indicator of every joint state visited (and of ``extra_names``, e.g. the reference's)."""
    labels = observables.joint_labels(values)
    names = sorted(set(labels) | set(extra_names))
    return {name: labels == name for name in names}


def state_table(indicators: Dict[str, np.ndarray], frame_ps: float, num_blocks: int, wall_s: Optional[float] = None,
                reference_states: Optional[Dict[str, Dict[str, float]]] = None) -> Dict[str, Dict[str, Any]]:
    """The JSON entries of :func:`openmm_timewarp.lab.analysis.states.state_table` for one run.

    Parameters
    ----------
    indicators : dict
        State name -> bool array over the run's frames.
    frame_ps : float
        Simulated ps between frames; frame k is at (k + 1) x ``frame_ps`` (``first_visit_ps``).
    num_blocks : int
        Blocks for the standard error and block ESS.
    wall_s : float, optional
        Wall-clock seconds of the run: adds ESS per second and first visits in wall-clock seconds
        (frame k at (k + 1) x ``wall_s`` / frames).
    reference_states : dict, optional
        State name -> {"population", "stderr"}: adds ``reference``, ``reference_stderr``,
        ``error_kT`` (|ln(p / p_ref)|) and ``z`` for the states it holds.

    Returns
    -------
    dict
        State name -> figures (:meth:`StateFigures.to_dict`).
    """
    return table_dict(states.state_table(indicators, num_blocks, frame_ps=frame_ps, wall_s=wall_s,
                                         reference_states=reference_states))


def missed_states(table: Dict[str, Dict[str, Any]], reference_states: Dict[str, Dict[str, float]],
                  threshold: float = MISSED_THRESHOLD) -> List[str]:
    """States with reference population at least ``threshold`` that the run never visited."""
    return [name for name, ref in reference_states.items()
            if ref["population"] >= threshold and name in table and table[name]["population"] <= 0.0]


def ramachandran_columns(observables: PeptideObservables) -> Dict[str, tuple]:
    """Residue label -> (phi column, psi column) of every residue with both torsions (proline included)."""
    residues = list(observables.topology.residues())
    pairs: Dict[int, Dict[str, int]] = {}
    for column, torsion in enumerate(observables.torsions):
        if torsion.kind in ("phi", "psi"):
            pairs.setdefault(torsion.residue, {})[torsion.kind] = column
    return {f"{residues[k].name}{residues[k].id}": (p["phi"], p["psi"])
            for k, p in sorted(pairs.items()) if "phi" in p and "psi" in p}


def reference_counts(reference: Optional[Reference], residue: str, bins: Optional[int] = None) -> Optional[np.ndarray]:
    """The reference's (phi, psi) counts of a residue, rebinned to ``bins`` where possible (None if absent)."""
    if reference is None or residue not in reference.histograms:
        return None
    counts = reference.histograms[residue]
    if bins is None or counts.shape[0] % bins:
        return counts
    return reference.histogram(residue, bins)


def residue_jsd(observables: PeptideObservables, values: np.ndarray, reference: Reference) -> Dict[str, float]:
    """Jensen-Shannon divergence (nats) of every residue's Ramachandran histogram from the reference's."""
    out = {}
    for label, (phi, psi) in ramachandran_columns(observables).items():
        counts = reference_counts(reference, label, JSD_BINS)
        if counts is not None:
            run = torsion_histogram(values[:, phi], values[:, psi], counts.shape[0])
            out[label] = jensen_shannon_divergence(run, counts)
    return out


def analyze_run(observables: PeptideObservables, values: np.ndarray, frame_ps: float, num_blocks: int = 20,
                wall_s: Optional[float] = None, reference: Optional[Reference] = None) -> Dict[str, Any]:
    """Every figure of one run from its torsions.

    Parameters
    ----------
    observables : PeptideObservables
    values : numpy.ndarray [frames, torsions]
        Degrees, columns as ``observables.torsions``.
    frame_ps : float
        Simulated ps between frames.
    num_blocks : int
        Blocks for standard errors and block ESS.
    wall_s : float, optional
        Wall-clock seconds of the run.
    reference : Reference, optional
        Of the same molecule.

    Returns
    -------
    dict
        ``frames``, ``frame_ps``, ``time_ps``, ``wall_s``, ``num_blocks``, ``residues`` (label ->
        state table, see :func:`state_table`), ``joint_states`` (peptides of more than one
        residue) and, with a reference, ``missed_states`` and ``jsd`` (residue -> nats).
    """
    values = np.atleast_2d(np.asarray(values, dtype=float))
    indicators = observables.indicators(values, extra=True)
    ref_states = reference.states if reference is not None else None
    residues = {}
    for residue in observables.residues:
        names = [f"{residue.label}:{s}" for s in residue.states + residue.extra_states]
        residues[residue.label] = state_table({n: indicators[n] for n in names}, frame_ps, num_blocks, wall_s,
                                              ref_states)
    report = {"frames": int(len(values)), "frame_ps": float(frame_ps), "time_ps": float(len(values) * frame_ps),
              "wall_s": None if wall_s is None else float(wall_s), "num_blocks": int(num_blocks),
              "residues": residues}
    ref_joint = reference.joint_states if reference is not None else {}
    if len(observables.residues) > 1:
        joint = joint_indicators(observables, values, list(ref_joint))
        report["joint_states"] = state_table(joint, frame_ps, num_blocks, wall_s, ref_joint)
    if reference is not None:
        flat = {name: entry for table in residues.values() for name, entry in table.items()}
        report["missed_states"] = (missed_states(flat, reference.states) +
                                   missed_states(report.get("joint_states", {}), ref_joint))
        report["jsd"] = residue_jsd(observables, values, reference)
    return report


def tic_table(tics: np.ndarray, num_blocks: int, wall_s: Optional[float] = None) -> Dict[str, Dict[str, float]]:
    """Block and windowed ESS of the first two TICs of a run (per second with ``wall_s``)."""
    table = {}
    for k in range(min(2, tics.shape[1])):
        _, _, ess_block = weighted_estimate(tics[:, k], num_blocks=num_blocks)
        entry = {"ess_block": ess_block, "ess_window": windowed_ess(tics[:, k])}
        if wall_s is not None:
            entry.update(ess_block_per_s=ess_block / wall_s, ess_window_per_s=entry["ess_window"] / wall_s)
        table[f"TIC{k}"] = entry
    return table


def project_tics(trajectories, fit_paths, top, stride: int, lag: int, num_atoms: int) -> List[np.ndarray]:
    """TICA fitted on ``fit_paths`` (default: the first run), every run projected onto it."""
    from .tica import fit_tica, project, tica_features

    fit_on = [load_run(p, top, num_atoms, stride) for p in fit_paths] if fit_paths else trajectories[:1]
    try:
        model = fit_tica([tica_features(t) for t in fit_on], lag=lag)
    except ValueError as error:
        raise AnalysisError(f"TICA: {error}") from error
    return [project(model, tica_features(t)) for t in trajectories]


# ---------------------------------------------------------------- text and JSON


def _fmt(value, spec=".3g", width=9) -> str:
    text = "-" if value is None else (str(value) if isinstance(value, float) and not math.isfinite(value)
                                      else format(value, spec))
    return f"{text:>{width}}"


def state_lines(title: str, table: Dict[str, Dict[str, Any]], per_s: bool, with_reference: bool,
                width: int = 14) -> List[str]:
    """Rows of a state table: p, its error, block and windowed ESS (per s), first visit (reference agreement)."""
    header = f"{title:<{width}}{'p':>9}{'+-':>9}{'ESS blk':>9}{'ESS win':>9}"
    header += f"{'blk/s':>9}{'win/s':>9}" if per_s else ""
    header += f"{'first ps':>9}"
    header += f"{'p_ref':>9}{'|ln p/pr|':>10}{'z':>8}" if with_reference else ""
    lines = [header]
    for name, e in table.items():
        short = name.split(":", 1)[1] if ":" in name else name
        line = (f"  {short:<{width - 2}}{_fmt(e['population'], '.4f')}{_fmt(e['stderr'], '.2g')}"
                f"{_fmt(e['ess_block'], '.4g')}{_fmt(e['ess_window'], '.4g')}")
        if per_s:
            line += _fmt(e["ess_block_per_s"]) + _fmt(e["ess_window_per_s"])
        line += _fmt(e["first_visit_ps"], ".4g")
        if with_reference:
            line += (_fmt(e.get("reference"), ".4f") + _fmt(e.get("error_kT"), ".3f", 10) +
                     _fmt(e.get("z"), ".2f", 8))
        lines.append(line)
    return lines


def joint_rows(table: Dict[str, Dict[str, Any]], limit: int = MAX_JOINT_ROWS) -> Dict[str, Dict[str, Any]]:
    """The ``limit`` most populated joint states (by run, then reference population)."""
    order = sorted(table, key=lambda s: (-table[s]["population"], -table[s].get("reference", 0.0), s))
    return {name: table[name] for name in order[:limit]}


def run_text(label: str, report: Dict[str, Any], with_reference: bool) -> str:
    """The printed tables of one run."""
    wall = f", {report['wall_s']:g} s wall" if report["wall_s"] is not None else ""
    lines = [f"== {label}: {report['frames']} frames of {report['frame_ps']:g} ps "
             f"({report['time_ps'] / 1000:.4g} ns{wall}), {report['num_blocks']} blocks"]
    per_s = report["wall_s"] is not None
    for residue, table in report["residues"].items():
        lines += state_lines(residue, table, per_s, with_reference)
    if "joint_states" in report:
        joint = report["joint_states"]
        shown = joint_rows(joint)
        width = max([len(s) for s in shown] + [12]) + 3
        lines += state_lines("joint", shown, per_s, with_reference, width)
        if len(joint) > len(shown):
            lines.append(f"  ({len(joint) - len(shown)} more joint states in analysis.json)")
    if "tics" in report:
        lines.append("TICA: " + "; ".join(f"{name} ESS blk {e['ess_block']:.4g}, win {e['ess_window']:.4g}"
                                          for name, e in report["tics"].items()))
    if report.get("jsd"):
        lines.append(f"Jensen-Shannon divergence vs reference ({JSD_BINS}x{JSD_BINS} bins, nats): " +
                     ", ".join(f"{r} {v:.4f}" for r, v in report["jsd"].items()))
    if "missed_states" in report:
        missed = ", ".join(report["missed_states"]) or "none"
        lines.append(f"missed states (reference >= {MISSED_THRESHOLD:.0%}, never visited): {missed}")
    return "\n".join(lines)


def reference_text(reference: Optional[Reference], option: Optional[str]) -> str:
    if reference is None:
        return "reference: none (give --reference to compare)"
    source = "packaged" if not option else option
    return (f"reference: {reference.molecule} at {reference.temperature_K:g} K ({reference.preset}, "
            f"{reference.simulated_ns:g} ns; {source})")


def _figures(observables, runs_values, labels, reference, out: Path, max_kT) -> Dict[str, str]:
    """One Ramachandran PNG per residue (reference first, one colour scale)."""
    from .plots import RAMACHANDRAN_BINS, ramachandran_plot

    files = {}
    for residue, (phi, psi) in ramachandran_columns(observables).items():
        counts = reference_counts(reference, residue)
        bins = RAMACHANDRAN_BINS if counts is None else counts.shape[0]
        runs = {label: (v[:, phi], v[:, psi]) for label, v in zip(labels, runs_values)}
        files[f"ramachandran_{residue}"] = ramachandran_plot(runs, out / f"ramachandran_{residue}.png", bins=bins,
                                                             reference_counts=counts, max_kT=max_kT, title=residue)
    return files


def analyze_runs(trajectories: Sequence[str], top: str, labels: Sequence[str], wall: Sequence[Optional[float]],
                 reference_option: Optional[str] = None, out: str = "timewarp-analysis", frame_ps: Optional[float] = None,
                 blocks: int = 20, stride: int = 1, tica: bool = False, tica_fit: Optional[Sequence[str]] = None,
                 tica_lag: int = 10, max_kT: Optional[float] = None) -> Dict[str, Any]:
    """Analyse runs of one peptide: print the tables, write ``analysis.json`` and figures; returns the summary.

    Raises
    ------
    AnalysisError
        An input the analysis cannot use.
    """
    from .. import systems

    try:
        topology, _ = systems.read_pdb(top)
    except (OSError, ValueError) as error:
        raise AnalysisError(f"cannot read the topology {top}: {error}") from error
    observables = peptide_observables(topology, top)
    reference = choose_reference(reference_option, topology, observables)
    num_atoms = topology.getNumAtoms()
    paths = list(trajectories)
    loaded = [load_run(p, top, num_atoms, stride) for p in paths]
    values = [observables.values(t.xyz.astype(np.float64)) for t in loaded]
    tics = None
    if tica or tica_fit:
        tics = project_tics(loaded, tica_fit, top, stride, tica_lag, num_atoms)

    print(f"{molecule_label(topology)}: residues {', '.join(r.label for r in observables.residues)}; "
          f"{reference_text(reference, reference_option)}")
    runs = {}
    for k, (label, path) in enumerate(zip(labels, paths)):
        run_frame_ps = frame_interval_ps(frame_ps, stride, path)
        report = analyze_run(observables, values[k], run_frame_ps, blocks, wall[k], reference)
        report["trajectory"] = str(path)
        if tics is not None:
            report["tics"] = tic_table(tics[k], blocks, wall[k])
        runs[label] = report
        print(run_text(label, report, reference is not None))
        print()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = _figures(observables, values, labels, reference, out, max_kT)
    if tics is not None:
        from .plots import tica_plot

        files["tica"] = tica_plot(dict(zip(labels, tics)), out / "tica.png", max_kT=max_kT)
    files["json"] = str(out / "analysis.json")
    summary = {"molecule": molecule_label(topology), "topology": str(top),
               "residues": [r.label for r in observables.residues], "torsions": observables.names,
               "reference": None if reference is None else {"molecule": reference.molecule,
                                                            "temperature_K": reference.temperature_K,
                                                            "preset": reference.preset,
                                                            "source": reference_option or "packaged"},
               "runs": runs, "files": files}
    with open(out / "analysis.json", "w", encoding="utf-8") as handle:
        dump_json(summary, handle, indent=1)
    print("wrote " + ", ".join(files.values()))
    return summary


def molecule_label(topology) -> str:
    """The molecule's name, or ``peptide`` when it has residues other than standard ones and caps."""
    try:
        return molecule_name(topology)
    except AnalysisError:
        return "peptide"
