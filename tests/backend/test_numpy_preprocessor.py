"""NumpyPreprocessor (python/packflow/backend/preprocessors.py) and the Rust plan
it runs, packflow._core.NumpyPlan."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import _core
from packflow.backend.configuration import BackendConfig
from packflow.backend.preprocessors import NumpyPreprocessor, get_preprocessor
from packflow.exceptions import PreprocessorInitError, PreprocessorRuntimeError
from packflow.sample_data import NUMERIC_FEATURES, flat_records, sample_events
from packflow.utils.data import records_to_ndarray
from tests.support.reference import run_reference_script

PREFIX = "Failed to preprocess inputs with the following exception: "


def numpy_config(**kwargs) -> BackendConfig:
    return BackendConfig(input_format="numpy", **kwargs)


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return pickle.dumps(a.tolist()) == pickle.dumps(b.tolist())
    return a.tobytes() == b.tobytes()


# --- NumpyPlan ------------------------------------------------------------------


def test_plan_reads_nested_features():
    events = sample_events(40)
    plan = _core.NumpyPlan(NUMERIC_FEATURES, ".")
    got = plan(events)
    assert same_array(got, records_to_ndarray(events, NUMERIC_FEATURES))
    assert got.shape == (40, 9) and got.dtype == np.float64


def test_plan_is_reusable_and_matches_records_to_ndarray():
    plan = _core.NumpyPlan(["a", "b.c"], ".")
    batches = [
        [{"a": 1, "b": {"c": 2}}],
        [{"a": True, "b": {"c": False}}],
        [{"a": 1.5, "b": {"c": None}}],
        [{"a": "x", "b": {}}],
        [],
        [{"a": 1, "b": {"c": 2}}] * 3,
    ]
    for batch in batches:
        assert same_array(plan(batch), records_to_ndarray(batch, ["a", "b.c"]))


def test_plan_attributes_and_repr():
    plan = _core.NumpyPlan(("a", "b/c"), "/")
    assert plan.features == ["a", "b/c"]
    assert plan.delimiter == "/"
    assert repr(plan) == "NumpyPlan(features=['a', 'b/c'], delimiter='/')"
    assert plan([{"a": 1, "b": {"c": 2}}]).tolist() == [[1, 2]]
    with pytest.raises(AttributeError):
        plan.delimiter = "."


def test_plan_construction_errors():
    with pytest.raises(ValueError, match="delimiter"):
        _core.NumpyPlan(["a"], "")
    with pytest.raises(TypeError, match="feature_names"):
        _core.NumpyPlan("abc", ".")
    with pytest.raises(TypeError, match=r"feature_names\[1\]"):
        _core.NumpyPlan(["a", 2], ".")
    with pytest.raises(TypeError):
        _core.NumpyPlan(["a"], None)


@pytest.mark.parametrize(
    "records", [{"a": 1}, ({"a": 1},), (r for r in [{"a": 1}]), {1}, b"x", None, "records"]
)
def test_plan_non_list_is_a_preprocessor_error(records):
    plan = _core.NumpyPlan(["a"], ".")
    with pytest.raises(PreprocessorRuntimeError) as info:
        plan(records)
    msg = str(info.value)
    assert msg.startswith(PREFIX + "Value for `records` must be a list of dictionaries.")
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("row", [3, None, "x", [1], {1, 2}])
def test_plan_non_dict_row_names_the_index(row):
    plan = _core.NumpyPlan(["a"], ".")
    with pytest.raises(
        PreprocessorRuntimeError, match=r"^Failed .*: Value at index 2 is not a dict"
    ):
        plan([{"a": 1}, {"a": 2}, row])


def test_plan_numpy_errors_are_preprocessor_errors():
    plan = _core.NumpyPlan(["a"], ".")
    with pytest.raises(PreprocessorRuntimeError, match="inhomogeneous") as info:
        plan([{"a": [1, 2]}, {"a": [1]}])
    assert isinstance(info.value.__cause__, ValueError)


def test_plan_lookup_errors_are_preprocessor_errors():
    plan = _core.NumpyPlan(["a.b.c"], ".")
    with pytest.raises(PreprocessorRuntimeError, match=r"duplicated key 'a\.b\.c' \(row 1\)"):
        plan([{}, {"a.b": {"c": 1}, "a": {"b.c": 3}}])


def test_plan_deep_and_cyclic_records():
    cyclic = {"v": 1.0}
    cyclic["a"] = cyclic
    plan = _core.NumpyPlan(["v", "a.a.v", "a.q"], ".")
    assert plan([cyclic]).tolist() == [[1.0, 1.0, None]]
    deep = current = {}
    for _ in range(400):
        current["a"] = {}
        current = current["a"]
    plan = _core.NumpyPlan([".".join(["a"] * 300 + ["z"])], ".")
    with pytest.raises(PreprocessorRuntimeError, match="deeper than 255"):
        plan([deep])


def test_plan_does_not_mutate_its_input():
    events = sample_events(10)
    events.append({"ts": None, "src": {"port": "p"}})
    before = pickle.dumps(events)
    _core.NumpyPlan(NUMERIC_FEATURES, ".")(events)
    assert pickle.dumps(events) == before


def test_plan_large_batch():
    recs = flat_records(50_000, width=4)
    got = _core.NumpyPlan(["f0", "f3"], ".")(recs)
    assert got.shape == (50_000, 2)
    assert got[-1, 1] == recs[-1]["f3"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c"]),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(min_value=-(2**65), max_value=2**65),
                st.floats(),
                st.dictionaries(st.sampled_from(["a", "b"]), st.floats(), max_size=2),
            ),
            max_size=3,
        ),
        max_size=5,
    ),
    st.lists(st.sampled_from(["a", "b", "a.b", "c.a", "b.b"]), min_size=1, max_size=3),
)
def test_property_plan_equals_records_to_ndarray(records, features):
    plan = _core.NumpyPlan(features, ".")
    try:
        want = records_to_ndarray(records, features)
    except Exception as exc:  # noqa: BLE001 - compared below
        with pytest.raises(PreprocessorRuntimeError) as info:
            plan(records)
        assert str(info.value) == PREFIX + str(exc)
        return
    assert same_array(plan(records), want)


# --- NumpyPreprocessor ------------------------------------------------------------


def test_preprocessor_maps_renamed_features_back():
    cfg = numpy_config(
        feature_names=["port", "lat", "score"],
        rename_fields={"src.port": "port", "src.geo.lat": "lat"},
    )
    pre = get_preprocessor(cfg)
    assert isinstance(pre, NumpyPreprocessor)
    assert pre.features == ["src.port", "src.geo.lat", "score"]
    events = sample_events(5)
    got = pre(events)
    assert same_array(got, records_to_ndarray(events, ["src.port", "src.geo.lat", "score"]))
    assert pre.compiled() is pre._plan


def test_preprocessor_custom_delimiter():
    pre = NumpyPreprocessor(numpy_config(feature_names=["a/b", "c"], nested_field_delimiter="/"))
    assert pre([{"a": {"b": 1}, "c": 2}]).tolist() == [[1, 2]]


def test_preprocessor_needs_feature_names():
    with pytest.raises(PreprocessorInitError):
        NumpyPreprocessor(numpy_config())


def test_preprocessor_empty_delimiter_fails_at_construction():
    with pytest.raises(ValueError, match="delimiter"):
        config = numpy_config(feature_names=["a"]).model_copy(update={"nested_field_delimiter": ""})
        NumpyPreprocessor(config)


def test_preprocessor_errors():
    pre = NumpyPreprocessor(numpy_config(feature_names=["a"]))
    with pytest.raises(
        PreprocessorRuntimeError,
        match=r"^Failed .*list of dictionaries\. Received type: <class 'dict'>",
    ):
        pre({"a": 1})
    with pytest.raises(PreprocessorRuntimeError, match=r"index 1"):
        pre([{"a": 1}, 7])


def test_subclass_overriding_process_is_not_bypassed():
    class Doubling(NumpyPreprocessor):
        def process(self, raw_inputs):
            return super().process(raw_inputs) * 2

    pre = Doubling(numpy_config(feature_names=["a"]))
    assert pre.compiled() is None
    assert pre([{"a": 2}]).tolist() == [[4]]


# --- differential: the reference packflow 0.4.1 ----------------------------------

_REFERENCE_SCRIPT = """
from packflow.backend.configuration import BackendConfig
from packflow.backend.preprocessors import NumpyPreprocessor
result = []
for cfg, records in payload:
    try:
        pre = NumpyPreprocessor(BackendConfig(input_format="numpy", **cfg))
        a = pre(records)
    except Exception as exc:
        result.append(("err", type(exc).__name__, str(exc)))
        continue
    body = a.ravel().tolist() if a.dtype == object else a.tobytes()
    result.append(("ok", a.dtype.str, a.shape, body))
