"""LocalLoader: a backend from a source file under base_dir, and every way that fails."""

from __future__ import annotations

import sys

import pytest

from packflow import InferenceBackend
from packflow.exceptions import InferenceBackendLoadError
from packflow.loaders import LocalLoader

BACKEND = (
    "from packflow import InferenceBackend\n\n"
    "class Backend(InferenceBackend):\n"
    "    def execute(self, inputs):\n"
    "        return inputs\n"
)


def test_loads_a_class_from_a_file(tmp_path):
    (tmp_path / "inference.py").write_text(BACKEND)
    backend = LocalLoader("inference:Backend", base_dir=tmp_path).load(input_format="passthrough")
    assert isinstance(backend, InferenceBackend)
    assert type(backend).__module__ == "inference"


def test_dotted_module_is_a_file_in_a_subdirectory(tmp_path):
    (tmp_path / "models" / "v2").mkdir(parents=True)
    (tmp_path / "models" / "v2" / "scorer.py").write_text(BACKEND)
    loader = LocalLoader("models.v2.scorer:Backend", base_dir=tmp_path)
    assert loader.source_file() == tmp_path.resolve() / "models" / "v2" / "scorer.py"
    assert type(loader.load(input_format="passthrough")).__name__ == "Backend"
    assert "models.v2.scorer" in sys.modules


def test_base_dir_defaults_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "inference.py").write_text(BACKEND)
    monkeypatch.chdir(tmp_path)
    loader = LocalLoader("inference:Backend")
    assert loader.base_dir == tmp_path.resolve()
    assert "base_dir=" in repr(loader)
    assert type(loader.load(input_format="passthrough")).__name__ == "Backend"


def test_an_instance_defined_in_the_file_is_returned(tmp_path):
    (tmp_path / "inference.py").write_text(
        BACKEND + "\nbackend = Backend(input_format='passthrough')\n"
    )
    module_backend = LocalLoader("inference:backend", base_dir=tmp_path).load()
    assert type(module_backend).__name__ == "Backend"


def test_each_load_reads_the_file_again(tmp_path):
    path = tmp_path / "inference.py"
    path.write_text(BACKEND + "VERSION = 1\n")
    loader = LocalLoader("inference:VERSION", base_dir=tmp_path)
    assert loader.load_backend_module() == 1
    path.write_text(BACKEND + "VERSION = 2\n")
    assert loader.load_backend_module() == 2


def test_missing_file(tmp_path):
    with pytest.raises(InferenceBackendLoadError) as info:
        LocalLoader("inference:Backend", base_dir=tmp_path).load()
    message = str(info.value)
    source = tmp_path.resolve() / "inference.py"
    assert message.startswith(
        f"Unable to load inference backend module with error: [Errno 2] No such file or "
        f"directory: '{source}' (the local loader reads 'inference'"
    )


def test_missing_object(tmp_path):
    (tmp_path / "inference.py").write_text(BACKEND)
    with pytest.raises(InferenceBackendLoadError, match="defines no 'Model'"):
        LocalLoader("inference:Model", base_dir=tmp_path).load()


def test_import_error_shows_the_last_frame(tmp_path):
    (tmp_path / "inference.py").write_text("x = 1\n\nraise RuntimeError('weights not found')\n")
    with pytest.raises(InferenceBackendLoadError) as info:
        LocalLoader("inference:Backend", base_dir=tmp_path).load()
    message = str(info.value)
    source = tmp_path.resolve() / "inference.py"
    assert message.startswith(
        "Unable to load inference backend module with error: weights not found (importing "
    )
    assert f"importing {source} for 'inference:Backend' raised RuntimeError (at " in message
    assert f"(at {source}, line 3, in <module>: raise RuntimeError('weights not found'))" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_error_raised_inside_a_library_names_both_frames(tmp_path):
    (tmp_path / "inference.py").write_text("import json\n\nCONFIG = json.loads('{')\n")
    with pytest.raises(InferenceBackendLoadError) as info:
        LocalLoader("inference:Backend", base_dir=tmp_path).load()
    message = str(info.value)
    assert "JSONDecodeError" in message
    assert "json" in message.split("called from")[0]
    assert f"called from {tmp_path.resolve() / 'inference.py'}, line 3, in <module>" in message


def test_syntax_error_names_the_line(tmp_path):
    (tmp_path / "inference.py").write_text("def broken(:\n    pass\n")
    with pytest.raises(
        InferenceBackendLoadError, match=r"raised SyntaxError \(at .*line 1: def broken\(:"
    ):
        LocalLoader("inference:Backend", base_dir=tmp_path).load()


def test_missing_dependency_is_reported(tmp_path):
    (tmp_path / "inference.py").write_text("import not_installed_pf_test_pkg\n")
    with pytest.raises(
        InferenceBackendLoadError, match="ModuleNotFoundError.*not_installed_pf_test_pkg"
    ):
        LocalLoader("inference:Backend", base_dir=tmp_path).load()


def test_sys_exit_at_import_is_a_load_error(tmp_path):
    (tmp_path / "inference.py").write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(InferenceBackendLoadError, match=r"error: 3 \(.* raised SystemExit \(at "):
        LocalLoader("inference:Backend", base_dir=tmp_path).load()


def test_failed_import_leaves_no_module_behind(tmp_path):
    sys.modules.pop("broken_pf_test", None)
    (tmp_path / "broken_pf_test.py").write_text("raise ValueError('no')\n")
    with pytest.raises(InferenceBackendLoadError):
        LocalLoader("broken_pf_test:Backend", base_dir=tmp_path).load()
    assert "broken_pf_test" not in sys.modules


def test_failed_reload_restores_the_previous_module(tmp_path):
    path = tmp_path / "inference.py"
    path.write_text(BACKEND)
    LocalLoader("inference:Backend", base_dir=tmp_path).load_backend_module()
    previous = sys.modules["inference"]
    path.write_text("raise ValueError('broken now')\n")
    with pytest.raises(InferenceBackendLoadError):
        LocalLoader("inference:Backend", base_dir=tmp_path).load()
    assert sys.modules["inference"] is previous


def test_not_an_inference_backend(tmp_path):
    (tmp_path / "inference.py").write_text("class Backend:\n    pass\n")
    with pytest.raises(InferenceBackendLoadError) as info:
        LocalLoader("inference:Backend", base_dir=tmp_path).load()
    assert str(info.value).startswith(
        "Loaded object does not appear to be a packflow InferenceBackend. Received type: "
        "<class 'inference.Backend'> ('inference:Backend' is a class that does not subclass "
        "packflow.InferenceBackend"
    )


@pytest.mark.parametrize("path", ["inference", "a:b:c", ":Backend", "inference:"])
def test_bad_inference_backend_string(tmp_path, path):
    with pytest.raises(InferenceBackendLoadError, match="inference_backend"):
        LocalLoader(path, base_dir=tmp_path).load()


@pytest.mark.parametrize("module", ["..secrets", "a..b", "pkg.", ".hidden", "a/b", "a\\b"])
def test_module_paths_cannot_leave_the_project(tmp_path, module):
    loader = LocalLoader(f"{module}:Backend", base_dir=tmp_path)
    with pytest.raises(ValueError, match="not a dotted module path"):
        loader.source_file()
    with pytest.raises(InferenceBackendLoadError, match="not a dotted module path"):
        loader.load()
