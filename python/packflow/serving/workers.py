"""``packflow serve --workers N``: N server processes on one port.

One event loop saturates one core; N worker processes, each a complete
server (every model loaded, its own batcher, HTTP and gRPC), listen on the
same port with SO_REUSEPORT and the kernel spreads the connections between
them. The supervisor (the ``packflow serve`` process) loads no backend: it
reserves the ports, starts the workers, announces the server once every
worker listens, forwards signals, and replaces a worker that dies.

How the processes talk:

- Workers are ``python -m packflow.cli serve --worker-spec JSON`` in a new
  session (a terminal's Ctrl-C reaches only the supervisor). A fresh
  interpreter rather than a fork: the supervisor has imported the serving
  modules, maybe grpc, whose threads and locks do not survive a fork, and
  rather than multiprocessing's spawn: its children share the parent's
  process group and its pickled start-up needs the parent's ``__main__``.
- A *watch* pipe from the supervisor to each worker: its end of file (the
  supervisor closed it, or died, even of SIGKILL) drains the worker as its
  first signal does (:class:`SupervisorWatch`). The supervisor writes one
  byte before it closes the pipe: a worker that sees none was orphaned, and
  cleans up after it. A pipe rather than PR_SET_PDEATHSIG: it works the
  same on every POSIX system, fires however the supervisor ends, and lets
  the supervisor ask for a drain by closing it.
- A *status* pipe from each worker: one JSON line when it listens, or one
  with its error message and exit code when it cannot start (printed once,
  by the supervisor).
- A private folder: the settings every worker shares (:data:`SPEC_FILE`),
  and every worker's ``/metrics`` text, each series labelled ``worker="i"``,
  written there every second and when scraped; a scrape merges every
  worker's latest text (siblings' up to a second old).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from packflow.logger import get_logger
from packflow.serving.multi import MultiModelApp

__all__ = [
    "SPEC_FILE",
    "SharedMetrics",
    "Supervisor",
    "SupervisorWatch",
    "WorkerApp",
    "WorkerFailed",
    "label_worker",
    "merge_metrics",
    "report_to_supervisor",
    "reserve_port",
    "reuse_port_spreads",
]

#: Worker deaths (after they listened) within :data:`DEATHS_WINDOW_S` that
#: stop the server: a worker that keeps crashing is not restarted forever.
MAX_DEATHS = 5
DEATHS_WINDOW_S = 60.0
#: How long workers get to stop after a second signal (or a failed start)
#: before they are killed.
STOP_AT_ONCE_S = 10.0
#: How often a worker writes its metrics for its siblings' scrapes.
PUBLISH_S = 1.0
_POLL_S = 0.1
#: In the private folder: the settings every worker shares (the command line
#: gives each its own: index, pipes, the folder).
SPEC_FILE = "spec.json"
#: The longest status line read (a worker's error message); a longer one is
#: dropped rather than held whole.
MAX_STATUS_LINE = 64 * 1024
#: Reads of one status pipe per wait: a worker writing without pause cannot
#: keep the supervisor from the signals and the other workers.
_STATUS_READS = 16


def reuse_port_spreads() -> bool:
    """Whether SO_REUSEPORT spreads connections between the processes
    listening on one port: Linux's does; elsewhere it is missing, or (macOS)
    hands every connection to one of them."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reserve_port(host: str, port: int, what: str = "") -> socket.socket:
    """A socket bound (not listening) to ``host``:``port`` with SO_REUSEPORT,
    held while the workers listen beside it; ``port`` 0: a free port. Raises
    ``RuntimeError`` (``what``: "" or " for gRPC") when the port is taken.

    First a bind without SO_REUSEPORT: it fails when anything listens on the
    port, even another server of ours whose reuse group we would otherwise
    join unnoticed. The socket held is bound without SO_REUSEADDR: Linux
    lets two sockets that both have it bind one port while neither listens,
    so another server's check would pass while our workers load (and then
    its workers would join theirs), and so would our own gRPC port's check on
    the HTTP port. Only when that bind fails although the check passed (the
    port's connections of a server without SO_REUSEPORT linger in
    TIME_WAIT) is it bound with SO_REUSEADDR, as any server restarting is."""
    shown = f"[{host}]" if ":" in host else host
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
            address = probe.getsockname()
        try:
            held = _bind_reuse_port(family, kind, proto, address, reuse_address=False)
        except OSError:
            held = _bind_reuse_port(family, kind, proto, address, reuse_address=True)
    except OSError as exc:
        raise RuntimeError(
            f"could not listen{what} on {shown}:{port}: {exc.strerror or exc}"
        ) from None
    return held


