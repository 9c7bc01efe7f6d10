"""One local Ray cluster for the whole session (2 CPUs, no dashboard), and a
time limit on every test here so that a hung job fails instead of blocking CI.

This folder is the package ``tests.ray``: ``tests/`` itself is never on
``sys.path`` (a top-level ``ray`` there would shadow Ray itself).
"""

from __future__ import annotations

import faulthandler
import signal
import sys

import pytest

pytest.importorskip("ray.data")
import ray  # noqa: E402

#: Seconds a test here may take; a Ray job on a loaded 2-core machine takes 10-30.
TEST_TIMEOUT_S = 180


@pytest.fixture(scope="session")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


class RayTestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def ray_test_timeout():
    def expire(_signum, _frame):
        faulthandler.dump_traceback(file=sys.stderr)
        raise RayTestTimeout(f"test took longer than {TEST_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
