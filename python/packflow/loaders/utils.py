"""Parsing ``module:Object`` references and describing why an import failed."""

from __future__ import annotations

import traceback

#: How every loading failure starts, as in Packflow 0.4 (scripts match on it).
LOAD_FAILED = "Unable to load inference backend module with error: "


def inference_backend_parts(path: str) -> list[str]:
    """Split ``"pkg.module:Object"`` into ``["pkg.module", "Object"]``.

    Read it as ``from pkg.module import Object``. Anything but exactly one colon
    with a non-blank name on each side is a ``ValueError``.
    """
    if not isinstance(path, str):
        raise ValueError(
            f"inference_backend must be a string like 'module:Object', got {type(path).__name__}"
        )
    parts = path.split(":")
    if len(parts) != 2:
        raise ValueError(
            "Path must contain exactly one colon separating module and object: "
            f"inference_backend {path!r} has {len(parts) - 1} (expected 'module:Object')"
        )
    module_name, object_name = parts
    if not module_name.strip() or not object_name.strip():
        side = "module" if not module_name.strip() else "object"
        raise ValueError(f"inference_backend {path!r} has an empty {side} name")
    return parts


def describe_exception(exc: BaseException, source: object = None) -> str:
    """``Type: message (at file, line N, in func: code)``, naming where it was raised.

    For a ``SyntaxError`` the position is the offending line of the source file,
    not the importlib frame that compiled it. When the last frame is not in
    ``source`` (the error came from a library it called), the last frame that
    is in ``source`` is named too.
    """
    if isinstance(exc, SyntaxError) and exc.filename and (exc.text or "").strip():
        head = f"{type(exc).__name__}: {exc.msg}"
    else:
        head = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    where = _where(exc, source)
    return f"{head} ({where})" if where else head


def exception_origin(exc: BaseException, source: object = None) -> str:
    """``Type (at file, line N: code)``: what :func:`describe_exception` says
    without the message, for a sentence that has said the message already."""
    where = _where(exc, source)
    return f"{type(exc).__name__} ({where})" if where else type(exc).__name__


def _where(exc: BaseException, source: object) -> str:
    """``at file, line N[, in func]: code[, called from ...]``, or ``""``."""
    if isinstance(exc, SyntaxError) and exc.filename:
        code = (exc.text or "").strip()
        return f"at {exc.filename}, line {exc.lineno}: {code}" if code else ""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    if not frames:
        return ""
    text = f"at {_frame(frames[-1])}"
    if source is not None and frames[-1].filename != str(source):
        own = [f for f in frames if f.filename == str(source)]
        if own:
            text += f", called from {_frame(own[-1])}"
    return text


def _frame(frame: traceback.FrameSummary) -> str:
    code = (frame.line or "").strip()
    where = f"{frame.filename}, line {frame.lineno}, in {frame.name}"
    return f"{where}: {code}" if code else where
