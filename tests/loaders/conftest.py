import pytest
from sample_projects import restore_import_state  # noqa: F401


@pytest.fixture(autouse=True)
def _isolated_imports(restore_import_state):
    yield
