"""One module per name per process: which loaded project imported which modules.

Python keeps imported modules in ``sys.modules`` by name, so once project A's
``helpers.py`` is imported, project B's ``import helpers`` returns A's. Before a
project is loaded, every module imported from another loaded project's directory
under a name this project also provides is dropped from ``sys.modules`` (this
project then imports its own) when that project is no longer in use or the two
files are identical; otherwise loading is refused with
``InferenceBackendLoadError``. A project is in use while a backend loaded from it
is alive.
"""

from __future__ import annotations

import contextlib
import filecmp
import importlib.machinery
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

from packflow.exceptions import InferenceBackendLoadError

# Loading runs the project's imports: one load at a time keeps sys.modules coherent.
_lock = threading.RLock()


@dataclass
class _Project:
    root: Path
    backends: list[weakref.ref] = field(default_factory=list)
    #: A backend that cannot be weak-referenced keeps its project in use for good.
    pinned: bool = False

    def in_use(self) -> bool:
        self.backends = [ref for ref in self.backends if ref() is not None]
        return self.pinned or bool(self.backends)


_projects: dict[Path, _Project] = {}


def provided_names(root: Path) -> set[str]:
    """The top-level module names ``root`` provides on ``sys.path``: its modules
    (``helpers.py``, extension modules) and packages (folders)."""
    suffixes = importlib.machinery.all_suffixes()
    names = set()
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir():
                if entry.name.isidentifier():
                    names.add(entry.name)
                continue
            for suffix in suffixes:
                if entry.name.endswith(suffix):
                    names.add(entry.name[: -len(suffix)].split(".")[0])
    return names


def _location(module: ModuleType) -> Optional[Path]:
    file = getattr(module, "__file__", None)
    if file is None:  # a namespace package: one of its folders
        file = next(iter(getattr(module, "__path__", None) or ()), None)
    return Path(file) if isinstance(file, str) else None


def _owner(location: Path) -> Optional[_Project]:
    owners = [p for p in _projects.values() if location.is_relative_to(p.root)]
    return max(owners, key=lambda p: len(p.root.parts), default=None)


def _same_file(location: Path, owner: Path, root: Path) -> bool:
    candidate = root / location.relative_to(owner)
    try:
        return candidate.is_file() and filecmp.cmp(location, candidate, shallow=False)
    except OSError:
        return False


def _make_room(root: Path, backend_module: Optional[str]) -> None:
    names = provided_names(root)
    clashes = []
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] not in names or name == backend_module or module is None:
            continue
        location = _location(module)
        owner = _owner(location) if location is not None else None
        if owner is None or owner.root == root:
            continue
        if owner.in_use() and not _same_file(location, owner.root, root):
            clashes.append(f"'{name}' ({location})")
        else:
            del sys.modules[name]
    if clashes:
        raise InferenceBackendLoadError(
            f"Unable to load the project {root}: its module(s) {', '.join(sorted(clashes))} "
            "already imported from another project that is still loaded have the same name "
            "as module(s) of this project, and Python keeps one module per name per process. "
            "Release the other project's backend first, rename the modules, or load the "
            "projects in separate processes."
        )
    # Directories of projects no longer in use would answer this project's imports.
    stale = {str(p.root) for p in _projects.values() if p.root != root and not p.in_use()}
    sys.path[:] = [entry for entry in sys.path if entry not in stale]


@contextlib.contextmanager
def loading(root: Path, backend_module: Optional[str]) -> Iterator[Callable[[Any], None]]:
    """Hold the load lock, make the names of ``root``'s modules its own (or refuse),
    put ``root`` first on ``sys.path``, and yield ``register(backend)``, which
    records that ``backend`` keeps the project in use.

    ``backend_module`` (the module a local loader executes afresh) is exempt.
    """
    with _lock:
        _make_room(root, backend_module)
        _projects.setdefault(root, _Project(root))
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))

        def register(backend: Any) -> None:
            project = _projects[root]
            try:
                project.backends.append(weakref.ref(backend))
            except TypeError:  # __slots__ without __weakref__
                project.pinned = True

        yield register


def release(directory: Path) -> None:
    """Forget the projects in ``directory``, which is about to be removed: their
    modules leave ``sys.modules`` and the directory leaves ``sys.path``."""
    directory = Path(directory)
    with _lock:
        for root in [r for r in _projects if r.is_relative_to(directory)]:
            del _projects[root]
        for name, module in list(sys.modules.items()):
            location = _location(module) if module is not None else None
            if location is not None and location.is_relative_to(directory):
                del sys.modules[name]
        sys.path[:] = [
            entry for entry in sys.path if not entry or not Path(entry).is_relative_to(directory)
        ]


__all__ = ["loading", "provided_names", "release"]
