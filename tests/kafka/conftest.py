from __future__ import annotations

import pytest

from tests.support import tansu


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A tansu broker on 127.0.0.1 (a free port, in-memory storage), shared by
    the session's Kafka tests; each test uses topics and groups of its own."""
    pytest.importorskip("confluent_kafka", reason="the kafka extra (confluent-kafka) is missing")
    binary = tansu.find_binary()
    if binary is None:
        pytest.skip(
            "no tansu binary: `make tansu` (python -m tests.support.tansu install) gets it, "
            f"or set {tansu.ENV_VAR}"
        )
    server = tansu.Broker(binary, tmp_path_factory.mktemp("tansu") / "broker.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
