import pytest

from tests.serving.harness import ECHO_BACKEND, EXAMPLE, ServerProcess
from tests.support.sample_projects import write_project


@pytest.fixture(scope="session")
def echo_project(tmp_path_factory):
    # No backend_config: the echo backend gets records.
    directory = tmp_path_factory.mktemp("echo") / "echo"
    return write_project(directory, name="echo", backend=ECHO_BACKEND, backend_config=None)


@pytest.fixture(scope="module")
def echo_server(echo_project):
    # A long wait, so that concurrent requests surely share batches.
    with ServerProcess(echo_project, "--max-wait-ms", "50", "--max-batch-rows", "64") as server:
        yield server


@pytest.fixture(scope="module")
def example_server():
    with ServerProcess(EXAMPLE, "--max-wait-ms", "20") as server:
        yield server
