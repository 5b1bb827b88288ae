"""The Timewarp flow contract, version 1: loading, validation and metadata.

A Timewarp flow is a TorchScript module (or a Python ``torch.nn.Module`` with the same
interface) with ``sample`` and ``log_prob`` methods and a few required attributes; the contract
is stated once, in ``docs/contract.md``. This module implements it: :func:`load_flow` validates a
flow and returns it with its :class:`FlowInfo`, and :data:`CONTRACT_VERSION` is the version this
package reads.
"""

from . import _stack  # noqa: F401  (torch before openmm; repairs the openmm-torch plugin)
import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from .flow.peptides.binder import bind_peptides
from .models import list_models, model_path

CONTRACT_VERSION = 1

REQUIRED_ATTRIBUTES = (
    ("contract_version", int),
    ("temperature", float),
    ("tau_ps", float),
    ("num_atoms", int),
    ("elements", list),
    ("force_field", str),
)


class FlowContractError(ValueError):
    """The object given as a flow is not a usable Timewarp flow (contract version 1)."""


@dataclass(frozen=True)
class FlowInfo:
    """What a flow says about itself.

    Attributes
    ----------
    contract_version : int
    temperature : float
        Kelvin the model was trained for.
    tau_ps : float
        Lag in picoseconds (0.0 if not meaningful).
    num_atoms : int
        Number of atoms it is made for; 0 means any molecule.
    elements : tuple of int
        Atomic numbers it knows (empty means any).
    force_field : str
    metadata : dict
        Anything else the file carries (training data summary, package version, ...).
    source : str
        Where it came from (a path, a shipped model name, or "module").
    proposal_independent : bool
        The proposal ignores the current state (see the module docstring).
    atomic_numbers : tuple of int
        Per atom, for a model that carries its molecular graph (else empty).
    bonds : tuple of (int, int)
        The molecular graph's bonds (else empty).
    handedness : tuple of tuple of int
        (centre, n0, n1, n2, sign) rows (else empty).
    component_names : tuple of str
        Mixture components reported by ``component(z)`` (else empty).
    frame_atoms : tuple of int
        (a0, a1, a2), model atom order: the atoms whose rigid frame a ``proposal_independent`` flow
        keeps (see :func:`place_in_frame`); empty when the flow does not say.
    constraints : str
        The bond constraints the model was made for: "none" (default), "hbonds" or "allbonds".
    holdable_bonds : tuple of (int, int)
        Bonds (model atom order) the flow's ``hold_bonds`` can hold; empty when it has no
        ``hold_bonds`` method (then it cannot sample a System with constraints).
    binder : str
        Name of the registered bind step (:func:`register_binder`) that binds the flow to the
        user's molecule before use; empty for a flow that needs none.
    """

    contract_version: int
    temperature: float
    tau_ps: float
    num_atoms: int
    elements: Tuple[int, ...]
    force_field: str
    metadata: Dict[str, Any] = field(default_factory=dict)
    source: str = "module"
    proposal_independent: bool = False
    atomic_numbers: Tuple[int, ...] = ()
    bonds: Tuple[Tuple[int, int], ...] = ()
    handedness: Tuple[Tuple[int, ...], ...] = ()
    component_names: Tuple[str, ...] = ()
    frame_atoms: Tuple[int, ...] = ()
    constraints: str = "none"
    holdable_bonds: Tuple[Tuple[int, int], ...] = ()
    binder: str = ""

    @property
    def can_hold_bonds(self) -> bool:
        """Whether the flow can hold bond constraints (``hold_bonds``, ``holdable_bonds``)."""
        return bool(self.holdable_bonds)

    @property
    def has_graph(self) -> bool:
        """Whether the model carries its molecular graph (atom matching applies)."""
        return bool(self.atomic_numbers)

    @property
    def recommended_settings(self) -> Dict[str, Any]:
        """Move settings the model recommends (``moveInterval``, ``proposalsPerMove``, ``batchSize``)."""
        settings = self.metadata.get("recommended_settings")
        return dict(settings) if isinstance(settings, dict) else {}


