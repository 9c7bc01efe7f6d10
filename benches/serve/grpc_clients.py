"""The Open Inference Protocol's two doors of ``packflow serve``, gRPC
(``--grpc-port``) and REST (``/v2``), through tritonclient's own clients
(gRPC; HTTP with binary tensors, both its defaults) on loopback: requests per
second, rows per second, latency and the server's CPU time per request, for
1 row per request and 100, with one client and with 16 (threads).

    .venv/bin/python benches/serve/grpc_clients.py [--requests 1600]

Bounded: each case sends a fixed number of requests (--requests in all),
and every request has a 30 s deadline. The clients run on the same machine
as the server and share its cores (a Python client costs about as much CPU
as the server): the figures compare the doors, they are not the server's
ceiling.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

REPO = Path(__file__).resolve().parents[2]
MODEL = "firewall-anomaly"


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _case(door: str, target: str, pid: int, rows: int, clients: int, total: int) -> str:
    per_client = max(1, total // clients)
    latencies: list[float] = []
    lock = threading.Lock()
    matrix = np.random.default_rng(1).random((rows, 9))

    def client() -> None:
        if door == "grpc":
            module, conn = grpcclient, grpcclient.InferenceServerClient(target)
        else:
            module = httpclient
            conn = httpclient.InferenceServerClient(target, network_timeout=30.0)
        tensor = module.InferInput("features", [rows, 9], "FP64")
        tensor.set_data_from_numpy(matrix)
        mine = []
        try:
            for _ in range(per_client):
                began = time.perf_counter()
                if door == "grpc":
                    conn.infer(MODEL, [tensor], client_timeout=30)
                else:
                    conn.infer(MODEL, [tensor])
                mine.append(time.perf_counter() - began)
        finally:
            conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    cpu_before, began = _cpu_s(pid), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.perf_counter() - began
    server_ms = (_cpu_s(pid) - cpu_before) * 1e3
    n = len(latencies)
    latencies.sort()
    return (
        f"| {door} | {rows} | {clients} | {n} | {n / elapsed:,.0f} | {n * rows / elapsed:,.0f} "
        f"| {latencies[n // 2] * 1e3:.1f} | {latencies[min(n - 1, int(n * 0.99))] * 1e3:.1f} "
        f"| {server_ms / n:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1600, help="requests per case")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "packflow.cli", "serve", str(REPO / "examples" / MODEL),
         "--port", "0", "--grpc-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        http_port = re.search(rb":(\d+) ", server.stdout.readline()).group(1).decode()
        grpc_port = re.search(rb":(\d+) ", server.stdout.readline()).group(1).decode()
        targets = {"grpc": f"127.0.0.1:{grpc_port}", "rest": f"127.0.0.1:{http_port}"}
        print(
            "| door | rows/request | clients | requests | requests/s | rows/s | p50 ms "
            "| p99 ms | server CPU ms/request |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for rows, clients in ((1, 1), (1, 16), (100, 16)):
            for door, target in targets.items():
                print(_case(door, target, server.pid, rows, clients, args.requests), flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
