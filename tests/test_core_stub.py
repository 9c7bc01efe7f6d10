"""The `_core.pyi` stub is the extension's contract: every public item, and every
public member of its classes, has a stub with a docstring, and the stub names
nothing the extension lacks."""

import ast
import inspect
from pathlib import Path

import packflow._core as core

STUB = Path(core.__file__).with_name("_core.pyi")

#: Dunder methods that are part of a class's contract (called by users).
CONTRACT_DUNDERS = {"__call__"}


def _docs_of(body: list[ast.stmt]) -> dict[str, tuple[str, str | None]]:
    """name -> (kind, docstring) for the functions, classes and annotated names
    of a module or class body; kind is "property" for a ``@property`` or an
    annotated attribute, else the node's kind."""
    docs: dict[str, tuple[str, str | None]] = {}
    for i, node in enumerate(body):
        if isinstance(node, ast.FunctionDef):
            is_property = any(
                isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list
            )
            docs[node.name] = ("property" if is_property else "method", ast.get_docstring(node))
        elif isinstance(node, ast.ClassDef):
            docs[node.name] = ("class", ast.get_docstring(node))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            nxt = body[i + 1] if i + 1 < len(body) else None
            is_doc = isinstance(nxt, ast.Expr) and isinstance(
                getattr(nxt, "value", None), ast.Constant
            )
            docs[node.target.id] = ("property", nxt.value.value if is_doc else None)
    return docs


def _tree() -> ast.Module:
    return ast.parse(STUB.read_text())


def stub_docs() -> dict[str, str | None]:
    return {name: doc for name, (_, doc) in _docs_of(_tree().body).items()}


def stub_classes() -> dict[str, dict[str, tuple[str, str | None]]]:
    return {
        node.name: _docs_of(node.body) for node in _tree().body if isinstance(node, ast.ClassDef)
    }


def public_members(cls: type) -> list[str]:
    return sorted(n for n in vars(cls) if not n.startswith("_") or n in CONTRACT_DUNDERS)


def test_every_public_item_has_a_documented_stub():
    docs = stub_docs()
    public = [n for n in dir(core) if not n.startswith("_")]
    assert public
    missing = [n for n in public if n not in docs]
    undocumented = [n for n in public if n in docs and not docs[n]]
    assert missing == [] and undocumented == []


def test_no_stub_for_something_that_does_not_exist():
    assert [n for n in stub_docs() if not hasattr(core, n)] == []


def test_every_public_class_member_has_a_documented_stub():
    classes = stub_classes()
    runtime = {n: getattr(core, n) for n in dir(core) if isinstance(getattr(core, n), type)}
    assert runtime and set(runtime) <= set(classes)
    missing, undocumented = [], []
    for name, cls in runtime.items():
        members = classes[name]
        for member in public_members(cls):
            if member not in members:
                missing.append(f"{name}.{member}")
            elif not members[member][1]:
                undocumented.append(f"{name}.{member}")
    assert missing == [] and undocumented == []


def test_class_stubs_match_the_classes():
    wrong = []
    for name, members in stub_classes().items():
        cls = getattr(core, name)
        for member, (kind, _) in members.items():
            if member == "__init__":
                # pyo3 builds instances in __new__; a stub __init__ means "constructible".
                if "__new__" not in vars(cls):
                    wrong.append(f"{name}.__init__: the class has no constructor")
                continue
            if member not in vars(cls):
                wrong.append(f"{name}.{member}: no such member")
                continue
            is_property = inspect.isdatadescriptor(vars(cls)[member])
            if (kind == "property") != is_property:
                wrong.append(f"{name}.{member}: stub says {kind}")
        if "__new__" in vars(cls) and "__init__" not in members:
            wrong.append(f"{name}: constructible, but the stub has no __init__")
    assert wrong == []
