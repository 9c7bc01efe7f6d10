"""Project templates: the starter files shipped as package data under
``packflow/project_templates/<template>/``."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+
    from importlib.abc import Traversable

DEFAULT_TEMPLATE = "minimal"
# Files whose text mentions the project; ``{{name}}`` is replaced when they are written.
RENDERED_FILES = frozenset({"README.md", "MODEL_CARD.md"})
# Stored without their dot (packaging tools leave dotfiles out of package data),
# written under these names.
DOTFILES = {"gitignore": ".gitignore"}


def _templates_root() -> Traversable:
    return resources.files("packflow").joinpath("project_templates")


def available_templates() -> list[str]:
    """Names of the templates that ship with packflow."""
    return sorted(entry.name for entry in _templates_root().iterdir() if entry.is_dir())


def template_files(template: str = DEFAULT_TEMPLATE) -> dict[str, Traversable]:
    """Name written in the project -> resource, for the files of ``template``."""
    names = available_templates()
    if template not in names:
        raise ValueError(f"Unknown project template {template!r}; available: {', '.join(names)}")
    folder = _templates_root().joinpath(template)
    return {
        DOTFILES.get(entry.name, entry.name): entry
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.is_file() and not entry.name.startswith(".") and not entry.name.endswith(".pyc")
    }


def render(file_name: str, content: bytes, project_name: str) -> bytes:
    """The bytes written for a template file in a project called ``project_name``."""
    if file_name not in RENDERED_FILES:
        return content
    return content.replace(b"{{name}}", project_name.encode("utf-8"))


def rendered_template_text(
    file_name: str, project_name: str, template: str = DEFAULT_TEMPLATE
) -> str | None:
    """The text ``create`` writes for ``file_name`` (``None``: not in the template)."""
    entry = template_files(template).get(file_name)
    if entry is None:
        return None
    return render(file_name, entry.read_bytes(), project_name).decode("utf-8")
