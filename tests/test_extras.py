"""packflow.extras: the extras' requirements as this machine needs them, and
every install command we document or print installs this package, never PyPI's
``packflow`` (the original 0.4.1)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from packflow.extras import DECLARED_EXTRAS, extra_requirements, install_hint

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "python" / "packflow"
# The reference's own virtualenv is the one place PyPI's packflow is wanted.
REFERENCE_PIN = "packflow==0.4.1"


def _documents() -> list[Path]:
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    files += sorted(PACKAGE.rglob("*.py")) + sorted((PACKAGE / "project_templates").rglob("*"))
    files += sorted(p for p in (REPO / "examples").rglob("*") if p.suffix in {".md", ".py"})
    return [f for f in files if f.is_file()]


def _pypi_packflow_installs(line: str) -> list[str]:
    """The arguments of a ``pip install`` on ``line`` that name PyPI's packflow."""
    found = []
    for match in re.finditer(r"pip install ([^`\n]*)", line):
        if re.search(r"(?i)\b(not|never)\b", line[: match.start()]):
            continue  # a warning against the command, not the command
        command = match.group(1)
        try:
            args = shlex.split(command)
        except ValueError:
            args = command.split()
        for arg in args:
            if arg.startswith("-") or arg == REFERENCE_PIN:
                continue
            name = re.match(r"[A-Za-z0-9._-]+", arg.strip("'\""))
            if name and name.group(0).lower() == "packflow" and not arg.endswith(".whl"):
                found.append(arg)
    return found


def test_the_scan_finds_what_it_looks_for():
    assert _pypi_packflow_installs("run `pip install 'packflow[serve]'` first") == [
        "packflow[serve]"
    ]
    assert _pypi_packflow_installs("pip install -U packflow") == ["packflow"]
    assert _pypi_packflow_installs('pip install "dist/packflow-0.5.0-cp311.whl[serve]"') == []
    assert _pypi_packflow_installs("pip install '.[serve]'") == []
    assert _pypi_packflow_installs("Never `pip install packflow`: it is 0.4.1") == []


def test_no_document_or_message_installs_packflow_from_pypi():
    offenders = []
    for path in _documents():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for arg in _pypi_packflow_installs(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {arg}")
    assert offenders == []


def test_hints_install_the_extras_requirements_into_this_python():
    serve = install_hint("serve")
    assert serve.startswith(f"{sys.executable} -m pip install 'uvloop>=0.19' ")
    assert "'httptools>=0.6'" in serve and "packflow" not in serve.split("pip install")[1]
    assert install_hint("ray").endswith(" -m pip install 'ray[data]>=2.50,<3'")
    assert extra_requirements("no-such-extra") == []


@pytest.mark.skipif(sys.platform == "win32", reason="the expectations name uvloop")
@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        # The installed metadata: the serve extra's lines, their platform
        # marker judged here, the other extras' lines left out.
        (
            [
                "click>=8.1",
                "uvloop>=0.19 ; sys_platform != 'win32' and extra == 'serve'",
                "uvloop>=0.19 ; sys_platform == 'win32' and extra == 'serve'",
                "pytest>=8 ; extra == 'test'",
                'httptools>=0.6; extra == "serve"',
            ],
            ["uvloop>=0.19", "httptools>=0.6"],
        ),
        # No serve extra in the metadata (a source tree): the declared list.
        (["click>=8.1"], ["uvloop>=0.19", "httptools>=0.6"]),
    ],
)
def test_requirements_come_from_the_installed_metadata(monkeypatch, declared, expected):
    from importlib import metadata

    monkeypatch.setattr(metadata, "requires", lambda name: declared)
    assert extra_requirements("serve") == expected


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is 3.11+")
def test_the_fallback_list_is_pyprojects():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for extra, requirements in DECLARED_EXTRAS.items():
        declared = extras["optional-dependencies"][extra]
        assert [r.replace(" ", "") for r in declared] == [r.replace(" ", "") for r in requirements]
