"""Shipped and registered Timewarp flows, by name.

A model file is read by the package whose ``CONTRACT_VERSION`` equals the file's
``contract_version``; every 0.x release of openmm_timewarp reads contract version 1.
"""

import os
from typing import Dict, List

_HERE = os.path.dirname(os.path.abspath(__file__))
_REGISTRY: Dict[str, str] = {}


def _shipped() -> Dict[str, str]:
    return {
        name[: -len(".pt")]: os.path.join(_HERE, name)
        for name in sorted(os.listdir(_HERE))
        if name.endswith(".pt")
    }


def register_model(name: str, path: str) -> None:
    """Make the TorchScript file at ``path`` available as ``flow=name``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"cannot register '{name}': no file at {path}")
    _REGISTRY[name] = os.path.abspath(path)


def list_models() -> List[str]:
    """Names usable as ``flow=`` (shipped with the package, then registered)."""
    return sorted({**_shipped(), **_REGISTRY})


def model_path(name: str) -> str:
    """Path of the model file for ``name``."""
    paths = {**_shipped(), **_REGISTRY}
    if name not in paths:
        raise KeyError(f"unknown model '{name}'; known: {', '.join(sorted(paths)) or 'none'}")
    return paths[name]
