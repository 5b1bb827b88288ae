"""The Timewarp kernel: one move on an OpenMM Context, shared by the integrator and the openmmtools move.

- :mod:`.prepare`: validation of the System and Context, atom matching, binding;
- :mod:`.constraints`: bond constraints the flow holds, and the mass-metric term of their measure;
- :mod:`.walks`: the state-dependent walk and the buffered state-independent walk;
- :mod:`.cache`: the energy and density cache and the proposal buffer, tied to their Context;
- :mod:`.state`: exact-restart state (``getState`` / ``setState``) and its JSON encoding;
- :mod:`.statistics`: :class:`MoveStatistics` snapshots;
- :mod:`.core`: :class:`TimewarpKernel`, which holds them together.

See ``docs/kernel-cache.md`` for what invalidates the cache.
"""

from ..contract import check_independence
from .core import DEFAULT_BATCH_SIZE, DEFAULT_PROPOSALS_PER_MOVE, MODES, TimewarpKernel
from .prepare import check_system
from .state import STATE_VERSION, decode_state, encode_state, pack_array, unpack_array
from .statistics import MoveStatistics
from .walks import auxiliary_log_density

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_PROPOSALS_PER_MOVE", "MODES", "MoveStatistics", "STATE_VERSION",
           "TimewarpKernel", "auxiliary_log_density", "check_independence", "check_system", "decode_state",
           "encode_state", "pack_array", "unpack_array"]
