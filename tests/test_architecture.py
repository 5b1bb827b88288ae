"""The package's layers: cli -> lab -> runtime, no cycles, and a lean runtime.

The runtime is every module of ``openmm_timewarp`` outside ``openmm_timewarp.lab`` and
``openmm_timewarp.cli``: what a user who only samples imports.
"""

import ast
import os
import subprocess
import sys
from collections import defaultdict

import pytest

import openmm_timewarp

PACKAGE_DIR = os.path.dirname(os.path.abspath(openmm_timewarp.__file__))
ROOT = "openmm_timewarp"
MAX_RUNTIME_FUNCTION_IMPORTS = 10
MAX_RUNTIME_FUNCTION_LINES = 80


def layer(module: str) -> int:
    """0 runtime, 1 lab, 2 cli."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] == "cli":
        return 2
    if len(parts) > 1 and parts[1] == "lab":
        return 1
    return 0


def _modules():
    found = {}
    for directory, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].replace(os.sep, ".")
                is_package = relative.endswith(".__init__")
                found[relative[:-9] if is_package else relative] = (path, is_package)
    return found


MODULES = _modules()


def _resolve(node: ast.ImportFrom, module: str, is_package: bool):
    package = module if is_package else module.rsplit(".", 1)[0]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module


def _imports():
    """module -> list of (imported module, inside a function, line, source text)."""
    edges = defaultdict(list)
    for module, (path, is_package) in MODULES.items():
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        tree = ast.parse(source)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(node, module, is_package)
                targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            inner, parent = False, node
            while parent in parents:
                parent = parents[parent]
                if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    inner = True
            line = source.splitlines()[node.lineno - 1]
            for target in targets:
                if target and (target == ROOT or target.startswith(ROOT + ".")):
                    known = target if target in MODULES else target.rsplit(".", 1)[0]
                    if known in MODULES:
                        edges[module].append((known, inner, node.lineno, line))
    return edges


IMPORTS = _imports()


def test_no_module_imports_upward():
    upward = [f"{module}:{line} imports {target}" for module, edges in IMPORTS.items()
              for target, _, line, _ in edges if layer(target) > layer(module)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles_at_module_level():
    graph = {module: {t for t, inner, _, _ in edges if not inner and t != module}
             for module, edges in IMPORTS.items()}
    # a package's __init__ importing its own submodules is not a cycle of concern; drop parent -> child edges
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not t.startswith(module + ".")}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def _function_level_imports(path):
    """(line, source) of every import statement inside a function of one file."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    found = set()
    for function in ast.walk(ast.parse(source)):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.add((node.lineno, source.splitlines()[node.lineno - 1].strip()))
    return found


def test_runtime_function_level_imports_are_few_and_explained():
    statements = sorted((module, line, text) for module, (path, _) in MODULES.items() if layer(module) == 0
                        for line, text in _function_level_imports(path))
    listing = "\n".join(f"{m}:{l} {t}" for m, l, t in statements)
    assert len(statements) <= MAX_RUNTIME_FUNCTION_IMPORTS, listing
    unexplained = [f"{m}:{l} {t}" for m, l, t in statements if "#" not in t]
    assert not unexplained, "function-level imports need the reason in a comment:\n" + "\n".join(unexplained)


def test_the_import_scan_sees_a_function_level_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\n\ndef f():\n    import torch  # heavy\n    return torch\n")
    assert _function_level_imports(str(sample)) == {(5, "import torch  # heavy")}


def test_runtime_functions_are_short():
    long = []
    for module, (path, _) in MODULES.items():
        if layer(module) != 0:
            continue
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_RUNTIME_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {length} lines")
    assert not long, "\n".join(long)


def test_the_checker_resolves_layers_and_relative_imports():
    # the layer rule itself, on made-up module names
    assert layer("openmm_timewarp.integrator") == 0
    assert layer("openmm_timewarp.lab.fit") == 1
    assert layer("openmm_timewarp.cli.fit") == 2
    node = ast.parse("from ..lab.systems import build_peptide").body[0]
    assert _resolve(node, "openmm_timewarp.flow.splines", False) == "openmm_timewarp.lab.systems"


FAST_HELP = """
import io, contextlib, sys
from openmm_timewarp.cli import main
argv = sys.argv[1:]
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main(argv)
    except SystemExit:
        pass
heavy = sorted(name for name in ("torch", "openmm") if name in sys.modules)
print(",".join(heavy) or "none")
"""


def _commands():
    from openmm_timewarp.cli import SUBCOMMANDS

    return sorted(SUBCOMMANDS)


@pytest.mark.parametrize("argv", [["--help"], ["--version"]] + [[name, "--help"] for name in _commands()]
                         + [["fit"], ["benchmark", "--budget", "soon"], ["simulate", "--timestep", "2"]])
def test_help_and_argument_errors_leave_torch_and_openmm_unimported(argv):
    result = subprocess.run([sys.executable, "-c", FAST_HELP, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none", f"{' '.join(argv)} imported {result.stdout.strip()}"


def test_the_help_check_sees_a_heavy_import():
    probe = "import sys, torch; print(','.join(n for n in ('torch', 'openmm') if n in sys.modules) or 'none')"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "torch"


def test_old_module_paths_warn_and_give_the_moved_module():
    import importlib
    import warnings

    import openmm_timewarp.lab.systems as systems

    sys.modules.pop("openmm_timewarp.systems", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("openmm_timewarp.systems")
    assert old is systems
    assert any(issubclass(w.category, DeprecationWarning) and "openmm_timewarp.lab.systems" in str(w.message)
               for w in caught)
    from openmm_timewarp._moved import new_path

    assert new_path("openmm_timewarp.data.dataset") == "openmm_timewarp.lab.datasets.pairs"
    assert new_path("openmm_timewarp.integrator") is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("openmm_timewarp.no_such_module")


def test_the_kernel_classes_stay_small():
    kernel = os.path.join(PACKAGE_DIR, "kernel")
    sizes = {}
    for name in os.listdir(kernel):
        if name.endswith(".py"):
            with open(os.path.join(kernel, name), encoding="utf-8") as handle:
                for node in ast.walk(ast.parse(handle.read())):
                    if isinstance(node, ast.ClassDef):
                        sizes[f"{name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert sizes and max(sizes.values()) < 250, sizes


def test_the_readme_stays_short():
    with open(os.path.join(os.path.dirname(PACKAGE_DIR), "README.md"), encoding="utf-8") as handle:
        assert len(handle.read().splitlines()) <= 220
