"""Tests of the records preprocessor (packflow.backend.preprocessors.RecordsPreprocessor
and the Rust plan behind it, packflow._core.RecordsPlan): both modes, renames,
features, nested paths, collisions, every error path, no mutation of the input,
properties against the plain-Python model and differential runs against the
reference packflow 0.4.1."""

from __future__ import annotations

import collections
import copy
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packflow import _core
from packflow.backend.configuration import BackendConfig
from packflow.backend.preprocessors import RecordsPreprocessor
from packflow.exceptions import PreprocessorRuntimeError
from packflow.sample_data import sample_events
from tests.support.record_semantics import (
    DELIMITERS,
    PARTS,
    fields,
    model_records,
    records,
    same,
    snapshot,
)
from tests.support.reference import run_reference_script

PREFIX = "Failed to preprocess inputs with the following exception: "
W2_FEATURES = [
    "src.ip",
    "src.port",
    "src.geo.lat",
    "src.geo.lon",
    "dst.ip",
    "dst.port",
    "bytes.in",
    "bytes.out",
    "rule.id",
    "score",
]


def pre(**cfg) -> RecordsPreprocessor:
    if cfg.get("nested_field_delimiter") == "":
        # BackendConfig refuses an empty delimiter; the plan's own handling of
        # one is still tested (model_copy does not validate).
        del cfg["nested_field_delimiter"]
        config = BackendConfig(**cfg).model_copy(update={"nested_field_delimiter": ""})
        return RecordsPreprocessor(config)
    return RecordsPreprocessor(BackendConfig(**cfg))


def run(batch, **cfg):
    return pre(**cfg)(batch)


def fails(batch, match: str, **cfg) -> PreprocessorRuntimeError:
    with pytest.raises(PreprocessorRuntimeError) as info:
        run(batch, **cfg)
    msg = str(info.value)
    assert msg.startswith(PREFIX) and msg.count(PREFIX) == 1, msg
    assert re.search(match, msg), msg
    return info.value


class TestPassthrough:
    def test_returns_the_same_object(self):
        batch = [{"a": {"b": 1}}]
        p = pre()
        assert p.passthrough is True
        assert p(batch) is batch
        assert p((1, 2)) == (1, 2)  # not even looked at
        compiled = p.compiled()  # a plan that hands the batch on: the pipeline calls nothing
        assert isinstance(compiled, _core.RecordsPlan) and compiled.passthrough

    def test_any_setting_turns_it_off(self):
        assert pre(feature_names=["a"]).passthrough is False
        assert pre(rename_fields={"a": "b"}).passthrough is False
        assert pre(flatten_nested_inputs=True).passthrough is False
        compiled = pre(feature_names=["a"]).compiled()
        assert isinstance(compiled, _core.RecordsPlan) and not compiled.passthrough


