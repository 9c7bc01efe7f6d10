"""Type stubs of ``packflow._core``, the Rust extension. Not imported by users:
the public API re-exports these through ``packflow`` modules."""

from collections.abc import Callable, Iterable
from typing import Any

MAX_DEPTH: int
"""Deepest nesting any traversal follows (255); deeper input, or a reference
cycle, raises ``ValueError``."""

# -- validation (packflow.backend.validation) ----------------------------------------

def check_inputs(inputs: Any) -> None:
    """Raise ``InferenceBackendValidationError`` unless ``inputs`` is a list of
    dicts; the message gives the type received or the index of the first non-dict."""

def check_outputs(outputs: Any, n_inputs: int) -> None:
    """Check a backend's outputs, in the reference's order: as many as
    ``n_inputs`` (an unsized ``outputs`` also fails here), a list, every row a
    dict, every row JSON-serializable as ``json.dumps`` judges it (NaN allowed,
    any str), widened to numpy scalars and numeric/bool arrays, with nesting
    limited to ``MAX_DEPTH``. Raises ``InferenceBackendValidationError`` naming
    the row index and, for serializability, the key path."""

def missing_keys(outputs: list[dict], declared: list[str]) -> list[str]:
    """The ``declared`` keys found in no row of ``outputs``, sorted, without
    repeats. ``TypeError`` for a row that is not a dict."""

# -- JSON output (packflow.serialize) ------------------------------------------------

def dumps(obj: Any, *, allow_nan: bool = False) -> bytes:
    """Compact JSON of ``obj`` as UTF-8, byte for byte what
    ``json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()``
    gives, plus numpy scalars and arrays (as ``.tolist()`` would give them).
    ``TypeError`` for an unsupported type or key, ``ValueError`` for NaN or
    infinity without ``allow_nan``, a lone surrogate, or nesting past
    ``MAX_DEPTH``; messages name the key path."""

def dumps_lines(rows: list[Any] | tuple[Any, ...], *, allow_nan: bool = False) -> bytes:
    """JSON Lines: :func:`dumps` of each row followed by ``\\n``, in one buffer.
    Errors name the row index and key path (``row 17, key "src.port"``)."""

# -- normalization (packflow.utils.normalize) ----------------------------------------

def ensure_native_types(obj: Any, fallback: Callable[[Any], object]) -> Any:
    """``obj`` with native values: native scalars (and subclasses) as they are,
    numpy scalars and arrays as ``.tolist()`` gives them (numeric/bool dtypes read
    from the buffer), dicts rebuilt with converted values, lists/tuples/sets as
    new lists; anything else is ``fallback(obj)``, used as returned. Never
    modifies ``obj``; nesting past ``MAX_DEPTH`` is a ``ValueError``."""

def ensure_valid_output(
    output: Iterable[Any], parent_key: Any, fallback: Callable[[Any], object]
) -> list[dict[Any, Any]]:
    """One dict per item of ``output`` (any iterable; a numeric ndarray's rows are
    read from its buffer): the item made native as by :func:`ensure_native_types`,
    then, unless it is a dict, ``{parent_key: item}`` with a one-element list
    unwrapped first."""
