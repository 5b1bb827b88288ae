"""Binding a kernel to a Context: validation of the System, matching atoms, what moves need.

A model that carries its molecular graph is matched to the System's atoms
(:mod:`openmm_timewarp.matching`): positions go into the flow in the model's atom order and come
back in the System's.
"""

import math
import warnings
import weakref
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch
from openmm import unit

from .. import atoms as _atoms
from ..chirality import find_chirality_centres
from ..contract import (FlowInfo, bind_flow, check_flow_outputs, check_frame_atoms, check_independence,
                        flow_evaluation)
from ..matching import MoleculeMismatchError, candidate_mappings, check_mapping
from .constraints import Holds, bind_constraints, release

# Systems at most this large run faster on the Reference platform than on CPU, unless a force of
# these kinds (the CPU platform's are compiled; OBC1 implicit solvent is a CustomGBForce) dominates.
_SMALL_SYSTEM = 200
_CPU_FASTER = ("CustomGBForce", "CustomNonbondedForce")
_NM = unit.nanometer


def check_system(system):
    """Raise ValueError for Systems that Timewarp moves cannot sample (a periodic box).

    Constraints are checked against the flow when binding (:func:`.constraints.bind_constraints`).
    """
    if system.usesPeriodicBoundaryConditions():
        raise ValueError(
            "periodic Systems (explicit solvent, a periodic box) are out of scope of flow contract version 1: "
            "the proposals do not know periodic images or the solvent. Use an implicit-solvent or vacuum System "
            "(createSystem(..., nonbondedMethod=NoCutoff or CutoffNonPeriodic), for example amber14 with "
            "implicit/obc2.xml), or run plain MD for the solvated System."
        )


@dataclass
class Binding:
    """What moves on one Context need: the atom mapping and the model's view of the molecule."""

    context: weakref.ref
    mapping: np.ndarray  # mapping[k]: System index of the model's atom k
    inverse: np.ndarray
    numbers: torch.Tensor  # the model's atomic numbers, on the flow's device
    centres: torch.Tensor  # [C, 4] chirality centres (model order)
    has_virtual_sites: bool
    num_atoms: int
    components: List[str]
    frame_atoms: Tuple[int, ...] = ()  # model order; () when buffered proposals cannot be re-placed
    holds: Optional[Holds] = None  # the System's constrained bonds, held by the flow (None: no constraints)
    info: Optional[FlowInfo] = None  # the flow's FlowInfo for this molecule (after its bind step, if any)


def _check_compatible(info, system, numbers, temperature, context, stacklevel):
    """Atom count and elements against the flow; warnings for temperature and platform."""
    n = system.getNumParticles()
    if info.num_atoms not in (0, n) and not info.has_graph:  # a graph gets the matching's detailed report
        raise ValueError(f"the flow {info.source} is made for {info.num_atoms} atoms, but the System has "
                         f"{n} particles. Use a model trained for this molecule or a transferable one.")
    if info.elements and not info.has_graph:
        unknown = sorted(set(numbers) - set(info.elements))
        if unknown:
            raise ValueError(f"the flow {info.source} does not know elements with atomic numbers {unknown}; "
                             f"it knows {sorted(info.elements)}.")
    if temperature is not None and info.temperature and abs(info.temperature - temperature) > 1e-6:
        warnings.warn(f"the flow {info.source} was trained at {info.temperature:g} K; moves run at "
                      f"{temperature:g} K. Sampling stays exact in mode 'mh', but acceptance may drop.",
                      RuntimeWarning, stacklevel=stacklevel + 1)
    custom = any(type(force).__name__ in _CPU_FASTER for force in system.getForces())
    if context.getPlatform().getName() == "CPU" and n <= _SMALL_SYSTEM and not custom:
        warnings.warn(f"this {n}-atom System runs on the CPU platform; for molecules this small the "
                      "Reference platform is usually 10-30x faster (openmm.Platform.getPlatformByName"
                      "('Reference')).", RuntimeWarning, stacklevel=stacklevel + 1)