class TestFlattenMode:
    def test_renames_then_features_in_order(self):
        batch = [{"proto": "tcp", "src": {"ip": "1", "port": 2}, "score": 0.5}]
        out = run(
            batch,
            rename_fields={"proto": "protocol"},
            feature_names=["score", "src.ip", "missing", "src"],
            flatten_nested_inputs=True,
        )
        assert [list(r.items()) for r in out] == [
            [("protocol", "tcp"), ("score", 0.5), ("src.ip", "1")]
        ]

    def test_none_and_missing_skipped(self):
        out = run(
            [{"a": None, "b": {"c": None}, "d": 0}],
            feature_names=["a", "b.c", "d", "e"],
            flatten_nested_inputs=True,
        )
        assert out == [{"d": 0}]

    def test_already_emitted_features_skipped(self):
        out = run(
            [{"a": 1, "b": 2, "c": 3}],
            rename_fields={"a": "b"},
            feature_names=["c", "b", "c"],
            flatten_nested_inputs=True,
        )
        assert list(out[0].items()) == [("b", 1), ("c", 3)]

    def test_later_rename_overwrites(self):
        out = run(
            [{"a": 1, "b": 2}],
            rename_fields={"a": "x", "b": "x"},
            feature_names=["a"],
            flatten_nested_inputs=True,
        )
        assert list(out[0].items()) == [("x", 2), ("a", 1)]

    def test_lists(self):
        batch = [{"tags": ["a", {"k": "b"}], "t": (1,)}]
        assert run(
            batch, feature_names=["tags.0", "tags.1.k", "tags", "t"], flatten_nested_inputs=True
        ) == [{"tags": ["a", {"k": "b"}], "t": (1,)}]
        assert run(
            batch,
            feature_names=["tags.0", "tags.1.k", "tags", "tags.01", "tags.9", "t"],
            flatten_nested_inputs=True,
            flatten_lists=True,
        ) == [{"tags.0": "a", "tags.1.k": "b", "t": (1,)}]

    def test_flat_spellings(self):
        batch = [{"a.b": {"c": 1}, "x": {"y.z": 2}, 1: {"q": 3}, None: {"n": 4}, "e": {}}]
        out = run(
            batch,
            feature_names=["a.b.c", "x.y.z", "1.q", "n", "e", "a.b"],
            flatten_nested_inputs=True,
        )
        assert out == [{"a.b.c": 1, "x.y.z": 2, "1.q": 3, "n": 4, "e": {}}]

    def test_no_features_means_every_field(self):
        out = run(
            [{"proto": "tcp", "src": {"ip": "1"}, "tags": ["a"]}],
            rename_fields={"src.ip": "ip", "proto": "src.ip"},
            flatten_nested_inputs=True,
            flatten_lists=True,
        )
        assert list(out[0].items()) == [
            ("ip", "1"),
            ("src.ip", "1"),
            ("proto", "tcp"),
            ("tags.0", "a"),
        ]

    def test_custom_and_empty_delimiter(self):
        batch = [{"a": {"b": 1}, "c": 2}]
        assert run(
            batch, feature_names=["a::b"], flatten_nested_inputs=True, nested_field_delimiter="::"
        ) == [{"a::b": 1}]
        assert run(
            batch, feature_names=["ab", "c"], flatten_nested_inputs=True, nested_field_delimiter=""
        ) == [{"ab": 1, "c": 2}]
        assert run(batch, flatten_nested_inputs=True, nested_field_delimiter="") == [
            {"ab": 1, "c": 2}
        ]

    def test_duplicated_flat_key(self):
        fails(
            [{"a": 1}, {"a.b": 1, "a": {"b": 2}}],
            r"duplicated key 'a\.b' \(row 1, key \"a.b\"\)",
            flatten_nested_inputs=True,
        )
        fails(
            [{"a.b": {"c": 1}, "a": {"b.c": 2}}],
            r"duplicated key 'a\.b\.c' \(row 0, key \"a.b.c\"\)",
            feature_names=["a.b.c"],
            flatten_nested_inputs=True,
        )

    def test_deep_and_cyclic_records(self):
        deep: dict = {"v": 1}
        for _ in range(300):
            deep = {"k": deep}
        fails(
            [{}, deep],
            r'nesting deeper than 255.* \(row 1, key "k\.k\.k',
            flatten_nested_inputs=True,
        )
        cyc: dict = {}
        cyc["self"] = cyc
        fails(
            [{"c": cyc}],
            r'nesting deeper.* \(row 0, key "c\.self\.self',
            flatten_nested_inputs=True,
        )
        # Only the selected paths are followed when features are given.
        assert run([{"c": cyc, "x": 1}], feature_names=["x"], flatten_nested_inputs=True) == [
            {"x": 1}
        ]
        fails(
            [{"c": cyc}],
            "nesting deeper",
            feature_names=["c." + "self." * 300 + "x"],
            flatten_nested_inputs=True,
        )

    def test_python_error_keeps_its_cause(self):
        class Bad:
            def __format__(self, spec):
                raise RuntimeError("no text")

            def __hash__(self):
                return 1

        err = fails(
            [{"a": {Bad(): 1}}],
            r"RuntimeError: no text \(row 0, key \"a",
            flatten_nested_inputs=True,
        )
        assert isinstance(err.__cause__, RuntimeError)

    def test_sample_events_w2(self):
        events = sample_events(300)
        before = snapshot(events)
        out = run(
            events,
            rename_fields={"proto": "protocol"},
            feature_names=W2_FEATURES,
            flatten_nested_inputs=True,
        )
        assert out[0] == {
            "protocol": "tcp",
            "src.ip": "10.0.0.0",
            "src.port": 1000,
            "src.geo.lat": events[0]["src"]["geo"]["lat"],
            "src.geo.lon": events[0]["src"]["geo"]["lon"],
            "dst.ip": "192.168.1.1",
            "dst.port": 443,
            "bytes.in": 0,
            "bytes.out": 0,
            "rule.id": 0,
            "score": events[0]["score"],
        }
        assert events == before


