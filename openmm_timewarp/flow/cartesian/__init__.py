"""The paper's transferable kernel-attention flow over Cartesian displacements (see :mod:`.model`)."""

from .export import ContractFlow, export_flow
from .model import FlowConfig, TimewarpFlow

__all__ = ["ContractFlow", "FlowConfig", "TimewarpFlow", "export_flow"]
