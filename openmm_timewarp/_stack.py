"""Import order and plugin health of the torch + OpenMM stack.

The openmm-torch plugin links libtorch. OpenMM loads its plugins when ``openmm`` is first
imported; if torch is not in the process yet, the plugin fails to load and any Context with
a TorchForce fails with "No Platform supports all the requested kernels". This module imports
torch first and, when openmm was imported earlier by the user, loads the failed Torch plugins
again now that torch is present.
"""

import importlib.metadata as metadata
import re
import warnings

import torch  # noqa: F401  (must precede openmm; see module docstring)
import openmm

# (openmm, openmmtorch) version pairs known to crash when a TorchForce is deserialised
# (XmlSerializer, copy.deepcopy of a System, pickling).
_CRASHING_OPENMM_PREFIXES = ("8.5", "8.6")

_TORCH_PLUGIN = re.compile(r"Error loading library (\S*libOpenMMTorch\w*\.so)")


def torch_plugin_failures():
    """Return OpenMM's load errors for the openmm-torch plugin libraries.

    OpenCL/CUDA variants that fail because the machine has no such runtime are not
    counted; only failures of libraries whose platform exists in this process are.

    Returns
    -------
    list of str
        The error messages, empty when the plugin is healthy or not installed.
    """
    platforms = {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}
    failures = []
    for message in openmm.Platform.getPluginLoadFailures():
        match = _TORCH_PLUGIN.search(message)
        if match is None:
            continue
        platform = re.sub(r".*libOpenMMTorch", "", match.group(1)).replace(".so", "") or "Reference"
        if platform in platforms or platform == "Reference":
            failures.append(message)
    return failures


def _reload_torch_plugins():
    """Load the openmm-torch plugins again after torch is imported. Returns the remaining failures."""
    remaining = []
    for message in torch_plugin_failures():
        path = _TORCH_PLUGIN.search(message).group(1)
        try:
            openmm.Platform.loadPluginLibrary(path)
        except Exception as error:  # pragma: no cover - depends on the installation
            remaining.append(f"{path}: {error}")
    return remaining


def check_stack():
    """Repair the Torch plugin if possible and warn about known-bad version pairs."""
    remaining = _reload_torch_plugins()
    if remaining:
        warnings.warn(
            "The openmm-torch plugin failed to load, so a System with a TorchForce cannot run: "
            + "; ".join(remaining)
            + ". Import torch (or openmm_timewarp) before openmm, and install the pinned stack "
            "from constraints.txt.",
            RuntimeWarning,
            stacklevel=3,
        )
    try:
        metadata.version("openmmtorch")
        has_openmmtorch = True
    except Exception:
        has_openmmtorch = False
    if has_openmmtorch and openmm.__version__.startswith(_CRASHING_OPENMM_PREFIXES):
        warnings.warn(
            f"openmm {openmm.__version__} with openmmtorch crashes (segmentation fault) when a "
            "TorchForce is deserialised (XmlSerializer, copy.deepcopy or pickling of a System). "
            "Install openmm==8.4.0.post2 (see constraints.txt).",
            RuntimeWarning,
            stacklevel=3,
        )


check_stack()
