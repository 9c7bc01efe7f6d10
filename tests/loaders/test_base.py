"""InferenceBackendLoader.load and from_project: type checks, error wrapping, and the
config hierarchy defaults < packflow.yaml backend_config < kwargs < override file."""

from __future__ import annotations

import json
import os
import sys

import pytest

from packflow import InferenceBackend
from packflow.backend.configuration import InputFormats
from packflow.exceptions import (
    InferenceBackendInitializationError,
    InferenceBackendLoadError,
    PackflowConfigError,
    UnknownConfigKeysError,
)
from packflow.loaders import InferenceBackendLoader, LocalLoader, ModuleLoader
from tests.support.sample_projects import write_project


class Echo(InferenceBackend):
    def execute(self, inputs):
        return inputs


class StaticLoader(InferenceBackendLoader):
    """Hands out a fixed object, or raises a fixed exception."""

    def __init__(self, obj=None, error=None):
        super().__init__("static:Object")
        self.obj, self.error = obj, error

    def load_backend_module(self):
        if self.error is not None:
            raise self.error
        return self.obj


def test_loader_is_abstract():
    with pytest.raises(TypeError):
        InferenceBackendLoader("a:b")


def test_class_is_instantiated_with_the_kwargs():
    backend = StaticLoader(Echo).load(input_format="passthrough", verbose=True)
    assert isinstance(backend, Echo)
    assert backend.config.input_format is InputFormats.PASSTHROUGH
    assert backend.config.verbose is True


def test_instance_is_returned_as_is():
    instance = Echo(input_format="passthrough")
    assert StaticLoader(instance).load(verbose=True) is instance


def test_foreign_class_is_refused_without_running_its_constructor():
    constructed = []

    class NotABackend:
        def __init__(self, **kwargs):
            constructed.append(kwargs)

    with pytest.raises(InferenceBackendLoadError) as info:
        StaticLoader(NotABackend).load()
    assert str(info.value).startswith(
        "Loaded object does not appear to be a packflow InferenceBackend. Received type: <class "
    )
    assert "does not subclass packflow.InferenceBackend; it was not instantiated" in str(info.value)
    assert constructed == []


@pytest.mark.parametrize("obj", [None, 42, "text", {"a": 1}, print])
def test_objects_that_are_not_backends_are_refused(obj):
    with pytest.raises(InferenceBackendLoadError, match="not a packflow.InferenceBackend"):
        StaticLoader(obj).load()


def test_loading_errors_are_wrapped_with_their_origin():
    with pytest.raises(InferenceBackendLoadError) as info:
        StaticLoader(error=ImportError("no module named torch")).load()
    assert str(info.value).startswith(
        "Unable to load inference backend module with error: no module named torch (loading "
        "'static:Object': ImportError (at "
    )
    assert str(info.value).count("no module named torch") == 1  # said once
    assert isinstance(info.value.__cause__, ImportError)


def test_load_errors_are_not_wrapped_twice():
    original = InferenceBackendLoadError("already clear")
    with pytest.raises(InferenceBackendLoadError) as info:
        StaticLoader(error=original).load()
    assert info.value is original


def test_constructor_errors_propagate_unchanged():
    class FailsToInit(Echo):
        def initialize(self):
            raise RuntimeError("weights missing")

    with pytest.raises(InferenceBackendInitializationError, match="weights missing"):
        StaticLoader(FailsToInit).load(input_format="passthrough")


def test_strict_config_keys_refuses_a_typo_before_initialize():
    initialized = []

    class Counted(Echo):
        def initialize(self):
            initialized.append(self)

    with pytest.raises(UnknownConfigKeysError) as info:
        StaticLoader(Counted).load(strict_config_keys=["verbos"], verbos=True)
    assert "'verbos' (did you mean 'verbose'?)" in str(info.value)
    assert initialized == []
    # Known keys pass, and the same typo without the strict check is ignored (0.4).
    StaticLoader(Counted).load(strict_config_keys=["verbose"], verbose=True)
    StaticLoader(Counted).load(verbos=True)
    assert len(initialized) == 2


def test_strict_config_keys_on_an_instance_checks_its_config():
    with pytest.raises(UnknownConfigKeysError, match="'nope'"):
        StaticLoader(Echo(input_format="passthrough")).load(strict_config_keys=["nope"])


