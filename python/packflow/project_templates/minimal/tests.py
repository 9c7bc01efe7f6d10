"""Checks for this project's backend. Run them with `pytest tests.py`
(pytest is a development tool: it is not in requirements.txt)."""

from pathlib import Path

import pytest

from packflow.loaders import InferenceBackendLoader

PROJECT_DIR = Path(__file__).resolve().parent

# A record shaped like real input; extend it with the fields your model reads.
SAMPLE_RECORDS = [{"example_field": "example value"}]


@pytest.fixture(scope="module")
def backend():
    """The backend, loaded the way packflow.yaml describes it."""
    return InferenceBackendLoader.from_project(PROJECT_DIR)


def test_backend_loads(backend):
    assert backend.ready()


def test_outputs_follow_packflow_format(backend):
    # check_io raises if the outputs are not one JSON-serializable dict per input.
    outputs = backend.check_io(SAMPLE_RECORDS)
    assert len(outputs) == len(SAMPLE_RECORDS)


def test_single_record_gives_single_output(backend):
    assert isinstance(backend(SAMPLE_RECORDS[0]), dict)