def _bind_reuse_port(
    family: int, kind: int, proto: int, address: Any, reuse_address: bool
) -> socket.socket:
    held = socket.socket(family, kind, proto)
    try:
        if reuse_address:
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(address)
    except OSError:
        held.close()
        raise
    return held


# -- the worker's side ---------------------------------------------------------------


class SupervisorWatch:
    """A worker's watch of pipe ``fd``, whose end of file (the supervisor
    closed it, or died) stops this worker: before it serves, by SIGTERM
    (whose default action ends a worker still loading); once it serves,
    by draining it as its first signal does. Not a signal then: the worker
    may have had SIGTERM already (systemd stops a unit so, every process of
    it at once), and a second one would cut its drain short.

    ``shared``: this worker's view of the private folder, removed first if
    neither it nor a sibling has published anything (a worker still loading
    gets no clean-up, and a supervisor killed meanwhile leaves the folder
    to its workers)."""

    def __init__(self, fd: int, shared: Optional[SharedMetrics] = None):
        self.fd = fd
        self.shared = shared
        #: The pipe ended without the supervisor's byte: it died. (Not this
        #: process's parent changing: a worker that drains at once may look
        #: before the dying supervisor's children are handed on.)
        self.orphaned = False
        self._lock = threading.Lock()
        self._drain: Optional[Callable[[], None]] = None
        threading.Thread(target=self._watch, name="packflow-supervisor-watch", daemon=True).start()

    def serving(self, drain: Callable[[], None]) -> None:
        """From now on the end of the pipe calls ``drain`` (the server's
        ``on_signals``)."""
        with self._lock:
            self._drain = drain

    def _watch(self) -> None:
        asked = False
        while os.read(self.fd, 64):
            asked = True
        self.orphaned = not asked
        with self._lock:
            if self._drain is not None:
                self._drain()
                return
            if self.orphaned and self.shared is not None and not self.shared.published():
                self.shared.withdraw(orphaned=True)
            os.kill(os.getpid(), signal.SIGTERM)


def report_to_supervisor(fd: int, **message: Any) -> None:
    """One JSON line to the supervisor on the status pipe ``fd``."""
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


#: A sample line's metric name, and its label set's opening brace if any.
_SAMPLE = re.compile(rb"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{)?", re.M)


def label_worker(text: bytes, index: int) -> bytes:
    """The exposition ``text`` with ``worker="index"`` on every sample."""
    label = b'worker="%d"' % index
    return _SAMPLE.sub(lambda m: m.group(1) + b"{" + label + (b"," if m.group(2) else b"}"), text)


def merge_metrics(texts: Sequence[bytes]) -> bytes:
    """Several expositions as one: each family's ``# HELP`` and ``# TYPE``
    once, followed by its samples from every text (the text format wants a
    family's lines together), families in the order they first appear."""
    families: dict[bytes, list[list[bytes]]] = {}  # name -> [comments, samples]
    for text in texts:
        current: Optional[list[list[bytes]]] = None
        for line in text.split(b"\n"):
            if not line:
                continue
            if line.startswith(b"# HELP ") or line.startswith(b"# TYPE "):
                name = line.split(b" ", 3)[2]
                current = families.setdefault(name, [[], []])
                if len(current[0]) < 2 and line not in current[0]:
                    current[0].append(line)
            elif line.startswith(b"#"):
                continue
            elif current is not None:
                current[1].append(line)
    lines = [line for comments, samples in families.values() for line in comments + samples]
    return b"\n".join(lines) + b"\n"


