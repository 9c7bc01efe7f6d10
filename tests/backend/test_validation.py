"""``check_io`` / ``validate`` and the ``_core`` checks behind them:
``check_inputs``, ``check_outputs``, ``missing_keys``."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import InferenceBackend, _core
from packflow.exceptions import InferenceBackendRuntimeError, InferenceBackendValidationError
from tests.support.reference import run_reference_script

MAX_DEPTH = _core.MAX_DEPTH


@pytest.fixture
def backend_returning():
    """A backend (passthrough input) whose execute returns ``make(inputs)``."""

    def build(make, **config):
        class Backend(InferenceBackend):
            def execute(self, inputs):
                return make(inputs)

        return Backend(input_format="passthrough", **config)

    return build


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# -- check_io through a backend ------------------------------------------------------


def test_check_io_returns_outputs(backend_returning):
    backend = backend_returning(lambda inputs: [{"y": i} for i, _ in enumerate(inputs)])
    assert backend.check_io([{"x": 1}, {"x": 2}]) == [{"y": 0}, {"y": 1}]
    assert backend.check_io({"x": 1}) == {"y": 0}
    assert backend.validate([{"x": 1}]) == [{"y": 0}]


def test_check_io_does_not_modify_inputs_or_outputs(backend_returning):
    out = [{"y": np.arange(3), "z": (1, 2)}]
    backend = backend_returning(lambda inputs: out)
    inputs = [{"x": [1, 2]}]
    assert backend.check_io(inputs) is out
    assert inputs == [{"x": [1, 2]}]
    assert isinstance(out[0]["z"], tuple)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (
            (({"x": 1},)),
            "Production inputs will be in a list format. Input type received was <class 'tuple'>",
        ),
        ("abc", "Input type received was <class 'str'>"),
        ([{"x": 1}, 2], "Value at index 1 is not a dictionary. Type found was <class 'int'>"),
        ([{}, {}, [1]], "Value at index 2 is not a dictionary. Type found was <class 'list'>"),
    ],
)
def test_check_io_rejects_bad_inputs(backend_returning, inputs, message):
    backend = backend_returning(lambda inputs: [{} for _ in inputs])
    with pytest.raises(InferenceBackendValidationError, match=re.escape(message)):
        backend.check_io(inputs)


def test_check_io_wraps_backend_failures(backend_returning):
    def boom(inputs):
        raise KeyError("model blew up")

    with pytest.raises(InferenceBackendRuntimeError) as info:
        backend_returning(boom).check_io([{"x": 1}])
    assert str(info.value).startswith(
        "Error encountered when running the inference backend. This is not a validation issue."
    )
    assert str(info.value).endswith(
        "The backend raised InferenceBackendRuntimeError: execute() failed with the following "
        "error: 'model blew up'"
    )
    assert isinstance(info.value.__cause__, InferenceBackendRuntimeError)


@pytest.mark.parametrize("make", [lambda i: None, lambda i: ({} for _ in i), lambda i: ({}, {})])
def test_check_io_non_list_outputs_fail_in_the_backend_call(backend_returning, make):
    # The backend call itself rejects a non-list result, before any check.
    with pytest.raises(InferenceBackendRuntimeError):
        backend_returning(make).check_io([{"x": 1}, {"x": 2}])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda inputs: [], r"Received 2 inputs and returned 0 outputs\.$"),
        (
            lambda inputs: [{}, 1],
            r"Value at index 1 is not a dictionary\. Type found was <class 'int'>$",
        ),
        (
            lambda inputs: [{}, {"a": {"b": {1}}}],
            r"index 1 is not JSON Serializable\. .* Error: Object of type set is not JSON "
            r'serializable \(key "a\.b"\)$',
        ),
    ],
)
def test_check_io_rejects_bad_outputs(backend_returning, make, message):
    with pytest.raises(InferenceBackendValidationError, match=message):
        backend_returning(make).check_io([{"x": 1}, {"x": 2}])


def test_output_keys_warning(backend_returning, caplog):
    backend = backend_returning(
        lambda inputs: [{"score": 1.0}, {"score": 2.0, "label": "a"}],
        output_keys=["score", "zeta", "label", "alpha", "zeta"],
    )
    with caplog.at_level(logging.WARNING, logger="packflow"):
        backend.check_io([{}, {}])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "output_keys: declared key 'alpha' was not found in any output record",
        "output_keys: declared key 'zeta' was not found in any output record",
    ]


def test_no_warning_without_output_keys(backend_returning, caplog):
    with caplog.at_level(logging.WARNING, logger="packflow"):
        backend_returning(lambda inputs: [{"a": 1}]).check_io([{}])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- differential: check_io against the reference --------------------------------------

# Output expressions evaluated in both interpreters (numpy as np), for 2 inputs.
OUTPUT_CASES = [
    "[{'a': 1}, {'b': [1.5, None, 'x']}]",
    "[{'a': 1}]",
    "[{'a': 1}, {'b': 2}, {'c': 3}]",
    "({'a': 1}, {'b': 2})",
    "[{'a': 1}, [('b', 2)]]",
    "[5, {'a': 1}]",
    "[{'a': {1, 2}}, {'b': 1}]",
    "[{'a': 1}, {'b': b'bytes'}]",
    "[{'a': 1}, {(1, 2): 'tuple key'}]",
    "[{'a': {'b': [1, object()]}}, 3]",
    "[{'a': float('nan')}, {'b': float('inf')}]",
    "[{'a': 2**200}, {'b': -2**64}]",
    "[{'a': 10**5000}, {}]",
    "[{1: 'x', None: 'y', 2.5: 'z', True: 'w'}, {}]",
    "[{'a': (1, 2)}, {'b': ()}]",
    "[{'a': 'lone \\ud800 surrogate'}, {}]",
    "[{}, {'a': complex(1, 2)}]",
    "[{}, {'a': frozenset()}]",
    "[{}, {'a': [[[[[[[[[[{'deep': range(3)}]]]]]]]]]]}]",
    "None",
    "(x for x in [{}, {}])",
    "({}, {})",
]

REFERENCE_SCRIPT = """
import numpy as np
from packflow import InferenceBackend

