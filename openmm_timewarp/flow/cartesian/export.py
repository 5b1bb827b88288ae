"""Export a trained :class:`TimewarpFlow` to a TorchScript file implementing flow contract version 1."""

import json
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ... import __version__
from .model import TimewarpFlow


class ContractFlow(nn.Module):
    """Flow contract version 1 around a :class:`TimewarpFlow` (one molecule per call, no padding)."""

    elements: List[int]

    def __init__(self, flow: TimewarpFlow, temperature: float, tau_ps: float, num_atoms: int, force_field: str,
                 metadata_json: str):
        super().__init__()
        self.flow = flow
        self.contract_version: int = 1
        self.temperature: float = float(temperature)
        self.tau_ps: float = float(tau_ps)
        self.num_atoms: int = int(num_atoms)
        self.elements = list(flow.elements)
        self.force_field: str = str(force_field)
        self.metadata_json: str = metadata_json

    def _inputs(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, bool]:
        batch, atoms = x_cond.shape[0], x_cond.shape[1]
        numbers = atomic_numbers.to(torch.int64).unsqueeze(0).expand(batch, atoms)
        mask = torch.ones(batch, atoms, dtype=torch.bool, device=x_cond.device)
        shared = batch > 1 and bool((x_cond == x_cond[:1]).all())
        return numbers, mask, shared

    @torch.jit.export
    def sample(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor,
               z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        numbers, mask, shared = self._inputs(x_cond, atomic_numbers)
        return self.flow.sample_batch(x_cond, numbers, z, mask, shared)

    @torch.jit.export
    def log_prob(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor,
                 v: torch.Tensor) -> torch.Tensor:
        numbers, mask, shared = self._inputs(x_cond, atomic_numbers)
        return self.flow.log_prob_batch(x_cond, numbers, x, v, mask, shared)

    def forward(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor,
                z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.sample(x_cond, atomic_numbers, z)


def export_flow(flow: TimewarpFlow, path: str, *, temperature: float, tau_ps: float, force_field: str,
                num_atoms: int = 0, metadata: Optional[Dict[str, Any]] = None) -> ContractFlow:
    """Write ``flow`` as a contract-1 TorchScript file (exported on CPU, float32).

    Parameters
    ----------
    flow : TimewarpFlow
    path : str
        Output file.
    temperature : float
        Kelvin the model was trained for.
    tau_ps : float
        Lag (ps) of the training pairs.
    force_field : str
        Force-field preset name of the training data.
    num_atoms : int
        0 for a transferable model, else the one molecule's atom count.
    metadata : dict, optional
        Training data summary and anything else worth keeping; the package version and the
        architecture are added.

    Returns
    -------
    ContractFlow
        The scripted module that was saved.
    """
    meta = dict(metadata or {})
    meta.setdefault("package_version", __version__)
    meta.setdefault("architecture", dict(flow.config_dict))
    meta.setdefault("num_parameters", flow.num_parameters())
    flow = flow.to("cpu").float().eval()
    wrapper = ContractFlow(flow, temperature, tau_ps, num_atoms, force_field, json.dumps(meta, sort_keys=True))
    scripted = torch.jit.script(wrapper)
    scripted.save(path)
    return scripted
