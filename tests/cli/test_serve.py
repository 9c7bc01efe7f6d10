"""`packflow serve` as a command: what it says when the serve extra is missing,
and the install command it prints."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from packflow.extras import extra_requirements
from tests.support.sample_projects import write_project
from tests.support.testkit import PACKFLOW

# initialize() leaves a marker: it must never run when the server cannot start.
MARKING_BACKEND = """
import os
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def initialize(self):
        open(os.environ["MARKER"], "w").close()

    def execute(self, inputs):
        return inputs
"""


@pytest.mark.parametrize("module", ["uvloop", "httptools"])
def test_a_missing_serve_extra_is_reported_before_the_backend_loads(tmp_path, marks, module):
    project = write_project(tmp_path / "proj", backend=MARKING_BACKEND)
    # A package of that name that fails to import, first on the path.
    shadow = tmp_path / "shadow" / module
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(f"raise ImportError('no {module} in this test')\n")
    marker = marks / "initialized"
    env = {
        **os.environ,
        "MARKER": str(marker),
        "PYTHONPATH": os.pathsep.join(
            [str(shadow.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    done = subprocess.run(
        [*PACKFLOW, "serve", str(project), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert not marker.exists(), "the backend was loaded before the check"
    assert done.stdout == ""
    assert done.stderr.startswith("Error: serving needs the serve extra, and ")
    assert f"{module} does not import (no {module} in this test)" in done.stderr
    # The install command names the extra's requirements, for this Python: never
    # packflow[serve], which would fetch another packflow from the index.
    assert "packflow[" not in done.stderr
    command = done.stderr.splitlines()[-1].strip()
    assert command.startswith(f"{sys.executable} -m pip install ")
    for requirement in extra_requirements("serve"):
        assert f"'{requirement}'" in command
