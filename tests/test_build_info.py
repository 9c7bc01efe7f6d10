"""Which build of the Rust core is loaded (``packflow.build_info()``), and the
one-line warning when the portable build was chosen automatically."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

import packflow
from packflow import _build, _core


def test_build_info_says_which_build_is_loaded():
    info = packflow.build_info()
    assert info == _core.build_info()
    assert set(info) == {"build", "selected", "reason", "python"}
    assert info["python"] == "{}.{}".format(*sys.version_info[:2])
    if info["build"] == "fast":
        assert info["selected"] == "default"
    else:
        assert info["build"] == "portable"
        assert info["selected"] in ("feature", "automatic")
    assert info["reason"]


def test_the_loaded_build_is_the_one_the_run_asked_for():
    # `make test` and `make test-portable` say which build they mean to test,
    # so a portable run cannot pass on the fast build by mistake.
    want = os.environ.get("PACKFLOW_EXPECT_BUILD")
    if not want:
        pytest.skip("PACKFLOW_EXPECT_BUILD not set (the Makefile's test targets set it)")
    assert packflow.build_info()["build"] == want


AUTOMATIC = {
    "build": "portable",
    "selected": "automatic",
    "reason": "src/ffi.rs has not been reviewed for CPython 3.14 (only 3.10 to 3.13)",
    "python": "3.14",
}


def test_an_automatic_portable_build_warns_in_one_line_why():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _build.warn_if_automatic(AUTOMATIC)
    [w] = caught
    assert w.category is packflow.PortableBuildWarning
    assert issubclass(w.category, RuntimeWarning)
    shown = warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
    assert shown == (
        "packflow:0: PortableBuildWarning: packflow is running its portable build "
        "(public C API only, slower) because src/ffi.rs has not been reviewed for "
        "CPython 3.14 (only 3.10 to 3.13)\n"
    )


@pytest.mark.parametrize(
    "info",
    [
        {"build": "fast", "selected": "default", "reason": "reviewed", "python": "3.12"},
        {"build": "portable", "selected": "feature", "reason": "asked for", "python": "3.12"},
    ],
)
def test_a_chosen_build_does_not_warn(info):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _build.warn_if_automatic(info)
    assert _build.warning_text(info) is None


def test_importing_this_build_prints_nothing():
    # Neither the fast build nor a portable one built on purpose warns.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import packflow"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    if packflow.build_info()["selected"] != "automatic":
        assert done.stderr == ""
    else:
        assert done.stderr.count("\n") == 1 and "PortableBuildWarning" in done.stderr
