"""``openmm-timewarp benchmark``: Timewarp vs MD (and registered peers) on this machine, same budget, same cores.

Each method runs one replica per core for ``--budget`` wall-clock seconds of sampling (set-up and
equilibration before the clock, for every method); ``--repeats`` independent replicas in all, in
rounds of ``--cores``. The report gives ESS per second, speed-ups over the best MD baseline, state
populations against the 310 K reference, the time to first visit each state, and the time to
0.3 kT: the wall-clock time after which the worst macrostate error |ln(p / p_ref)| (median over
the repeats) stays below 0.3 kT, censored "> budget" when it never does, with Timewarp's
(timewarp-mh) time compared with every other sampler's. Writes ``benchmark.json``, ``samples.npz``,
``ramachandran.png``, ``ess_per_s.png`` and ``error_vs_time.png`` into ``--out``.

Examples::

    openmm-timewarp benchmark --flow my-flow.pt
    openmm-timewarp benchmark --methods replica-exchange metadynamics md-2fs-hmr timewarp-mh
    openmm-timewarp benchmark --methods replica-exchange metadynamics md-2fs-hmr timewarp-mh \
        --budget 600 --repeats 8
"""

import json
import os
import sys

DEFAULT_MODEL = "alanine-dipeptide"
DEFAULT_METHODS = ("md-1fs", "md-2fs-hmr", "replica-exchange", "metadynamics", "timewarp-mh", "timewarp-mixed",
                   "timewarp-mixed-hmr", "timewarp-explore")
DEFAULT_BUDGET_S = 30.0


class FlowNotFoundError(ValueError):
    """No flow was given and the shipped default model is not installed, or the given one does not exist."""


def resolve_flow(flow=None):
    """The file of a flow given as a path or a model name; default: the shipped alanine-dipeptide model.

    Names are turned into paths here so that worker processes need no model registry.

    Parameters
    ----------
    flow : str, optional
        A TorchScript file or a model name (:func:`openmm_timewarp.list_models`).

    Returns
    -------
    str
        Absolute path of the TorchScript file.

    Raises
    ------
    FlowNotFoundError
        With a message saying what to pass instead.
    """
    from ..models import list_models, model_path

    if flow is None:
        if DEFAULT_MODEL not in list_models():
            installed = ", ".join(list_models()) or "none"
            raise FlowNotFoundError(f"the shipped model '{DEFAULT_MODEL}' is not installed (installed models: "
                                    f"{installed}). Pass --flow PATH with a Timewarp flow file (TorchScript, flow "
                                    "contract 1) for alanine dipeptide, or a model name.")
        return model_path(DEFAULT_MODEL)
    if os.path.isfile(flow):
        return os.path.abspath(flow)
    if flow in list_models():
        return model_path(flow)
    raise FlowNotFoundError(f"--flow {flow!r} is neither a file nor an installed model (installed: "
                            f"{', '.join(list_models()) or 'none'}).")


def _setting(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser):
    from .methods import DEFAULT_SETTINGS

    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                        help="sampling methods (--list-methods shows them; default: %(default)s)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                        help="wall-clock seconds of sampling per replica (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=None, metavar="N",
                        help="replicas at once, one process per core (default: all cores)")
    parser.add_argument("--repeats", type=int, default=None, metavar="R",
                        help="independent repeats per method, each one replica on one core with its own seed, "
                             "run --cores at a time: ESS sums over them, first-visit times and the time to "
                             "0.3 kT take their median (default: --cores; rounded up to a multiple of it)")
    parser.add_argument("--accuracy-threshold", type=float, default=0.3, metavar="KT",
                        help="accuracy threshold of the time-to-accuracy metric, kT (default: %(default)s)")
    parser.add_argument("--flow", metavar="PATH_OR_NAME",
                        help=f"Timewarp flow: TorchScript file or model name (default: '{DEFAULT_MODEL}' if installed)")
    parser.add_argument("--move-interval", type=int, default=DEFAULT_SETTINGS["move_interval"],
                        help="timewarp-mixed: MD steps between moves (default: %(default)s)")
    parser.add_argument("--proposals-per-move", type=int, default=DEFAULT_SETTINGS["proposals_per_move"],
                        help="MH (or exploration) steps per move (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_SETTINGS["batch_size"],
                        help="proposals per flow call (default: %(default)s)")
    parser.add_argument("--energy-threshold", type=float, default=DEFAULT_SETTINGS["energy_threshold_kJ_mol"],
                        help="timewarp-explore: largest energy rise kept, kJ/mol (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="replica k gets seed SEED+k (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other driver setting (JSON value), e.g. --set equilibration_ps=20")
    parser.add_argument("--out", default="timewarp-benchmark", metavar="DIR",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--list-methods", action="store_true", help="list the sampling methods and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _list_methods():
    from .methods import get_method, list_methods

    for name in list_methods():
        method = get_method(name)
        kind = "MD baseline" if method.baseline else ("Boltzmann" if method.boltzmann else "exploration only")
        print(f"{name:<20}{kind:<18}{method.description}")
    return 0


def run(args):
    from .methods import get_method
    from .report import format_report
    from .runner import BenchmarkError, run_benchmark

    if args.list_methods:
        return _list_methods()
    try:
        kinds = [get_method(name) for name in args.methods]
        if not args.accuracy_threshold > 0:
            raise ValueError(f"--accuracy-threshold must be positive, got {args.accuracy_threshold}")
        settings = dict(_setting(text) for text in args.set)
        settings.update(move_interval=args.move_interval, proposals_per_move=args.proposals_per_move,
                        batch_size=args.batch_size, energy_threshold_kJ_mol=args.energy_threshold)
        if any(k.needs_flow for k in kinds):
            settings["flow"] = resolve_flow(args.flow)
            settings["flow_name"] = args.flow or DEFAULT_MODEL
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        result = run_benchmark(args.methods, args.budget, cores=args.cores, repeats=args.repeats, settings=settings,
                               out=args.out, seed=args.seed, progress=not args.no_progress,
                               threshold_kT=args.accuracy_threshold)
    except (BenchmarkError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print()
    print(format_report(result))
    print()
    print("wrote " + ", ".join([*result["files"].values(), *result["figures"].values()]))
    return 0