class Backend(InferenceBackend):
    def execute(self, inputs):
        return eval(self.expr)

result = []
for expr in payload:
    backend = Backend()
    backend.expr = expr
    try:
        backend.check_io([{"x": 1}, {"x": 2}])
        result.append(("ok", None))
    except Exception as exc:
        result.append(("err", type(exc).__name__, str(exc)))
"""


def outcome_key(outcome):
    """Exception type and the index the message names (messages differ in wording)."""
    if outcome[0] == "ok":
        return ("ok",)
    found = re.search(r"index (\d+)", outcome[2])
    return (outcome[1], found.group(1) if found else None)


def test_check_io_matches_the_reference(backend_returning):
    theirs = run_reference_script(REFERENCE_SCRIPT, OUTPUT_CASES)
    for expr, their in zip(OUTPUT_CASES, theirs):
        backend = backend_returning(lambda inputs, expr=expr: eval(expr))
        try:
            backend.check_io([{"x": 1}, {"x": 2}])
            ours = ("ok", None)
        except Exception as exc:  # noqa: BLE001 - compared below
            ours = ("err", type(exc).__name__, str(exc))
        assert outcome_key(ours) == outcome_key(their), (expr, ours, their)


# Deliberate differences, asserted as our behaviour. (A non-sized `outputs` is a
# ValidationError from check_outputs where the reference's len() raises TypeError,
# but through check_io the backend call rejects a non-list first, in both.)
def test_numpy_values_are_accepted_unlike_the_reference(backend_returning):
    exprs = ["[{'a': np.float32(1.5)}, {'b': np.arange(3)}]", "[{'a': np.bool_(True)}, {}]"]
    theirs = run_reference_script(REFERENCE_SCRIPT, exprs)
    assert [t[1] for t in theirs] == ["InferenceBackendValidationError"] * 2
    for expr in exprs:
        backend_returning(lambda inputs, expr=expr: eval(expr)).check_io([{}, {}])


def test_nesting_past_the_limit_is_rejected_unlike_the_reference(backend_returning):
    theirs = run_reference_script(
        REFERENCE_SCRIPT.replace("import numpy as np", "import numpy as np\n" + NESTED_SRC),
        ["[nested(300), {}]"],
    )
    assert theirs == [("ok", None)]
    with pytest.raises(InferenceBackendValidationError, match="index 0 .*nesting deeper than 255"):
        backend_returning(lambda inputs: [nested(300), {}]).check_io([{}, {}])


NESTED_SRC = """
def nested(depth):
    value = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value
