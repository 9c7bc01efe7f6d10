"""W2 and W2b: the records preprocessor on firewall events, 10 nested feature
names and one rename; W2 flattens (flatten_nested_inputs=True), W2b looks paths
up directly and writes them back nested. W2 also runs at 1, 100, 10k and 1M
events. The peer is a hand-written dict comprehension doing the same extraction."""

from __future__ import annotations

import pytest
from conftest import (
    BASE_N,
    BIG_N,
    BIG_ROUNDS,
    PACKAGE,
    SIZES,
    events,
    peer_only,
    record_peak_memory,
    require,
    run,
    size_label,
    skip_big_when_quick,
    skip_reference_big,
    tag,
)

from packflow import BackendConfig
from packflow.backend.preprocessors import get_preprocessor

FEATURES = [
    "ts",
    "src.port",
    "src.geo.lat",
    "src.geo.lon",
    "dst.port",
    "proto",
    "bytes.in",
    "bytes.out",
    "rule.id",
    "score",
]
RENAME = {"src.ip": "source_ip"}


def _preprocessor(flatten: bool):
    config = BackendConfig(
        input_format="records",
        feature_names=FEATURES,
        rename_fields=RENAME,
        flatten_nested_inputs=flatten,
    )
    return get_preprocessor(config)


def extract_flat(records: list[dict]) -> list[dict]:
    return [
        {
            "source_ip": r["src"]["ip"],
            "ts": r["ts"],
            "src.port": r["src"]["port"],
            "src.geo.lat": r["src"]["geo"]["lat"],
            "src.geo.lon": r["src"]["geo"]["lon"],
            "dst.port": r["dst"]["port"],
            "proto": r["proto"],
            "bytes.in": r["bytes"]["in"],
            "bytes.out": r["bytes"]["out"],
            "rule.id": r["rule"]["id"],
            "score": r["score"],
        }
        for r in records
    ]


def extract_nested(records: list[dict]) -> list[dict]:
    return [
        {
            "source_ip": r["src"]["ip"],
            "ts": r["ts"],
            "src": {
                "port": r["src"]["port"],
                "geo": {"lat": r["src"]["geo"]["lat"], "lon": r["src"]["geo"]["lon"]},
            },
            "dst": {"port": r["dst"]["port"]},
            "proto": r["proto"],
            "bytes": {"in": r["bytes"]["in"], "out": r["bytes"]["out"]},
            "rule": {"id": r["rule"]["id"]},
            "score": r["score"],
        }
        for r in records
    ]


def _check(out: list[dict], expected_fn, records: list[dict]) -> None:
    assert len(out) == len(records)
    if len(records) <= BASE_N:
        assert out == expected_fn(records)
    else:  # a full comparison at 1M would cost more than the benchmark
        sample = records[:100] + records[-100:]
        assert out[:100] + out[-100:] == expected_fn(sample)


def _memory(benchmark, n, fn, *args):
    if n >= BASE_N:
        record_peak_memory(benchmark, fn, *args)


@pytest.mark.parametrize("n", SIZES, ids=size_label)
def test_w2_packflow(benchmark, n):
    skip_big_when_quick(benchmark, n)
    skip_reference_big(n, "about 20 s per call, minutes per benchmark")
    require(lambda: _preprocessor(True)([{}]), "the records preprocessor plan")
    tag(benchmark, "W2", f"W2 records flatten {size_label(n)}", PACKAGE, n)
    pre = _preprocessor(True)
    records = events(n)
    out = run(benchmark, pre, records, rounds=BIG_ROUNDS if n >= BIG_N else None)
    _check(out, extract_flat, records)
    _memory(benchmark, n, pre, records)


@pytest.mark.parametrize("n", SIZES, ids=size_label)
def test_w2_handwritten(benchmark, n):
    peer_only()
    skip_big_when_quick(benchmark, n)
    tag(benchmark, "W2", f"W2 records flatten {size_label(n)}", "Python dict comprehension", n)
    records = events(n)
    out = run(benchmark, extract_flat, records, rounds=BIG_ROUNDS if n >= BIG_N else None)
    assert len(out) == n and out[-1]["score"] == records[-1]["score"]
    _memory(benchmark, n, extract_flat, records)


def test_w2b_packflow(benchmark):
    require(lambda: _preprocessor(False)([{}]), "the records preprocessor plan")
    tag(benchmark, "W2b", "W2b records direct 10k", PACKAGE, BASE_N)
    pre = _preprocessor(False)
    records = events(BASE_N)
    out = run(benchmark, pre, records)
    _check(out, extract_nested, records)


def test_w2b_handwritten(benchmark):
    peer_only()
    tag(benchmark, "W2b", "W2b records direct 10k", "Python dict comprehension", BASE_N)
    records = events(BASE_N)
    out = run(benchmark, extract_nested, records)
    assert len(out) == BASE_N and out[-1]["src"]["geo"] == records[-1]["src"]["geo"]
