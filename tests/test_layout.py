"""The package's layout: no import cycles, layers import one way, every module
sits in a layer, every module imports on its own, and only ``cli/`` prints.

The layers, highest first (see ``LAYERS``): ``cli`` -> ``serving``, ``ray`` ->
``project`` -> ``engine`` -> ``loaders`` -> ``backend`` -> the base modules ->
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

#: Highest first; a module imports only from its own layer and the ones below.
#: ``packflow`` itself, the public face, re-exports from every layer and has none.
LAYERS: list[tuple[str, ...]] = [
    # The commands: the only printing layer, it drives all the rest.
    ("packflow.cli",),
    # The front doors other than the command line: each stands on the engine, and
    # none on another (see SEPARATE).
    ("packflow.serving", "packflow.ray", "packflow.kafka"),
    # A project directory: checks, export, templates (may run a backend through
    # the engine; the engine never needs a project's checks).
    ("packflow.project",),
    # Batches through a backend; the runner loads a project through loaders/.
    # packflow.runner is 0.4.1's path of the stream runner, a re-export of it.
    ("packflow.engine", "packflow.runner"),
    ("packflow.loaders",),
    ("packflow.backend",),
    # What every layer may use: errors, settings, logging, the record helpers
    # (0.4.1's packflow.utils), the JSON and file helpers, the build's facts.
    (
        "packflow.utils",
        "packflow.constants",
        "packflow.exceptions",
        "packflow.logger",
        "packflow.files",
        "packflow.jsonl",
        "packflow.serialize",
        "packflow.extras",
        "packflow.sample_data",
        "packflow._version",
        "packflow._build",
    ),
    ("packflow._core",),
]
#: Packages of one layer that must not import each other.
SEPARATE = ("packflow.serving", "packflow.ray", "packflow.kafka")


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


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(name: str) -> int | None:
    for index, prefixes in enumerate(LAYERS):
        if any(_within(name, prefix) for prefix in prefixes):
            return index
    return None


def _upward(graph: dict[str, tuple[set[str], set[str]]]) -> list[str]:
    """Every import (module level or in a function) of a higher layer's module."""
    return sorted(
        f"{name} -> {target}"
        for name, (top, nested) in graph.items()
        for target in top | nested
        if _layer(name) is not None and _layer(target) is not None and _layer(target) < _layer(name)
    )


def _across(graph: dict[str, tuple[set[str], set[str]]]) -> list[str]:
    """Every import between two of the SEPARATE packages."""
    return sorted(
        f"{name} -> {target}"
        for name, (top, nested) in graph.items()
        for target in top | nested
        for here in SEPARATE
        for there in SEPARATE
        if here != there and _within(name, here) and _within(target, there)
    )


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


def test_every_module_sits_in_a_layer():
    # A new package or root module gets a place in LAYERS, so the rules cover it.
    assert sorted(name for name in MODULES if name != "packflow" and _layer(name) is None) == []


def test_every_layer_names_something_that_exists():
    assert [p for layer in LAYERS for p in layer if not any(_within(m, p) for m in MODULES)] == []


BOUNDARIES = [
    (low, high) for above, below in zip(LAYERS, LAYERS[1:]) for low in below for high in above
]


@pytest.mark.parametrize("lower, higher", BOUNDARIES)
def test_an_upward_import_is_caught_at_every_boundary(lower, higher):
    # The rule itself can fail: one module of the lower layer importing one of the
    # layer just above is reported, at module level and inside a function.
    source = next(m for m in MODULES if _within(m, lower))
    target = next(m for m in MODULES if _within(m, higher))
    assert _upward({source: ({target}, set())}) == [f"{source} -> {target}"]
    assert _upward({source: (set(), {target})}) == [f"{source} -> {target}"]
    assert _upward({target: ({source}, set())}) == []


def test_the_separate_front_doors_import_neither_way():
    assert _across(GRAPH) == []
    # The rule can fail: a made-up import between them is reported.
    assert _across({"packflow.ray.sink": ({"packflow.serving.app"}, set())}) == [
        "packflow.ray.sink -> packflow.serving.app"
    ]


def test_layers_import_one_way():
    upward = _upward(GRAPH)
    assert [reach for reach in upward if reach not in LAZY_UPWARD] == []
    # An allowance that is no longer needed goes, so it cannot cover a new reach.
    assert sorted(LAZY_UPWARD) == [reach for reach in upward if reach in LAZY_UPWARD]


#: 0.4.1's module paths whose code moved: each only re-exports from its new home.
RE_EXPORTS = {"packflow.runner": "packflow.engine"}


@pytest.mark.parametrize("old, home", sorted(RE_EXPORTS.items()))
def test_an_old_path_only_re_exports(old, home):
    if "packflow.engine.runner" not in MODULES:
        pytest.skip("runner.py has not moved into engine/ yet")
    top, nested = GRAPH[old]
    assert nested == set()
    assert top and [target for target in top if not _within(target, home)] == []
    tree = ast.parse(MODULES[old].read_text(encoding="utf-8"))
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    assert defined == []


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
