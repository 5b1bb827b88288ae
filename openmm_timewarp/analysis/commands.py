"""``openmm-timewarp analyze``: torsions, states, ESS, Ramachandran and TICA plots of trajectories.

Each trajectory file is one run. For alanine dipeptide (one phi, one psi) it prints state
populations with block error bars (and their agreement with the reference, ``--reference``) and
the ESS table; for longer peptides the ESS of every torsion. It writes ``analysis.json``,
``ramachandran.png`` and, with TICA, ``tica.png`` into ``--out``.
"""

import json
import sys
from pathlib import Path

def add_arguments(parser):
    parser.add_argument("trajectories", nargs="+", help="trajectory files (DCD, XTC, ...); each is one run")
    parser.add_argument("--top", required=True, help="topology PDB of the trajectories")
    parser.add_argument("--out", default="timewarp-analysis", help="output folder (default: %(default)s)")
    parser.add_argument("--reference", action="store_true",
                        help="compare with the packaged alanine-dipeptide 310 K reference (or --reference-file)")
    parser.add_argument("--reference-file", metavar="JSON", help="a reference JSON in the packaged format; "
                        "implies --reference")
    parser.add_argument("--labels", nargs="+", help="run names (default: file names)")
    parser.add_argument("--frame-ps", type=float, help="simulated ps between frames (default: from the DCD "
                        "header, else 1)")
    parser.add_argument("--wall-seconds", type=float, nargs="+", help="wall-clock seconds of each run, for ESS/s "
                        "and speed-ups (vs the first run)")
    parser.add_argument("--block-ps", type=float, help="block length for error bars and block ESS (default: a "
                        "twentieth of each run)")
    parser.add_argument("--stride", type=int, default=1, help="read every n-th frame")
    parser.add_argument("--tica", action="store_true", help="TICA: fit on --tica-fit (default: the first run)")
    parser.add_argument("--tica-fit", nargs="+", help="trajectories to fit TICA on (e.g. reference MD); implies --tica")
    parser.add_argument("--tica-lag", type=int, default=10, help="TICA lag in frames (default: %(default)s)")
    parser.add_argument("--max-kT", type=float, help="top of the free-energy colour scale")


def _frame_ps(args, path):
    from .torsions import dcd_frame_interval_ps

    if args.frame_ps is not None:
        return args.frame_ps * args.stride
    if str(path).lower().endswith(".dcd"):
        value = dcd_frame_interval_ps(path)
        if value is not None:
            return value * args.stride
    print(f"warning: no frame interval known for {path}; using 1 ps per frame (set --frame-ps)", file=sys.stderr)
    return 1.0 * args.stride


def _speed_up_section(reports, labels, wall, reference):
    from .populations import missed_states
    from .speedup import speed_ups

    visited = {}
    if reference is not None:
        visited = reference["populations"]
    else:
        for report in reports:
            for name, p in report.get("populations", {}).get("populations", {}).items():
                visited[name] = max(visited.get(name, 0.0), p)
    missed = [missed_states(r["populations"]["populations"], visited) if "populations" in r else [] for r in reports]
    rates = [{"wall_s": w, "ess": {k: v["ess"] for k, v in r["ess"].items()}} for r, w in zip(reports, wall)]
    rates_blocks = [{"wall_s": w, "ess": {k: v["ess_blocks"] for k, v in r["ess"].items() if "ess_blocks" in v}}
                    for r, w in zip(reports, wall)]
    out = {}
    for k in range(1, len(reports)):
        out[labels[k]] = {
            "baseline": labels[0],
            "missed_states": missed[k],
            "baseline_missed_states": missed[0],
            "ess": speed_ups(rates[k], rates[0], missed[k], missed[0]),
            "ess_blocks": speed_ups(rates_blocks[k], rates_blocks[0], missed[k], missed[0]),
        }
    return out


def _fit_tics(args, trajectories):
    from .tica import fit_tica, project, tica_features
    from .torsions import load_trajectory

    if args.tica_fit:
        fit_on = [load_trajectory(p, args.top, args.stride) for p in args.tica_fit]
    else:
        fit_on = trajectories[:1]
    model = fit_tica([tica_features(t) for t in fit_on], lag=args.tica_lag)
    return [project(model, tica_features(t)) for t in trajectories]


def _histogram_counts(reference):
    if reference is None or "phi_psi_histogram" not in reference:
        return None
    return reference["phi_psi_histogram"]["counts"]


