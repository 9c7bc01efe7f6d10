"""ModuleLoader: a backend from an importable module."""

from __future__ import annotations

import pytest

from packflow import InferenceBackend
from packflow.exceptions import InferenceBackendLoadError
from packflow.loaders import ModuleLoader

BACKEND = (
    "from packflow import InferenceBackend\n\n"
    "class Model(InferenceBackend):\n"
    "    def execute(self, inputs):\n"
    "        return inputs\n\n"
    "ZERO = 0\n"
)


@pytest.fixture
def importable(tmp_path, monkeypatch):
    """A directory on sys.path to write modules into."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_loads_from_an_importable_module(importable):
    (importable / "pf_mod_ok.py").write_text(BACKEND)
    backend = ModuleLoader("pf_mod_ok:Model").load(input_format="passthrough")
    assert isinstance(backend, InferenceBackend)
    assert type(backend).__module__ == "pf_mod_ok"


def test_loads_from_a_submodule(importable):
    (importable / "pf_pkg_ok").mkdir()
    (importable / "pf_pkg_ok" / "__init__.py").write_text("")
    (importable / "pf_pkg_ok" / "backends.py").write_text(BACKEND)
    backend = ModuleLoader("pf_pkg_ok.backends:Model").load(input_format="passthrough")
    assert type(backend).__name__ == "Model"


def test_module_not_installed():
    with pytest.raises(InferenceBackendLoadError) as info:
        ModuleLoader("pf_not_installed_anywhere.sub:Model").load()
    assert str(info.value) == (
        "Unable to load inference backend module with error: No module named "
        "'pf_not_installed_anywhere' (for 'pf_not_installed_anywhere.sub:Model': "
        "'pf_not_installed_anywhere' is not installed or on sys.path)"
    )


def test_missing_attribute(importable):
    (importable / "pf_mod_attr.py").write_text(BACKEND)
    with pytest.raises(
        InferenceBackendLoadError,
        match=r"Backend with name `Nope` does not exist in loaded module `<module 'pf_mod_attr'",
    ):
        ModuleLoader("pf_mod_attr:Nope").load()


def test_falsy_attribute_is_found_but_is_not_a_backend(importable):
    (importable / "pf_mod_zero.py").write_text(BACKEND)
    with pytest.raises(InferenceBackendLoadError, match="is a int object, not a packflow"):
        ModuleLoader("pf_mod_zero:ZERO").load()


def test_module_raising_on_import_shows_the_last_frame(importable):
    (importable / "pf_mod_raises.py").write_text("\n\nraise KeyError('config')\n")
    with pytest.raises(InferenceBackendLoadError) as info:
        ModuleLoader("pf_mod_raises:Model").load()
    message = str(info.value)
    assert message.startswith("Unable to load inference backend module with error: 'config'")
    assert (
        "error: 'config' (importing 'pf_mod_raises' for 'pf_mod_raises:Model' raised KeyError (at "
        in message
    )
    assert "pf_mod_raises.py, line 3, in <module>: raise KeyError('config')" in message


def test_missing_dependency_of_the_module_is_not_mistaken_for_the_module(importable):
    (importable / "pf_mod_dep.py").write_text("import pf_missing_dependency_xyz\n")
    with pytest.raises(InferenceBackendLoadError) as info:
        ModuleLoader("pf_mod_dep:Model").load()
    assert "importing 'pf_mod_dep' for 'pf_mod_dep:Model' raised ModuleNotFoundError" in str(
        info.value
    )
    assert "pf_missing_dependency_xyz" in str(info.value)


@pytest.mark.parametrize("path", ["pf_mod", "a:b:c", "mod:"])
def test_bad_inference_backend_string(path):
    with pytest.raises(InferenceBackendLoadError, match="inference_backend"):
        ModuleLoader(path).load()