def test_strict_config_through_from_path_and_from_archive(tmp_path):
    from packflow.project import PackflowProject

    project = write_project(tmp_path / "proj")
    backend = InferenceBackendLoader.from_path(project, strict_config=True, threshold=0.9)
    assert backend.config.threshold == 0.9
    with pytest.raises(UnknownConfigKeysError, match="'treshold' \\(did you mean 'threshold'"):
        InferenceBackendLoader.from_path(project, strict_config=True, treshold=0.9)
    archive = PackflowProject(project).export(tmp_path / "dist")
    with pytest.raises(UnknownConfigKeysError, match="'treshold'"):
        InferenceBackendLoader.from_path(archive, strict_config=True, treshold=0.9)
    # Only the keyword arguments are the user's: packflow.yaml's keys are not checked.
    legacy = write_project(tmp_path / "legacy", backend_config={"retired_knob": 1})
    backend = InferenceBackendLoader.from_path(legacy, strict_config=True, threshold=0.8)
    assert backend.config.threshold == 0.8


def test_abstract_backend_class_is_a_type_error():
    class NoExecute(InferenceBackend):
        pass

    with pytest.raises(TypeError):
        StaticLoader(NoExecute).load()


def test_repr():
    assert repr(ModuleLoader("a:b")) == "ModuleLoader('a:b')"


# --- from_project ----------------------------------------------------------------------


def test_from_project_loads_the_local_backend(tmp_path):
    write_project(tmp_path)
    backend = InferenceBackendLoader.from_project(tmp_path)
    assert isinstance(backend, InferenceBackend)
    assert type(backend).__name__ == "Backend"
    assert backend.config.input_format is InputFormats.PASSTHROUGH
    assert str(tmp_path.resolve()) in sys.path


def test_from_project_defaults_to_the_working_directory(tmp_path, monkeypatch):
    write_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert type(InferenceBackendLoader.from_project()).__name__ == "Backend"
    assert type(LocalLoader.from_project(".")).__name__ == "Backend"


def test_backend_config_is_under_explicit_kwargs(tmp_path, monkeypatch):
    monkeypatch.delenv("BACKEND_CONFIG_FILE_PATH", raising=False)
    write_project(tmp_path, backend_config={"threshold": 0.7, "label": "from-yaml"})
    backend = InferenceBackendLoader.from_project(tmp_path, label="from-kwargs")
    assert backend.config.threshold == 0.7
    assert backend.config.label == "from-kwargs"


def test_override_file_wins_over_yaml_and_kwargs(tmp_path, monkeypatch):
    project = write_project(
        tmp_path / "proj",
        backend_config={"threshold": 0.7, "label": "from-yaml", "tags": {"a": 1, "b": 1}},
    )
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"configs": {"label": "from-file", "tags": {"b": 2}}}))
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", str(override))
    backend = InferenceBackendLoader.from_project(project, label="from-kwargs", threshold=0.9)
    assert backend.config.label == "from-file"
    assert backend.config.threshold == 0.9
    assert backend.config.tags == {"a": 1, "b": 2}  # dicts merge key by key


def test_from_project_applies_env_before_importing(tmp_path):
    source = (
        "import os\nfrom packflow import InferenceBackend\n"
        "SEEN = os.environ.get('PF_TEST_MODEL_DIR')\n\n"
        "class Backend(InferenceBackend):\n    def execute(self, inputs):\n        return inputs\n"
    )
    write_project(tmp_path, backend=source, env={"PF_TEST_MODEL_DIR": "/models"})
    InferenceBackendLoader.from_project(tmp_path)
    assert os.environ["PF_TEST_MODEL_DIR"] == "/models"
    assert sys.modules["inference"].SEEN == "/models"


def test_from_project_with_the_module_loader(tmp_path):
    package = tmp_path / "mypkg_pf_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(
        "from packflow import InferenceBackend\n\n"
        "class Model(InferenceBackend):\n    def execute(self, inputs):\n        return inputs\n"
    )
    write_project(
        tmp_path, backend=None, inference_backend="mypkg_pf_test.model:Model", loader="module"
    )
    backend = InferenceBackendLoader.from_project(tmp_path)
    assert type(backend).__name__ == "Model"
    assert type(backend).__module__ == "mypkg_pf_test.model"


def test_from_project_sibling_imports_work(tmp_path):
    (tmp_path / "helpers_pf_test.py").write_text("FACTOR = 3\n")
    source = (
        "from helpers_pf_test import FACTOR\nfrom packflow import InferenceBackend\n\n"
        "class Backend(InferenceBackend):\n    factor = FACTOR\n\n"
        "    def execute(self, inputs):\n        return inputs\n"
    )
    write_project(tmp_path, backend=source)
    assert InferenceBackendLoader.from_project(tmp_path).factor == 3


def test_from_project_without_packflow_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="Not a packflow project"):
        InferenceBackendLoader.from_project(tmp_path)


def test_from_project_with_invalid_packflow_yaml(tmp_path):
    write_project(tmp_path)
    (tmp_path / "packflow.yaml").write_text("name: demo\nloader: remote\n")
    with pytest.raises(PackflowConfigError, match="line 2, field 'loader'"):
        InferenceBackendLoader.from_project(tmp_path)
