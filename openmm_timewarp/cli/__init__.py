"""The ``openmm-timewarp`` command: thin subcommands over the Python API.

Each subcommand lives in its own module, which defines ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so ``--help`` is fast
and a sampling user never imports the training stack.
"""

import argparse
import importlib
import importlib.util
import sys

# what a command raises for input it cannot use
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)

# name -> (module, one-line help)
SUBCOMMANDS = {
    "simulate": ("openmm_timewarp.cli.simulate", "run MD for peptide sequences (resumable, sharded)"),
    "peptide-data": ("openmm_timewarp.cli.peptide_data", "training data of the transferable model: many peptides (resumable, sharded)"),
    "train": ("openmm_timewarp.cli.train", "train a Timewarp flow on MD data"),
    "peptides-train": ("openmm_timewarp.cli.peptides_train", "train the transferable peptides model (resumable; torchrun for data-parallel)"),
    "finetune": ("openmm_timewarp.cli.finetune", "fine-tune a trained flow for MH acceptance"),
    "export": ("openmm_timewarp.cli.export", "export a trained flow to a TorchScript contract-1 file"),
    "reference": ("openmm_timewarp.cli.reference", "equilibrium populations with errors by long, resumable replica exchange"),
    "analyze": ("openmm_timewarp.cli.analyze", "torsions, states, ESS and Ramachandran plots of runs"),
    "peptides-evaluate": ("openmm_timewarp.cli.peptides_evaluate", "zero-shot evaluation of a transferable model over many peptides"),
    "benchmark": ("openmm_timewarp.cli.benchmark", "Timewarp vs MD (and peers) on the same machine, same budget"),
    "demo": ("openmm_timewarp.cli.demo", "alanine dipeptide: shipped model vs the best MD baseline"),
    "models": ("openmm_timewarp.cli.models", "list the shipped models"),
    "fit": ("openmm_timewarp.cli.fit", "your own peptide to a trained, checked model in one command (resumable)"),
}


def _available():
    found = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # its parent package is not installed
            present = False
        if present:
            found[name] = (module, help_text)
    return found


def build_parser(load=None):
    parser = argparse.ArgumentParser(prog="openmm-timewarp", description="Timewarp moves for OpenMM.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"openmm-timewarp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _available().items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == load:
            importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(load=command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(_available()[args.command][0])
    try:
        return int(module.run(args) or 0)
    except USER_ERRORS as error:
        # a user's input the command cannot use: one line, exit code 2 (never a traceback)
        print(f"openmm-timewarp {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
