"""Deterministic sample data: firewall-like events, flat feature records and model
outputs. Shared by the tests, the benchmarks and the examples, so every one of
them sees the same shapes."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

#: Nested numeric paths of a sample event, the usual numpy features.
NUMERIC_FEATURES = [
    "ts",
    "src.port",
    "src.geo.lat",
    "src.geo.lon",
    "dst.port",
    "bytes.in",
    "bytes.out",
    "rule.id",
    "score",
]


def sample_event(i: int, rng: random.Random) -> dict:
    """Event number ``i`` (about 300 bytes as JSON, three levels deep)."""
    return {
        "ts": 1_700_000_000 + i,
        "src": {
            "ip": f"10.0.{i % 256}.{i % 7}",
            "port": 1000 + i % 5000,
            "geo": {"lat": round(rng.uniform(-90, 90), 6), "lon": round(rng.uniform(-180, 180), 6)},
        },
        "dst": {"ip": "192.168.1.1", "port": 443},
        "proto": "tcp",
        "bytes": {"in": 3 * i, "out": 7 * i},
        "tags": ["a", "b", "c"],
        "action": "allow",
        "rule": {"id": i % 100, "name": f"r{i % 100}"},
        "score": rng.random(),
    }


def sample_events(n: int, seed: int = 0) -> list[dict]:
    """``n`` events, the same for the same ``seed``."""
    rng = random.Random(seed)
    return [sample_event(i, rng) for i in range(n)]


def flat_records(n: int, width: int = 16, seed: int = 0) -> list[dict]:
    """``n`` records of ``width`` float fields ``f0``..``f{width-1}``."""
    rng = random.Random(seed)
    return [{f"f{j}": rng.random() for j in range(width)} for _ in range(n)]


def sample_outputs(n: int, seed: int = 0) -> list[dict]:
    """``n`` model output rows: label, prob, five scores, id and a small meta dict."""
    rng = random.Random(seed)
    labels = ("benign", "suspicious", "malicious")
    return [
        {
            "label": labels[i % 3],
            "prob": rng.random(),
            "scores": [rng.random() for _ in range(5)],
            "id": i,
            "meta": {"model": "iforest-v1", "ok": i % 2 == 0},
        }
        for i in range(n)
    ]


def sample_lines(n: int, seed: int = 0, malformed_every: int = 0) -> Iterator[bytes]:
    """Events as JSON Lines (bytes with a trailing newline). With
    ``malformed_every=k``, every k-th line is broken JSON or a non-object."""
    rng = random.Random(seed)
    broken = (b'{"ts": 1, "src": {', b"[1, 2, 3]", b"not json at all", b'"just a string"')
    for i in range(n):
        if malformed_every and i % malformed_every == malformed_every - 1:
            yield broken[(i // malformed_every) % len(broken)] + b"\n"
        else:
            yield json.dumps(sample_event(i, rng), separators=(",", ":")).encode() + b"\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m packflow.sample_data N [-o FILE] [--seed S] [--malformed-every K]``:
    write N sample events as JSON Lines."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m packflow.sample_data", description=main.__doc__
    )
    parser.add_argument("n", type=int, help="number of lines")
    parser.add_argument("-o", "--output", default="-", help="file to write, - for stdout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--malformed-every", type=int, default=0, help="every K-th line broken")
    args = parser.parse_args(argv)
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    try:
        out.writelines(sample_lines(args.n, seed=args.seed, malformed_every=args.malformed_every))
        out.flush()
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error for a generator.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if out is not sys.stdout.buffer:
            out.close()


if __name__ == "__main__":
    main()
