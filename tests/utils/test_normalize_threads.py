"""``ensure_valid_output`` while another thread mutates the outputs it
converts (see ``tests/support/races.py``): no crash."""

from __future__ import annotations

from packflow import _core
from tests.support.races import race


def test_ensure_valid_output_while_outputs_change():
    def call(rows):
        out = _core.ensure_valid_output(rows, "output", repr)
        assert isinstance(out, list)

    race(call, seed=21)
