"""The Timewarp flow contract, version 1: loading, validation and metadata.

A Timewarp flow is a TorchScript module (or a Python ``torch.nn.Module`` with the same
interface) that provides

- ``sample(x_cond [B,N,3], atomic_numbers [N], z [B,N,6]) -> (x [B,N,3], v [B,N,3], log_q [B])``
- ``log_prob(x_cond [B,N,3], atomic_numbers [N], x [B,N,3], v [B,N,3]) -> log_q [B]``

with positions float32 in nm, atomic numbers int64, natural-log densities of q(x, v | x_cond),
and the attributes ``contract_version`` (int, 1), ``temperature`` (float, K), ``tau_ps``
(float), ``num_atoms`` (int, 0 = any molecule), ``elements`` (list of int) and ``force_field``
(str). Extra attributes are allowed; ``metadata_json`` (str), if present, is parsed into
:attr:`FlowInfo.metadata`.

Optional attributes, read when present (older files lack them):

- ``proposal_independent`` (bool, default False): ``sample`` and ``log_prob`` ignore ``x_cond``
  apart from placing a proposal in the rigid frame of ``x_cond`` (which a proposal then shares),
  and ``log q(x, v) = log q(x) + log N(v; 0, I)`` with ``v = z[..., 3:]``. The kernel then keeps
  unused proposals across MH steps and skips reverse passes. Checked when a Context is bound.
- ``atomic_numbers`` (list of int, one per atom) and ``bonds`` (list of [int, int]): the
  molecular graph of a per-molecule model, in its atom order; a user's System is matched to it.
- ``handedness`` (list of [centre, n0, n1, n2, sign]): tetrahedral signatures of the training
  data (chirality centres and the order of equivalent hydrogens).
- ``component_names`` (list of str) with a method ``component(z) -> Tensor[B]`` (int64): the
  mixture component each noise row draws from, for per-component statistics.
- ``metadata_json["recommended_settings"]``: move settings (``moveInterval``,
  ``proposalsPerMove``, ``batchSize``) used where the caller gives none.
"""

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Sequence, Tuple

import torch

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
            "(see 'The flow contract' in the README)."
        )
    values = {}
    for name, kind in REQUIRED_ATTRIBUTES:
        if not hasattr(module, name):
            raise FlowContractError(
                f"{source} is not a Timewarp flow: attribute '{name}' ({kind.__name__}) is missing "
                "(see 'The flow contract' in the README)."
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
    names = list(getattr(module, "component_names", []) or [])
    if names:
        if not all(isinstance(n, str) for n in names) or not callable(getattr(module, "component", None)):
            raise FlowContractError(f"{source}: 'component_names' must be a list of str, with a component(z) method.")
        out["component_names"] = tuple(names)
    return out


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
    from .models import model_path, list_models

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
