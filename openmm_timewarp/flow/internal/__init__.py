"""One molecule in internal coordinates: Z-matrix (:mod:`.zmatrix`), spline-coupling flows
(:mod:`.model`) and the contract-1 proposal that places them in the current rigid frame
(:mod:`.proposal`)."""

from .model import InternalCoordinateFlow, InternalFlowConfig, build_flow
from .proposal import InternalCoordinateProposal
from .zmatrix import InternalCoordinates, ZMatrix, build_zmatrix, peptide_backbone

__all__ = ["InternalCoordinateFlow", "InternalCoordinateProposal", "InternalCoordinates", "InternalFlowConfig",
           "ZMatrix", "build_flow", "build_zmatrix", "peptide_backbone"]