def flow_info(module, source: str = "module") -> FlowInfo:
    """Validate ``module`` against contract version 1 and return its :class:`FlowInfo`.

    Raises
    ------
    FlowContractError
        A method or attribute is missing, of the wrong type, or the version is not 1.
    """
    missing = [name for name in ("sample", "log_prob") if not callable(getattr(module, name, None))]
    if missing:
        raise FlowContractError(
            f"{source} is not a Timewarp flow: it has no {' or '.join(missing)} method "
            "(see docs/contract.md)."
        )
    values = {}
    for name, kind in REQUIRED_ATTRIBUTES:
        if not hasattr(module, name):
            raise FlowContractError(
                f"{source} is not a Timewarp flow: attribute '{name}' ({kind.__name__}) is missing "
                "(see docs/contract.md)."
            )
        value = getattr(module, name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is list and isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise FlowContractError(
                f"{source}: attribute '{name}' must be {kind.__name__}, got {type(value).__name__}."
            )
        values[name] = value
    if values["contract_version"] != CONTRACT_VERSION:
        raise FlowContractError(
            f"{source} implements flow contract version {values['contract_version']}; this version of "
            f"openmm_timewarp reads version {CONTRACT_VERSION}. Upgrade openmm_timewarp or re-export the model."
        )
    if not all(isinstance(z, int) and not isinstance(z, bool) for z in values["elements"]):
        raise FlowContractError(f"{source}: attribute 'elements' must be a list of int atomic numbers.")
    if values["num_atoms"] < 0 or not values["temperature"] > 0:
        raise FlowContractError(f"{source}: 'num_atoms' must be >= 0 and 'temperature' > 0.")
    metadata = {}
    raw = getattr(module, "metadata_json", None)
    if isinstance(raw, str) and raw:
        try:
            metadata = json.loads(raw)
        except ValueError:
            metadata = {}
    values["elements"] = tuple(values["elements"])
    values.update(_optional_attributes(module, source, values["num_atoms"]))
    values["frame_atoms"] = _frame_atoms(module, source, values["num_atoms"], metadata)
    return FlowInfo(metadata=metadata, source=source, **values)


def _int_rows(value, width: int, name: str, source: str) -> Tuple[Tuple[int, ...], ...]:
    rows = []
    for row in value:
        row = list(row)
        if len(row) != width or not all(isinstance(v, int) and not isinstance(v, bool) for v in row):
            raise FlowContractError(f"{source}: attribute '{name}' must be a list of [{width} int] rows.")
        rows.append(tuple(row))
    return tuple(rows)


def _optional_attributes(module, source: str, num_atoms: int) -> Dict[str, Any]:
    """The optional contract attributes, validated."""
    out: Dict[str, Any] = {}
    independent = getattr(module, "proposal_independent", False)
    if not isinstance(independent, bool):
        raise FlowContractError(f"{source}: attribute 'proposal_independent' must be bool.")
    out["proposal_independent"] = independent
    numbers = list(getattr(module, "atomic_numbers", []) or [])
    if numbers:
        if not all(isinstance(z, int) and not isinstance(z, bool) and z > 0 for z in numbers):
            raise FlowContractError(f"{source}: attribute 'atomic_numbers' must be a list of positive int.")
        if len(numbers) != num_atoms:
            raise FlowContractError(f"{source}: 'atomic_numbers' lists {len(numbers)} atoms but 'num_atoms' is {num_atoms}.")
        bonds = _int_rows(getattr(module, "bonds", []) or [], 2, "bonds", source)
        if any(not (0 <= a < num_atoms and 0 <= b < num_atoms) for a, b in bonds):
            raise FlowContractError(f"{source}: attribute 'bonds' refers to atoms outside 0..{num_atoms - 1}.")
        out.update(atomic_numbers=tuple(numbers), bonds=bonds,
                   handedness=_int_rows(getattr(module, "handedness", []) or [], 5, "handedness", source))
    binder = getattr(module, "binder", "") or ""
    if not isinstance(binder, str) or (binder and binder not in _BINDERS):
        raise FlowContractError(f"{source} needs the bind step {binder!r}, which this version of openmm_timewarp "
                                f"does not have (it has: {', '.join(sorted(_BINDERS)) or 'none'}). Upgrade "
                                "openmm_timewarp.")
    out["binder"] = binder
    names = list(getattr(module, "component_names", []) or [])
    if names:
        if not all(isinstance(n, str) for n in names) or not callable(getattr(module, "component", None)):
            raise FlowContractError(f"{source}: 'component_names' must be a list of str, with a component(z) method.")
        out["component_names"] = tuple(names)
    out.update(_constraint_attributes(module, source, num_atoms))
    return out


CONSTRAINT_KINDS = ("none", "hbonds", "allbonds")


def _constraint_attributes(module, source: str, num_atoms: int) -> Dict[str, Any]:
    """The optional ``constraints`` attribute, and ``holdable_bonds`` of a flow with ``hold_bonds``."""
    constraints = getattr(module, "constraints", "none")
    if not isinstance(constraints, str) or constraints not in CONSTRAINT_KINDS:
        raise FlowContractError(f"{source}: attribute 'constraints' must be one of {', '.join(CONSTRAINT_KINDS)}, "
                                f"got {constraints!r}.")
    out: Dict[str, Any] = {"constraints": constraints}
    if callable(getattr(module, "hold_bonds", None)):
        holdable = _int_rows(getattr(module, "holdable_bonds", []) or [], 2, "holdable_bonds", source)
        if not holdable:
            raise FlowContractError(f"{source}: a flow with hold_bonds must list its 'holdable_bonds'.")
        if num_atoms and any(not (0 <= a < num_atoms and 0 <= b < num_atoms) for a, b in holdable):
            raise FlowContractError(f"{source}: 'holdable_bonds' refers to atoms outside 0..{num_atoms - 1}.")
        out["holdable_bonds"] = holdable
    elif constraints != "none":
        raise FlowContractError(f"{source} says it was made for constraints={constraints!r} but has no hold_bonds "
                                "method (see docs/contract.md).")
    return out


def _frame_atoms(module, source: str, num_atoms: int, metadata: Dict[str, Any]) -> Tuple[int, ...]:
    """The optional ``frame_atoms``, validated; for an internal-coordinate file exported before the
    attribute existed, the first three atoms of the Z-matrix its metadata carries (its frame atoms)."""
    atoms = list(getattr(module, "frame_atoms", []) or [])
    zmatrix = metadata.get("zmatrix") if metadata.get("family") == "internal" else None
    if not atoms and isinstance(zmatrix, dict) and isinstance(zmatrix.get("order"), list):
        atoms = list(zmatrix["order"][:3])
    if not atoms:
        return ()
    if (len(atoms) != 3 or len(set(atoms)) != 3
            or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in atoms)
            or (num_atoms and max(atoms) >= num_atoms)):
        raise FlowContractError(f"{source}: attribute 'frame_atoms' must be three distinct atom indices "
                                f"in 0..{max(num_atoms - 1, 0)}, got {atoms}.")
    return tuple(atoms)


