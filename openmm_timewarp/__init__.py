"""openmm-timewarp: learned, time-coarsened Timewarp moves for OpenMM.

Importing this package imports torch before openmm (the openmm-torch plugin needs libtorch
loaded first) and repairs the plugin if openmm was imported earlier.
"""

from . import _stack

_stack.check_stack()

from .contract import CONTRACT_VERSION, FlowContractError, FlowInfo, load_flow  # noqa: E402
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from .integrator import TimewarpIntegrator  # noqa: E402
from .kernel import TimewarpKernel  # noqa: E402
from .models import list_models, register_model  # noqa: E402
from .reporter import TimewarpReporter  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name):
    # TimewarpMove needs openmmtools (optional): imported only when asked for.
    if name == "TimewarpMove":
        from .openmmtools_move import TimewarpMove

        return TimewarpMove
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONTRACT_VERSION",
    "FlowContractError",
    "FlowInfo",
    "TimewarpIntegrator",
    "TimewarpKernel",
    "TimewarpReporter",
    "list_models",
    "load_checkpoint",
    "load_flow",
    "register_model",
    "save_checkpoint",
    "__version__",
]
