"""The HTTP layer of ``packflow serve``, chosen on measurements: the same app
(``create_app`` around the backend of examples/firewall-anomaly) under
packflow's own HTTP/1.1 server, under uvicorn (uvloop, httptools; what
``packflow serve`` ran on before) and under granian (Rust, hyper; ASGI), each
loaded with ``wrk`` and probed the way a hostile client would, on loopback.

    .venv/bin/python -m pip install 'uvicorn>=0.30' 'granian>=2'
    .venv/bin/python benches/serve/layers.py              # table to benches/serve/layers.md
    .venv/bin/python benches/serve/layers.py -d 4 --no-write

Every probe is bounded in count and time. The table goes into docs/serving.md
between its ``serve-layers`` marks.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    CONNECTIONS,
    LUA,
    firewall_events,
    free_port,
    run_wrk,
    write_between_marks,
)

REPO = HERE.parents[1]
RESULTS = HERE / "layers.md"
SERVING_DOC = REPO / "docs" / "serving.md"
MARK_START = "<!-- serve-layers:start -->"
MARK_END = "<!-- serve-layers:end -->"
LIMIT = 1024  # the connection limit every layer is given

OURS = "packflow's own (asyncio + httptools)"
UVICORN = "uvicorn + httptools (ASGI)"
GRANIAN = "granian (ASGI)"
LAYERS = (OURS, UVICORN, GRANIAN)


def app():
    """The app every layer serves (granian imports it by name)."""
    from peers import load_backend

    from packflow.serving import create_app

    return create_app(load_backend(), name="firewall-anomaly")


def serve_under(layer: str, port: int) -> None:
    """Run :func:`app` under ``layer`` (in this process, until a signal)."""
    if layer == "uvicorn":
        import uvicorn

        uvicorn.run(
            app(),
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
            limit_concurrency=LIMIT,
        )
    else:
        from granian import Granian

        Granian(
            "layers:app",
            factory=True,
            address="127.0.0.1",
            port=port,
            interface="asgi",
            loop="uvloop",
            http="1",
            backpressure=LIMIT,
            log_level="warning",
        ).serve()


class Layer:
    def __init__(self, name: str):
        self.name = name
        self.log = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(HERE)}
        if name == OURS:
            cmd = [
                sys.executable,
                "-m",
                "packflow.cli",
                "serve",
                str(REPO / "examples" / "firewall-anomaly"),
            ]
            cmd += ["--port", "0", "--max-connections", str(LIMIT)]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, env=env)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().decode()
            self.port = int(re.search(r":(\d+) ", line).group(1))  # type: ignore[union-attr]
        else:
            self.port = free_port()
            which = "uvicorn" if name == UVICORN else "granian"
            cmd = [
                sys.executable,
                str(HERE / "layers.py"),
                "--serve",
                which,
                "--port",
                str(self.port),
            ]
            self.proc = subprocess.Popen(
                cmd, stdout=self.log, stderr=self.log, env=env, start_new_session=True, cwd=HERE
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer: {self.output()}")

    def rss_mb(self) -> float:
        pids = [self.proc.pid]
        try:  # granian serves from a child process
            out = subprocess.run(
                ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
            )
            pids += [int(p) for p in out.stdout.split()]
        except OSError:
            pass
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            if self.name == OURS:
                self.proc.send_signal(signal.SIGTERM)
            else:
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.name != OURS:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- probes ------------------------------------------------------------------------


async def _status_of(port: int, request: bytes, timeout: float) -> str:
    """The status code of the answer to ``request``, or what happened instead."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return f"connect failed ({type(exc).__name__})"
    try:
        writer.write(request)
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            return "closed"
        return line.split(b" ", 2)[1].decode()
    except asyncio.TimeoutError:
        return f"no answer in {timeout:g} s"
    except OSError as exc:
        return type(exc).__name__
    finally:
        writer.close()


def probe_big_header(layer: Layer) -> str:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 << 20) + b"\r\n\r\n"
    return asyncio.run(_status_of(layer.port, request, 10.0))


