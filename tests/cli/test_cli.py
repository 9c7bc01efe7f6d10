"""The packflow command line, through click's CliRunner and as a real console script."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from packflow import __version__
from packflow.cli import COMMANDS, cli
from tests.support.sample_projects import isolated_import_state, make_passthrough, write_project

PACKFLOW = Path(sys.executable).parent / "packflow"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with isolated_import_state(tmp_path_factory.getbasetemp()):
        yield


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


# --- the group -------------------------------------------------------------------------


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.output == f"packflow, version {__version__}\n"


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for name in ("create", "validate", "export", "inspect"):
        assert f"  {name} " in result.output


@pytest.mark.parametrize(
    ("command", "summary"),
    [
        ("create", "Initialize a new project from a template"),
        ("validate", "Run all project validation checks and report results"),
        ("export", "Package the project as a distributable .zip archive."),
        ("inspect", "Print the packflow.lock manifest of ARCHIVE and verify it."),
    ],
)
def test_every_command_has_help(command, summary):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert summary in result.output


def test_unknown_command_is_a_usage_error():
    result = run("frobnicate")
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_a_new_command_registers_with_one_line(monkeypatch):
    # How a command plugs in: a module with a click command + a COMMANDS entry.
    module = type(sys)("packflow_test_run_command")

    @click.command()
    def run_command():
        """Run something."""
        click.echo("ran")

    module.run_command = run_command
    monkeypatch.setitem(sys.modules, "packflow_test_run_command", module)
    monkeypatch.setitem(COMMANDS, "hello", "packflow_test_run_command:run_command")
    assert "hello" in cli.list_commands(click.Context(cli))
    result = run("hello")
    assert (result.exit_code, result.output) == (0, "ran\n")
    cli.commands.pop("hello", None)


# --- create ----------------------------------------------------------------------------


def test_create_no_input(tmp_path):
    result = run("create", "demo", "--no-input")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Success: Created demo/ ({tmp_path / 'demo'})")
    assert "packflow validate" in result.stdout
    assert "Project name" not in result.output and "Description" not in result.output
    assert (tmp_path / "demo" / "inference.py").is_file()


def test_create_without_a_terminal_never_prompts(tmp_path):
    # CliRunner's stdin is not a terminal: no prompt, defaults used.
    result = run("create", "demo")
    assert result.exit_code == 0, result.output
    assert "Description" not in result.output
    assert (tmp_path / "demo" / "packflow.yaml").is_file()


def test_create_needs_a_name_without_prompts():
    result = run("create", "--no-input")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: Project name is required in non-interactive mode. "
        "Usage: packflow create PROJECT_NAME [--no-input]"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["1abc", "has space", "../up", "a.b"])
def test_create_refuses_invalid_names(tmp_path, name):
    result = run("create", name, "--no-input")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: Invalid project name {name!r}. Names must start with a letter and contain "
        "only letters, digits, hyphens, and underscores."
    )
    assert list(tmp_path.iterdir()) == []


def test_create_existing_directory_needs_force(tmp_path):
    (tmp_path / "demo").mkdir()
    result = run("create", "demo", "--no-input")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: [Errno 17] File exists: '{tmp_path / 'demo'}'\n")
    assert "--force" in result.stderr
    for flag in ("-f", "--force"):
        result = run("create", "demo", "--no-input", flag)
        assert result.exit_code == 0, result.output


def test_create_interactive_prompts(tmp_path, monkeypatch):
    from packflow.cli import create as create_module

    monkeypatch.setattr(create_module, "stdin_is_interactive", lambda: True)
    monkeypatch.setattr(create_module, "_git_email", lambda: "me@example.com")
    result = run("create", input="9bad\nmy-model\nFinds cats\n1.2.0\n\n")
    assert result.exit_code == 0, result.output
    assert "Project name:" in result.output
    assert "Invalid project name '9bad'. Names must start" in result.output  # 9bad was refused
    assert "Maintainer e-mail [me@example.com]:" in result.output
    config = (tmp_path / "my-model" / "packflow.yaml").read_text()
    assert "description: Finds cats" in config
    assert "version: 1.2.0" in config
    assert "- me@example.com" in config


def test_create_interactive_eof_aborts(tmp_path, monkeypatch):
    from packflow.cli import create as create_module

    monkeypatch.setattr(create_module, "stdin_is_interactive", lambda: True)
    result = run("create", input="")
    assert result.exit_code == 1
    assert list(tmp_path.iterdir()) == []


# --- validate --------------------------------------------------------------------------


def test_validate_a_clean_project(tmp_path):
    write_project(tmp_path / "p")
    result = run("validate", "p")
    assert result.exit_code == 0, result.output
    assert result.output == "Success: All validation checks passed.\n"


def test_validate_defaults_to_the_working_directory(tmp_path):
    write_project(tmp_path)
    assert run("validate").exit_code == 0


def test_validate_warnings_and_no_warnings(tmp_path):
    write_project(tmp_path / "p", description="", docs={})
    result = run("validate", "p")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "\n4 warning(s) found\n" in result.stdout
    assert sum(line.startswith("Warning: ") for line in lines) == 4
    assert lines[-1] == "Success: Validation passed with warnings."
    quiet = run("validate", "p", "--no-warnings")
    assert quiet.exit_code == 0
    assert quiet.output == "Success: All validation checks passed.\n"


def test_validate_errors_exit_non_zero(tmp_path):
    write_project(tmp_path / "p", backend="class Backend:\n    pass\n", description="")
    result = run("validate", "p")
    assert result.exit_code == 1
    assert "\n1 error(s), 1 warning(s) found\n" in result.stdout
    assert result.stderr.startswith("Error: 'inference_backend' failed the smoke load")
    assert "Warning: 'description' is empty" in result.stdout
    assert "Success" not in result.output
    assert run("validate", "p", "--no-warnings").exit_code == 1


def test_validate_verbose(tmp_path):
    write_project(tmp_path / "p")
    result = run("validate", "p", "-v")
    assert result.exit_code == 0
    assert f"Validating {tmp_path / 'p'}" in result.output
    assert "✓ inference.py: backend file present" in result.output
    assert run("validate", "p", "--verbose").exit_code == 0


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (None, "Error: Not a packflow project"),
        ("name: [x\n", "packflow.yaml line 2, column 1: expected ',' or ']'"),
        ("name: x\nloader: nope\n", "line 2, field 'loader': Input should be 'local' or 'module'"),
        ("name: x\ninference_backend: inference\n", "line 2, field 'inference_backend'"),
    ],
)
def test_validate_config_errors(tmp_path, yaml_text, expected):
    (tmp_path / "p").mkdir()
    if yaml_text is not None:
        (tmp_path / "p" / "packflow.yaml").write_text(yaml_text)
    result = run("validate", "p")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert expected in result.stderr
    assert "errors.pydantic.dev" not in result.stderr


def test_validate_backend_raising_on_import_shows_the_frame(tmp_path):
    write_project(tmp_path / "p", backend="\n\nraise RuntimeError('no GPU')\n")
    result = run("validate", "p", "--no-warnings")
    assert result.exit_code == 1
    assert "no GPU (importing " in result.stderr and "raised RuntimeError (at " in result.stderr
    assert "inference.py, line 3, in <module>: raise RuntimeError('no GPU')" in result.stderr


# --- export and inspect ----------------------------------------------------------------


def test_export_and_inspect(tmp_path):
    write_project(tmp_path / "p")
    result = run("export", "p", "-o", "dist")
    assert result.exit_code == 0, result.output
    archive = tmp_path / "dist" / "sample-0.1.0.zip"
    assert result.stdout.startswith(f"Success: Saved Package to {archive} (6 files, sha256 ")
    inspected = run("inspect", str(archive))
    assert inspected.exit_code == 0, inspected.output
    assert "Project: sample 0.1.0 (exported with packflow" in inspected.stdout
    assert "Files (6):" in inspected.stdout
    assert inspected.stdout.splitlines()[-1] == "Success: All 6 files match the manifest."
    as_json = run("inspect", "--json", str(archive))
    assert json.loads(as_json.stdout.split("Success:")[0])["name"] == "sample"


def test_export_output_dir_long_option_and_verbose(tmp_path):
    write_project(tmp_path / "p")
    result = run("export", "p", "--output-dir", "out", "--verbose")
    assert result.exit_code == 0, result.output
    assert "Archive contents" in result.stdout
    assert (tmp_path / "out" / "sample-0.1.0.zip").is_file()


def test_export_prints_warnings(tmp_path):
    write_project(tmp_path / "p", maintainers=[])
    result = run("export", "p")
    assert result.exit_code == 0
    assert "Warning: 'maintainers' is empty" in result.stdout
    assert (tmp_path / "sample-0.1.0.zip").is_file()


def test_export_blocked_by_errors(tmp_path):
    write_project(tmp_path / "p", requirements="numpy\n")
    result = run("export", "p")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Export blocked due to validation errors:")
    assert "  - 'packflow' is not listed in requirements.txt." in result.stderr
    assert list(tmp_path.glob("*.zip")) == []


def test_inspect_refuses_tampered_and_hostile_archives(tmp_path):
    write_project(tmp_path / "p")
    assert run("export", "p").exit_code == 0
    archive = tmp_path / "sample-0.1.0.zip"
    with zipfile.ZipFile(archive) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries["inference.py"] += b"\n# changed\n"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        zf.writestr("../escape.py", "x")
    result = run("inspect", str(archive))
    assert result.exit_code == 1
    assert "Error: entry '../escape.py' contains '..'" in result.stderr
    assert "failed verification" in result.stderr


def test_inspect_archive_without_manifest_and_non_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "old.zip", "w") as zf:
        zf.writestr("packflow.yaml", "name: old\n")
    result = run("inspect", "old.zip")
    assert result.exit_code == 0
    assert "Warning: the archive has no packflow.lock manifest" in result.stdout
    (tmp_path / "bad.zip").write_text("no zip")
    bad = run("inspect", "bad.zip")
    assert bad.exit_code == 1
    assert "Error: bad.zip is not a valid zip archive" in bad.stderr
    missing = run("inspect", "missing.zip")
    assert missing.exit_code == 1
    assert "does not exist" in missing.stderr


# --- the real console script -----------------------------------------------------------

needs_script = pytest.mark.skipif(not PACKFLOW.exists(), reason="run `make build-dev` first")


def script(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BACKEND_CONFIG_FILE_PATH", None)
    return subprocess.run(
        [str(PACKFLOW), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        **kwargs,
    )


@needs_script
def test_script_version(tmp_path):
    done = script("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"packflow, version {__version__}\n")


@needs_script
def test_script_create_with_stdin_at_eof_never_blocks(tmp_path):
    done = script("create", "ci-project", "--no-input", cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    # Without --no-input and without a terminal: still no prompt.
    done = script("create", "ci-other", cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    done = script("create", cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: Project name is required in non-interactive mode.")


@needs_script
def test_script_create_with_stdin_closed(tmp_path):
    done = subprocess.run(
        [str(PACKFLOW), "create", "closed-stdin"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.close(0),
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "closed-stdin" / "packflow.yaml").is_file()


@needs_script
def test_script_create_validate_export_inspect(tmp_path):
    assert script("create", "shipped", "--no-input", cwd=tmp_path).returncode == 0
    project = tmp_path / "shipped"
    make_passthrough(project)
    done = script("validate", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "Success: Validation passed with warnings."
    done = script("export", str(project), "-o", str(tmp_path / "dist"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    archive = tmp_path / "dist" / "shipped-0.1.0.zip"
    assert archive.is_file()
    first = archive.read_bytes()
    assert (
        script("export", str(project), "-o", str(tmp_path / "dist"), cwd=tmp_path).returncode == 0
    )
    assert archive.read_bytes() == first
    done = script("inspect", str(archive), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: All 8 files match the manifest." in done.stdout


@needs_script
def test_script_errors_exit_non_zero(tmp_path):
    done = script("validate", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: Not a packflow project")
    done = script("export", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    done = script("create", "1bad", "--no-input", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: Invalid project name '1bad'")


def test_create_uses_the_config_name_rule():
    from packflow.cli.create import NAME_PATTERN as CLI_PATTERN
    from packflow.loaders.packflow_yaml import NAME_PATTERN

    assert CLI_PATTERN == NAME_PATTERN


# --- docs/cli.md -----------------------------------------------------------------------

CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_doc_summary_lists_every_command():
    summary = CLI_DOC.read_text(encoding="utf-8").split("```text\n", 1)[1].split("```", 1)[0]
    documented = {line.split()[1] for line in summary.splitlines() if line.startswith("packflow ")}
    assert documented - {"--version"} == set(COMMANDS)


def test_cli_doc_registry_example_is_the_registry():
    text = CLI_DOC.read_text(encoding="utf-8").split("## Adding a command", 1)[1]
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(block, namespace)  # noqa: S102 - our own documentation
    assert namespace["COMMANDS"] == COMMANDS
    for entry in COMMANDS.values():
        module_name, attribute = entry.split(":")
        assert isinstance(getattr(importlib.import_module(module_name), attribute), click.Command)