def rigid_frame(x: torch.Tensor, frame_atoms: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The rigid frame of atoms (a0, a1, a2) in positions ``x`` [B, N, 3]: origin [B, 3] and axes [B, 3, 3].

    The origin is a0; the axes (columns) are e1 along a1 - a0, e2 in the plane of a0, a1, a2 on the
    side of a2, e3 = e1 x e2 (float64).
    """
    a0, a1, a2 = frame_atoms
    x = x.double()
    origin = x[:, a0]
    e1 = x[:, a1] - origin
    e1 = e1 / torch.linalg.norm(e1, dim=-1, keepdim=True)
    e3 = torch.cross(e1, x[:, a2] - origin, dim=-1)
    e3 = e3 / torch.linalg.norm(e3, dim=-1, keepdim=True)
    return origin, torch.stack([e1, torch.cross(e3, e1, dim=-1), e3], dim=-1)


def place_in_frame(x: torch.Tensor, target: torch.Tensor, frame_atoms: Sequence[int]) -> torch.Tensor:
    """Move each row of ``x`` [B, N, 3] rigidly so that its frame atoms' frame is that of ``target`` [N, 3].

    The rigid motion T = (frame of ``target``) o (frame of the row)^-1 keeps every distance, angle and
    torsion: for a ``proposal_independent`` flow with ``frame_atoms``, a proposal drawn from one state
    and moved so is the proposal the same noise gives from ``target``, with the same log q.
    """
    origin, axes = rigid_frame(x, frame_atoms)
    target_origin, target_axes = rigid_frame(target.reshape(1, -1, 3), frame_atoms)
    local = (x.double() - origin.unsqueeze(1)) @ axes
    return (local @ target_axes.transpose(-1, -2) + target_origin.unsqueeze(1)).to(x.dtype)


# ------------------------------------------------------------------------------------------------ bind steps
# name -> function(flow, atomic_numbers, bonds, atom_names) binding the flow to that molecule in place
_BINDERS: Dict[str, Callable] = {"peptides": bind_peptides}


def register_binder(name: str, function: Callable) -> None:
    """Register a bind step: ``function(flow, atomic_numbers, bonds, atom_names)`` binds ``flow`` in place.

    A flow whose ``binder`` attribute names it is bound to the user's molecule before any move
    (:func:`bind_flow`); see docs/contract.md.
    """
    _BINDERS[str(name)] = function


def bind_flow(flow, info: FlowInfo, atomic_numbers: Sequence[int], bonds: Sequence[Tuple[int, int]],
              atom_names: Optional[Sequence[str]] = None) -> FlowInfo:
    """Run the flow's bind step for one molecule and return the bound flow's :class:`FlowInfo`.

    A flow without a bind step is returned as it is. The bind step's own errors (a molecule the
    model does not cover) are ValueErrors that name the residue or atoms.
    """
    if not info.binder:
        return info
    _BINDERS[info.binder](flow, [int(z) for z in atomic_numbers], [(int(a), int(b)) for a, b in bonds], atom_names)
    bound = flow_info(flow, info.source)
    if not bound.has_graph:
        raise FlowContractError(f"{info.source}: its bind step {info.binder!r} left it without a molecular graph.")
    return bound


def load_flow(flow, device="cpu"):
    """Load and validate a Timewarp flow.

    Parameters
    ----------
    flow : str, os.PathLike or torch.nn.Module
        A shipped model name (see :func:`openmm_timewarp.list_models`), a path to a TorchScript
        file, or a module (scripted or not) that honours the contract.
    device : str or torch.device
        Where the module runs.

    Returns
    -------
    module : torch.nn.Module
        The flow in eval mode on ``device``.
    info : FlowInfo

    Raises
    ------
    FlowContractError
        The file is missing, unreadable or not a contract-1 flow.
    """
    if isinstance(flow, torch.nn.Module):
        module, source = flow, type(flow).__name__
    elif isinstance(flow, (str, os.PathLike)):
        name = os.fspath(flow)
        path = model_path(name) if name in list_models() else name
        if not os.path.isfile(path):
            shipped = ", ".join(list_models()) or "none installed"
            raise FlowContractError(
                f"No Timewarp flow at '{name}': not a file and not a shipped model name "
                f"(shipped models: {shipped})."
            )
        try:
            module = torch.jit.load(path, map_location=device)
        except Exception as error:
            raise FlowContractError(
                f"'{path}' is not a readable TorchScript file ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}). A Timewarp flow is saved with "
                "torch.jit.save; re-export it with openmm_timewarp.flow.export_flow."
            ) from None
        source = name
    else:
        raise FlowContractError(
            f"flow must be a shipped model name, a path to a TorchScript file or a torch.nn.Module, "
            f"not {type(flow).__name__}."
        )
    info = flow_info(module, source)
    module = module.to(device)
    module.eval()
    return module, info


@contextlib.contextmanager
def flow_evaluation():
    """No autograd, and no TorchScript graph optimisation: the flows are called with many batch
    shapes, and re-optimising for each costs ~1 s per new shape on a CPU for no steady-state gain."""
    with torch.no_grad(), torch.jit.optimized_execution(False):
        yield


def check_flow_outputs(module, info: FlowInfo, atomic_numbers: Sequence[int], positions, device="cpu"):
    """Call the flow once on the real molecule and check shapes and dtypes of what it returns.

    Raises
    ------
    FlowContractError
        When the outputs do not follow the contract.
    """
    n = len(atomic_numbers)
    x_cond = torch.as_tensor(positions, dtype=torch.float32, device=device).reshape(1, n, 3)
    numbers = torch.as_tensor(list(atomic_numbers), dtype=torch.int64, device=device)
    z = torch.zeros(1, n, 6, dtype=torch.float32, device=device)
    try:
        with flow_evaluation():
            out = module.sample(x_cond, numbers, z)
            x, v, log_q = out
            log_p = module.log_prob(x_cond, numbers, x, v)
    except Exception as error:
        raise FlowContractError(
            f"{info.source} failed on this molecule ({n} atoms): {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}"
        ) from None
    expected = {"x": (x, (1, n, 3)), "v": (v, (1, n, 3)), "log_q": (log_q, (1,)), "log_prob": (log_p, (1,))}
    for name, (tensor, shape) in expected.items():
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise FlowContractError(f"{info.source}: {name} has shape {got}, the contract says {shape}.")


def _far_proposals(module, x, numbers, z, count):
    """Finite proposals drawn from ``x`` [1, N, 3], the farthest (RMSD) from it first."""
    n = x.shape[1]
    moved, v, log_q = module.sample(x.expand(z.shape[0], n, 3), numbers, z)
    finite = torch.isfinite(moved).all(dim=(1, 2)) & torch.isfinite(v).all(dim=(1, 2)) & torch.isfinite(log_q)
    distance = torch.where(finite, (moved - x).pow(2).sum(dim=(1, 2)), torch.full_like(log_q, -1.0))
    order = torch.argsort(distance, descending=True)
    return [moved[i] for i in order[:count].tolist() if bool(finite[i])]


def independence_states(module, atomic_numbers, positions, device="cpu", candidates=16, seed=1234):
    """Conditioning states for :func:`check_independence`: states a chain with this flow may reach.

    The contract lets a state-independent flow place its proposals in the rigid frame of ``x_cond``,
    so the states are built from proposals (which share that frame): ``positions`` itself, a typical
    proposal from it, the farthest of ``candidates`` proposals, and the farthest proposal drawn from
    that one (two proposals away).

    Returns
    -------
    torch.Tensor
        [S, N, 3] float32 on ``device``.
    """
    n = len(atomic_numbers)
    generator = torch.Generator().manual_seed(seed)
    numbers = torch.as_tensor(list(atomic_numbers), dtype=torch.int64, device=device)
    x0 = torch.as_tensor(np.asarray(positions), dtype=torch.float32, device=device).reshape(1, n, 3)
    z = torch.randn(2, candidates, n, 6, generator=generator).to(device)
    states = [x0[0]]
    with flow_evaluation():
        first = _far_proposals(module, x0, numbers, z[0], candidates)
        if first:
            states += [first[-1], first[0]]  # the nearest (typical) and the farthest proposal
            second = _far_proposals(module, first[0].unsqueeze(0), numbers, z[1], 1)
            states += second
    return torch.stack(states)


def _moved_state(x: torch.Tensor, seed: int = 99) -> torch.Tensor:
    """``x`` [1, N, 3] rotated, translated and slightly perturbed: a state in another rigid frame."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))[0]
    q = q * torch.sign(torch.linalg.det(q))  # a proper rotation
    noise = 0.002 * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    centre = x.double().mean(dim=1, keepdim=True)
    moved = (x.double() - centre) @ q.T + centre + 0.3 + noise.to(x.device)
    return moved.to(x.dtype)


