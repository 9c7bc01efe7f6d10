"""The package's layout: no import cycles, layers import one way, every module
imports on its own, and only ``cli/`` prints.

The layers, highest first: ``cli`` -> ``project`` -> ``loaders`` -> ``backend`` ->
``_core``. A function-level import may keep ``import packflow`` light, but never
stands in for a module-level import that would close a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import packflow

PACKAGE_DIR = Path(packflow.__file__).resolve().parent
LAYERS = ["packflow.cli", "packflow.project", "packflow.loaders", "packflow.backend"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {}
    # The compiled extension counts as a module; its stub stands in for its source.
    for path in sorted([*PACKAGE_DIR.rglob("*.py"), PACKAGE_DIR / "_core.pyi"]):
        if path.relative_to(PACKAGE_DIR).parts[0] == "project_templates":
            continue  # package data: the files `packflow create` copies
        found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(name: str) -> str | None:
    """The packflow module an imported name lives in (``packflow.a.b`` -> itself if
    it is a module, else its nearest module ancestor)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str) -> tuple[set[str], set[str]]:
    """``(module level, inside functions)``: the packflow modules ``name`` imports."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    top: set[str] = set()
    nested: set[str] = set()

    def visit(node: ast.AST, in_function: bool, in_type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, True, in_type_checking)
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, in_function, True)
                continue
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = name if _is_package(name) else name.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".rstrip(".")
                targets = [f"{base}.{alias.name}" for alias in child.names]
            for target in targets:
                module = _resolve(target)
                if module is None or in_type_checking or module == name:
                    continue
                (nested if in_function else top).add(module)
            visit(child, in_function, in_type_checking)

    visit(tree, False, False)
    return top, nested


GRAPH = {name: _imports(name) for name in MODULES}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in GRAPH[todo.pop()][0]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _layer(name: str) -> int | None:
    for index, prefix in enumerate(LAYERS):
        if name == prefix or name.startswith(prefix + "."):
            return index
    return None


def test_the_graph_sees_the_package():
    assert {"packflow", "packflow.loaders.base", "packflow.project.checks"} <= set(MODULES)
    assert "packflow.backend.base" in GRAPH["packflow.loaders.base"][0]


def test_module_level_imports_have_no_cycle():
    cycles = sorted(name for name in MODULES if name in _reachable(name))
    assert cycles == []


def test_no_function_level_import_dodges_a_cycle():
    # A function-level import of a module that (at module level) imports us back
    # is a cycle kept out of sight: the code lives in the wrong module.
    dodges = sorted(
        f"{name} -> {target}"
        for name, (_, nested) in GRAPH.items()
        for target in nested
        if name in _reachable(target) | {target}
    )
    assert dodges == []


# Upward reaches that Packflow 0.4.1's module paths need, each inside a function
# (never at module level): 0.4.1 kept the export checks in packflow.loaders.config,
# which sits below the project layer here.
LAZY_UPWARD = {
    "packflow.loaders.config -> packflow.project.checks": "validate_for_export and "
    "_validate_inference_backend, 0.4.1's names, run the project layer's checks",
}


def test_layers_import_one_way():
    upward = sorted(
        f"{name} -> {target}"
        for name, (top, nested) in GRAPH.items()
        for target in top | nested
        if _layer(name) is not None and _layer(target) is not None and _layer(target) < _layer(name)
    )
    assert [reach for reach in upward if reach not in LAZY_UPWARD] == []
    # An allowance that is no longer needed goes, so it cannot cover a new reach.
    assert sorted(LAZY_UPWARD) == [reach for reach in upward if reach in LAZY_UPWARD]


@pytest.mark.parametrize("reach", sorted(LAZY_UPWARD))
def test_allowed_upward_reaches_stay_inside_functions(reach):
    name, _, target = reach.partition(" -> ")
    top, nested = GRAPH[name]
    assert target in nested and target not in top


def test_the_root_package_is_imported_by_no_submodule():
    # Every submodule import runs packflow/__init__.py first; a submodule reading
    # from it at import time depends on what __init__ happened to import before.
    importers = sorted(name for name, (top, _) in GRAPH.items() if "packflow" in top)
    assert importers == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.endswith("__main__")))
def test_each_module_imports_alone(name):
    done = subprocess.run(
        [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_only_the_cli_prints():
    # The library returns results and raises; rendering them is the command's job.
    printing = []
    for name, path in MODULES.items():
        if name.startswith("packflow.cli") or path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                call = ast.unparse(node.func)
                if call == "print" or call.startswith("click."):
                    printing.append(f"{name}:{node.lineno} {call}()")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if "click" in names or getattr(node, "module", None) == "click":
                    printing.append(f"{name}:{node.lineno} imports click")
    assert printing == []
