"""The PROJECT argument (cli/project_arg.py): a packflow.yaml given for its
folder is a usage error naming the folder, and a bad packflow.yaml reads the
same, line and field, in ``run``, ``serve`` and ``validate``."""

from __future__ import annotations

import subprocess

import pytest

from packflow.loaders.archive import write_archive
from tests.support.sample_projects import write_project
from tests.support.testkit import PACKFLOW


def packflow(*args, cwd, timeout=60):
    return subprocess.run(
        [*PACKFLOW, *map(str, args)],
        cwd=cwd,
        input=b"",
        capture_output=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "command",
    ["run", "validate", "export", "serve"],
)
@pytest.mark.parametrize("given", ["my-model/packflow.yaml", "packflow.yaml"])
def test_a_packflow_yaml_for_the_project_says_to_pass_the_folder(tmp_path, command, given):
    write_project(tmp_path / "my-model")
    cwd = tmp_path / "my-model" if given == "packflow.yaml" else tmp_path
    folder = "my-model" if given != "packflow.yaml" else "."
    done = packflow(command, given, *(["--port", "0"] if command == "serve" else []), cwd=cwd)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert f"'{given}' is the project's packflow.yaml: pass the project folder ('{folder}')" in (
        stderr
    )
    assert "zip" not in stderr


BAD_FILES = {
    "wrong type": (
        "name: demo\nversion: '1'\nmaintainers: 5\n",
        "packflow.yaml line 3, field 'maintainers': Input should be a valid list (got 5)",
    ),
    "unknown key": (
        "name: demo\ncolour: red\n",
        "packflow.yaml line 2, field 'colour': is not a packflow.yaml field (known fields: ",
    ),
    "yaml syntax": (
        "name: demo\nversion: [0.1.0\ninference_backend: inference:Backend\n",
        "packflow.yaml line 3, column 18: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence, line 2)",
    ),
    "missing name": ("version: '1'\n", "packflow.yaml field 'name': is required"),
}


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        ["run", "--workers", "2"],
        ["validate"],
        ["serve"],
    ],
)
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_packflow_yaml_reads_the_same_in_every_command(tmp_path, command, case):
    text, says = BAD_FILES[case]
    project = write_project(tmp_path / "p")
    (project / "packflow.yaml").write_text(text)
    args = [*command, project, *(["--port", "0"] if command == ["serve"] else [])]
    done = packflow(*args, cwd=tmp_path, timeout=120)
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert stderr.startswith(f"Error: {project / 'packflow.yaml'} "), stderr
    assert says in stderr.splitlines()[0]
    assert "errors.pydantic.dev" not in stderr
    assert "validation error for PackflowConfig" not in stderr


def test_a_failing_validate_ends_saying_so(tmp_path):
    # One error (the backend does not load) and warnings printed after it.
    write_project(tmp_path / "p", backend="class Backend:\n    pass\n", description="")
    done = packflow("validate", "p", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines()[-1] == "Error: Validation failed with 1 error(s)."
    (tmp_path / "p" / "packflow.yaml").write_text("name: [x\n")
    done = packflow("validate", "p", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert lines[-1] == "Error: Validation failed: the project could not be read."
    assert len(lines) == 2


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_syntax_error_in_the_backend_is_said_once(tmp_path, command):
    write_project(tmp_path / "p", backend="class Backend(object:\n    pass\n")
    done = packflow(command, "p", cwd=tmp_path)
    assert done.returncode == 1
    [line] = [x for x in done.stderr.decode().splitlines() if "inference.py" in x]
    assert line.count("invalid syntax") == 1, line


@pytest.mark.parametrize(
    "command", [["run"], ["run", "--workers", "2"], ["serve", "--port", "0"]], ids=" ".join
)
@pytest.mark.parametrize("case", ["wrong type", "unknown key"])
def test_a_bad_packflow_yaml_in_an_archive_reads_the_same(tmp_path, command, case):
    # An archive is checked by the loader (in a worker process or the server),
    # not by the CLI's own read of a folder: the same lines must come back.
    text, says = BAD_FILES[case]
    project = write_project(tmp_path / "p")
    (project / "packflow.yaml").write_text(text)
    files = [(p.name, p) for p in sorted(project.iterdir()) if p.is_file()]
    write_archive(tmp_path / "bad.zip", files, "demo", "1")
    done = packflow(*command[:1], tmp_path / "bad.zip", *command[1:], cwd=tmp_path, timeout=120)
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert says in stderr, stderr
    assert "errors.pydantic.dev" not in stderr
    assert "validation error for PackflowConfig" not in stderr
