"""``openmm-timewarp analyze``: macrostates, populations, ESS and Ramachandran plots of peptide runs.

Each trajectory file is one run of the peptide in ``--top`` (any peptide of standard residues,
capped or zwitterionic). For every run it reports, per residue, the population of every
macrostate of :mod:`.peptide` with its block standard error (:func:`.estimates.state_estimates`),
the block and windowed (Sokal) ESS of each state indicator (per wall-clock second with
``--wall-seconds``) and the time each state is first visited; for peptides with more than one
residue, the same for joint states. With a reference (``--reference``, used automatically for
alanine dipeptide) it adds |ln(p / p_ref)| and z-scores, the states the run missed (reference
population at least 1%, never visited) and the Jensen-Shannon divergence of every residue's
Ramachandran histogram. It prints tables and writes ``analysis.json``, one
``ramachandran_<residue>.png`` per residue and, with ``--tica``, ``tica.png`` into ``--out``.

Frame k of a run is taken at time (k + 1) x the frame interval, as a reporter writes its first
frame one interval into the run.
"""

from pathlib import Path

from ..lab.analysis.runs import AnalysisError


def add_arguments(parser):
    parser.add_argument("trajectories", nargs="+", help="trajectory files (DCD, XTC, ...); each is one run")
    parser.add_argument("--top", required=True, help="topology PDB of the trajectories")
    parser.add_argument("--reference", nargs="?", const="", metavar="PATH_OR_DIR",
                        help="reference.json (or a folder holding one) to compare with; alone: the packaged "
                             "alanine-dipeptide reference (used automatically for alanine dipeptide)")
    parser.add_argument("--out", default="timewarp-analysis", help="output folder (default: %(default)s)")
    parser.add_argument("--labels", nargs="+", help="run names (default: file names)")
    parser.add_argument("--frame-ps", type=float, help="simulated ps between frames (default: from the DCD "
                        "header, else 1)")
    parser.add_argument("--wall-seconds", type=float, nargs="+", help="wall-clock seconds of each run, for ESS/s")
    parser.add_argument("--blocks", type=int, default=20, help="blocks per run for error bars and block ESS "
                        "(default: %(default)s)")
    parser.add_argument("--stride", type=int, default=1, help="read every n-th frame")
    parser.add_argument("--tica", action="store_true", help="TICA: fit on --tica-fit (default: the first run)")
    parser.add_argument("--tica-fit", nargs="+", help="trajectories to fit TICA on (e.g. reference MD); implies --tica")
    parser.add_argument("--tica-lag", type=int, default=10, help="TICA lag in frames (default: %(default)s)")
    parser.add_argument("--max-kT", type=float, help="top of the free-energy colour scale")


# ---------------------------------------------------------------- the command


def _checked_lists(args, count: int):
    labels = args.labels or [Path(p).stem for p in args.trajectories]
    if len(labels) != count:
        raise AnalysisError("give one label per trajectory.")
    if len(set(labels)) != count:
        raise AnalysisError("run labels must differ (give --labels).")
    wall = args.wall_seconds or [None] * count
    if len(wall) != count:
        raise AnalysisError("give one --wall-seconds value per trajectory.")
    if any(w is not None and w <= 0 for w in wall):
        raise AnalysisError("--wall-seconds must be positive.")
    if args.blocks < 2 or args.stride < 1:
        raise AnalysisError("--blocks must be at least 2 and --stride at least 1.")
    return labels, wall


def analyze(args):
    """Run the analysis of parsed arguments (see :func:`openmm_timewarp.lab.analysis.runs.analyze_runs`)."""
    from ..lab.analysis.runs import analyze_runs

    labels, wall = _checked_lists(args, len(args.trajectories))
    return analyze_runs(args.trajectories, args.top, labels, wall, args.reference, args.out, args.frame_ps, args.blocks,
                        args.stride, args.tica, args.tica_fit, args.tica_lag, args.max_kT)


def run(args) -> int:
    analyze(args)  # an AnalysisError (a ValueError) becomes a one-line message and exit code 2
    return 0
