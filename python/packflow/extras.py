"""What an optional feature (a packaging extra) needs, said as a pip command.

The command names the extra's own requirements, never ``packflow[extra]``: on
PyPI the name ``packflow`` is the original pure-Python 0.4.1, so installing
``packflow[serve]`` from there would replace this package with it.
"""

from __future__ import annotations

import re
import shlex
import sys
from importlib import metadata

# The extras as pyproject.toml declares them, for when the installed
# distribution's metadata does not list them (a source tree put on sys.path by
# hand). A test keeps the two equal.
DECLARED_EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("uvloop>=0.19; sys_platform != 'win32'", "httptools>=0.6"),
    "grpc": ("grpcio>=1.72.2", "protobuf>=6.30.0,<7"),
    "ray": ("ray[data]>=2.50,<3",),
    "kafka": ("confluent-kafka>=2.4",),
}

_EXTRA_CLAUSE = re.compile(r"""\s*(?:\band\s+)?\bextra\s*==\s*["']([^"']+)["']\s*(?:\band\b)?""")
_PLATFORM_MARKER = re.compile(r"""sys_platform\s*(==|!=)\s*["']([^"']*)["']""")


def extra_requirements(extra: str) -> list[str]:
    """The requirements of ``extra`` that apply on this machine, markers judged
    and dropped: from the installed packflow's metadata (so they match the
    installed version), else :data:`DECLARED_EXTRAS`."""
    try:
        declared = metadata.requires("packflow") or []
    except metadata.PackageNotFoundError:
        declared = []
    found = []
    for line in declared:
        spec, _, marker = line.partition(";")
        clause = _EXTRA_CLAUSE.search(marker)
        if clause and clause.group(1) == extra:
            found.append((spec, _EXTRA_CLAUSE.sub(" ", marker, count=1)))
    if not found:
        found = [line.partition(";")[::2] for line in DECLARED_EXTRAS.get(extra, ())]
    return [spec.strip().replace(" ", "") for spec, marker in found if _holds(marker.strip())]


def install_command(requirements: list[str]) -> str:
    """The pip command that installs ``requirements`` into this Python."""
    args = [sys.executable, "-m", "pip", "install", *requirements]
    return " ".join(shlex.quote(arg) for arg in args)


def install_hint(extra: str) -> str:
    """:func:`install_command` for what ``extra`` needs here."""
    return install_command(extra_requirements(extra))


def _holds(marker: str) -> bool:
    """Whether an environment marker holds here (an empty one always does)."""
    if not marker:
        return True
    platform = _PLATFORM_MARKER.fullmatch(marker)
    if platform:  # the only kind the extras use: no need for packaging
        return (sys.platform == platform.group(2)) == (platform.group(1) == "==")
    try:
        from packaging.markers import Marker
    except ImportError:  # packaging is not a dependency; pip judges it at install time
        return True
    return Marker(marker).evaluate()
