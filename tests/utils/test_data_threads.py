"""``flatten_records``, ``flatten_dict`` and ``records_to_ndarray`` while
another thread mutates their records (see ``tests/support/races.py``): no crash."""

from __future__ import annotations

import numpy as np

from packflow.utils import flatten_dict, flatten_records, records_to_ndarray
from tests.support.races import race


def test_flatten_records_while_records_change():
    race(lambda rows: flatten_records(rows, ".", True), seed=11)


def test_flatten_dict_while_the_record_changes():
    race(lambda rows: flatten_dict(rows[0], "."), seed=12)


def test_records_to_ndarray_while_records_change():
    def call(rows):
        arr = records_to_ndarray(rows, ["src.port", "score", "a.b"])
        assert isinstance(arr, np.ndarray)

    race(call, seed=13)


def test_records_to_ndarray_with_a_dtype_while_records_change():
    race(lambda rows: records_to_ndarray(rows, ["score", "src.port"], np.float64), seed=14)
