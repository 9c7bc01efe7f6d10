"""The serving benchmark: ``wrk`` on loopback against ``packflow serve`` and two
peers running the same model (examples/firewall-anomaly), for 1-record and
100-record requests at 64 connections.

    make bench-serve                                  # installs the peers, runs, writes
    .venv/bin/python benches/serve/run.py             # the same, peers already installed
    .venv/bin/python benches/serve/run.py -d 5 --no-write

Servers run one after the other (never two at once), each warmed up first; the
order is repeated ``--rounds`` times and the best round of each is kept, since
the machine is shared. Every server's answer is checked against the backend
called directly before it is loaded. The table goes to
``benches/serve/results.md``, which docs/performance.md (``make bench``) and
docs/serving.md include.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from packflow.constants import SERVE_MAX_BATCH_ROWS

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "firewall-anomaly"
PEERS = Path(__file__).resolve().parent / "peers.py"
RESULTS = Path(__file__).resolve().parent / "results.md"
SERVING_DOC = REPO / "docs" / "serving.md"
MARK_START = "<!-- serve-bench:start -->"
MARK_END = "<!-- serve-bench:end -->"
CONNECTIONS = 64
# wrk leaves requests slower than its timeout (2 s by default) out of the
# latency figures; a long one keeps the slow peers' tails in them.
WRK_TIMEOUT_S = 10

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("PACKFLOW_BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
"""


@dataclass
class Result:
    server: str
    rows: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rows_per_s(self) -> float:
        return self.requests_per_s * self.rows


def firewall_events(n: int, seed: int = 1) -> list[dict]:
    """``n`` events with every feature examples/firewall-anomaly reads."""
    rng = random.Random(seed)
    return [
        {
            "ts": 1_700_000_000 + i,
            "src": {
                "port": rng.randint(1024, 65535),
                "geo": {"lat": rng.uniform(-90, 90), "lon": rng.uniform(-180, 180)},
            },
            "dst": {"port": rng.choice([22, 80, 443, 8080])},
            "proto": "tcp",
            "bytes": {"in": rng.randint(0, 300_000), "out": rng.randint(0, 700_000)},
            "rule": {"id": rng.randint(0, 99), "name": f"r{i % 5}"},
            "score": rng.random(),
        }
        for i in range(n)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: bytes, timeout: float = 10.0) -> object:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


class Server:
    """One server process; ``url`` is its predict endpoint."""

    def __init__(self, name: str, max_batch_size: int):
        self.name = name
        self.log = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if name.startswith(OURS):
            cmd = [sys.executable, "-m", "packflow.cli", "serve", str(EXAMPLE), "--port", "0"]
            if name == OURS_WAIT:
                cmd += ["--max-wait-ms", "5"]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, env=env)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().decode()
            port = int(re.search(r":(\d+) ", line).group(1))  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/invocations"
            return
        port = free_port()
        peer = "litserve" if name.startswith("LitServe") else "fastapi"
        cmd = [sys.executable, str(PEERS), peer, "--port", str(port)]
        cmd += ["--max-batch-size", str(max_batch_size)]
        # Its own process group: LitServe starts worker processes of its own.
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=self.log, env=env, start_new_session=True
        )
        path = "/predict" if peer == "litserve" else "/invocations"
        self.url = f"http://127.0.0.1:{port}{path}"

    def wait_ready(self, body: bytes, timeout: float = 120.0) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()}")
            try:
                return post(self.url, body)
            except urllib.error.HTTPError as exc:
                raise RuntimeError(
                    f"{self.name} answered {exc.code}: {exc.read()[:300]!r}"
                ) from exc
            except OSError:  # not listening yet
                time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s: {self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        # A peer ran in a group of its own (LitServe's workers are its children).
        group = not self.name.startswith(OURS)
        if self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, signal.SIGINT)
            else:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                if group:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
                self.proc.wait(5)
        if group:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group
            except ProcessLookupError:
                pass
        self.log.close()


