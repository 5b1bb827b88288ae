"""Flow families: how a kind of flow is made from MD runs, trained, and exported as a contract-1 file.

Training, fine-tuning, export and the command line name a family (``--family``), and every
training folder's ``run.json`` records it with its config, so that one folder can be resumed,
exported or mixed into another model without knowing which family it holds. The contract-1
runtime (integrator, ``TimewarpMove``, checkpoints) never needs to know: it reads files.

A family is registered by name (:func:`register_family`); the built-in ones are
``cartesian`` (the transferable kernel-attention flow, :mod:`.cartesian`) and ``internal``
(one molecule in internal coordinates, :mod:`.internal`).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from torch import nn


@dataclass
class TrainingData:
    """What a family made of MD runs for training.

    Attributes
    ----------
    train, validation : sequence
        Map-style datasets.
    collate : callable
        Items -> a batch the loss understands.
    loss : callable
        ``loss(flow, batch, generator, config, training) -> Tensor``: mean NLL per atom.
    summary : dict
        JSON-ready description of the data (paths, lag, splits, counts, preset, temperature,
        num_atoms, topology), stored in ``run.json``.
    family_state : dict
        JSON-ready facts the family needs to rebuild the model and export it later (for example
        the molecular graph and the Z-matrix), stored in ``run.json``.
    arrays : dict
        In-memory data the family's ``build`` uses (not saved).
    """

    train: Any
    validation: Any
    collate: Callable
    loss: Callable
    summary: Dict[str, Any]
    family_state: Dict[str, Any] = field(default_factory=dict)
    arrays: Dict[str, Any] = field(default_factory=dict)


class FlowFamily(ABC):
    """A kind of flow. Subclasses set ``name``, ``description`` and ``config_type`` (a dataclass)."""

    name: str = ""
    description: str = ""
    config_type: type = dict

    def config(self, values: Optional[Dict[str, Any]] = None):
        """The family's config from a dict (unknown keys are an error)."""
        return self.config_type(**(values or {}))

    @abstractmethod
    def training_data(self, data: Sequence[str], lag_ps: Optional[float], splits: Optional[str] = None) -> TrainingData:
        """Datasets from the runs under ``data``; ``lag_ps`` None asks for a state-independent model."""

    @abstractmethod
    def build(self, config, data: TrainingData) -> nn.Module:
        """A new, untrained flow for this data (with a ``config_dict`` attribute)."""

    @abstractmethod
    def restore(self, run_info: Dict[str, Any]) -> nn.Module:
        """An untrained flow of the shapes a training folder's ``run.json`` describes (weights are loaded by the caller)."""

    @abstractmethod
    def export(self, runs: List[Tuple[nn.Module, Dict[str, Any]]], path: str, *, weights: Sequence[float],
               metadata: Dict[str, Any], **options) -> nn.Module:
        """Write trained flows (with their ``run.json``) as one contract-1 TorchScript file; return the scripted module.

        Several runs make a mixture where the family supports it; ``options`` are family-specific.
        """


_FAMILIES: Dict[str, FlowFamily] = {}


def register_family(family: FlowFamily) -> FlowFamily:
    """Make ``family`` available by its name (replacing one of the same name)."""
    if not family.name:
        raise ValueError("a flow family needs a name")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> FlowFamily:
    """The registered family of that name.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown flow family {name!r}; known: {', '.join(sorted(_FAMILIES))}.") from None


def family_names() -> List[str]:
    """Names of the registered families."""
    return sorted(_FAMILIES)