def probe_header_flood(layer: Layer, cap: int = 256 << 20, seconds: float = 8.0) -> str:
    """Short header lines on one connection for up to ``seconds``: how much the
    server took, and how much it grew."""
    before = layer.rss_mb()
    sent = 0
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", layer.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        chunk = b"X-A: b\r\n" * 8192
        try:
            while sent < cap and time.monotonic() - start < seconds:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
    grew = layer.rss_mb() - before
    cut = "cut off" if sent < cap and time.monotonic() - start < seconds else "not cut off"
    return f"{cut} after {sent / (1 << 20):.1f} MiB; RSS +{grew:.0f} MB"


async def _idle_then_request(port: int, idle: int) -> str:
    held = []
    for _ in range(idle):
        try:
            held.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            break
    await asyncio.sleep(1.5)
    try:
        status = await _status_of(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 5.0)
    finally:
        for _, w in held:
            w.close()
    return f"{len(held)} held: /healthz {status}"


def probe_idle(layer: Layer) -> str:
    return asyncio.run(_idle_then_request(layer.port, LIMIT + 6))


async def _trickle(port: int, cap_s: float) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    try:
        for byte in request:
            if time.monotonic() - start > cap_s:
                return f"open after {cap_s:g} s"
            writer.write(bytes([byte]))
            try:
                data = await asyncio.wait_for(reader.read(200), 0.25)
            except asyncio.TimeoutError:
                continue
            took = time.monotonic() - start
            if data:
                return f"{data.split(b' ', 2)[1].decode()} at {took:.1f} s"
            return f"closed at {took:.1f} s"
    except OSError:
        return f"closed at {time.monotonic() - start:.1f} s"
    finally:
        writer.close()
    return "sent whole"


def probe_trickle(layer: Layer, cap_s: float = 20.0) -> str:
    return asyncio.run(_trickle(layer.port, cap_s))


async def _crowd(port: int, clients: int, body: bytes) -> dict[str, int]:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    tally: dict[str, int] = {}

    async def one() -> None:
        status = await _status_of(port, head + body, 20.0)
        tally[status] = tally.get(status, 0) + 1

    await asyncio.gather(*(one() for _ in range(clients)))
    return tally


def probe_crowd(layer: Layer, body: bytes, clients: int = 2000) -> str:
    tally = asyncio.run(_crowd(layer.port, clients, body))
    return ", ".join(f"{n} {s}" for s, n in sorted(tally.items(), key=lambda x: -x[1]))


class Abuse:
    """Hostile clients held open in the background while ``wrk`` measures:
    ``idle`` silent connections and ``tricklers`` sending a header byte a
    second (each reopened when the server closes it)."""

    def __init__(self, port: int, idle: int, tricklers: int):
        code = f"""
import asyncio, socket
async def idle():
    held = []
    for _ in range({idle}):
        try:
            held.append(await asyncio.open_connection("127.0.0.1", {port}))
        except OSError:
            pass
    await asyncio.sleep(3600)
async def trickle():
    while True:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", {port})
            w.write(b"GET /healthz HTTP/1.1\\r\\n")
            while not r.at_eof():
                w.write(b"a")
                await asyncio.sleep(1)
        except OSError:
            await asyncio.sleep(0.5)
async def main():
    await asyncio.gather(idle(), *(trickle() for _ in range({tricklers})))
asyncio.run(main())
"""
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(1.5)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@dataclass
class Row:
    layer: str
    rps1: float = 0.0
    p99_1: float = 0.0
    rows100: float = 0.0
    probes: dict[str, str] = field(default_factory=dict)
    abused_rps1: Optional[float] = None


