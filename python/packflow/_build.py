"""Which build of the Rust core is loaded (``packflow.build_info()``), and the
one-line warning at import when the portable build was chosen for the user."""

from __future__ import annotations

import warnings

from packflow import _core


class PortableBuildWarning(RuntimeWarning):
    """The portable build of packflow's Rust core was selected automatically."""


def build_info() -> dict[str, str]:
    """``build`` ("fast" or "portable"), ``selected`` ("default", "feature" or
    "automatic"), ``reason`` and ``python`` (the version it was built for); see
    docs/compatibility.md, "Supported Pythons and the two builds"."""
    return dict(_core.build_info())


def warning_text(info: dict[str, str]) -> str | None:
    """The warning for a build chosen automatically; None for any other."""
    if info["build"] != "portable" or info["selected"] != "automatic":
        return None
    return (
        f"packflow is running its portable build (public C API only, slower) because "
        f"{info['reason']}"
    )


def warn_if_automatic(info: dict[str, str] | None = None) -> None:
    text = warning_text(build_info() if info is None else info)
    if text is not None:
        # Attributed to no source line, so the warning prints as one line.
        warnings.warn_explicit(text, PortableBuildWarning, "packflow", 0)
