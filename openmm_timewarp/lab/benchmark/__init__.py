"""Timewarp against plain MD, replica exchange and metadynamics, for any peptide, on the same machine and budget.

- :mod:`.methods`: the methods by name, each a :class:`~openmm_timewarp.lab.samplers.Sampler`;
- :mod:`.runner`: every method's replicas in worker processes, the JSON, the samples, the figures;
- :mod:`.metrics`: ESS per second, populations against a reference, first visits, time to accuracy,
  speed-ups (one censored-ratio type);
- :mod:`.report`: text tables from the JSON; :mod:`.figures`: PNGs.
"""

from .methods import DEFAULT_METHODS, Method, get_method, method_names, register_method
from .runner import BenchmarkError, run_benchmark

__all__ = ["BenchmarkError", "DEFAULT_METHODS", "Method", "get_method", "method_names", "register_method",
           "run_benchmark"]
