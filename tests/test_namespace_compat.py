"""Packflow 0.4.1's module surface, name by name, imports from the same path here.

The reference's modules are walked in its own virtualenv (every module
``pkgutil.walk_packages`` finds): each name a module defines or re-exports from
packflow, with its kind and, for callables, its parameters. Then here:

- every public name imports from the same module path, with a compatible kind;
- so does every private name of the backend and loader modules (0.4.1's
  ``_input_is_correct_format``, ``_load_raw_packaging_config``...), which users'
  tests and subclasses call;
- the methods of 0.4.1's classes exist (private ones too on the backend and
  loader classes: ``_execute_and_profile_step``, ``_dot_notation_to_pypath``...);
- a call written for 0.4.1 binds here: its parameter names, order and defaults;
- names that are one object there are one object here.

What is left out is :data:`EXCLUDED`, each entry with its reason; an entry the
reference no longer has, or that now passes, fails the test, so the list stays
exact and a future move cannot drop a name silently.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import types
from typing import Any

import pytest

from tests.support.reference import run_reference_script

# Runs in the reference's interpreter; ``result``: module -> name -> description.
WALKER = r'''
import ast, importlib, inspect, pkgutil, types
import packflow


def foreign_imports(module):
    """Top-level names the module binds by importing from outside packflow."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(
                a.asname or a.name.split(".")[0] for a in node.names
                if not a.name.startswith("packflow")
            )
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            if not (node.module or "").startswith("packflow"):
                names.update(a.asname or a.name for a in node.names)
    return names


def params(obj):
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [
        (p.name, p.kind.name, p.default is not inspect.Parameter.empty)
        for p in signature.parameters.values()
    ]


def kind(obj):
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    return "constant"


def methods(cls):
    found = {}
    for name, raw in vars(cls).items():
        if name.startswith("__") and name not in ("__init__", "__call__"):
            continue
        if isinstance(raw, (staticmethod, classmethod)):
            found[name] = params(getattr(cls, name))
        elif inspect.isfunction(raw):
            found[name] = params(raw)
    return found


result = {}
modules = ["packflow"] + [m.name for m in pkgutil.walk_packages(packflow.__path__, "packflow.")]
for module_name in modules:
    module = importlib.import_module(module_name)
    foreign = foreign_imports(module)
    entries = {}
    for name, obj in vars(module).items():
        if (name.startswith("__") and name != "__version__") or name in foreign:
            continue
        entry = {"kind": kind(obj)}
        if entry["kind"] == "module":
            if not obj.__name__.startswith("packflow"):
                continue
            entry["target"] = obj.__name__
        if entry["kind"] in ("class", "function"):
            entry["params"] = params(obj)
            entry["origin"] = f"{obj.__module__}.{obj.__qualname__}"
        if entry["kind"] == "class":
            entry["methods"] = methods(obj)
        entries[name] = entry
    result[module_name] = entries