def check_frame_atoms(module, info, atomic_numbers, positions, device="cpu", rows=16, tolerance=1e-4):
    """Check that a ``proposal_independent`` flow keeps the frame of its ``frame_atoms``.

    The same noise is drawn from ``positions`` and from a rotated, translated and perturbed copy;
    the first state's proposals, moved into the second state's frame (:func:`place_in_frame`), must
    be the second state's proposals (to ``tolerance`` nm), with the same log q.

    Raises
    ------
    FlowContractError
    """
    n = len(atomic_numbers)
    x0 = torch.as_tensor(np.asarray(positions), dtype=torch.float32, device=device).reshape(1, n, 3)
    states = torch.cat([x0, _moved_state(x0)])
    z = torch.randn(rows, n, 6, generator=torch.Generator().manual_seed(2468)).to(device).repeat(2, 1, 1)
    numbers = torch.as_tensor(list(atomic_numbers), dtype=torch.int64, device=device)
    with flow_evaluation():
        x, _, log_q = module.sample(states.repeat_interleave(rows, dim=0), numbers, z)
    moved = place_in_frame(x[:rows].cpu(), states[1].cpu(), info.frame_atoms)
    # a proposal of zero density (an angle outside (0, pi) may flip the frame atoms) is never accepted
    usable = (torch.isfinite(log_q[:rows]) | torch.isfinite(log_q[rows:])).cpu()
    if not (torch.allclose(moved[usable], x[rows:].cpu()[usable], atol=tolerance, rtol=0.0, equal_nan=True)
            and torch.allclose(log_q[:rows], log_q[rows:], atol=1e-3, rtol=1e-5, equal_nan=True)):
        raise FlowContractError(
            f"{info.source} declares frame_atoms {list(info.frame_atoms)}, but its proposals do not keep the "
            "rigid frame of those atoms. Export it without frame_atoms.")


