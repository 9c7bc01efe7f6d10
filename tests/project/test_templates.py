"""The packaged project template."""

from __future__ import annotations

import ast
from importlib import resources

import pytest
import yaml

from packflow.project.templates import (
    available_templates,
    render,
    rendered_template_text,
    template_files,
)

EXPECTED = {
    "inference.py",
    "packflow.yaml",
    "requirements.txt",
    "README.md",
    "MODEL_CARD.md",
    "LICENSE.txt",
    "tests.py",
    ".gitignore",
}


def test_minimal_template_ships_as_package_data():
    folder = resources.files("packflow").joinpath("project_templates").joinpath("minimal")
    # .gitignore ships without its dot: packaging tools drop dotfiles from package data.
    shipped = {entry.name for entry in folder.iterdir()}
    assert EXPECTED - {".gitignore"} | {"gitignore"} <= shipped
    assert available_templates() == ["minimal"]
    assert set(template_files("minimal")) == EXPECTED


def test_unknown_template():
    with pytest.raises(ValueError, match="Unknown project template 'fancy'; available: minimal"):
        template_files("fancy")
    with pytest.raises(ValueError, match="Unknown project template"):
        template_files("../templates/minimal")


def test_python_templates_are_valid_python():
    for name in ("inference.py", "tests.py"):
        ast.parse(template_files()[name].read_text(encoding="utf-8"))


def test_packflow_yaml_template_is_a_valid_config():
    from packflow.loaders import PackflowConfig

    data = yaml.safe_load(template_files()["packflow.yaml"].read_text(encoding="utf-8"))
    assert PackflowConfig(**data).inference_backend == "inference:Backend"


def test_render_fills_in_the_project_name_only_in_documents():
    assert render("README.md", b"# {{name}}\n", "demo") == b"# demo\n"
    assert render("MODEL_CARD.md", b"{{name}} {{name}}", "x") == b"x x"
    assert render("inference.py", b"{{name}}", "demo") == b"{{name}}"
    assert rendered_template_text("README.md", "demo").startswith("# demo\n")
    assert rendered_template_text("NOPE.md", "demo") is None