def measure(args) -> list[Row]:
    workdir = Path(tempfile.mkdtemp(prefix="packflow-layers-"))
    lua = workdir / "post.lua"
    lua.write_text(LUA)
    bodies = {}
    for n in (1, 100):
        events = firewall_events(n)
        bodies[n] = workdir / f"body-{n}.json"
        bodies[n].write_text(json.dumps(events[0] if n == 1 else events))
    rows = []
    for name in args.layers:
        row = Row(name)
        layer = Layer(name)
        url = f"http://127.0.0.1:{layer.port}/invocations"
        try:
            for n, path in bodies.items():
                run_wrk(url, path, args.warmup, lua)
                rps, _, p99, errors = run_wrk(url, path, args.duration, lua)
                print(
                    f"{name:<40} {n:>3} rows: {rps:9,.0f} req/s p99 {p99:6.2f} ms errors {errors}",
                    flush=True,
                )
                if n == 1:
                    row.rps1, row.p99_1 = rps, p99
                else:
                    row.rows100 = rps * n
            if name == OURS and not args.no_abuse:
                abuse = Abuse(layer.port, idle=500, tricklers=50)
                try:
                    run_wrk(url, bodies[1], args.warmup, lua)
                    row.abused_rps1 = run_wrk(url, bodies[1], args.duration, lua)[0]
                finally:
                    abuse.stop()
                print(f"{name:<40} under abuse: {row.abused_rps1:9,.0f} req/s", flush=True)
                time.sleep(1)
            for probe, run in (
                ("8 MiB header", probe_big_header),
                ("header lines, 8 s", probe_header_flood),
                (f"{LIMIT + 6} idle connections, then /healthz", probe_idle),
                ("header trickled a byte per 0.25 s", probe_trickle),
                ("2,000 clients at once", lambda la: probe_crowd(la, bodies[1].read_bytes())),
            ):
                row.probes[probe] = run(layer)
                print(f"{name:<40} {probe}: {row.probes[probe]}", flush=True)
                layer.wait_ready()
        finally:
            layer.stop()
        rows.append(row)
    return rows


def versions() -> str:
    from importlib import metadata

    out = []
    for package in ("packflow", "uvicorn", "granian", "uvloop", "httptools"):
        try:
            out.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def report(rows: list[Row], args) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    ours = next((r for r in rows if r.layer == OURS), None)
    lines = [
        f"Measured {now} on {os.cpu_count()} cores ({platform.machine()}; load average "
        f"{load:.1f} at the end). The same app and model under each layer, "
        f"`wrk -t2 -c{CONNECTIONS} -d{args.duration}s` after {args.warmup} s of warm-up, "
        f"connection limit {LIMIT} everywhere (uvicorn's `limit_concurrency`, granian's "
        f"`backpressure`). Versions: {versions()}.",
        "",
        "| layer | 1-record requests/s | p99 | rows/s, 100-record requests |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.layer} | {r.rps1:,.0f} | {r.p99_1:.1f} ms | {r.rows100:,.0f} |")
    lines += ["", "What each did when probed as a hostile client would:", ""]
    probes = list(rows[0].probes) if rows else []
    lines.append("| probe | " + " | ".join(r.layer for r in rows) + " |")
    lines.append("|---" * (len(rows) + 1) + "|")
    for probe in probes:
        lines.append(f"| {probe} | " + " | ".join(r.probes.get(probe, "") for r in rows) + " |")
    if ours is not None and ours.abused_rps1:
        lines += [
            "",
            f"{OURS} with 500 idle connections and 50 clients trickling header bytes held "
            f"open during the run: {ours.abused_rps1:,.0f} one-record requests/s, "
            f"{ours.abused_rps1 / ours.rps1:.2f}x its clean figure.",
        ]
    lines += [
        "",
        "Command: `.venv/bin/python benches/serve/layers.py` (uvicorn and granian installed).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=["uvicorn", "granian"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("-d", "--duration", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=LAYERS)
    parser.add_argument("--no-abuse", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.serve:
        serve_under(args.serve, args.port)
        return 0
    rows = measure(args)
    text = report(rows, args)
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
        write_between_marks(SERVING_DOC, MARK_START, MARK_END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
