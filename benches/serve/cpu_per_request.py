"""CPU time of ``packflow serve`` per request: the server's own CPU seconds
(all its threads, from /proc/PID/stat) over a bounded number of requests of
100 records each, sent on a few keep-alive connections to the example project
(examples/firewall-anomaly). CPU time, unlike requests/s, barely depends on
what else the machine runs, so it shows what one request costs the server
(parsing the body, batching, the model, writing the answer).

    .venv/bin/python benches/serve/cpu_per_request.py                   # 2,000 requests x 3
    .venv/bin/python benches/serve/cpu_per_request.py -n 5000 -c 8 --rows 1

Linux only (/proc).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import EXAMPLE, firewall_events  # noqa: E402  (benches/serve/run.py)

MAX_REQUESTS = 100_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, all its threads."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def self_cpu() -> float:
    return time.process_time()


class Server:
    """``packflow serve`` on a free loopback port."""

    def __init__(self, project: Path, extra: list[str]):
        self.log = tempfile.TemporaryFile()
        cmd = [sys.executable, "-m", "packflow.cli", "serve", str(project), "--port", "0", *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        match = re.search(r":(\d+) ", line)
        if not match:
            self.stop()
            raise RuntimeError(f"no listening line from packflow serve: {line!r} {self.output()}")
        self.port = int(match.group(1))

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def send(port: int, body: bytes, count: int, timeout: float, failures: list) -> None:
    """``count`` POSTs of ``body`` on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    try:
        for _ in range(count):
            conn.request("POST", "/invocations", body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            if answer.status != 200:
                failures.append(f"{answer.status}: {data[:200]!r}")
                return
    except OSError as exc:
        failures.append(repr(exc))
    finally:
        conn.close()


def burst(port: int, body: bytes, requests: int, connections: int, timeout: float) -> float:
    """Send ``requests`` requests over ``connections`` threads; the wall time."""
    failures: list[str] = []
    share = [requests // connections + (i < requests % connections) for i in range(connections)]
    threads = [
        threading.Thread(target=send, args=(port, body, n, timeout, failures)) for n in share
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * max(1, max(share)))
    wall = time.perf_counter() - start
    if failures or any(t.is_alive() for t in threads):
        raise RuntimeError(f"requests failed: {failures[:3]}")
    return wall


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--requests", type=int, default=2_000, help="per round")
    parser.add_argument("-c", "--connections", type=int, default=4)
    parser.add_argument("--rows", type=int, default=100, help="records per request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--project", type=Path, default=EXAMPLE)
    parser.add_argument("serve_args", nargs="*", help="more `packflow serve` options (after --)")
    args = parser.parse_args(argv)
    requests = max(1, min(args.requests, MAX_REQUESTS))
    connections = max(1, min(args.connections, 64, requests))
    records = firewall_events(args.rows)
    body = json.dumps(records if args.rows > 1 else records[0]).encode()

    server = Server(args.project, args.serve_args)
    try:
        # Warm up: the first batches, the allocator, the connections.
        burst(server.port, body, min(200, requests), connections, args.timeout)
        loads = [os.getloadavg()[0]]
        per_request, walls, client = [], [], []
        for _ in range(max(1, min(args.rounds, 20))):
            before, mine = cpu_seconds(server.proc.pid), self_cpu()
            walls.append(burst(server.port, body, requests, connections, args.timeout))
            per_request.append((cpu_seconds(server.proc.pid) - before) / requests)
            client.append((self_cpu() - mine) / requests)
        loads.append(os.getloadavg()[0])
    finally:
        server.stop()

    cpu = statistics.median(per_request)
    print(
        f"packflow serve {args.project.name} {' '.join(args.serve_args)}".rstrip()
        + f": {requests:,} requests x {len(per_request)} rounds, {args.rows} records each "
        f"({len(body):,} bytes), {connections} connections"
    )
    print(f"load average (1 min): {loads[0]:.2f} at the start, {loads[1]:.2f} at the end")
    print(
        f"server CPU per request: median {cpu * 1e6:,.0f} us "
        f"(rounds: {', '.join(f'{x * 1e6:,.0f}' for x in per_request)}); "
        f"per row {cpu * 1e6 / args.rows:,.2f} us"
    )
    print(
        f"wall per round: median {statistics.median(walls):.2f} s "
        f"({requests / statistics.median(walls):,.0f} requests/s); "
        f"client CPU per request {statistics.median(client) * 1e6:,.0f} us "
        f"(clock tick {1e3 / CLOCK_TICKS:.0f} ms: "
        f"+-{1e6 / CLOCK_TICKS / requests:.0f} us per request)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
