"""V2 JSON infer bodies against ``packflow serve``: ``wrk`` on loopback posting
one [N, 9] FP64 tensor, or the 9 features as named [N] tensors, of N = 1 or
100 rows of examples/firewall-anomaly, to ``/v2/models/firewall-anomaly/infer``.
``--python-path`` serves with the Rust reader and writer of V2 JSON switched
off (the Python path alone, the reference they stand in for), to see what
they buy. Prints a Markdown table; changes no file.

    .venv/bin/python benches/serve/v2_json.py [-d 8] [--python-path]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import EXAMPLE, LUA, firewall_events  # noqa: E402

FEATURES = [
    "ts",
    "src.port",
    "src.geo.lat",
    "src.geo.lon",
    "dst.port",
    "bytes_in",
    "bytes.out",
    "rule.id",
    "score",
]
# bytes_in is renamed in the project: it is read from bytes.in.
SOURCES = [f if f != "bytes_in" else "bytes.in" for f in FEATURES]
URL_PATH = "/v2/models/firewall-anomaly/infer"
# The server with the Rust reader and writer of V2 JSON bodies off.
PYTHON_PATH = """
import sys
from packflow.serving.v2 import V2Api
V2Api.parse_infer = V2Api.parse_infer_python
V2Api.render = V2Api.render_python
from packflow.cli import cli
sys.argv = ["packflow", *sys.argv[1:]]
cli()
"""


def _value(event: dict, path: str) -> float:
    for part in path.split("."):
        event = event[part]
    return float(event)  # type: ignore[arg-type]


def bodies(n: int) -> dict[str, bytes]:
    rows = [[_value(e, s) for s in SOURCES] for e in firewall_events(n)]
    matrix = {"name": "input", "datatype": "FP64", "shape": [n, 9]}
    matrix["data"] = [v for row in rows for v in row]
    named = [
        {"name": f, "datatype": "FP64", "shape": [n], "data": [r[j] for r in rows]}
        for j, f in enumerate(FEATURES)
    ]
    return {
        f"[{n}, 9] tensor": json.dumps({"inputs": [matrix]}).encode(),
        f"9 named [{n}] tensors": json.dumps({"inputs": named}).encode(),
    }


def wrk(url: str, body: bytes, seconds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_bytes(body)
        (Path(tmp) / "post.lua").write_text(LUA)
        env = {**os.environ, "PACKFLOW_BENCH_BODY": str(Path(tmp) / "body.json")}
        cmd = ["wrk", "-t2", "-c64", f"-d{seconds}s", "--timeout", "10s", "--latency"]
        out = subprocess.run(
            [*cmd, "-s", str(Path(tmp) / "post.lua"), url],
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "errors": int(bad.group(1)) if bad else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--duration", type=int, default=8)
    parser.add_argument("--python-path", action="store_true")
    args = parser.parse_args()
    serve = ["serve", str(EXAMPLE), "--port", "0"]
    if args.python_path:
        cmd = [sys.executable, "-c", PYTHON_PATH, *serve]
    else:
        cmd = [sys.executable, "-m", "packflow.cli", *serve]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        port = int(re.search(r":(\d+) ", proc.stdout.readline().decode()).group(1))  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}{URL_PATH}"
        print("| body | requests/s | rows/s | p99 | non-2xx |")
        print("|---|---:|---:|---:|---:|")
        for n in (1, 100):
            for label, body in bodies(n).items():
                request = urllib.request.Request(url, data=body, method="POST")
                with urllib.request.urlopen(request, timeout=10) as answer:
                    json.loads(answer.read())  # warm, and a 200
                time.sleep(0.5)
                r = wrk(url, body, args.duration)
                print(
                    f"| {label} | {r['rps']:,.0f} | {r['rps'] * n:,.0f} | "
                    f"{r['p99_ms']:.1f} ms | {r['errors']} |"
                )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