def match_atoms(flow, info, device, numbers, bonds, positions, names, pinned=None):
    """The model-to-System atom mapping: ``pinned`` (a restored state's) if it fits, else the best candidate."""
    if pinned is not None and check_mapping(pinned, info.atomic_numbers, info.bonds, numbers, bonds):
        return pinned
    try:
        candidates = candidate_mappings(info.atomic_numbers, info.bonds, info.handedness, numbers, bonds,
                                        positions, names)
    except MoleculeMismatchError as error:
        raise MoleculeMismatchError(f"the System is not the molecule the flow {info.source} was trained on: "
                                    f"{error}") from None
    if len(candidates) == 1:
        return candidates[0]
    x = torch.as_tensor(np.stack([positions[c] for c in candidates]), dtype=torch.float32, device=device)
    numbers_model = torch.tensor(list(info.atomic_numbers), dtype=torch.int64, device=device)
    with flow_evaluation():
        scores = flow.log_prob(x, numbers_model, x, torch.zeros_like(x)).detach().cpu()
    scores = torch.where(torch.isnan(scores), torch.full_like(scores, -math.inf), scores)
    return candidates[int(torch.argmax(scores))]


def _check_independent_flow(flow, info, model_numbers, x_model, device, stacklevel):
    """The bind-time independence check, and a warning if the start has zero density."""
    check_independence(flow, info, model_numbers, x_model, device)
    if info.frame_atoms:
        check_frame_atoms(flow, info, model_numbers, x_model, device)
    start = torch.as_tensor(x_model, dtype=torch.float32, device=device).unsqueeze(0)
    numbers_t = torch.as_tensor(model_numbers, dtype=torch.int64, device=device)
    with flow_evaluation():
        density = float(flow.log_prob(start, numbers_t, start, torch.zeros_like(start))[0])
    if not math.isfinite(density):
        warnings.warn(f"the starting structure has zero density under the flow {info.source} (for example "
                      "a cis peptide bond the model never saw): moves cannot leave it. Start from an "
                      "equilibrated structure, or let MD run between moves (moveInterval > 0).",
                      RuntimeWarning, stacklevel=stacklevel + 1)


def bind(flow, info, device, context, topology=None, temperature=None, *, pinned=None, chirality_check=True,
         flow_threads=None, stacklevel=2) -> Binding:
    """Check the Context's System against the flow and match its atoms to the model's.

    Raises
    ------
    ValueError
        A periodic box, constraints the flow cannot hold (:func:`.constraints.bind_constraints`), an
        atom count or elements the flow does not know, or a molecule that is not the model's
        (:class:`~openmm_timewarp.matching.MoleculeMismatchError`).
    FlowContractError
        The flow's outputs break the contract, or it declares ``proposal_independent`` falsely.
    """
    system = context.getSystem()
    check_system(system)
    n = system.getNumParticles()
    numbers = _atoms.atomic_numbers(system, topology)
    _check_compatible(info, system, numbers, temperature, context, stacklevel + 1)
    positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(_NM)
    if flow_threads is not None:
        torch.set_num_threads(int(flow_threads))
    bonds = _atoms.bonds(system, topology)
    names = None
    if topology is not None:
        names = [f"{a.residue.name}{a.residue.id}:{a.name}" for a in topology.atoms()]
    info = bind_flow(flow, info, numbers, bonds, names)  # a transferable flow learns the molecule here
    release(flow, info)  # atoms are matched, and the flow checked, with this System's constraints only
    if info.has_graph:
        mapping = match_atoms(flow, info, device, numbers, bonds, positions, names, pinned)
        model_numbers, model_bonds = list(info.atomic_numbers), list(info.bonds)
    else:
        mapping = np.arange(n, dtype=np.int64)
        model_numbers, model_bonds = numbers, bonds
    inverse = np.argsort(mapping)
    holds = bind_constraints(flow, info, system, numbers, bonds, mapping, inverse, names)
    x_model = positions[mapping]
    check_flow_outputs(flow, info, model_numbers, x_model, device)
    if info.proposal_independent:
        _check_independent_flow(flow, info, model_numbers, x_model, device, stacklevel + 1)
    centres = find_chirality_centres(model_numbers, model_bonds) if chirality_check else []
    return Binding(
        context=weakref.ref(context), mapping=mapping, inverse=inverse,
        numbers=torch.tensor(model_numbers, dtype=torch.int64, device=device),
        centres=torch.as_tensor(np.asarray(centres, dtype=np.int64).reshape(-1, 4)),
        has_virtual_sites=any(system.isVirtualSite(i) for i in range(n)), num_atoms=n,
        components=list(info.component_names),
        frame_atoms=tuple(info.frame_atoms) if info.proposal_independent else (), holds=holds, info=info)
