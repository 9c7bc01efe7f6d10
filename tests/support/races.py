"""Calling a Rust function while another thread mutates its input.

With the GIL, another thread runs only where the Rust code runs Python code
(a str subclass's ``__eq__``, an ndarray subclass's ``tolist``, a fallback, a
key's ``__format__``, a ``__del__``); the inputs below are full of such
points, and the switch interval is made tiny so a switch happens at most of
them. The mutator appends, pops, inserts and deletes in the shared lists and
dicts and drops the objects it replaces. A wrong result or a clean exception
is acceptable under such a race; a crash, a Rust panic or a ``SystemError``
(a C API misuse) is not. Every loop is bounded in calls and in time."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

CALLS = 400
SECONDS = 1.5


class KeyStr(str):
    """A key whose hashing and equality run Python code (so dict lookups yield)."""

    def __hash__(self) -> int:
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


class FmtKey:
    """A non-str key: flattening joins it with ``format()``, which runs Python."""

    def __init__(self, n: int):
        self.n = n

    def __hash__(self) -> int:
        return hash(self.n)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FmtKey) and other.n == self.n

    def __format__(self, spec: str) -> str:
        return f"k{self.n}"


class SlowArray(np.ndarray):
    """An ndarray subclass: the writer calls its Python ``tolist``."""

    def tolist(self):
        return [float(x) for x in np.asarray(self).ravel()]


class Hot(float):
    """A float whose conversion to a numpy float runs Python."""

    def __float__(self) -> float:
        return float.__float__(self) + 0.0


def slow_array(n: int) -> SlowArray:
    return np.arange(n, dtype=np.float64).view(SlowArray)


def event(rng: random.Random, writable: bool = False) -> dict:
    """A record full of points where the Rust code runs Python; ``writable``
    leaves out the keys JSON cannot have and the delimiter inside keys."""
    n = rng.randrange(4)
    src: dict = {KeyStr("port"): n, "ip": "10.0.0.1"}
    row: dict = {
        KeyStr("src"): src,
        "score": Hot(n / 2),
        "arr": slow_array(n + 1),
        "tags": [KeyStr("t"), n, [n]],
    }
    if not writable:
        src[FmtKey(n)] = [n, {"x": n}]
        row[KeyStr("a.b")] = n
    return row


def mutate_forever(
    shared: list, stop: threading.Event, seed: int, writable: bool, done: list
) -> None:
    """Appends, pops, inserts, deletes and replaces in ``shared`` and in the
    dicts and lists inside it until ``stop`` is set; counts its steps in ``done``."""
    rng = random.Random(seed)

    def event_(rng: random.Random) -> dict:
        return event(rng, writable)

    while not stop.is_set():
        done[0] += 1
        op = rng.randrange(8)
        try:
            if op == 0:
                shared.append(event_(rng))
            elif op == 1 and len(shared) > 1:
                shared.pop(rng.randrange(len(shared)))
            elif op == 2 and shared:
                shared[rng.randrange(len(shared))] = event_(rng)
            elif op == 3 and shared:
                row = shared[rng.randrange(len(shared))]
                if isinstance(row, dict):
                    row[f"k{rng.randrange(50)}"] = [rng.random()] * rng.randrange(4)
            elif op == 4 and shared:
                row = shared[rng.randrange(len(shared))]
                if isinstance(row, dict) and row:
                    row.pop(rng.choice(list(row)), None)
            elif op == 5 and shared:
                row = shared[rng.randrange(len(shared))]
                inner = row.get(KeyStr("src")) if isinstance(row, dict) else None
                if isinstance(inner, dict):
                    inner.clear() if rng.random() < 0.3 else inner.update(port=rng.random())
            elif op == 6 and shared:
                row = shared[rng.randrange(len(shared))]
                tags = row.get("tags") if isinstance(row, dict) else None
                if isinstance(tags, list):
                    tags.append(rng.random()) if rng.random() < 0.5 else tags.clear()
            elif op == 7:
                # Never empty: a mutator descheduled between the cut and the
                # extend (a loaded machine) left every call an IndexError.
                shared.insert(0, event_(rng))
                del shared[max(1, rng.randrange(len(shared))) :]
                shared.extend(event_(rng) for _ in range(rng.randrange(1, 6)))
        except (IndexError, KeyError, RuntimeError, ValueError):
            pass  # the main thread's call may race with these too


def race(
    call: Callable[[list], Any], seed: int = 0, writable: bool = False, rows: int = 6
) -> Counter:
    """``call(shared)`` up to ``CALLS`` times (and ``SECONDS``) while a thread
    mutates ``shared``; returns how the calls ended. Raises on a SystemError or
    a stuck mutator; a crash ends the test run. At least some calls must
    succeed, or the race would only exercise an error path."""
    rng = random.Random(seed)
    shared = [event(rng, writable) for _ in range(rows)]
    stop = threading.Event()
    steps = [0]
    mutator = threading.Thread(
        target=mutate_forever, args=(shared, stop, seed + 1, writable, steps), daemon=True
    )
    outcomes: Counter = Counter()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    mutator.start()
    try:
        # On a loaded machine the new thread may take a while to be scheduled:
        # the race starts once it has (bounded, like everything here).
        started = time.monotonic() + 30
        while steps[0] == 0 and mutator.is_alive() and time.monotonic() < started:
            time.sleep(0.001)
        deadline = time.monotonic() + SECONDS
        for _ in range(CALLS):
            if time.monotonic() > deadline:
                break
            try:
                call(shared)
                outcomes["ok"] += 1
            except SystemError:
                raise
            except Exception as e:  # a clean error is an acceptable outcome of a race
                outcomes[type(e).__name__] += 1
    finally:
        stop.set()
        sys.setswitchinterval(old)
        mutator.join(30)
    assert not mutator.is_alive(), "the mutator is stuck"
    assert outcomes["ok"] > 0, outcomes
    assert steps[0] > 0, "the mutator never ran"
    return outcomes