class SharedMetrics:
    """Worker ``index`` of ``count``'s view of ``folder``: where each worker
    leaves its labelled metrics text for the others' scrapes."""

    def __init__(self, folder: str, index: int, count: int):
        self.folder = Path(folder)
        self.index = index
        self.count = count

    def publish(self, text: bytes) -> None:
        """Leave this worker's ``text`` (written whole, then renamed: a
        sibling never reads half of it)."""
        final = self.folder / f"{self.index}.prom"
        part = self.folder / f"{self.index}.part"
        try:
            part.write_bytes(text)
            os.replace(part, final)
        except OSError:  # the folder is gone: the supervisor is stopping
            pass

    def published(self) -> bool:
        """Whether this worker's text is there (it listens)."""
        return (self.folder / f"{self.index}.prom").exists()

    def withdraw(self, orphaned: bool) -> None:
        """Remove this worker's text as it exits; ``orphaned`` (the
        supervisor died without removing the folder): the folder too, once
        the last worker is gone."""
        for name in (f"{self.index}.prom", f"{self.index}.part"):
            try:
                (self.folder / name).unlink()
            except OSError:
                pass
        if orphaned:
            try:
                if any(p.suffix in (".prom", ".part") for p in self.folder.iterdir()):
                    return  # a sibling's text is still there: the last one removes it
                (self.folder / SPEC_FILE).unlink(missing_ok=True)
                self.folder.rmdir()
            except OSError:  # a sibling removed it first
                pass

    def gather(self, own: bytes) -> bytes:
        """Every worker's latest text, this one's ``own`` fresh, merged."""
        texts = []
        for index in range(self.count):
            if index == self.index:
                texts.append(own)
                continue
            try:
                texts.append((self.folder / f"{index}.prom").read_bytes())
            except OSError:  # not written yet (starting), or the folder is gone
                pass
        return merge_metrics(texts)


class WorkerApp(MultiModelApp):
    """The models of one worker: ``/metrics`` answers for every worker."""

    shared: SharedMetrics

    def own_metrics(self) -> bytes:
        return label_worker(super().metrics_text(), self.shared.index)

    def metrics_text(self) -> bytes:
        own = self.own_metrics()
        self.shared.publish(own)
        return self.shared.gather(own)

    def start_publishing(self) -> None:
        """Write this worker's metrics every :data:`PUBLISH_S` (on the
        running event loop)."""
        import asyncio

        loop = asyncio.get_running_loop()

        def tick() -> None:
            self.shared.publish(self.own_metrics())
            loop.call_later(PUBLISH_S, tick)

        tick()


# -- the supervisor's side -----------------------------------------------------------


class WorkerFailed(Exception):
    """The server stops: ``message`` (None: already on stderr) and the exit
    code."""

    def __init__(self, message: Optional[str], code: int):
        super().__init__(message)
        self.message = message
        self.code = code