class TestDirectMode:
    def test_nested_outputs(self):
        batch = [{"proto": "tcp", "src": {"ip": "1", "geo": {"lat": 2}}, "score": 0.5}]
        out = run(
            batch,
            rename_fields={"proto": "meta.protocol"},
            feature_names=["src.geo.lat", "score", "src.ip"],
        )
        assert out == [
            {"meta": {"protocol": "tcp"}, "src": {"geo": {"lat": 2}, "ip": "1"}, "score": 0.5}
        ]
        assert list(out[0]["src"]) == ["geo", "ip"]

    def test_whole_subtrees_and_already_emitted(self):
        batch = [{"src": {"ip": "1", "port": 2}, "b": 3}]
        out = run(batch, feature_names=["src", "src.ip", "b", "b"])
        assert out == [{"src": {"ip": "1", "port": 2}, "b": 3}]
        assert out[0]["src"] is batch[0]["src"]  # values are shared, not copied

    def test_rename_into_an_emitted_subtree_copies_it(self):
        # The reference writes "y" into the caller's record["x"] here; packflow
        # writes into a copy, so the input is unchanged.
        batch = [{"x": {"k": 1}, "cfg": {"y": 5}}]
        before = snapshot(batch)
        out = run(batch, rename_fields={"x": "cfg"}, feature_names=["cfg.y", "x"])
        assert out == [{"cfg": {"k": 1, "y": 5}, "x": {"k": 1}}]
        assert batch == before
        assert out[0]["x"] is batch[0]["x"]

    def test_stops_at_non_dicts_on_the_way(self):
        out = run(
            [{"a": 1, "b": {"c": 2}}], rename_fields={"a": "t", "b.c": "t.u"}, feature_names=["zz"]
        )
        assert out == [{"t": 1}]

    def test_no_features_means_every_field(self):
        batch = [{"proto": "tcp", "src": {"ip": "1"}}]
        out = run(batch, rename_fields={"proto": "src.proto", "src.ip": "ip"})
        assert list(out[0].items()) == [("src", {"ip": "1"}), ("ip", "1"), ("proto", "tcp")]
        assert out[0]["src"] is batch[0]["src"]

    def test_literal_keys_first_when_collisions_are_ignored(self):
        batch = [{"a.b": 1, "a": {"b": 2}}]
        assert run(batch, feature_names=["a.b"], ignore_delimiter_collisions=True) == [
            {"a": {"b": 1}}
        ]

    def test_collisions(self):
        batch = [{"ok": 1}, {"x": {"a.b": {"c.d": 1}}, "e.f": 2}]
        fails(
            batch,
            r"^" + re.escape(PREFIX) + r"Keys containing the delimiter '\.' were found: "
            r"\['x\.a\.b', 'x\.a\.b\.c\.d', 'e\.f'\]\. This can cause ambiguity.* \(row 1\)$",
            feature_names=["x.y"],
        )
        # Only nested paths trigger the check, and only in direct mode.
        assert run(batch, feature_names=["ok"]) == [{"ok": 1}, {}]
        assert run(batch, feature_names=["x.y"], flatten_nested_inputs=True) == [{}, {}]
        assert run(batch, feature_names=["x.y"], ignore_delimiter_collisions=True) == [{}, {}]
        fails(
            [{"a": {2: 1}}], r'keys must be str.* \(row 0, key "a\.2"\)', rename_fields={"a.b": "c"}
        )

    @pytest.mark.parametrize("delimiter", [".", "é", "Į", "→", "🙂"])
    def test_collisions_in_every_string_kind(self, delimiter):
        # Keys stored with 1, 2 and 4 bytes per character, a str subclass key,
        # and characters sharing a byte with the delimiter (U+012E and ".").
        class Key(str):
            pass

        field = "a" + delimiter + "b"
        for filler in [c for c in "xéĮ→🙂" if c != delimiter]:
            for make in (str, Key):
                bad = make(filler * 2 + delimiter + filler)
                batch = [{"a": {"b": 1}}, {"a": {"b": 1, filler: {bad: 2}}}]
                fails(
                    batch,
                    "^" + re.escape(PREFIX) + "Keys containing the delimiter.* \\(row 1\\)$",
                    feature_names=[field],
                    nested_field_delimiter=delimiter,
                )
                others = "".join(c for c in "xéĮ→🙂." if c != delimiter)
                clean = [{"a": {"b": 1, filler: {make(others * 2): 2}}}]
                out = run(clean, feature_names=[field], nested_field_delimiter=delimiter)
                assert out == [{"a": {"b": 1}}]

    def test_empty_delimiter(self):
        fails(
            [{"a": 1}],
            "Keys containing the delimiter '' .* \\(row 0\\)",
            feature_names=["a"],
            nested_field_delimiter="",
        )
        fails(
            [{"a": 1}],
            "the nested field delimiter is empty.* \\(row 0\\)",
            feature_names=["a"],
            nested_field_delimiter="",
            ignore_delimiter_collisions=True,
        )
        assert run([], feature_names=["a"], nested_field_delimiter="") == []

    def test_deep_records(self):
        deep: dict = {}
        for _ in range(300):
            deep = {"k": deep}
        fails([deep], r'nesting deeper.* \(row 0, key "k\.k', feature_names=["k.k"])
        assert (
            run([deep], feature_names=["k.k"], ignore_delimiter_collisions=True)[0]["k"]["k"]
            is deep["k"]["k"]
        )

    def test_sample_events_w2b(self):
        events = sample_events(300)
        before = snapshot(events)
        out = run(events, rename_fields={"proto": "protocol"}, feature_names=W2_FEATURES)
        e = events[7]
        assert out[7] == {
            "protocol": "tcp",
            "src": {"ip": e["src"]["ip"], "port": e["src"]["port"], "geo": e["src"]["geo"]},
            "dst": e["dst"],
            "bytes": e["bytes"],
            "rule": {"id": e["rule"]["id"]},
            "score": e["score"],
        }
        assert out[7]["src"]["geo"] is not e["src"]["geo"]  # a new dict, same values
        assert events == before


