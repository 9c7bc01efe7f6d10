from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support import reference, tansu
from tests.support.sample_projects import write_project
from tests.support.testkit import WORKERS_BACKEND

# Timing is not what the property tests check: on a loaded machine (or CI) a slow
# example must not fail a test. Benchmarks measure speed.
settings.register_profile("packflow", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("packflow")


def pytest_configure(config):
    for marker in (
        "differential: runs cases through the reference packflow 0.4.1 too (set automatically)",
        "hostile: hostile inputs to the Rust core (cycles, subclasses, mutation mid-walk, "
        "surrogates, odd numpy layouts, hostile archives)",
        "wheels: installs the wheels in dist/ into fresh virtualenvs (make wheel-smoke)",
    ):
        config.addinivalue_line("markers", marker)


def pytest_collection_modifyitems(config, items):
    # A test module that imports from `tests.support.reference` compares against
    # the reference.
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and any(
            getattr(value, "__module__", None) == reference.__name__
            for value in vars(module).values()
        ):
            item.add_marker(pytest.mark.differential)


@pytest.fixture()
def workers_project(tmp_path: Path) -> Path:
    """A project of :data:`tests.support.testkit.WORKERS_BACKEND` (the worker-pool tests')."""
    return write_project(tmp_path / "proj", backend=WORKERS_BACKEND)


@pytest.fixture()
def marks(tmp_path: Path) -> Path:
    """An empty folder for the marker files test backends leave."""
    d = tmp_path / "marks"
    d.mkdir()
    return d


def tansu_binary() -> str:
    """The tansu binary; the test is skipped where there is none (`make
    tansu` gets it) or no kafka extra."""
    pytest.importorskip("confluent_kafka", reason="the kafka extra (confluent-kafka) is missing")
    binary = tansu.find_binary()
    if binary is None:
        pytest.skip(
            "no tansu binary: `make tansu` (python -m tests.support.tansu install) gets it, "
            f"or set {tansu.ENV_VAR}"
        )
    return binary


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A Kafka broker (tansu) on 127.0.0.1, on a free port with in-memory
    storage, shared by the session's tests; each uses topics and groups of its
    own. Skipped only where there is no binary (`make tansu` gets it)."""
    server = tansu.Broker(tansu_binary(), tmp_path_factory.mktemp("tansu") / "broker.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
