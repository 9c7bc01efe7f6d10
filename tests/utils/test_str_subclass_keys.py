"""Keys that equal a field's part without being spelled as it, under flat semantics.

Found by the atheris ``records_preprocessor`` harness (2026-12-06; the input is
the seed ``fuzz/seeds/atheris/records_preprocessor/lying_str_key``): Packflow
0.4.1 spells a key by its ``str()`` when it flattens, so ``"0.a"`` does not
reach ``{StrSub("0"): {"a": 1}}`` when ``str(StrSub("0"))`` is other text,
while a plain dict lookup by ``"0"`` would find that key. Each case runs in the
reference too.
"""

from __future__ import annotations

import pytest

from packflow import BackendConfig
from packflow.backend.preprocessors import RecordsPreprocessor
from packflow.utils.data import get_nested_field, records_to_ndarray
from tests.support.reference import run_reference_script

# Defines the key types, then `result` for `payload` = (rows, fields).
_SETUP = """
class StrSub(str):
    def __str__(self):
        return "StrSub-str"

class Honest(str):
    pass

class EqualToText:
    def __init__(self, text):
        self.text = text
    def __hash__(self):
        return hash(self.text)
    def __eq__(self, other):
        return other == self.text
    def __str__(self):
        return "EqualToText-str"

def build(spec):
    kind, text, value = spec
    key = {"str": str, "lie": StrSub, "honest": Honest, "eq": EqualToText}[kind](text)
    return {key: build(value) if isinstance(value, tuple) else value}

def outcome(f):
    try:
        return ("ok", f())
    except Exception as e:
        return ("err", type(e).__name__)

from packflow import BackendConfig
from packflow.backend.preprocessors import RecordsPreprocessor
from packflow.utils.data import get_nested_field, records_to_ndarray

specs, fields = payload
rows = [
    build(s) if isinstance(s, tuple) else {k: v for part in s for k, v in build(part).items()}
    for s in specs
]
result = {
    "get_nested_field": [[outcome(lambda: get_nested_field(r, f)) for f in fields] for r in rows],
    "records_to_ndarray": outcome(lambda: records_to_ndarray(rows, fields).tolist()),
    "records": outcome(lambda: RecordsPreprocessor(
        BackendConfig(feature_names=fields, flatten_nested_inputs=True)
    )(rows)),
    "records_lists": outcome(lambda: RecordsPreprocessor(
        BackendConfig(feature_names=fields, flatten_nested_inputs=True, flatten_lists=True)
    )(rows)),
}
"""


def ours(specs: list, fields: list[str]) -> dict:
    """The same script, run here on this package."""
    scope: dict = {"payload": (specs, fields)}
    exec(_SETUP, scope)  # noqa: S102 - the test's own code, shared with the reference run
    return scope["result"]


# A row is one key spec (kind, text, value-or-spec) or a list of them.
CASES = {
    "the finding": ([("lie", "0", ("str", "a", 1))], ["0.a"]),
    "spelled by its str()": ([("lie", "0", ("str", "a", 1))], ["StrSub-str.a", "0"]),
    "below a plain key": ([("str", "x", ("lie", "0", ("str", "a", 1)))], ["x.0.a", "x.0"]),
    "the last part": ([("str", "x", ("lie", "0", 5))], ["x.0", "x.StrSub-str"]),
    "top level, whole field": ([("lie", "0", 5)], ["0"]),
    "after rows of the same shape": (
        [
            ("str", "0", ("str", "a", 1)),
            ("str", "0", ("str", "a", 2)),
            ("lie", "0", ("str", "a", 3)),
        ],
        ["0.a"],
    ),
    "moved in a later row": (
        [
            ("str", "0", ("str", "a", 1)),
            [("str", "b", 0), ("lie", "0", ("str", "a", 2))],
            [("str", "b", 0), ("str", "0", ("str", "a", 3))],
        ],
        ["0.a", "b"],
    ),
    "an honest subclass": ([("honest", "0", ("str", "a", 1))], ["0.a"]),
    "an object equal to the text": ([("eq", "0", ("str", "a", 1))], ["0.a", "EqualToText-str.a"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("function", ["get_nested_field", "records_to_ndarray", "records"])
def test_keys_are_spelled_by_their_str_as_in_the_reference(case, function):
    specs, fields = CASES[case]
    want = run_reference_script(_SETUP, (specs, fields))
    assert ours(specs, fields)[function] == want[function]


@pytest.mark.parametrize("case", sorted(CASES))
def test_with_lists_enumerated_too(case):
    # The reference's flatten_lists walk spells dict keys the same way.
    specs, fields = CASES[case]
    want = run_reference_script(_SETUP, (specs, fields))
    assert ours(specs, fields)["records_lists"] == want["records_lists"]


class StrSub(str):
    def __str__(self) -> str:
        return "StrSub-str"


def test_a_lying_key_is_found_only_by_its_str():
    row = {StrSub("0"): {"a": 1}}
    assert get_nested_field(row, "0.a") is None
    assert get_nested_field(row, "StrSub-str.a") == 1
    assert records_to_ndarray([row], ["StrSub-str.a"]).tolist() == [[1]]
    assert records_to_ndarray([row, {"0": {"a": 2}}], ["0.a"]).tolist() == [[None], [2]]
    pre = RecordsPreprocessor(BackendConfig(feature_names=["0.a"], flatten_nested_inputs=True))
    assert pre([{"0": {"a": 1}}, row, {"0": {"a": 3}}]) == [{"0.a": 1}, {}, {"0.a": 3}]
