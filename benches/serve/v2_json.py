"""V2 infer bodies against ``packflow serve``: ``wrk`` on loopback posting
one [N, 9] FP64 tensor, the 9 features as named [N] tensors, or the tensor as
binary data (tritonclient's default: the answer comes as binary data too), of
N = 1 or 100 rows of examples/firewall-anomaly, to
``/v2/models/firewall-anomaly/infer``.
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
import struct
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

async def parse_beside(self, body, header_length, offload):
    return self.parse_infer_python(body, header_length)

async def render_beside(self, lines, request, offload):
    return self.render_python(lines, request)

V2Api.parse_infer = V2Api.parse_infer_python
V2Api.render = V2Api.render_python
V2Api.parse_infer_beside = parse_beside
V2Api.render_beside = render_beside
from packflow.cli import cli
sys.argv = ["packflow", *sys.argv[1:]]
cli()
"""


def _value(event: dict, path: str) -> float:
    for part in path.split("."):
        event = event[part]
    return float(event)  # type: ignore[arg-type]


def bodies(n: int) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each body by its label, with the headers it needs beyond JSON's."""
    rows = [[_value(e, s) for s in SOURCES] for e in firewall_events(n)]
    flat = [v for row in rows for v in row]
    matrix = {"name": "input", "datatype": "FP64", "shape": [n, 9], "data": flat}
    named = [
        {"name": f, "datatype": "FP64", "shape": [n], "data": [r[j] for r in rows]}
        for j, f in enumerate(FEATURES)
    ]
    # As tritonclient sends it by default: the values after a JSON header,
    # and the outputs asked for as binary data too.
    raw = struct.pack(f"<{len(flat)}d", *flat)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP64",
                    "shape": [n, 9],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return {
        f"[{n}, 9] tensor": (json.dumps({"inputs": [matrix]}).encode(), {}),
        f"9 named [{n}] tensors": (json.dumps({"inputs": named}).encode(), {}),
        f"[{n}, 9] tensor, binary data both ways": (
            header + raw,
            {"Inference-Header-Content-Length": str(len(header))},
        ),
    }


def wrk(url: str, body: bytes, headers: dict[str, str], seconds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_bytes(body)
        lua = LUA + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
        (Path(tmp) / "post.lua").write_text(lua)
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
            for label, (body, headers) in bodies(n).items():
                request = urllib.request.Request(url, data=body, method="POST", headers=headers)
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()  # warm, and a 200
                time.sleep(0.5)
                r = wrk(url, body, headers, args.duration)
                print(
                    f"| {label} | {r['rps']:,.0f} | {r['rps'] * n:,.0f} | "
                    f"{r['p99_ms']:.1f} ms | {r['errors']} |"
                )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
