"""The records plan (direct and flatten modes) and the numpy plan while another
thread mutates the batch (see ``tests/support/races.py``): no crash."""

from __future__ import annotations

from packflow import _core
from tests.support.races import race


def test_records_plan_direct_while_the_batch_changes():
    plan = _core.RecordsPlan(
        {"src.port": "port", "tags": "t"}, ["a.b", "score"], False, False, ".", True
    )
    race(plan, seed=31)


def test_records_plan_flatten_while_the_batch_changes():
    plan = _core.RecordsPlan({"src.port": "port"}, ["score", "src.ip"], True, True)
    race(plan, seed=32)


def test_numpy_plan_while_the_batch_changes():
    plan = _core.NumpyPlan(["src.port", "score"], ".")
    race(plan, seed=33)
