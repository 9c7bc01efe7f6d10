"""A str-subclass key whose ``str()`` is not its text, under flat semantics.

Found by the atheris ``records_preprocessor`` harness (2026-12-06): Packflow
0.4.1 spells such a key by its ``str()`` when it flattens, so ``"0.a"`` does
not reach ``{StrSub("0"): {"a": 1}}``; packflow's direct walk looks the key up
by its text and finds it (the spelling by ``str()`` is found too). Recorded in
docs/compatibility.md under "Known limits"; strict xfail, so the fix turns
these into failures that say to drop the mark.
"""

from __future__ import annotations

import pytest

from packflow import BackendConfig
from packflow.backend.preprocessors import RecordsPreprocessor
from packflow.utils.data import get_nested_field, records_to_ndarray

from reference import run_reference_script

_SCRIPT = """
class StrSub(str):
    def __str__(self):
        return "StrSub-str"

from packflow import BackendConfig
from packflow.backend.preprocessors import RecordsPreprocessor
from packflow.utils.data import get_nested_field, records_to_ndarray

row = {StrSub("0"): {"a": 1}}
result = {
    "get_nested_field": get_nested_field(row, "0.a"),
    "records_to_ndarray": records_to_ndarray([row], ["0.a"]).tolist(),
    "records": RecordsPreprocessor(
        BackendConfig(feature_names=["0.a"], flatten_nested_inputs=True)
    )([row]),
}
"""


class StrSub(str):
    def __str__(self) -> str:
        return "StrSub-str"


def ours() -> dict:
    row = {StrSub("0"): {"a": 1}}
    return {
        "get_nested_field": get_nested_field(row, "0.a"),
        "records_to_ndarray": records_to_ndarray([row], ["0.a"]).tolist(),
        "records": RecordsPreprocessor(
            BackendConfig(feature_names=["0.a"], flatten_nested_inputs=True)
        )([row]),
    }


@pytest.mark.xfail(strict=True, reason="known limit: see docs/compatibility.md")
@pytest.mark.parametrize("function", ["get_nested_field", "records_to_ndarray", "records"])
def test_a_lying_str_subclass_key_is_spelled_by_its_str(function):
    assert ours()[function] == run_reference_script(_SCRIPT)[function]


def test_the_key_spelled_by_its_str_is_found_as_in_the_reference():
    row = {StrSub("0"): {"a": 1}}
    assert get_nested_field(row, "StrSub-str.a") == 1
    assert records_to_ndarray([row], ["StrSub-str.a"]).tolist() == [[1]]
