"""The `_core.pyi` stub is the extension's contract: every public item has a stub
with a docstring."""

import ast
from pathlib import Path

import packflow._core as core

STUB = Path(core.__file__).with_name("_core.pyi")


def stub_docs() -> dict[str, str | None]:
    tree = ast.parse(STUB.read_text())
    docs: dict[str, str | None] = {}
    body = tree.body
    for i, node in enumerate(body):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            docs[node.name] = ast.get_docstring(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            nxt = body[i + 1] if i + 1 < len(body) else None
            is_doc = isinstance(nxt, ast.Expr) and isinstance(
                getattr(nxt, "value", None), ast.Constant
            )
            docs[node.target.id] = nxt.value.value if is_doc else None
    return docs


def test_every_public_item_has_a_documented_stub():
    docs = stub_docs()
    public = [n for n in dir(core) if not n.startswith("_")]
    assert public
    missing = [n for n in public if n not in docs]
    undocumented = [n for n in public if n in docs and not docs[n]]
    assert missing == [] and undocumented == []


def test_no_stub_for_something_that_does_not_exist():
    assert [n for n in stub_docs() if not hasattr(core, n)] == []
