"""Sampling methods behind one protocol: plain MD, replica exchange, metadynamics, Timewarp.

Each is a :class:`~.base.Sampler` (set up, advance, current sample, weight, statistics) with a
settings dataclass; :func:`~.base.run_for` runs any of them for a wall-clock budget. The benchmark
compares them, ``fit`` explores with replica exchange, and users can run them directly.
"""

from .base import Molecule, Recording, Sampler, equilibrate, run_for
from .md import MDSettings, MolecularDynamics
from .metadynamics import Metadynamics, MetadynamicsSettings
from .replica_exchange import ReplicaExchange, ReplicaExchangeSettings, geometric_ladder
from .timewarp import TimewarpSampler, TimewarpSettings

__all__ = ["MDSettings", "Metadynamics", "MetadynamicsSettings", "Molecule", "MolecularDynamics", "Recording",
           "ReplicaExchange", "ReplicaExchangeSettings", "Sampler", "TimewarpSampler", "TimewarpSettings",
           "equilibrate", "geometric_ladder", "run_for"]
