"""The energy and density cache of the state a kernel left, and the buffer of proposals, tied to their Context.

What the kernel caches (U(x) and log q(x) of the state it left, and unused proposals of a
state-independent flow) is valid only for the Context and System it was computed with. The
cache remembers a cheap fingerprint of both (the Context object, the System object, its numbers
of particles, forces and constraints) and forgets everything when the fingerprint changes. Force parameters
edited in place cannot be seen cheaply: after ``updateParametersInContext`` or
``Context.reinitialize`` call :meth:`EnergyCache.clear` (``invalidateCache`` of the integrator).
"""

import weakref
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch


@dataclass
class Left:
    """What the kernel left in the Context after its last move: reused while nothing else changed it."""

    positions: np.ndarray
    energy: float
    groups: object
    parameters: Dict[str, float]
    log_q: Optional[float]
    signs: Optional[torch.Tensor] = None


def system_shape(system) -> Tuple[int, ...]:
    """(particles, forces, constraints) of a System: what a restored cache is checked against (the
    buffered proposals hold the constrained bonds, and their densities carry the constraints' metric)."""
    return system.getNumParticles(), system.getNumForces(), system.getNumConstraints()


class EnergyCache:
    """The state the kernel left (:class:`Left`) and the proposal buffer, valid for one Context and System."""

    def __init__(self):
        self.left: Optional[Left] = None
        self.buffer = None
        self._context = None  # weak reference to the Context the contents belong to
        self._system = None  # address of its System
        self.shape: Optional[Tuple[int, ...]] = None  # (particles, forces, constraints) of that System

    def clear(self):
        """Forget the cached energy, density and buffered proposals."""
        self.left = None
        self.buffer = None

    def follow(self, context):
        """Tie the cache to ``context``; forget its contents if they came from another Context or System.

        A cache restored from a saved state has no Context yet: it adopts the first one whose System
        has the saved numbers of particles, forces and constraints.
        """
        system = context.getSystem()
        shape, address = system_shape(system), int(system.this)
        bound = self._context() if self._context is not None else None
        if bound is None and self._context is not None:  # its Context is gone
            self.clear()
        elif bound is not None and (bound is not context or address != self._system):
            self.clear()
        if self.shape is not None and shape != self.shape:
            self.clear()
        self._context, self._system, self.shape = weakref.ref(context), address, shape

    def detach(self, shape=None):
        """Keep the contents but no Context (after a restore): the next :meth:`follow` adopts one."""
        self._context, self._system, self.shape = None, None, shape

    def lookup(self, positions, parameters, groups) -> Optional[Left]:
        """The state the kernel left, if the Context still holds it with the same parameters and groups."""
        left = self.left
        if (left is not None and left.groups == groups and left.parameters == parameters
                and np.array_equal(left.positions, positions)):
            return left
        return None
