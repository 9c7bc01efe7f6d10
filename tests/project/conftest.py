import pytest

from tests.support.sample_projects import isolated_import_state


@pytest.fixture(autouse=True)
def _isolated_imports(tmp_path_factory):
    with isolated_import_state(tmp_path_factory.getbasetemp()):
        yield