class TestBadBatches:
    @pytest.mark.parametrize("flatten", [False, True])
    def test_not_a_list(self, flatten):
        for bad in ((({"a": 1},)), {"a": 1}, None, (x for x in [{"a": 1}]), "ab"):
            fails(
                bad,
                r"the batch: expected a list of records, got",
                feature_names=["a"],
                flatten_nested_inputs=flatten,
            )

    @pytest.mark.parametrize("flatten", [False, True])
    def test_not_a_dict_row(self, flatten):
        for bad in ([1], "a", None, {"a"}, b"a", collections.UserDict(a=1)):
            fails(
                [{"a": 1}, {"a": 2}, bad],
                r"Value at index 2 is not a dictionary\. Received type: <class ",
                feature_names=["a.b"],
                flatten_nested_inputs=flatten,
            )

    def test_subclasses_are_fine(self):
        class Rows(list):
            pass

        rows = Rows([collections.OrderedDict(a=collections.defaultdict(int, b=1))])
        assert run(rows, feature_names=["a.b"]) == [{"a": {"b": 1}}]
        assert run(rows, feature_names=["a.b"], flatten_nested_inputs=True) == [{"a.b": 1}]
        assert "zz" not in rows[0]["a"]

    def test_odd_values_pass_through(self):
        nan, big, gen = float("nan"), 2**100, (x for x in [])
        row = {"a": {"n": nan, "b": big, "g": gen, "s": {1}, "y": b"x", "i": float("inf")}}
        for flatten in (False, True):
            out = run(
                [row],
                feature_names=["a.n", "a.b", "a.g", "a.s", "a.y", "a.i"],
                flatten_nested_inputs=flatten,
            )
            values = list(out[0]["a"].values()) if not flatten else list(out[0].values())
            assert (
                values[0] is nan
                and values[1] == big
                and values[2] is gen
                and values[5] == float("inf")
            )

    def test_huge_batch(self):
        rows = [{"a": {"b": i}, "c": i} for i in range(100_000)]
        assert run(rows, feature_names=["a.b"], flatten_nested_inputs=True)[-1] == {"a.b": 99_999}
        assert run(rows, feature_names=["a.b"])[-1] == {"a": {"b": 99_999}}

    def test_wrapper_does_not_rewrap(self):
        p = pre(feature_names=["a"])
        with pytest.raises(PreprocessorRuntimeError) as info:
            p([1])
        assert str(info.value).count(PREFIX) == 1

    def test_plan_config_errors(self):
        with pytest.raises(TypeError, match="rename_fields values must be str"):
            _core.RecordsPlan({"a": 1}, [], False, False, ".", False)
        with pytest.raises(TypeError):
            _core.RecordsPlan({}, ["a", 2], False, False, ".", False)


