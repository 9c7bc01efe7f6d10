"""W7: ``packflow.utils.flatten_records`` on 10,000 firewall events. Peers:
``pandas.json_normalize`` to a DataFrame, and the same back to records."""

from __future__ import annotations

import pytest
from conftest import BASE_N, PACKAGE, events, peer_only, require, run, tag

from packflow.utils import flatten_records

GROUP = "W7 flatten_records 10k"


def test_w7_packflow(benchmark):
    require(lambda: flatten_records([{"a": {"b": 1}}]), "flatten_records")
    tag(benchmark, "W7", GROUP, PACKAGE, BASE_N)
    records = events(BASE_N)
    out = run(benchmark, flatten_records, records)
    assert len(out) == BASE_N
    first = records[0]
    assert out[0] == {
        "ts": first["ts"],
        "src.ip": first["src"]["ip"],
        "src.port": first["src"]["port"],
        "src.geo.lat": first["src"]["geo"]["lat"],
        "src.geo.lon": first["src"]["geo"]["lon"],
        "dst.ip": first["dst"]["ip"],
        "dst.port": first["dst"]["port"],
        "proto": first["proto"],
        "bytes.in": first["bytes"]["in"],
        "bytes.out": first["bytes"]["out"],
        "tags": first["tags"],
        "action": first["action"],
        "rule.id": first["rule"]["id"],
        "rule.name": first["rule"]["name"],
        "score": first["score"],
    }
    try:
        import pandas
    except ImportError:
        return
    assert out == pandas.json_normalize(records).to_dict("records")


def test_w7_pandas_json_normalize(benchmark):
    peer_only()
    pandas = pytest.importorskip("pandas")
    tag(benchmark, "W7", GROUP, "pandas.json_normalize", BASE_N)
    records = events(BASE_N)
    frame = run(benchmark, pandas.json_normalize, records)
    assert frame.shape == (BASE_N, 15)


def test_w7_pandas_to_records(benchmark):
    peer_only()
    pandas = pytest.importorskip("pandas")
    tag(benchmark, "W7", GROUP, "pandas.json_normalize + to_dict", BASE_N)
    records = events(BASE_N)

    def normalize(recs):
        return pandas.json_normalize(recs).to_dict("records")

    out = run(benchmark, normalize, records)
    assert len(out) == BASE_N and out[0]["src.geo.lat"] == records[0]["src"]["geo"]["lat"]
