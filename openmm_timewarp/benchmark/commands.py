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

import json
import os
import sys

from .methods import DEFAULT_METHODS

DEFAULT_MODEL = "alanine-dipeptide"


def resolve_flow(flow):
    """The absolute path of a model given as a file or a shipped/registered name (worker processes need no registry).

    Raises
    ------
    ValueError
        Neither a file nor a known model; the message lists the installed ones.
    """
    from ..models import list_models, model_path

    if os.path.isfile(flow):
        return os.path.abspath(flow)
    if flow in list_models():
        return model_path(flow)
    raise ValueError(f"model {flow!r} is neither a file nor an installed model (installed: "
                     f"{', '.join(list_models()) or 'none'}).")


def load_system(system, capped=False, preset=None, temperature_k=None):
    """The molecule and its default model for ``--system`` (None: alanine dipeptide and the shipped model)."""
    from ..fit import FIT_FILE
    from ..molecule import load_molecule

    if system is None:
        from ..systems import structure_path

        return load_molecule(structure_path("alanine-dipeptide")), DEFAULT_MODEL
    if os.path.isdir(system):
        with open(os.path.join(system, FIT_FILE)) as handle:
            request = json.load(handle)["request"]
        molecule = load_molecule(os.path.join(system, "structure.pdb"), preset=request["preset"],
                                 forcefield=request["forcefield"] or None, temperature_K=request["temperature_K"])
        return molecule, os.path.join(system, "model.pt")
    return load_molecule(system, capped, preset or "amber99sbildn-obc", temperature_K=temperature_k), None


def add_arguments(parser):
    from .methods import method_names

    parser.add_argument("--system", help="PDB file, sequence (with --capped) or fit folder (default: alanine dipeptide)")
    parser.add_argument("--capped", action="store_true", help="sequence --system: ACE/NME caps")
    parser.add_argument("--preset", help="force-field preset of a PDB or sequence --system")
    parser.add_argument("--temperature-k", type=float, help="kelvin (default: the preset's)")
    parser.add_argument("--flow", help="Timewarp model (file or name; default: the fit folder's, or the shipped "
                                       "alanine-dipeptide model)")
    parser.add_argument("--reference", help="reference.json or a folder from 'openmm-timewarp reference' (default: "
                                            "the packaged alanine-dipeptide reference for alanine dipeptide)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=method_names(),
                        help="methods to run (default: all)")
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
    from ..analysis.reference import load_reference
    from .report import full_report
    from .runner import BenchmarkError, run_benchmark

    try:
        molecule, default_flow = load_system(args.system, args.capped, args.preset, args.temperature_k)
        flow = resolve_flow(args.flow or default_flow or DEFAULT_MODEL)
        if args.reference:
            reference = load_reference(args.reference)
        elif args.system is None:
            reference = load_reference()
        else:
            reference = None
            print("no --reference: populations are not scored (make one with 'openmm-timewarp reference')",
                  file=sys.stderr)
        if reference is not None and reference.molecule != molecule.name:
            raise ValueError(f"the reference is for {reference.molecule}, the system is {molecule.name}.")
        if reference is not None and abs(reference.temperature_K - molecule.temperature_K) > 1e-6:
            raise ValueError(f"the reference is at {reference.temperature_K:g} K, the system at "
                             f"{molecule.temperature_K:g} K.")
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    options = {"flow": flow, "mixed_move_interval": args.move_interval, "proposals_per_move": args.proposals_per_move,
               "batch_size": args.batch_size}
    try:
        result = run_benchmark(molecule, args.methods, args.budget, args.repeats, args.cores, args.seed, options,
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
