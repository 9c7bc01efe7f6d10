"""``dumps``, ``dumps_lines`` and ``check_and_dump_lines`` while another thread
mutates the rows they write (see ``tests/support/races.py``): no crash; what they
write when they succeed is still JSON."""

from __future__ import annotations

import json

from packflow.serialize import check_and_dump_lines, dumps, dumps_lines
from tests.support.races import race


def test_dumps_while_rows_change():
    def call(rows):
        json.loads(dumps(rows, allow_nan=True))

    race(call, seed=1, writable=True)


def test_dumps_lines_while_rows_change():
    def call(rows):
        for line in dumps_lines(rows, allow_nan=True).splitlines():
            json.loads(line)

    race(call, seed=2, writable=True)


def test_check_and_dump_lines_while_rows_change():
    def call(rows):
        for line in check_and_dump_lines(rows, len(rows), allow_nan=True).splitlines():
            json.loads(line)

    race(call, seed=3, writable=True)
