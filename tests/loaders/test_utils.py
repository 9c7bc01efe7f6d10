"""inference_backend_parts and describe_exception."""

from __future__ import annotations

import pytest

from packflow.loaders.utils import describe_exception, inference_backend_parts
from tests.support.reference import call_ours, call_reference


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("inference:Backend", ["inference", "Backend"]),
        ("pkg.sub.module:Obj", ["pkg.sub.module", "Obj"]),
        ("my-file:My_Class", ["my-file", "My_Class"]),
        ("ünïcode:Bäckend", ["ünïcode", "Bäckend"]),
    ],
)
def test_splits_module_and_object(path, expected):
    assert inference_backend_parts(path) == expected


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("inference", "exactly one colon separating module and object: inference_backend "),
        ("a:b:c", "'a:b:c' has 2 (expected 'module:Object')"),
        ("pkg::Obj", "'pkg::Obj' has 2"),
        ("", "'' has 0"),
        ("module:", "empty object name"),
        (":Backend", "empty module name"),
        ("  :Backend", "empty module name"),
    ],
)
def test_rejects_anything_but_one_colon_with_names(path, fragment):
    with pytest.raises(ValueError, match="inference_backend") as info:
        inference_backend_parts(path)
    assert fragment in str(info.value)
    assert repr(path) in str(info.value)


@pytest.mark.parametrize("value", [None, 3, b"a:b", ["a", "b"]])
def test_non_string_is_value_error(value):
    with pytest.raises(ValueError, match="must be a string"):
        inference_backend_parts(value)


def test_differential_against_reference():
    # Where both accept or both refuse, they agree; the empty-side cases differ on purpose.
    cases = [((p,), {}) for p in ["inference:Backend", "a.b.c:D", "x", "a:b:c", "", "::"]]
    ours = call_ours(inference_backend_parts, cases)
    theirs = call_reference("packflow.loaders.utils", "inference_backend_parts", cases)
    for mine, ref in zip(ours, theirs):
        assert mine[0] == ref[0]
        if mine[0] == "ok":
            assert mine[1] == ref[1]
        else:
            assert mine[1] == ref[1] == "ValueError"


def test_empty_sides_are_refused_unlike_the_reference():
    cases = [(("module:",), {}), ((":Backend",), {})]
    theirs = call_reference("packflow.loaders.utils", "inference_backend_parts", cases)
    assert [r[0] for r in theirs] == ["ok", "ok"]  # Packflow 0.4 returns an empty part
    assert [r[0] for r in call_ours(inference_backend_parts, cases)] == ["err", "err"]


def _raise_from_here():
    raise KeyError("missing-key")


def test_describe_exception_names_the_last_frame():
    try:
        _raise_from_here()
    except KeyError as exc:
        text = describe_exception(exc)
    assert text.startswith("KeyError: 'missing-key' (at ")
    assert __file__ in text
    assert 'in _raise_from_here: raise KeyError("missing-key")' in text


def test_describe_exception_points_at_the_calling_source_when_a_library_raised():
    try:
        int("not a number")
    except ValueError as exc:
        plain = describe_exception(exc, source=__file__)
    assert plain.startswith("ValueError: invalid literal")
    assert __file__ in plain  # the frame of this file is the last one

    import json

    try:
        json.loads("{")
    except ValueError as exc:
        text = describe_exception(exc, source=__file__)
    assert "json" in text.split(", called from")[0]
    assert f"called from {__file__}" in text
    assert 'json.loads("{")' in text


def test_describe_syntax_error_shows_the_offending_line():
    try:
        compile("def broken(:\n    pass\n", "/project/inference.py", "exec")
    except SyntaxError as exc:
        text = describe_exception(exc)
    assert text.startswith("SyntaxError: ")
    assert "/project/inference.py, line 1: def broken(:" in text


def test_describe_exception_without_traceback_or_message():
    assert describe_exception(RuntimeError()) == "RuntimeError"
    assert describe_exception(RuntimeError("x")) == "RuntimeError: x"


# --- property: the same answer as a plain model of the rule ------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def model_parts(path: str):
    parts = path.split(":")
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        return None
    return parts


@given(st.text(alphabet=st.sampled_from("ab.:_ \t-é"), max_size=12))
def test_parts_match_the_model(path):
    expected = model_parts(path)
    if expected is None:
        with pytest.raises(ValueError):
            inference_backend_parts(path)
    else:
        assert inference_backend_parts(path) == expected
