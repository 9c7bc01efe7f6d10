import pytest

from serving.harness import ECHO_BACKEND, EXAMPLE, ServerProcess, write_project


@pytest.fixture(scope="session")
def echo_project(tmp_path_factory):
    return write_project(tmp_path_factory.mktemp("echo") / "echo", "echo", ECHO_BACKEND)


@pytest.fixture(scope="module")
def echo_server(echo_project):
    # A long wait, so that concurrent requests surely share batches.
    with ServerProcess(echo_project, "--max-wait-ms", "50", "--max-batch-rows", "64") as server:
        yield server


@pytest.fixture(scope="module")
def example_server():
    with ServerProcess(EXAMPLE, "--max-wait-ms", "20") as server:
        yield server