def write_between_marks(doc_path: Path, start: str, end: str, text: str) -> None:
    """Put ``text`` between the ``start`` and ``end`` marks of ``doc_path``
    (left as it is without them)."""
    doc = doc_path.read_text()
    if start in doc and end in doc:
        head, rest = doc.split(start, 1)
        _, tail = rest.split(end, 1)
        doc_path.write_text(f"{head}{start}\n{text}{end}{tail}")


def run_wrk(
    url: str, body_path: Path, seconds: int, lua_path: Path
) -> tuple[float, float, float, int]:
    """``(requests/s, p50 ms, p99 ms, non-2xx and socket errors)`` of one wrk run."""
    env = {**os.environ, "PACKFLOW_BENCH_BODY": str(body_path)}
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT_S}s"]
    cmd += ["--latency", "-s", str(lua_path), url]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = 0
    for pattern in (
        r"Non-2xx or 3xx responses: (\d+)",
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    ):
        match = re.search(pattern, out)
        if match:
            errors += sum(int(g) for g in match.groups())
    return rps, percentile("50"), percentile("99"), errors


def measure(
    names: list[str], bodies: dict[int, Path], expected: dict[int, object], args
) -> list[Result]:
    lua = Path(tempfile.mkdtemp()) / "post.lua"
    lua.write_text(LUA)
    best: dict[tuple[str, int], Result] = {}
    for round_no in range(args.rounds):
        for name in names:
            server = Server(name, args.litserve_batch)
            try:
                for rows, body_path in bodies.items():
                    answer = server.wait_ready(body_path.read_bytes())
                    if answer != expected[rows]:
                        raise RuntimeError(
                            f"{name} answered {str(answer)[:200]}, not the backend's output"
                        )
                    run_wrk(server.url, body_path, args.warmup, lua)
                    rps, p50, p99, errors = run_wrk(server.url, body_path, args.duration, lua)
                    result = Result(name, rows, rps, p50, p99, errors)
                    print(
                        f"round {round_no + 1}: {name:<32} {rows:>3} rows/request"
                        f"  {rps:>9,.0f} req/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
                        f"  errors {errors}",
                        flush=True,
                    )
                    key = (name, rows)
                    if key not in best or rps > best[key].requests_per_s:
                        best[key] = result
            finally:
                server.stop()
    return [best[(n, r)] for r in bodies for n in names if (n, r) in best]


def table(results: list[Result]) -> str:
    lines = [
        "| server | records per request | requests/s | rows/s | p50 | p99 | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.server} | {r.rows} | {r.requests_per_s:,.0f} | {r.rows_per_s:,.0f} | "
            f"{r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms | {r.errors} |"
        )
    return "\n".join(lines)


def verdicts(results: list[Result]) -> str:
    """Issue 18's targets: with the defaults, 1-record requests at >= 3x the
    FastAPI endpoint's and >= 10x LitServe's requests/s with a lower p99 than
    both; 100-record requests at >= 5x the FastAPI endpoint's rows/s."""
    by = {(r.server, r.rows): r for r in results}
    fast = "FastAPI, per request"
    out = []
    ours1, lit1, fast1 = by.get((OURS, 1)), by.get((litserve_name(), 1)), by.get((fast, 1))
    if ours1 and lit1 and fast1:
        vs_fast = ours1.requests_per_s / fast1.requests_per_s
        vs_lit = ours1.requests_per_s / lit1.requests_per_s
        met = vs_fast >= 3 and vs_lit >= 10 and ours1.p99_ms < min(lit1.p99_ms, fast1.p99_ms)
        out.append(
            f"- 1-record requests, target >= 3x the FastAPI endpoint's and >= 10x "
            f"LitServe's requests/s, p99 lower than both: **{'met' if met else 'missed'}** "
            f"({vs_fast:.1f}x FastAPI, {vs_lit:.1f}x LitServe; p99 {ours1.p99_ms:.1f} ms vs "
            f"{fast1.p99_ms:.1f} and {lit1.p99_ms:.1f} ms)"
        )
    ours100, fast100 = by.get((OURS, 100)), by.get((fast, 100))
    if ours100 and fast100:
        ratio = ours100.rows_per_s / fast100.rows_per_s
        out.append(
            f"- 100-record requests, target >= 5x the FastAPI endpoint's rows/s: "
            f"**{'met' if ratio >= 5 else 'missed'}** ({ratio:.1f}x)"
        )
    wait1, wait100 = by.get((OURS_WAIT, 1)), by.get((OURS_WAIT, 100))
    if ours1 and wait1 and ours100 and wait100:
        out.append(
            f"- Against the fixed 5 ms wait (the default before): "
            f"{ours1.requests_per_s / wait1.requests_per_s:.1f}x the requests/s on 1-record "
            f"requests, {ours100.rows_per_s / wait100.rows_per_s:.1f}x the rows/s on "
            f"100-record requests"
        )
    return "\n".join(out)


