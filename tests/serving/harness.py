"""A real `packflow serve` subprocess on a free loopback port, and the projects
the serving tests run."""

from __future__ import annotations

import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "firewall-anomaly"

# Echoes an id, doubles x; a row with "fail" fails in execute; `delay_s` sleeps
# once per backend call (a slow model for queue, timeout and drain tests).
ECHO_BACKEND = """
import time

from packflow import BackendConfig, InferenceBackend


class Config(BackendConfig):
    delay_s: float = 0.0


class Backend(InferenceBackend):
    backend_config_model = Config

    def execute(self, inputs):
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        out = []
        for r in inputs:
            if r.get("fail"):
                raise ValueError(f"row {r.get('id')} refused")
            out.append({"id": r["id"], "double": r["x"] * 2})
        return out
"""

INIT_FAILS_BACKEND = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def initialize(self):
        raise RuntimeError("no weights at /models/missing.bin")

    def execute(self, inputs):
        return inputs
"""


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
            "bytes": {"in": rng.randint(0, 300_000), "out": rng.randint(0, 700_000)},
            "rule": {"id": rng.randint(0, 99), "name": f"r{i % 5}"},
            "score": rng.random(),
        }
        for i in range(n)
    ]


def echo_expected(rows: list[dict]) -> list[dict]:
    return [{"id": r["id"], "double": r["x"] * 2} for r in rows]


class ServerProcess:
    """`packflow serve PROJECT --port 0 ARGS` in a subprocess; ``url`` once it
    listens. Stops on :meth:`stop` (SIGTERM, then SIGKILL after a bound)."""

    def __init__(
        self,
        project: Path,
        *args: str,
        start_timeout: float = 30.0,
        prelude: Optional[str] = None,
    ):
        self._stderr = tempfile.TemporaryFile()
        # ``prelude``: Python run in the server's process before the command
        # (imports a user's backend might make first).
        if prelude is None:
            command = [sys.executable, "-m", "packflow.cli"]
        else:
            command = [sys.executable, "-c", f"{prelude}\nfrom packflow.cli import cli\ncli()"]
        self.proc = subprocess.Popen(
            [*command, "serve", str(project), "--port", "0", *args],
            stdout=subprocess.PIPE,
            # Unbuffered: readline() takes one line and leaves the next (the
            # gRPC listening line, written with the HTTP one) for select().
            bufsize=0,
            stderr=self._stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.listening_line = self._read_line(start_timeout)
        match = re.search(r"http://127\.0\.0\.1:(\d+)", self.listening_line)
        if not match:
            self.kill()
            raise AssertionError(f"unexpected listening line: {self.listening_line!r}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        #: With --grpc-port: the gRPC service's address (its listening line
        #: follows the HTTP one).
        self.grpc_target: Optional[str] = None
        if "--grpc-port" in args:
            line = self._read_line(start_timeout)
            found = re.search(r"Listening for gRPC on 127\.0\.0\.1:(\d+)", line)
            if not found:
                self.kill()
                raise AssertionError(f"unexpected gRPC listening line: {line!r}")
            self.grpc_target = f"127.0.0.1:{found.group(1)}"

    def _read_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline().decode()
                if line:
                    return line
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the server exited with {self.proc.returncode}: {self.stderr()}"
                )
        self.kill()
        raise AssertionError(f"the server did not listen within {timeout} s: {self.stderr()}")

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.kill()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._stderr.close()


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    """A fresh connection to the server on loopback."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def rss_kb(pid: int) -> int:
    """The resident memory of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def metric_samples(text: str, keep_model: bool = False) -> dict:
    """``{(sample name, frozenset of label items): value}`` of a /metrics text,
    read with prometheus_client's own parser. A server of one model labels
    its series with that model; the label is left out unless ``keep_model``
    (then two samples that differ only by it would collide: an error)."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if not keep_model:
                labels.pop("model", None)
            key = (sample.name, frozenset(labels.items()))
            assert key not in out, f"two samples {key} (one per model?)"
            out[key] = sample.value
    return out


def batch_count(client, url: str) -> float:
    """Batches the server has run so far (from /metrics)."""
    samples = metric_samples(client.get(f"{url}/metrics").text)
    return samples[("packflow_batch_rows_count", frozenset())]