"""


def _ours(cases):
    out = []
    for cfg, records in cases:
        try:
            a = NumpyPreprocessor(numpy_config(**cfg))(records)
        except Exception as exc:  # noqa: BLE001 - compared, not swallowed
            out.append(("err", type(exc).__name__, str(exc)))
            continue
        body = a.ravel().tolist() if a.dtype == object else a.tobytes()
        out.append(("ok", a.dtype.str, a.shape, body))
    return out


def test_reference_numpy_preprocessor():
    events = sample_events(200)
    flat = flat_records(200)
    renamed = {
        "feature_names": ["port", "lat"],
        "rename_fields": {"src.port": "port", "src.geo.lat": "lat"},
    }
    cases = [
        ({"feature_names": NUMERIC_FEATURES}, events),
        ({"feature_names": [f"f{j}" for j in range(16)]}, flat),
        (renamed, events),
        ({"feature_names": ["ts", "proto"]}, events[:20]),
        ({"feature_names": ["ts", "missing"]}, events[:20]),
        ({"feature_names": ["a/b"], "nested_field_delimiter": "/"}, [{"a": {"b": 1}}]),
        ({"feature_names": ["a"]}, []),
        ({"feature_names": ["a", "b"]}, [{"a": True, "b": False}]),
        ({"feature_names": ["a", "b"]}, [{"a": 2**64, "b": 1}]),
        ({"feature_names": ["a"]}, [{"a": [1, 2]}, {"a": [3]}]),
    ]
    want = run_reference_script(_REFERENCE_SCRIPT, cases)
    ours = _ours(cases)
    for case, o, w in zip(cases, ours, want):
        assert o == w, (case[0], o, w)


def test_reference_numpy_preprocessor_bad_batches():
    cases = [
        ({"feature_names": ["a"]}, {"a": 1}),
        ({"feature_names": ["a"]}, [{"a": 1}, 5]),
        ({"feature_names": ["a"]}, None),
    ]
    want = run_reference_script(_REFERENCE_SCRIPT, cases)
    ours = _ours(cases)
    for o, w in zip(ours, want):
        assert o[:2] == w[:2] == ("err", "PreprocessorRuntimeError")
        assert o[2].startswith(PREFIX) and w[2].startswith(PREFIX)
    assert "index 1" in ours[1][2] and "index 1" in want[1][2]
