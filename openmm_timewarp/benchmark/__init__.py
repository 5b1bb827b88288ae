"""Timewarp vs MD (and other samplers) on the same machine, for the same wall-clock budget and cores.

- :mod:`.methods`: the registry of sampling methods and their driver contract;
- :mod:`.runner`: runs replicas in worker processes and writes the JSON, samples and figures;
- :mod:`.peers`: the peer methods, replica exchange and metadynamics (registered on import);
- :mod:`.summary`: ESS per second, speed-ups over the best MD baseline, exploration times, time to accuracy;
- :mod:`.accuracy`: the time-to-accuracy metric (worst macrostate error vs wall-clock time, time to 0.3 kT);
- :mod:`.report`: text tables; :mod:`.figures`: PNGs; :mod:`.weighted`: estimates from weighted samples.
"""

from .methods import DEFAULT_SETTINGS, Method, get_method, list_methods, register_method
from .runner import run_benchmark

__all__ = ["DEFAULT_SETTINGS", "Method", "get_method", "list_methods", "register_method", "run_benchmark"]
