"""``openmm-timewarp benchmark``: Timewarp against plain MD, replica exchange and metadynamics, in one run.

Every method runs ``--repeats`` replicas for ``--budget`` wall-clock seconds each (set-up on the
clock), ``--cores`` at a time, on the same machine. The report gives ESS per second and speed-ups
over the best MD baseline for every checked macrostate, populations against the reference
(|ln(p / p_ref)| and z), first-visit times, and the time to 0.3 kT. Writes ``benchmark.json``,
``report.txt``, ``samples.npz`` and PNGs into ``--out``.

The molecule: alanine dipeptide by default (the shipped structure, model and reference); else
``--system`` with a PDB file or a sequence, or a folder written by ``openmm-timewarp fit`` (its
structure and model), and ``--reference`` with a folder written by ``openmm-timewarp reference``.

Examples::

    openmm-timewarp benchmark --budget 150 --repeats 4
    openmm-timewarp benchmark --system runs/fit-VAL --reference runs/ref-VAL
    openmm-timewarp benchmark --methods md-2fs-hmr metadynamics timewarp-mh --budget 60
"""

import argparse
import os
import sys

class _KnownMethods(argparse.Action):
    """``--methods``: checked against the registered methods, which are imported only when the option is given."""

    def __call__(self, parser, namespace, values, option_string=None):
        from ..lab.benchmark.methods import method_names

        known = method_names()
        for value in values:
            if value not in known:
                parser.error(f"argument --methods: invalid choice: {value!r} (choose from {', '.join(known)})")
        setattr(namespace, self.dest, list(values))


def add_arguments(parser):
    parser.add_argument("--system", help="PDB file, sequence (with --capped) or fit folder (default: alanine dipeptide)")
    parser.add_argument("--capped", action="store_true", help="sequence --system: ACE/NME caps")
    parser.add_argument("--preset", help="force-field preset of a PDB or sequence --system")
    parser.add_argument("--temperature-k", type=float, help="kelvin (default: the preset's)")
    parser.add_argument("--flow", help="Timewarp model (file or name; default: the fit folder's, or the shipped "
                                       "alanine-dipeptide model)")
    parser.add_argument("--reference", help="reference.json or a folder from 'openmm-timewarp reference' (default: "
                                            "the packaged alanine-dipeptide reference for alanine dipeptide)")
    parser.add_argument("--methods", nargs="+", metavar="METHOD", action=_KnownMethods,
                        help="methods to run (default: all: md-1fs md-2fs-hmr replica-exchange metadynamics "
                             "timewarp-mh timewarp-mixed timewarp-explore md-4fs-hbonds replica-exchange-4fs-hbonds "
                             "metadynamics-4fs-hbonds timewarp-mh-hbonds, the last only for a model that holds bonds)")
    parser.add_argument("--budget", type=float, default=150.0, help="wall-clock seconds per replica (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=4, help="replicas per method (default %(default)s)")
    parser.add_argument("--cores", type=int, help="replicas at once (default: every core)")
    parser.add_argument("--seed", type=int, default=1, help="replica k gets seed SEED+k (default %(default)s)")
    parser.add_argument("--move-interval", type=int, help="timewarp-mixed: MD steps between moves (default 100)")
    parser.add_argument("--proposals-per-move", type=int, help="Timewarp methods (default: the model's)")
    parser.add_argument("--batch-size", type=int, help="Timewarp methods (default: the model's)")
    parser.add_argument("--out", default="timewarp-benchmark", help="output folder (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    from ..lab.benchmark.inputs import DEFAULT_MODEL, load_system, reference_for, resolve_flow
    from ..lab.benchmark.methods import default_methods
    from ..lab.benchmark.report import full_report
    from ..lab.benchmark.runner import BenchmarkError, run_benchmark

    molecule, default_flow = load_system(args.system, args.capped, args.preset, args.temperature_k)
    flow = resolve_flow(args.flow or default_flow or DEFAULT_MODEL)
    methods = args.methods or default_methods(flow)
    reference = reference_for(molecule, args.reference, packaged=args.system is None)
    if reference is None:
        print("no --reference: populations are not scored (make one with 'openmm-timewarp reference')",
              file=sys.stderr)
    options = {"flow": flow, "mixed_move_interval": args.move_interval, "proposals_per_move": args.proposals_per_move,
               "batch_size": args.batch_size}
    try:
        result = run_benchmark(molecule, methods, args.budget, args.repeats, args.cores, args.seed, options,
                               reference, args.out, progress=not args.no_progress)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    text = full_report(result)
    with open(os.path.join(args.out, "report.txt"), "w") as handle:
        handle.write(text + "\n")
    print(text)
    print(f"\nwrote {args.out}/benchmark.json, report.txt, samples.npz and figures")
    return 0