'''

# Modules whose private names and whose classes' private methods are surface.
PRIVATE_SURFACE = ("packflow.backend", "packflow.loaders")

#: 0.4.1 paths (``module``, ``module.name`` or ``module.Class.method``) not carried
#: over, and why. Each must still exist in 0.4.1 and still fail here.
EXCLUDED: dict[str, str] = {
    # The roll-in animation of 0.4.1's `packflow create` and its hidden `roll`
    # command: terminal decoration, not an interface.
    "packflow._splash": "the CLI's splash animation",
    "packflow._frames": "the splash animation's frame data",
    "packflow.cli.roll": "the hidden command that plays the splash animation",
    # 0.4.1's cli.py held the click commands as module attributes; here
    # packflow.cli is a package whose submodules carry those names. The commands
    # are reached through the group, `packflow.cli.cli`, as before.
    "packflow.cli.create": "a submodule here (the command is packflow.cli.create.create)",
    "packflow.cli.export": "a submodule here (the command is packflow.cli.export.export)",
    "packflow.cli.validate": "a submodule here (the command is packflow.cli.validate.validate)",
    # `import packflow` inside 0.4.1's modules binds the root package as a name;
    # here no submodule imports the root package (tests/test_layout.py).
    "packflow.cli.packflow": "the root package itself, bound by `import packflow`",
    "packflow.backend.preprocessors.packflow": "the root package, bound by `import packflow`",
}


@pytest.fixture(scope="module")
def reference_surface() -> dict[str, dict[str, dict[str, Any]]]:
    return run_reference_script(WALKER)


def _excluded(path: str) -> bool:
    return any(path == e or path.startswith(e + ".") for e in EXCLUDED)


def _in_scope(module: str, name: str) -> bool:
    private = name.startswith("_") and name != "__version__"
    return not private or module.startswith(PRIVATE_SURFACE)


def _entries(surface: dict) -> list[tuple[str, str, dict]]:
    return [
        (module, name, entry)
        for module, entries in sorted(surface.items())
        for name, entry in sorted(entries.items())
        if _in_scope(module, name)
    ]


class Missing(Exception):
    pass


def _ours(module: str, name: str) -> Any:
    """What ``from module import name`` gives here (a submodule if need be)."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise Missing(f"module {module} does not import: {exc}") from None
    try:
        return getattr(mod, name)
    except AttributeError:
        pass
    try:
        return importlib.import_module(f"{module}.{name}")
    except ImportError:
        raise Missing(f"{module}.{name} does not import") from None


def _kind_problem(theirs: str, ours: Any) -> str | None:
    if theirs == "module" and not isinstance(ours, types.ModuleType):
        return "is a module in 0.4.1"
    if theirs == "class" and not inspect.isclass(ours):
        return "is a class in 0.4.1"
    if theirs == "function" and not callable(ours):
        return "is a function in 0.4.1"
    if theirs == "constant" and isinstance(ours, types.ModuleType):
        return "is a value in 0.4.1, a module here"
    return None


def _parameters(obj: Any) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return None


def _signature_problem(theirs: list | None, obj: Any) -> str | None:
    """Why a call written for 0.4.1's parameters would not bind here, if it would not."""
    ours = _parameters(obj)
    if theirs is None or ours is None:
        return None
    P = inspect.Parameter
    by_name = {p.name: p for p in ours}
    positional = [p for p in ours if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    has_var_kw = any(p.kind is P.VAR_KEYWORD for p in ours)
    has_var_pos = any(p.kind is P.VAR_POSITIONAL for p in ours)
    their_positional = [t for t in theirs if t[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
    for index, (name, kind, _) in enumerate(their_positional):
        if index >= len(positional):
            if not has_var_pos:
                return f"takes no positional parameter {index} ({name!r})"
        elif kind == "POSITIONAL_OR_KEYWORD" and positional[index].name != name:
            return f"positional parameter {index} is {positional[index].name!r}, not {name!r}"
    for name, kind, has_default in theirs:
        if kind == "VAR_POSITIONAL" and not has_var_pos:
            return "takes no *args"
        if kind == "VAR_KEYWORD" and not has_var_kw:
            return "takes no **kwargs"
        if kind in ("VAR_POSITIONAL", "VAR_KEYWORD", "POSITIONAL_ONLY") or name == "self":
            continue
        ours_p = by_name.get(name)
        if ours_p is None:
            if not has_var_kw:
                return f"has no parameter {name!r}"
            continue
        if ours_p.kind is P.POSITIONAL_ONLY:
            return f"{name!r} cannot be passed by keyword"
        if has_default and ours_p.default is P.empty:
            return f"{name!r} is required here, optional in 0.4.1"
    their_names = {t[0] for t in theirs}
    for p in ours:
        required = p.default is P.empty and p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)
        if required and p.name not in their_names:
            return f"requires {p.name!r}, which 0.4.1 does not have"
    return None


def _method(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in vars(klass):
            raw = vars(klass)[name]
            return getattr(cls, name) if isinstance(raw, (staticmethod, classmethod)) else raw
    raise Missing(f"{cls.__qualname__} has no method {name}")


def _problems(surface: dict) -> list[str]:
    problems = []
    for module, name, entry in _entries(surface):
        path = f"{module}.{name}"
        if _excluded(path):
            continue
        try:
            ours = _ours(module, name)
        except Missing as exc:
            problems.append(f"{path}: {exc}")
            continue
        kind_problem = _kind_problem(entry["kind"], ours)
        if kind_problem:
            problems.append(f"{path} {kind_problem}")
            continue
        # An Enum's call signature is the interpreter's (3.11 added ``boundary``),
        # not ours: the matrix runs other Pythons than the reference's.
        is_enum = inspect.isclass(ours) and issubclass(ours, enum.Enum)
        problem = None if is_enum else _signature_problem(entry.get("params"), ours)
        if problem:
            problems.append(f"{path}() {problem}")
        for method, params in entry.get("methods", {}).items():
            private = method.startswith("_") and method not in ("__init__", "__call__")
            if (private and not module.startswith(PRIVATE_SURFACE)) or _excluded(
                f"{path}.{method}"
            ):
                continue
            try:
                ours_method = _method(ours, method)
            except Missing as exc:
                problems.append(f"{path}.{method}: {exc}")
                continue
            problem = _signature_problem(params, ours_method)
            if problem:
                problems.append(f"{path}.{method}() {problem}")
    return problems


def test_the_walk_sees_the_reference(reference_surface):
    # A walker that found nothing would pass everything below.
    assert len(reference_surface) >= 25
    validation = reference_surface["packflow.backend.validation"]
    assert {"InferenceBackendValidator", "_input_is_correct_format"} <= set(validation)
    assert "Path" not in reference_surface["packflow.loaders.config"]  # pathlib's, not 0.4.1's
    assert reference_surface["packflow.cli"]["validate_for_export"]["kind"] == "function"


def test_every_name_of_the_reference_imports_from_its_path(reference_surface):
    assert _problems(reference_surface) == []


def test_names_that_are_one_object_there_are_one_object_here(reference_surface):
    groups: dict[str, list[str]] = {}
    for module, name, entry in _entries(reference_surface):
        if "origin" in entry and not _excluded(f"{module}.{name}"):
            groups.setdefault(entry["origin"], []).append(f"{module}.{name}")
    split = []
    for origin, paths in sorted(groups.items()):
        objects = {id(_ours(*path.rsplit(".", 1))) for path in paths}
        if len(objects) > 1:
            split.append(f"{origin}: {paths}")
    assert split == []


def test_every_exclusion_is_still_needed(reference_surface):
    stale = []
    for path in EXCLUDED:
        if path in reference_surface:
            try:
                importlib.import_module(path)
                stale.append(f"{path} imports here now")
            except ImportError:
                pass
            continue
        module, _, name = path.rpartition(".")
        entry = reference_surface.get(module, {}).get(name)
        if entry is None:
            stale.append(f"{path} is not in 0.4.1")
            continue
        try:
            ours = _ours(module, name)
        except Missing:
            continue
        if _kind_problem(entry["kind"], ours) is None:
            stale.append(f"{path} is compatible here now")
    assert stale == []


@pytest.mark.parametrize(
    "theirs, ours, problem",
    [
        ([("a", "POSITIONAL_OR_KEYWORD", False)], lambda a: 0, None),
        ([("a", "POSITIONAL_OR_KEYWORD", False)], lambda b: 0, "positional parameter 0"),
        ([("a", "POSITIONAL_OR_KEYWORD", True)], lambda a: 0, "required here"),
        ([("a", "POSITIONAL_OR_KEYWORD", False)], lambda a, b: 0, "requires 'b'"),
        ([("kw", "VAR_KEYWORD", False)], lambda **kw: 0, None),
        ([("kw", "VAR_KEYWORD", False)], lambda a=1: 0, "no **kwargs"),
        ([("x", "KEYWORD_ONLY", True)], lambda **kw: 0, None),
        ([("a", "POSITIONAL_OR_KEYWORD", False)], lambda a, *, b=1: 0, None),
    ],
)
def test_the_signature_check_itself(theirs, ours, problem):
    found = _signature_problem(theirs, ours)
    assert (found is None) if problem is None else (problem in (found or ""))
