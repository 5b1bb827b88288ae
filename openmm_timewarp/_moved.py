"""Deprecated module paths of the libraries that moved into ``openmm_timewarp.lab`` and ``openmm_timewarp.cli``.

``import openmm_timewarp.systems`` still works: it warns (DeprecationWarning) and returns
``openmm_timewarp.lab.systems``. Nothing is imported until an old path is asked for.
"""

import importlib
import importlib.abc
import importlib.util
import warnings

# old path (below openmm_timewarp) -> new path; a package maps its whole subtree
MOVED = {
    "systems": "lab.systems", "molecule": "lab.molecule", "energy": "lab.energy", "workers": "lab.workers",
    "fit": "lab.fit", "demo": "cli.demo",
    "data.simulate": "lab.md.simulate", "data.rundir": "lab.md.rundir", "data.dcd": "lab.md.dcd",
    "data.pool": "lab.md.pool", "data.dataset": "lab.datasets.pairs", "data.reference": "lab.reference_run",
    "data.commands": "cli.simulate", "data.reference_commands": "cli.reference", "data": "lab.md",
    "training.commands": "cli.train", "training.finetune_commands": "cli.finetune",
    "training.export_commands": "cli.export", "training": "lab.training",
    "samplers": "lab.samplers",
    "benchmark.commands": "cli.benchmark", "benchmark": "lab.benchmark",
    "analysis.commands": "cli.analyze", "analysis": "lab.analysis",
    "models.commands": "cli.models",
}
PACKAGE = __name__.rsplit(".", 1)[0]


def new_path(old: str):
    """The current module path of a moved one (None when ``old`` did not move)."""
    if not old.startswith(PACKAGE + "."):
        return None
    parts = old[len(PACKAGE) + 1:].split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in MOVED:
            return ".".join([PACKAGE, MOVED[key]] + parts[n:])
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.target}; import it from there.", DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass


class MovedModules(importlib.abc.MetaPathFinder):
    """Finds the old paths (after every ordinary finder, so a real module always wins)."""

    def find_spec(self, fullname, path=None, target=None):
        new = new_path(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))