def _print_dipeptide(report):
    from .report import populations_table

    print(populations_table(report))
    visits = ", ".join(f"{s} {v:g}" if v is not None else f"{s} never" for s, v in report["first_visit_ps"].items())
    print(f"entries into phi > 0: {report['entries_into_phi_positive']}; first visits (ps): {visits}")
    section = report.get("reference", {})
    if "jsd" in section:
        bins = section["jsd_bins"]
        print(f"Jensen-Shannon divergence vs reference ({bins}x{bins} bins, nats): {section['jsd']:.4f}")
    if section.get("missed_states"):
        print("missed states the reference visits: " + ", ".join(section["missed_states"]))


def _analyze_run(args, path, torsions, dipeptide, wall_s, tics, reference):
    from .report import analyze_dipeptide, analyze_peptide

    phi, psi = torsions
    frame_ps = _frame_ps(args, path)
    block = None if args.block_ps is None else max(1, int(round(args.block_ps / frame_ps)))
    if not dipeptide:
        return analyze_peptide(phi, psi, frame_ps, wall_s, tics, block)
    report = analyze_dipeptide(phi[:, 0], psi[:, 0], frame_ps, wall_s, block, reference, _histogram_counts(reference))
    if tics is not None:
        extra = analyze_peptide(phi, psi, frame_ps, wall_s, tics, block)["ess"]
        report["ess"].update({name: v for name, v in extra.items() if name.startswith("TIC")})
    return report


def run(args):
    from .plots import ramachandran_plot, tica_plot
    from .reference import load_reference
    from .report import ess_table, jsonable
    from .torsions import backbone_torsions, load_trajectory, residue_torsions

    paths = [Path(p) for p in args.trajectories]
    labels = args.labels or [p.stem for p in paths]
    if len(labels) != len(paths):
        print("error: give one label per trajectory", file=sys.stderr)
        return 2
    wall = args.wall_seconds or [None] * len(paths)
    if len(wall) != len(paths):
        print("error: give one --wall-seconds value per trajectory", file=sys.stderr)
        return 2
    reference = None
    if args.reference or args.reference_file:
        reference = load_reference(args.reference_file)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    trajectories = [load_trajectory(p, args.top, args.stride) for p in paths]
    torsions = [backbone_torsions(t) for t in trajectories]
    dipeptide = all(phi.shape[1] == 1 and psi.shape[1] == 1 for phi, psi in torsions)
    tics = _fit_tics(args, trajectories) if (args.tica or args.tica_fit) else [None] * len(paths)

    reports = {}
    for k, label in enumerate(labels):
        report = _analyze_run(args, paths[k], torsions[k], dipeptide, wall[k], tics[k], reference)
        report["trajectory"] = str(paths[k])
        reports[label] = report
        wall_text = f", {wall[k]:g} s wall" if wall[k] is not None else ""
        print(f"== {label}: {report['samples']} frames, {report['time_ps'] / 1000:.4g} ns{wall_text}")
        if dipeptide:
            _print_dipeptide(report)
        print(ess_table(report))
        print()

    summary = {"runs": reports, "files": {}}
    if all(w is not None for w in wall) and len(reports) > 1:
        summary["speed_up"] = _speed_up_section(list(reports.values()), labels, wall, reference)
        for name, section in summary["speed_up"].items():
            values = ", ".join(f"{obs} {value}" for obs, value in section["ess"].items())
            print(f"speed-up of {name} vs {section['baseline']} (ESS/s ratio): {values}")

    # Ramachandran plot: every residue with both torsions, pooled.
    runs = {label: tuple(a.ravel() for a in residue_torsions(t)) for label, t in zip(labels, trajectories)}
    counts = _histogram_counts(reference) if dipeptide else None
    summary["files"]["ramachandran"] = ramachandran_plot(runs, out / "ramachandran.png", reference_counts=counts,
                                                         max_kT=args.max_kT)
    if tics[0] is not None:
        summary["files"]["tica"] = tica_plot(dict(zip(labels, tics)), out / "tica.png", max_kT=args.max_kT)
    summary["files"]["json"] = str(out / "analysis.json")
    with open(out / "analysis.json", "w", encoding="utf-8") as handle:
        json.dump(jsonable(summary), handle, indent=1)
    print("wrote " + ", ".join(summary["files"].values()))
    return 0
