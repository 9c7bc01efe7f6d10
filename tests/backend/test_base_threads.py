"""One backend called from 8 threads at once while other threads read
``get_metrics()``/``get_stats()`` and call ``reset_stats()``: no crash, no
deadlock (every join is bounded), and exact counts.

Exactness despite resets: a call records all its steps under one lock and a
reset clears them under the same lock, so every snapshot has one count for all
four steps; the count since a reset R seen by a snapshot S is bounded by the
calls that both started after R and finished before S (below) and the calls
not yet finished when R began and already started when S ended (above); and a
phase without resets counts every call, exactly."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from packflow import InferenceBackend
from packflow.backend.metrics import ExecutionMetrics

CALLERS = 8
CALLS_EACH = 150
JOIN_TIMEOUT = 120
STEPS = ("preprocess", "transform_inputs", "execute", "transform_outputs")


class Scorer(InferenceBackend):
    """Every step runs (a records plan, two hooks), and each does a little
    Python work so that threads switch inside calls."""

    def transform_inputs(self, inputs):
        return [dict(r, t=1) for r in inputs]

    def execute(self, inputs):
        return [{"score": r["src.port"] * 2, "t": r["t"]} for r in inputs]

    def transform_outputs(self, outputs):
        return [dict(o, done=True) for o in outputs]


def batch(i: int) -> list[dict]:
    return [{"src": {"port": i + k}, "noise": [k]} for k in range(1 + i % 4)]


def want(i: int) -> list[dict]:
    return [{"score": 2 * (i + k), "t": 1, "done": True} for k in range(1 + i % 4)]


class Counter:
    def __init__(self):
        self.value = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.value += 1


class Run:
    """The callers and readers of one phase; errors from any thread are kept
    and re-raised by ``join``."""

    def __init__(self, backend: Scorer):
        self.backend = backend
        self.started = Counter()
        self.finished = Counter()
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.snapshots = 0

    def spawn(self, target, *args) -> threading.Thread:
        def guarded():
            try:
                target(*args)
            except BaseException as e:  # re-raised in join()
                self.errors.append(e)
                self.done.set()

        t = threading.Thread(target=guarded, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def caller(self, offset: int) -> None:
        for j in range(CALLS_EACH):
            i = offset * CALLS_EACH + j
            self.started.add()
            out = self.backend(batch(i))
            self.finished.add()
            assert out == want(i), (i, out)

    def reader(self) -> None:
        sizes = {len(batch(i)) for i in range(4)}
        while not self.done.is_set():
            metrics = self.backend.get_metrics()
            assert isinstance(metrics, ExecutionMetrics)
            assert metrics.batch_size in sizes, metrics
            assert_consistent(self.backend.get_stats())
            self.snapshots += 1

    def resetter(self) -> None:
        while not self.done.is_set():
            f0 = self.finished.value
            self.backend.reset_stats()
            s0 = self.started.value
            time.sleep(0.001)
            f1 = self.finished.value
            stats = self.backend.get_stats()
            s1 = self.started.value
            count = assert_consistent(stats)
            assert f1 - s0 <= count <= s1 - f0, (f1 - s0, count, s1 - f0)

    def run_callers(self) -> None:
        """Runs the callers to the end, then stops the readers."""
        callers = [self.spawn(self.caller, k) for k in range(CALLERS)]
        for t in callers:
            t.join(JOIN_TIMEOUT)
            assert not t.is_alive(), "a caller is stuck (deadlock?)"
        self.done.set()

    def join(self) -> None:
        self.done.set()
        for t in self.threads:
            t.join(JOIN_TIMEOUT)
            assert not t.is_alive(), "a reader or resetter is stuck (deadlock?)"
        if self.errors:
            raise self.errors[0]


def assert_consistent(stats: dict) -> int:
    """Every step has the same count in one snapshot (or none has run); returns it."""
    counts = {step: stats[step]["count"] for step in stats}
    if not counts:
        return 0
    assert set(counts) == set(STEPS), counts
    assert len(set(counts.values())) == 1, counts
    return next(iter(counts.values()))


@pytest.fixture(autouse=True)
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


@pytest.fixture
def backend() -> Scorer:
    b = Scorer(feature_names=["src.port"], rename_fields={"noise": "n"}, flatten_nested_inputs=True)
    b(batch(0))  # get_metrics() needs one call
    b.reset_stats()
    return b


def test_every_call_counted_while_others_read(backend):
    run = Run(backend)
    for _ in range(2):
        run.spawn(run.reader)
    run.run_callers()
    run.join()
    stats = backend.get_stats()
    assert {step: stats[step]["count"] for step in STEPS} == dict.fromkeys(
        STEPS, CALLERS * CALLS_EACH
    )
    assert run.snapshots > 0


def test_counts_between_resets_are_bounded_by_the_calls(backend):
    run = Run(backend)
    run.spawn(run.reader)
    run.spawn(run.resetter)
    run.run_callers()
    run.join()
    # After the resets stop, a phase without them counts exactly again.
    backend.reset_stats()
    again = Run(backend)
    again.spawn(again.reader)
    again.run_callers()
    again.join()
    assert assert_consistent(backend.get_stats()) == CALLERS * CALLS_EACH
