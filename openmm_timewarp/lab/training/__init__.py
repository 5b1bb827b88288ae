"""Training flows: the family registry, likelihood training, energy-based fine-tuning.

Importing the package registers the built-in families, ``cartesian`` and ``internal``.
"""

from . import cartesian, internal  # noqa: F401  (register the built-in families)
from .families import FlowFamily, TrainingData, family_names, get_family, register_family

__all__ = ["FlowFamily", "TrainingData", "family_names", "get_family", "register_family"]