def check_independence(module, info, atomic_numbers, positions, device="cpu", rows=64, tolerance=1e-4):
    """Check that a flow declaring ``proposal_independent`` ignores the state it conditions on.

    The same ``rows`` noise rows are drawn from several conditioning states
    (:func:`independence_states`: the current structure, a typical proposal, a far one and one two
    proposals away), in one batched call. The proposals (to ``tolerance`` nm), their log q, and the
    density of the proposals drawn from the first state, evaluated from every state, must not
    depend on the state. A flow that takes a local step in a few percent of the rows fails; the
    cost is three ``sample`` and two ``log_prob`` calls of at most ``4 * rows`` rows.

    Raises
    ------
    FlowContractError
    """
    n = len(atomic_numbers)
    states = independence_states(module, atomic_numbers, positions, device)
    count = states.shape[0]
    generator = torch.Generator().manual_seed(4321)
    z = torch.randn(rows, n, 6, generator=generator).to(device).repeat(count, 1, 1)
    numbers = torch.as_tensor(list(atomic_numbers), dtype=torch.int64, device=device)
    x_cond = states.repeat_interleave(rows, dim=0)
    with flow_evaluation():
        x, v, log_q = (out.reshape(count, rows, *out.shape[1:]) for out in module.sample(x_cond, numbers, z))
        # the density of the first state's proposals, from it and (in one call) from every other state
        reference = module.log_prob(x_cond[:rows], numbers, x[0], v[0])
        others = module.log_prob(x_cond[rows:], numbers, x[0].repeat(count - 1, 1, 1), v[0].repeat(count - 1, 1, 1))
    density = torch.cat([reference, others]).reshape(count, rows)

    def same(a, atol, rtol=0.0):
        return all(torch.allclose(a[k], a[0], atol=atol, rtol=rtol, equal_nan=True) for k in range(1, count))

    if not (same(x, tolerance) and same(v, tolerance) and same(log_q, 1e-3, 1e-5) and same(density, 1e-3, 1e-5)):
        raise FlowContractError(
            f"{info.source} declares proposal_independent, but its proposals or densities change with the state it "
            "conditions on. Export it with proposal_independent = False.")