class _Worker:
    def __init__(self, index: int, proc: subprocess.Popen, watch: int, status: int):
        self.index = index
        self.proc = proc
        self.watch: Optional[int] = watch  # the supervisor's end; closed: drain
        self.status = status
        self.pending = b""
        self.skipping = False  # within a status line too long, until its end
        self.status_ended = False
        self.listening = False
        self.error: Optional[tuple[str, int]] = None

    def read_status(self) -> None:
        for _ in range(_STATUS_READS):
            if self.status_ended:
                return
            try:
                chunk = os.read(self.status, 4096)
            except BlockingIOError:
                return
            if not chunk:
                # Closed (the worker exited, or its code closed the pipe):
                # not waited on again, or every wait would end at once.
                self.status_ended = True
                return
            *lines, self.pending = (self.pending + chunk).split(b"\n")
            for line in lines:
                if self.skipping:  # the end of a line too long
                    self.skipping = False
                else:
                    self._take(line)
            if len(self.pending) > MAX_STATUS_LINE:
                self.pending = b""
                self.skipping = True

    def _take(self, line: bytes) -> None:
        """One status line: ``{"listening": true}`` or ``{"error": message,
        "code": exit code}``; anything else is ignored."""
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("listening"):
            self.listening = True
        elif "error" in message:
            code = message.get("code")
            valid = isinstance(code, int) and 0 < code < 256
            self.error = (str(message["error"]), code if valid else 1)

    def drain(self) -> None:
        if self.watch is not None:
            try:
                os.write(self.watch, b"d")  # asked, not orphaned (see the module's notes)
            except OSError:  # the worker has exited
                pass
            os.close(self.watch)
            self.watch = None

    def close(self) -> None:
        self.drain()
        os.close(self.status)

    def how_it_ended(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"


class Supervisor:
    """Runs ``count`` workers, each ``command(index, watch_fd, status_fd)``,
    until a signal (:meth:`run`)."""

    def __init__(self, count: int, command: Callable[[int, int, int], list[str]]):
        self.count = count
        self.command = command
        self.workers: dict[int, _Worker] = {}
        self.signals: list[int] = []
        self.deaths: list[float] = []

    def _start(self, index: int) -> _Worker:
        watch_r, watch_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            proc = subprocess.Popen(
                self.command(index, watch_r, status_w),
                pass_fds=(watch_r, status_w),
                start_new_session=True,
            )
        except BaseException as exc:
            for fd in (watch_w, status_r):
                os.close(fd)
            if isinstance(exc, OSError):  # out of processes, memory, or descriptors
                raise WorkerFailed(f"could not start worker {index}: {exc}", 1) from None
            raise
        finally:
            os.close(watch_r)
            os.close(status_w)
        os.set_blocking(status_r, False)
        worker = _Worker(index, proc, watch_w, status_r)
        self.workers[index] = worker
        return worker

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signals.append(signum)

    def _wait(self) -> list[_Worker]:
        """Wait a moment for status lines or a signal; the workers that have
        exited since (taken out of :attr:`workers`)."""
        fds = [w.status for w in self.workers.values() if not w.status_ended]
        if fds:
            # poll() rather than select(): a file descriptor past 1023 (some
            # hundred workers) is out of select()'s range. A signal ends the
            # wait early too: its handler runs, and poll() resumes for the
            # rest of the moment at most.
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            poller.poll(_POLL_S * 1000)
        else:
            time.sleep(_POLL_S)
        ended = []
        for worker in list(self.workers.values()):
            worker.read_status()
            if worker.proc.poll() is not None:
                worker.read_status()
                worker.close()
                del self.workers[worker.index]
                ended.append(worker)
        return ended

    def run(self, on_listening: Callable[[], None]) -> tuple[bool, str]:
        """Start the workers, call ``on_listening`` once every one listens,
        replace those that die, and at a signal drain them: ``(forced, name
        of the first signal)`` as :func:`packflow.serving.server.serve`.
        Raises :class:`WorkerFailed` when a worker cannot start or workers
        keep dying."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            for index in range(self.count):
                self._start(index)
            announced = False
            while not self.signals:
                for worker in self._wait():
                    self._ended(worker, announced)
                if not announced and all(w.listening for w in self.workers.values()):
                    if len(self.workers) == self.count:
                        announced = True
                        on_listening()
            return self._stop()
        except BaseException:
            self._stop_now()
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _ended(self, worker: _Worker, announced: bool) -> None:
        """A worker exited on its own: before the server listened, the
        server stops with its error; after, another takes its place (a
        replacement that cannot start counts as one more death)."""
        if not announced:
            if worker.error is not None:
                raise WorkerFailed(*worker.error)
            code = worker.proc.returncode
            raise WorkerFailed(
                f"worker {worker.index} {worker.how_it_ended()} before "
                + ("the others listened" if worker.listening else "it listened"),
                code if code and code > 0 else 1,
            )
        now = time.monotonic()
        self.deaths = [t for t in self.deaths if t > now - DEATHS_WINDOW_S] + [now]
        log = get_logger("serve")
        why = f": {worker.error[0]}" if worker.error else ""
        log.error(
            "worker %d (pid %d) %s%s", worker.index, worker.proc.pid, worker.how_it_ended(), why
        )
        if len(self.deaths) >= MAX_DEATHS:
            raise WorkerFailed(
                f"{len(self.deaths)} workers died within {DEATHS_WINDOW_S:g} s; stopping the "
                "server (their errors are above)",
                1,
            )
        log.error("starting worker %d again", worker.index)
        self._start(worker.index)

    def _stop(self) -> tuple[bool, str]:
        """The first signal: every worker drains; a second one stops them
        at once."""
        name = signal.Signals(self.signals[0]).name
        for worker in self.workers.values():
            worker.drain()
        while self.workers:
            if len(self.signals) > 1:
                self._stop_now()
                return True, name
            self._wait()
        return False, name

    def _stop_now(self) -> None:
        """Every worker's second signal (the watch pipe's end drains it, as
        a first one); killed if still there after :data:`STOP_AT_ONCE_S`.
        Two SIGTERMs a moment apart: a worker that takes the first before its
        watch drains it still gets a second."""
        for worker in self.workers.values():
            worker.drain()
        for _ in range(2):
            time.sleep(_POLL_S)
            for worker in self.workers.values():
                _send(worker.proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_AT_ONCE_S
        while self.workers and time.monotonic() < deadline:
            self._wait()
        for worker in list(self.workers.values()):
            _send(worker.proc, signal.SIGKILL)
            worker.proc.wait()
            worker.close()
        self.workers.clear()


def _send(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
