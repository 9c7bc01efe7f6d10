"""What an optional feature (a packaging extra) needs, said as a pip command.

The command names the extra's own requirements, never ``packflow[extra]``: on
PyPI the name ``packflow`` is the original pure-Python 0.4.1, so installing
``packflow[serve]`` from there would replace this package with it.
"""

from __future__ import annotations

import re
import shlex
from importlib import metadata

# The extras as pyproject.toml declares them, for when the installed
# distribution's metadata cannot be read (a source tree put on sys.path by
# hand). A test keeps the two equal.
DECLARED_EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("uvicorn>=0.30", "uvloop>=0.19; sys_platform != 'win32'", "httptools>=0.6"),
    "ray": ("ray[data]>=2.50,<3",),
}

_EXTRA_MARKER = re.compile(r"""(?:\band\s+)?\bextra\s*==\s*["']([^"']+)["']""")


def extra_requirements(extra: str) -> list[str]:
    """The requirements of ``extra`` that apply on this machine (markers evaluated)."""
    try:
        declared = metadata.requires("packflow")
    except metadata.PackageNotFoundError:
        declared = None
    if declared is None:
        wanted = list(DECLARED_EXTRAS.get(extra, ()))
    else:
        wanted = []
        for req in declared:
            spec, _, marker = req.partition(";")
            match = _EXTRA_MARKER.search(marker)
            if match and match.group(1) == extra:
                rest = _EXTRA_MARKER.sub("", marker).strip()
                wanted.append(f"{spec.strip()}; {rest}" if rest else spec.strip())
    return [_without_marker(req) for req in wanted if _applies(req)]


def install_hint(extra: str) -> str:
    """``pip install ...`` for what ``extra`` needs here, each requirement quoted."""
    requirements = extra_requirements(extra)
    return "pip install " + " ".join(shlex.quote(req) for req in requirements)


def _without_marker(req: str) -> str:
    return req.partition(";")[0].strip()


def _applies(req: str) -> bool:
    """Whether the environment marker of ``req`` (if any) holds on this machine."""
    _, _, marker = req.partition(";")
    if not marker.strip():
        return True
    try:
        from packaging.markers import Marker
    except ImportError:  # packaging is not a dependency: show the requirement anyway
        return True
    return Marker(marker.strip()).evaluate()
