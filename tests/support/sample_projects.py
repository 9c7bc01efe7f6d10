"""Project directories for the tests (and the workers benchmark): one
``write_project`` for all of them.

The backends use the passthrough input format: they only need the parts of the
Rust core that every build has.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
PASSTHROUGH = {"input_format": "passthrough"}

BACKEND_SOURCE = """\
from packflow import BackendConfig, InferenceBackend


class Config(BackendConfig):
    threshold: float = 0.5
    label: str = "default"
    tags: dict = {}


class Backend(InferenceBackend):
    backend_config_model = Config

    def execute(self, inputs):
        return inputs
"""

DOCS = {
    "README.md": "# Sample\n\nScores sample records.\n",
    "MODEL_CARD.md": "# Sample model\n\nA threshold on one field.\n",
    "LICENSE.txt": "Licensed under the Apache License, Version 2.0.\n",
}


def write_project(
    directory: Path,
    *,
    backend: str | None = BACKEND_SOURCE,
    backend_file: str = "inference.py",
    requirements: str | None = "packflow\n",
    docs: dict[str, str] | None = None,
    **fields,
) -> Path:
    """A complete, valid project in ``directory`` (created), adjusted by the arguments.

    ``fields`` go into packflow.yaml (``None`` removes a field); a ``backend_config``
    dict is merged over the passthrough default (``None`` removes it, so the
    backend gets records).
    """
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "name": "sample",
        "version": "0.1.0",
        "description": "A sample project.",
        "maintainers": ["owner@example.com"],
        "inference_backend": "inference:Backend",
        "loader": "local",
        "python_version": PYTHON_VERSION,
        "backend_config": dict(PASSTHROUGH),
    }
    if fields.get("backend_config") is not None:
        config["backend_config"].update(fields.pop("backend_config"))
    for key, value in fields.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (directory / "packflow.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if backend is not None:
        target = directory / backend_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(backend)
    if requirements is not None:
        (directory / "requirements.txt").write_text(requirements)
    for name, text in (DOCS if docs is None else docs).items():
        (directory / name).write_text(text)
    return directory


def make_passthrough(project_dir: Path) -> None:
    """Add ``backend_config: {input_format: passthrough}`` to a created project."""
    path = project_dir / "packflow.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("backend_config", {}).update(PASSTHROUGH)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@contextlib.contextmanager
def isolated_import_state(tmp_root: Path) -> Iterator[None]:
    """Undo what loading a project does to the process: sys.path entries, modules
    imported from temporary directories (``tmp_root``, archive extractions) and
    environment variables."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    saved_env = dict(os.environ)
    try:
        yield
    finally:
        sys.path[:] = saved_path
        prefixes = (str(tmp_root), os.path.join(tempfile.gettempdir(), "packflow-archive-"))
        for name in set(sys.modules) - saved_modules:
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(prefixes):
                del sys.modules[name]
        os.environ.clear()
        os.environ.update(saved_env)
