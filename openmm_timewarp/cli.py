"""The ``openmm-timewarp`` command: thin subcommands over the Python API.

Each subcommand lives in its own module, which defines ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so ``--help`` is fast
and a sampling user never imports the training stack.
"""

import argparse
import importlib
import importlib.util
import sys

# name -> (module, one-line help)
SUBCOMMANDS = {
    "simulate": ("openmm_timewarp.data.commands", "run MD for peptide sequences (resumable, sharded)"),
    "peptide-data": ("openmm_timewarp.data.peptide_set_commands", "training data of the transferable model: many peptides (resumable, sharded)"),
    "train": ("openmm_timewarp.training.commands", "train a Timewarp flow on MD data"),
    "finetune": ("openmm_timewarp.training.finetune_commands", "fine-tune a trained flow for MH acceptance"),
    "export": ("openmm_timewarp.training.export_commands", "export a trained flow to a TorchScript contract-1 file"),
    "reference": ("openmm_timewarp.data.reference_commands", "equilibrium populations with errors by long, resumable replica exchange"),
    "analyze": ("openmm_timewarp.analysis.commands", "torsions, states, ESS and Ramachandran plots of runs"),
    "benchmark": ("openmm_timewarp.benchmark.commands", "Timewarp vs MD (and peers) on the same machine, same budget"),
    "demo": ("openmm_timewarp.demo", "alanine dipeptide: shipped model vs the best MD baseline"),
    "models": ("openmm_timewarp.models.commands", "list the shipped models"),
    "fit": ("openmm_timewarp.fit", "your own peptide to a trained, checked model in one command (resumable)"),
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
    from . import __version__

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
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
