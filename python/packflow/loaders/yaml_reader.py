"""The hardened YAML reader packflow.yaml is read with: a size limit, one walk of
the node graph that never follows an alias twice and refuses files whose aliases
stand for too many values before any value is built, duplicate keys refused,
and the line of every field kept for the error messages."""

from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

import yaml

from packflow import constants
from packflow.exceptions import PackflowConfigError
from packflow.loaders.config_errors import PackflowConfigTypeError, _config_error, _syntax_error

#: Largest packflow.yaml read, in bytes: a project file, not a data file.
MAX_FILE_BYTES = 4 << 20
#: Most values (scalars, lists, mappings) a packflow.yaml may hold, counting every
#: alias as a full copy of what it names: refuses "billion laughs" alias bombs,
#: whose few hundred bytes name billions of values.
MAX_VALUES = 100_000

# Field path (keys and list indices as strings) -> 1-based line of its key or item.
Positions = dict[tuple[str, ...], int]


class _NamedText(io.StringIO):
    """Text handed to PyYAML as a stream named like the file, so its marks name the
    file (``in "/x/packflow.yaml", line 3, column 1``)."""

    def __init__(self, text: str, name: str):
        super().__init__(text)
        self.name = name


def _read_text(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Not a packflow project (no {constants.PACKAGING_CONFIG_NAME} found in "
            f"{path.parent}). Run 'packflow create <name>' to start one."
        ) from None
    if not stat.S_ISREG(mode):  # a directory, or a FIFO that would block the read
        raise _config_error(PackflowConfigError, f"{path} is not a regular file", path)
    with open(path, "rb") as fh:
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise _config_error(
            PackflowConfigError,
            f"{path} is larger than {MAX_FILE_BYTES >> 20} MiB: packflow.yaml describes a "
            "project; keep data in files next to it",
            path,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _config_error(
            PackflowConfigError, f"{path} line {line}: not UTF-8 text ({exc.reason})", path, line
        ) from None


def _compose(text: str, path: Path) -> tuple[Any, yaml.Node]:
    """``(data, root node)`` from one parse: the node graph is checked before any
    Python value is built from it."""
    loader = None
    try:
        loader = yaml.SafeLoader(_NamedText(text, str(path)))  # reads the first characters
        root = loader.get_single_node()
        if root is not None:
            _check_size(root, path)
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, path, text) from None
    except RecursionError:
        raise _config_error(
            PackflowConfigError, f"{path} is nested too deeply to be a packflow.yaml", path
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_size(root: yaml.Node, path: Path) -> None:
    """Refuse alias bombs and self-referencing aliases.

    Counts the values the document stands for, every alias as a copy of its
    anchor, visiting each node once (aliases share their anchor's node).
    """
    counts: dict[int, int] = {}
    open_nodes: set[int] = set()  # being visited: their subtree is not counted yet
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            counts[key] = 1 + sum(counts[id(child)] for child in _children(node))
            if counts[key] > MAX_VALUES:
                line = node.start_mark.line + 1
                raise _config_error(
                    PackflowConfigError,
                    f"{path} line {line}: its YAML aliases (*name) stand for more than "
                    f"{MAX_VALUES:,} values: refusing what looks like an alias bomb",
                    path,
                    line,
                )
            continue
        if key in counts:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                line = child.start_mark.line + 1
                raise _config_error(
                    PackflowConfigError,
                    f"{path} line {line}: the value anchored here contains an alias to itself",
                    path,
                    line,
                )
            if id(child) not in counts:
                stack.append((child, False))


def read_raw_config(path: Path) -> Any:
    """``path`` parsed as YAML with the hardened reader (size and alias limits,
    duplicate keys refused), before any field is checked: ``None`` for an empty
    file. A missing file is ``FileNotFoundError``."""
    return _compose(_read_text(path), path)[0]


def _read_yaml_mapping(path: Path) -> tuple[dict, Positions]:
    data, root = _compose(_read_text(path), path)
    if data is None:
        raise _config_error(
            PackflowConfigTypeError,
            f"{path} is empty: it needs at least a 'name' field (e.g. 'name: my-project')",
            path,
        )
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1
        raise _config_error(
            PackflowConfigTypeError,
            f"{path} line {line}: the top level must be a mapping of fields "
            f"('name: ...', 'version: ...'), not a {type(data).__name__}",
            path,
            line,
        )
    return data, _positions(root, path)


def _positions(root: yaml.Node, path: Path) -> Positions:
    """The line of every field; a key given twice in a mapping is an error.

    Nodes are visited once, in document order, so an anchor's contents are
    located under the anchor's path, and a field under an alias at the alias.
    """
    positions: Positions = {}
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, prefix = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            children = []
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                line = key_node.start_mark.line + 1
                if key in seen and key != "?":
                    field = ".".join((*prefix, key))
                    raise _config_error(
                        PackflowConfigError,
                        f"{path} line {line}: field '{field}' is given twice "
                        f"(first on line {seen[key]})",
                        path,
                        line,
                    )
                seen[key] = line
                positions.setdefault((*prefix, key), line)
                children.append((value_node, (*prefix, key)))
            stack.extend(reversed(children))
        elif isinstance(node, yaml.SequenceNode):
            children = []
            for index, item in enumerate(node.value):
                positions.setdefault((*prefix, str(index)), item.start_mark.line + 1)
                children.append((item, (*prefix, str(index))))
            stack.extend(reversed(children))
    return positions
