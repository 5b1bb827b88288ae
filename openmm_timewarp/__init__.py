"""openmm-timewarp: learned, time-coarsened Timewarp moves for OpenMM.

The public names are loaded on first use, so that ``import openmm_timewarp`` and the command
line's ``--help`` stay fast. Every runtime module that needs OpenMM imports torch first and
repairs the openmm-torch plugin if openmm was imported earlier (:mod:`openmm_timewarp._stack`).
"""

import importlib
import sys

from ._moved import MovedModules

__version__ = "0.1.0"

if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(MovedModules())

# public name -> the runtime module that defines it
_PUBLIC = {
    "CONTRACT_VERSION": "contract",
    "FlowContractError": "contract",
    "FlowInfo": "contract",
    "load_flow": "contract",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "TimewarpIntegrator": "integrator",
    "TimewarpKernel": "kernel",
    "MoveStatistics": "kernel",
    "list_models": "models",
    "register_model": "models",
    "TimewarpReporter": "reporter",
    "TimewarpMove": "openmmtools_move",  # needs openmmtools: loaded only when asked for
}


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = sorted(set(_PUBLIC) - {"TimewarpMove"}) + ["__version__"]