# --- properties against the model ---------------------------------------------------


@st.composite
def configs(draw):
    d = draw(st.sampled_from(DELIMITERS))
    names = st.sampled_from(PARTS[:4]) | fields(d)
    return {
        "rename_fields": draw(st.dictionaries(fields(d), names, max_size=2)),
        "feature_names": draw(st.lists(fields(d), max_size=4)),
        "flatten_nested_inputs": draw(st.booleans()),
        "flatten_lists": draw(st.booleans()),
        "nested_field_delimiter": d,
        "ignore_delimiter_collisions": draw(st.booleans()),
    }


def model_args(cfg: dict) -> dict:
    return {
        "rename_fields": cfg["rename_fields"],
        "feature_names": cfg["feature_names"],
        "flatten": cfg["flatten_nested_inputs"],
        "lists": cfg["flatten_lists"],
        "delimiter": cfg["nested_field_delimiter"],
        "ignore_collisions": cfg["ignore_delimiter_collisions"],
    }


@given(configs(), st.lists(records(), max_size=5))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matches_model(cfg, batch):
    before = snapshot(batch)
    try:
        expected = model_records(copy.deepcopy(batch), **model_args(cfg))
    except ValueError:
        # Delimiter collisions, or (flatten mode) a duplicated key somewhere in
        # a record, which packflow reports only for the selected fields.
        if not cfg["flatten_nested_inputs"] or not cfg["feature_names"]:
            with pytest.raises(PreprocessorRuntimeError):
                run(batch, **cfg)
        return
    assert same(run(batch, **cfg), expected)
    assert same(batch, before)


# --- differential against the reference ---------------------------------------------

REFERENCE_SCRIPT = """
import copy
from packflow.backend.configuration import BackendConfig
from packflow.backend.preprocessors import RecordsPreprocessor
result = []
for cfg, batch in payload:
    before = copy.deepcopy(batch)
    try:
        out = RecordsPreprocessor(BackendConfig(**cfg))(batch)
        result.append(("ok", out, batch != before))
    except BaseException as exc:
        result.append(("err", type(exc).__name__, str(exc)))
"""


def found_paths(message: str) -> str:
    return re.search(r"were found: (\[.*?\])", message).group(1)