"""


# -- check_inputs -----------------------------------------------------------------


class Rows(list):
    pass


class Row(dict):
    pass


def test_check_inputs_accepts_lists_of_dicts():
    _core.check_inputs([])
    _core.check_inputs([{}, {"a": 1}, Row(b=2)])
    _core.check_inputs(Rows([{}]))


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"a": 1}, "Input type received was <class 'dict'>"),
        (({},), "Input type received was <class 'tuple'>"),
        (None, "Input type received was <class 'NoneType'>"),
        ((r for r in [{}]), "Input type received was <class 'generator'>"),
        ({1, 2}, "Input type received was <class 'set'>"),
        (b"x", "Input type received was <class 'bytes'>"),
        ([{}, None], "Value at index 1 is not a dictionary. Type found was <class 'NoneType'>"),
        ([[("a", 1)]], "Value at index 0 is not a dictionary. Type found was <class 'list'>"),
        (
            [{}, {}, {}, np.zeros(2)],
            "Value at index 3 is not a dictionary. Type found was <class 'numpy.ndarray'>",
        ),
    ],
)
def test_check_inputs_rejects(inputs, message):
    with pytest.raises(InferenceBackendValidationError, match=re.escape(message)):
        _core.check_inputs(inputs)


# -- check_outputs -----------------------------------------------------------------


def test_check_outputs_accepts():
    _core.check_outputs([], 0)
    _core.check_outputs([{"a": [1, 2.5, None, True, "x", {"b": ()}]}, Row(c=1)], 2)
    _core.check_outputs(Rows([{}]), 1)
    _core.check_outputs([{"nan": float("nan"), "inf": float("-inf")}], 1)
    _core.check_outputs([{"big": 2**100, 1: 2, None: 3, 1.5: 4, False: 5}], 1)
    _core.check_outputs([{"s": "lone \ud800 is fine for json.dumps"}], 1)
    _core.check_outputs([nested(MAX_DEPTH)], 1)


def test_check_outputs_accepts_numpy_values():
    row = {
        "f32": np.float32(0.5),
        "i64": np.int64(3),
        "u8": np.uint8(1),
        "b": np.bool_(False),
        "arr": np.arange(6).reshape(2, 3)[:, ::2],
        "big_endian": np.zeros(3, dtype=">f8"),
        "zero_d": np.array(1.5),
        "nan": np.array([np.nan]),
        "objects": np.array([1, "a", {"k": np.float16(1)}], dtype=object),
    }
    _core.check_outputs([row], 1)


@pytest.mark.parametrize(
    "outputs, n, message",
    [
        (
            [{}],
            2,
            "Inputs and Outputs must have matching lengths. Received 2 inputs and returned 1",
        ),
        ([{}, {}, {}], 2, "Received 2 inputs and returned 3 outputs."),
        (None, 1, "got NoneType, which has no length (1 inputs)"),
        (5, 1, "got int, which has no length"),
        ((x for x in [{}]), 1, "got generator, which has no length"),
        (({},), 1, "Python list of dicts. Type returned was tuple"),
        ({"a": 1}, 1, "Python list of dicts. Type returned was dict"),
        ("a", 1, "Python list of dicts. Type returned was str"),
        ([{}, [1]], 2, "Value at index 1 is not a dictionary. Type found was <class 'list'>"),
    ],
)
def test_check_outputs_rejects_shape(outputs, n, message):
    with pytest.raises(InferenceBackendValidationError, match=re.escape(message)):
        _core.check_outputs(outputs, n)


@pytest.mark.parametrize(
    "row, detail",
    [
        ({"a": {1, 2}}, 'Object of type set is not JSON serializable (key "a")'),
        (
            {"meta": {"scores": [1, 2, b"x"]}},
            'type bytes is not JSON serializable (key "meta.scores[2]")',
        ),
        ({"a": object()}, 'Object of type object is not JSON serializable (key "a")'),
        ({"a": [1j]}, 'type complex is not JSON serializable (key "a[0]")'),
        ({"a": frozenset()}, "Object of type frozenset"),
        ({"a": (x for x in [])}, "Object of type generator"),
        ({(1, 2): 1}, "keys must be str, int, float, bool or None, not tuple"),
        (
            {"a": np.array([1j])},
            'ndarray is not JSON serializable (numpy dtype complex128) (key "a")',
        ),
        (
            {"a": np.array(["s"])},
            "Object of type ndarray is not JSON serializable (numpy dtype <U1)",
        ),
        (
            {"a": np.array([{1}], dtype=object)},
            'Object of type set is not JSON serializable (key "a[0]")',
        ),
        ({"a": np.datetime64("2020")}, "Object of type datetime64 is not"),
        ({"a": 10**5000}, "Exceeds the limit"),
        (nested(MAX_DEPTH + 1), "nesting deeper than 255 levels"),
    ],
)
def test_check_outputs_rejects_unserializable(row, detail):
    with pytest.raises(InferenceBackendValidationError) as info:
        _core.check_outputs([{}, {}, {}, row], 4)
    message = str(info.value)
    assert message.startswith(
        "Value at index 3 is not JSON Serializable. Please ensure returned values are native "
        "Python types. Error: "
    ), message
    assert detail in message


def test_check_outputs_reports_cycles():
    row: dict = {"a": []}
    row["a"].append(row)
    with pytest.raises(InferenceBackendValidationError, match="index 1 .*reference cycle"):
        _core.check_outputs([{}, row], 2)


def test_check_outputs_reports_a_non_dict_before_an_earlier_unserializable_row():
    # The reference checks every row is a dict before it checks serializability.
    with pytest.raises(InferenceBackendValidationError, match="index 5 is not a dictionary"):
        _core.check_outputs([{}, {"a": {1}}, {}, {}, {}, "row"], 6)
    with pytest.raises(InferenceBackendValidationError, match="index 1 is not JSON Serializable"):
        _core.check_outputs([{}, {"a": {1}}, {"b": {2}}], 3)


def test_check_outputs_on_a_big_batch():
    from packflow.sample_data import sample_outputs

    rows = sample_outputs(50_000)
    _core.check_outputs(rows, 50_000)
    rows[31_337]["meta"]["bad"] = {1}
    with pytest.raises(InferenceBackendValidationError, match='index 31337 .*key "meta.bad"'):
        _core.check_outputs(rows, 50_000)


# Plain-Python statement of what check_outputs decides (json.dumps-based, like the
# reference), on values without numpy: None when accepted, else the failing index.
def plain_check(outputs, n_inputs):
    if len(outputs) != n_inputs or not isinstance(outputs, list):
        return "shape"
    for i, row in enumerate(outputs):
        if not isinstance(row, dict):
            return i
    for i, row in enumerate(outputs):
        try:
            json.dumps(row)
        except Exception:  # noqa: BLE001 - any failure is "not serializable"
            return i
    return None


def our_check(outputs, n_inputs):
    try:
        _core.check_outputs(outputs, n_inputs)
    except InferenceBackendValidationError as exc:
        found = re.search(r"index (\d+)", str(exc))
        return int(found.group(1)) if found else "shape"
    return None


bad_leaves = st.sampled_from([set(), frozenset([1]), b"x", bytearray(), 1j, object, Ellipsis])
good_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.integers(min_value=2**64, max_value=2**100)
)
keys = st.text(max_size=4) | st.integers(-3, 3) | st.booleans() | st.none() | st.floats()
values = st.recursive(
    good_leaves | bad_leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(keys, children, max_size=3)
        | st.dictionaries(st.tuples(st.integers()), children, min_size=1, max_size=1)
    ),
    max_leaves=12,
)
rows = st.dictionaries(st.text(max_size=4), values, max_size=4) | values


@settings(max_examples=300, deadline=None)
@given(st.lists(rows, max_size=6), st.integers(0, 2))
def test_check_outputs_decides_like_json_dumps(outputs, extra):
    n_inputs = len(outputs) if extra == 0 else len(outputs) + extra - 1
    assert our_check(outputs, n_inputs) == plain_check(outputs, n_inputs)


# -- missing_keys -----------------------------------------------------------------


def test_missing_keys():
    rows = [{"a": 1}, {"b": 2, "c": None}, Row(d=1)]
    assert _core.missing_keys(rows, ["z", "a", "y", "d", "z"]) == ["y", "z"]
    assert _core.missing_keys(rows, []) == []
    assert _core.missing_keys([], ["b", "a"]) == ["a", "b"]
    assert _core.missing_keys([{1: "int key"}], ["1"]) == ["1"]


def test_missing_keys_rejects_bad_rows():
    with pytest.raises(TypeError, match="output at index 1 is not a dict"):
        _core.missing_keys([{}, [("a", 1)]], ["a"])
    with pytest.raises(TypeError):
        _core.missing_keys(({"a": 1},), ["a"])
    with pytest.raises(TypeError):
        _core.missing_keys([{}], "ab")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from("abcdef"), st.none(), max_size=4), max_size=5),
    st.lists(st.sampled_from("abcdefgh"), max_size=6),
)
def test_missing_keys_like_sets(outputs, declared):
    seen = set().union(*(row.keys() for row in outputs))
    assert _core.missing_keys(outputs, declared) == sorted(set(declared) - seen)
