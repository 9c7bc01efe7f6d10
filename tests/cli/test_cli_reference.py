"""The CLI's wording against Packflow 0.4.1's: what scripts look for.

Each scenario runs the reference's ``packflow`` and ours in the same directory
(emptied in between, so paths agree) and checks that every ``Success:``,
``Warning:`` and ``Error:`` line of the reference, and its counts line, starts
one of our lines (ours may add lines and say more after them; ``Error:`` lines
go to stderr here, stdout there), with the same exit status. ``--help``
summaries of the reference's commands must read the same.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.reference import reference_env, require_reference

OURS = Path(sys.executable).with_name("packflow")
LINE_PREFIXES = ("Success:", "Warning:", "Error:", "  - ")
COUNTS = re.compile(r"^\d+ (error|warning)\(s\)")


def reference_cli() -> Path:
    return require_reference().with_name("packflow")


def run_cli(program: Path, args: list[str], cwd: Path) -> tuple[int, list[str]]:
    # The reference runs without PYTHONPATH, which may point at this package.
    base = dict(os.environ) if program == OURS else reference_env()
    env = {**base, "PACKFLOW_LOG_LEVEL": "ERROR", "NO_COLOR": "1"}
    done = subprocess.run(
        [str(program), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=120,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


def script_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(LINE_PREFIXES) or COUNTS.match(line)]


def write_clean_project(path: Path) -> None:
    """Overwrite what ``create`` made with a project that has no warnings."""
    (path / "packflow.yaml").write_text("name: demo\ndescription: d\nmaintainers: [a@b.c]\n")
    (path / "LICENSE.txt").write_text("MIT\n")
    (path / "MODEL_CARD.md").write_text("# demo model\n")
    (path / "README.md").write_text("# demo\n")


def created(program: Path, work: Path) -> Path:
    run_cli(program, ["create", "demo", "--no-input"], work)
    return work / "demo"


# name -> (setup(program, work) -> cwd, args)
Setup = Callable[[Path, Path], Path]


def in_work(program: Path, work: Path) -> Path:
    return work


def existing_project(program: Path, work: Path) -> Path:
    created(program, work)
    return work


def clean_project(program: Path, work: Path) -> Path:
    project = created(program, work)
    write_clean_project(project)
    return project


def template_project(program: Path, work: Path) -> Path:
    return created(program, work)


def project_without_requirements(program: Path, work: Path) -> Path:
    project = clean_project(program, work)
    (project / "requirements.txt").unlink()
    return project


SCENARIOS: list[tuple[str, Setup, list[str]]] = [
    # (name, setup, args)
    ("create", in_work, ["create", "demo", "--no-input"]),
    ("create over an existing directory", existing_project, ["create", "demo", "--no-input"]),
    ("create with an invalid name", in_work, ["create", "1bad", "--no-input"]),
    ("create without a name", in_work, ["create", "--no-input"]),
    ("validate a clean project", clean_project, ["validate"]),
    ("validate the template", template_project, ["validate"]),
    ("validate with an error", project_without_requirements, ["validate"]),
    ("validate outside a project", in_work, ["validate"]),
    ("export", clean_project, ["export"]),
    ("export blocked by an error", project_without_requirements, ["export"]),
]


@pytest.mark.parametrize("name, setup, args", SCENARIOS)
def test_script_lines_keep_the_reference_wording(tmp_path, name, setup, args):
    reference = reference_cli()
    work = tmp_path / "work"
    work.mkdir()
    their_code, theirs = run_cli(reference, args, setup(reference, work))
    shutil.rmtree(work)
    work.mkdir()
    our_code, ours = run_cli(OURS, args, setup(OURS, work))
    missing = [line for line in script_lines(theirs) if not any(o.startswith(line) for o in ours)]
    assert not missing, f"{name}: lines of the reference we do not print: {missing}\nours: {ours}"
    assert our_code == their_code


def command_summaries(program: Path) -> dict[str, str]:
    _, lines = run_cli(program, ["--help"], Path.cwd())
    commands = lines[lines.index("Commands:") + 1 :]
    return dict(re.match(r"\s+(\S+)\s+(.*)", line).groups() for line in commands if line.strip())


def test_help_lists_every_command_of_the_reference():
    theirs = command_summaries(reference_cli())
    assert set(theirs) <= set(command_summaries(OURS))


@pytest.mark.parametrize("command", ["create", "validate", "export"])
def test_help_summaries_read_as_the_reference(command):
    assert command_summaries(OURS)[command] == command_summaries(reference_cli())[command]