OURS = "packflow serve"
#: The fixed 5 ms wait that was the default before batches started as soon as
#: the model is free: what the change is worth.
OURS_WAIT = "packflow serve, --max-wait-ms 5"


def litserve_name() -> str:
    return "LitServe, batching"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for package in ("packflow", "uvicorn", "uvloop", "httptools", "litserve", "fastapi"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    return ", ".join(parts)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-d", "--duration", type=int, default=8, help="seconds of each measured run"
    )
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--litserve-batch", type=int, default=64, help="LitServe's max_batch_size")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    from packflow.loaders import InferenceBackendLoader

    records = firewall_events(100)
    backend = InferenceBackendLoader.from_project(EXAMPLE)
    workdir = Path(tempfile.mkdtemp(prefix="packflow-serve-bench-"))
    bodies = {1: workdir / "one.json", 100: workdir / "hundred.json"}
    bodies[1].write_text(json.dumps(records[0]))
    bodies[100].write_text(json.dumps(records))
    expected = {
        1: json.loads(json.dumps(backend(records[0]))),
        100: json.loads(json.dumps(backend(records))),
    }
    names = [OURS, OURS_WAIT, litserve_name(), "FastAPI, per request"]
    started = dt.datetime.now(dt.timezone.utc)
    results = measure(names, bodies, expected, args)
    finished = dt.datetime.now(dt.timezone.utc)

    load = os.getloadavg()
    text = f"""Measured {started:%Y-%m-%d %H:%M}-{finished:%H:%M} UTC on {os.cpu_count()} cores
({platform.machine()}) shared with other work (load average {load[0]:.1f} at the end):
absolute figures are low and noisy; the ratios, measured minutes apart, mean more.
Load: `wrk -t2 -c{CONNECTIONS} -d{args.duration}s --timeout {WRK_TIMEOUT_S}s --latency` on
loopback after {args.warmup} s of warm-up, best of {args.rounds} rounds per server; wrk
shares the 2 cores with the server. Same model everywhere: the backend of
examples/firewall-anomaly. `packflow serve` runs with its defaults (batches of
up to {SERVE_MAX_BATCH_ROWS:,} rows, each started as soon as the model is free), and once more with
the fixed 5 ms wait that was the default before, both on packflow's own
HTTP/1.1 server ("The HTTP layer" in docs/serving.md); LitServe with
{args.litserve_batch} requests per batch, a 5 ms batch timeout, the ZeroMQ
queue, one API server and one worker process; the FastAPI endpoint is `async`
and calls the backend once per request, under uvicorn with uvloop and
httptools. "errors" counts non-2xx answers and wrk's
socket errors (timeouts past {WRK_TIMEOUT_S} s included). Versions: {versions()}.

{table(results)}

{verdicts(results)}

Command: `make bench-serve` (or `.venv/bin/python benches/serve/run.py -d
{args.duration} --rounds {args.rounds}` with the peers installed).
"""
    print()
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
        write_between_marks(SERVING_DOC, MARK_START, MARK_END, text)
        print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