def compare_with_reference(cases: list[tuple[dict, list]]) -> int:
    theirs = run_reference_script(REFERENCE_SCRIPT, cases)
    compared = 0
    for (cfg, batch), t in zip(cases, theirs):
        before = snapshot(batch)
        try:
            o = ("ok", run(batch, **cfg))
        except PreprocessorRuntimeError as exc:
            o = ("err", "PreprocessorRuntimeError", str(exc))
        assert same(batch, before), "the input was modified"
        if t[0] == "err":
            assert t[1] == "PreprocessorRuntimeError", t
            if "duplicated key" in t[2] and cfg["flatten_nested_inputs"] and cfg["feature_names"]:
                continue  # reported only for the selected fields (documented)
            assert o[0] == "err", (cfg, batch, t, o)
            if "were found" in t[2]:
                assert found_paths(o[2]) == found_paths(t[2])
            compared += 1
            continue
        out, mutated = t[1], t[2]
        if mutated:
            continue  # the reference wrote into the caller's records (documented)
        assert o[0] == "ok", (cfg, batch, t, o)
        assert same(o[1], out), (cfg, batch, o[1], out)
        compared += 1
    return compared


def test_sample_events_differential():
    events = sample_events(500)
    cases = []
    for flatten in (False, True):
        for lists in (False, True):
            base = {"flatten_nested_inputs": flatten, "flatten_lists": lists}
            cases += [
                (
                    {**base, "rename_fields": {"proto": "protocol"}, "feature_names": W2_FEATURES},
                    events,
                ),
                (
                    {
                        **base,
                        "feature_names": ["tags.1", "tags", "src", "src.geo", "nope.x", "score"],
                    },
                    events,
                ),
                (
                    {
                        **base,
                        "rename_fields": {
                            "src.geo.lat": "lat",
                            "dst": "meta.dst",
                            "action": "meta.action",
                        },
                    },
                    events,
                ),
                (
                    {
                        **base,
                        "rename_fields": {"src.ip": "a.b"},
                        "feature_names": ["a.b", "a", "src.port"],
                    },
                    events,
                ),
            ]
    assert compare_with_reference(cases) == len(cases)


def random_config(rng: random.Random) -> dict:
    d = rng.choice(DELIMITERS)

    def field() -> str:
        return d.join(rng.choice(PARTS + ["a.b"]) for _ in range(rng.randint(1, 3)))

    return {
        "rename_fields": {
            field(): rng.choice([field(), "out", "a"]) for _ in range(rng.randint(0, 2))
        },
        "feature_names": [field() for _ in range(rng.randint(0, 4))],
        "flatten_nested_inputs": rng.random() < 0.5,
        "flatten_lists": rng.random() < 0.5,
        "nested_field_delimiter": d,
        "ignore_delimiter_collisions": rng.random() < 0.5,
    }


def random_batch(rng: random.Random) -> list:
    keys = PARTS[:-1] + ["a.b", "a::b", "a_b"]

    def tree(depth: int):
        roll = rng.random()
        if roll < 0.35 and depth < 3:
            return {rng.choice(keys): tree(depth + 1) for _ in range(rng.randint(0, 4))}
        if roll < 0.45 and depth < 3:
            return [tree(depth + 1) for _ in range(rng.randint(0, 3))]
        return rng.choice([None, True, 0, 7, 2**70, 1.5, "", "s", {}, []])

    return [
        {rng.choice(keys): tree(1) for _ in range(rng.randint(0, 5))}
        for _ in range(rng.randint(0, 4))
    ]


def test_random_differential():
    rng = random.Random(11)
    cases = [(random_config(rng), random_batch(rng)) for _ in range(1500)]
    assert compare_with_reference(cases) > 1000


@given(st.lists(st.tuples(configs(), st.lists(records(), max_size=4)), min_size=40, max_size=40))
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_hypothesis_differential(cases):
    compare_with_reference(cases)


def test_collector_state_is_restored():
    import gc

    plan = pre(feature_names=["a.b"])
    assert gc.isenabled()
    assert plan([{"a": {"b": 1}}]) == [{"a": {"b": 1}}]
    assert gc.isenabled()
    with pytest.raises(PreprocessorRuntimeError):
        plan([{"a": {"b": 1}}, 2])
    assert gc.isenabled()
    gc.disable()
    try:
        assert plan([{"a": {"b": 1}}]) == [{"a": {"b": 1}}]
        assert not gc.isenabled()
    finally:
        gc.enable()
