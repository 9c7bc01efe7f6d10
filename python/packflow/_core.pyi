"""Stubs of ``packflow._core``, the Rust extension. Users import the public
modules (``packflow.utils``, ``packflow.backend``...), not this one."""

from collections.abc import Callable, Iterable
from typing import Any, Optional

import numpy as np

MAX_DEPTH: int
"""Deepest nesting any traversal follows; deeper input (or a cycle) is an error."""

def build_info() -> dict[str, str]:
    """Which build of this extension is loaded. ``build``: ``"fast"`` (reads
    CPython internals reviewed for this version) or ``"portable"`` (the public
    C API only; slower). ``selected``: ``"default"``, ``"feature"`` (built with
    the ``portable`` cargo feature) or ``"automatic"`` (this Python is one the
    fast build was not reviewed for). ``reason``: why, in words. ``python``:
    the CPython version it was compiled for. ``packflow.build_info()`` returns
    the same."""

# --- pipeline and timers -----------------------------------------------------

class Pipeline:
    """Runs a backend's steps (preprocess, transform_inputs, execute,
    transform_outputs), timing each with a monotonic nanosecond clock into its
    :class:`StepStats` (src/pipeline.rs; the batch entry in src/engine.rs)."""

    def __init__(
        self,
        preprocessor: Callable[[Any], Any],
        compiled: Optional[RecordsPlan | NumpyPlan] = None,
        on_call: Optional[Callable[[StepStats], Any]] = None,
    ) -> None:
        """``preprocessor`` is called for the preprocess step unless
        ``compiled``, its compiled plan (one that does exactly what calling it
        does), is given: then the plan runs in its place (a passthrough
        ``RecordsPlan``: nothing runs), and a ``NumpyPlan`` also lets
        :meth:`run_lines` read the feature array straight from the text.
        ``on_call`` is called with :attr:`step_stats` after each call whose
        steps all ran (the verbose mode's metrics log)."""
    @property
    def step_stats(self) -> StepStats:
        """The timings of this pipeline's calls."""
    @property
    def reads_arrays(self) -> bool:
        """Whether :meth:`run_lines` reads the feature array straight from the
        text (the preprocessor's plan is a ``NumpyPlan`` whose delimiter does
        not overlap itself)."""
    def run(self, backend: Any, inputs: Any) -> Any:
        """Run one call: a dict gives one output, a list of dicts a list. Step
        failures raise ``InferenceBackendRuntimeError("<step>() failed ...")``
        with ``step`` set; an output that is not a list raises it too."""
    def run_lines(
        self,
        backend: Any,
        data: bytes,
        first_line: int = 1,
        *,
        allow_nan: bool = False,
        stop_at_suspect: bool = False,
        ahead: Optional[tuple[bytes, int]] = None,
    ) -> BatchOutcome:
        """One batch of JSON Lines (numbered from ``first_line``) through the
        whole path in one call: read the lines (into dicts, or for a
        ``NumpyPlan`` straight into the feature array, parsing into dicts only
        from the first line whose cells are not all plain numbers, so no line
        is read twice), run the steps, check the outputs and write them as
        JSON Lines (``check_and_dump_lines``). A step, output check or write
        that fails comes back in the outcome's ``failure``; only
        ``BaseException``s that are not ``Exception``s (KeyboardInterrupt,
        SystemExit) are raised.

        ``stop_at_suspect``: the text reader stops at the first line whose
        cells are not all plain numbers instead of handing it and the rest
        over to dicts, and nothing runs: the outcome's ``stopped_line`` names
        that line, ``line_numbers``, ``errors`` and ``read`` cover the lines
        before it, whose cells are kept for :meth:`rerun`.

        ``ahead``: the next batch, ``(data, first_line)``, when the caller
        holds it already. With a ``NumpyPlan`` its text is read on a second
        thread (src/read_ahead.rs) from now until the call on that same bytes
        object and first line, which takes the result instead of reading;
        any other call reads as it would have. Otherwise ignored."""
    def run_rows(
        self,
        backend: Any,
        rows: FeatureRows,
        first_line: int = 1,
        *,
        allow_nan: bool = False,
    ) -> BatchOutcome:
        """Rows already read into feature cells (a door's numeric tensors),
        numbered from ``first_line``, through the steps after preprocessing:
        the feature array is built from the cells as :meth:`run_lines` builds
        it from the same numbers read as text (float64 if any cell is a float,
        else int64 if any is an int, else bool), so each row gives what its
        JSON line would. A failed batch keeps its cells for :meth:`rerun`.
        A ``ValueError`` unless :attr:`reads_arrays` and ``rows.columns`` is
        the number of features."""
    def rerun(
        self,
        backend: Any,
        failed: BatchOutcome,
        start: int,
        stop: int,
        *,
        allow_nan: bool = False,
    ) -> Optional[BatchOutcome]:
        """Rows ``start:stop`` (indexes into ``failed.line_numbers``) of a
        failed or stopped :meth:`run_lines` batch run again, their feature array built
        afresh from the cells that call read (the hooks may have changed the
        array they got), without reading the text again. ``None`` when
        ``failed.can_rerun`` is false; a range outside the batch is a
        ``ValueError``."""

class FeatureRows:
    """Rows of a numpy backend's features already read as plain numbers
    (bool, int64 or a finite float per cell, row-major): what a door that
    receives numeric tensors queues instead of JSON Lines, read once into the
    feature array by :meth:`Pipeline.run_rows`. Immutable; ``slice`` and
    ``join`` copy."""

    @staticmethod
    def from_rows(rows: list[list[bool | int | float]]) -> FeatureRows:
        """Rows as lists of exactly ``bool``, ``int`` (within int64) or
        ``float`` (finite), all of one length, at least one row of at least
        one value. Another type is a ``TypeError``, an int past int64 or a
        float that is not finite a ``ValueError``, naming the row and column."""
    @staticmethod
    def from_columns(columns: list[list[bool | int | float]]) -> FeatureRows:
        """The same rows given column by column (``columns[j][i]`` is row
        ``i``'s value ``j``; every column of one length). Errors as
        :meth:`from_rows`."""
    @property
    def rows(self) -> int:
        """How many rows."""
    @property
    def columns(self) -> int:
        """Values per row."""
    def __len__(self) -> int: ...
    def slice(self, start: int, stop: int) -> FeatureRows:
        """Rows ``start:stop`` (a non-empty run within the rows, else a
        ``ValueError``)."""
    @staticmethod
    def join(parts: list[FeatureRows]) -> FeatureRows:
        """The parts' rows one after the other (all of one width, else a
        ``ValueError``)."""
    def row_json(self, index: int) -> bytes:
        """Row ``index`` as a JSON array (``b"[1.5,2,true]"``): an error
        row's text."""
    def to_rows(self) -> list[list[bool | int | float]]:
        """The rows as lists of Python values."""

class BatchOutcome:
    """What :meth:`Pipeline.run_lines` (or :meth:`Pipeline.run_rows`) gave
    for one batch."""

    output: bytes
    """One JSON line per good line, in order; empty when ``failure`` is set."""
    line_numbers: list[int]
    """The line number of each line that parsed."""
    errors: list[tuple[int, bytes, str]]
    """``(line number, raw line, message)`` for each line that did not parse."""
    read: int
    """Non-blank lines seen."""
    written: int
    """Output lines in ``output``: ``len(line_numbers)``, or 0 on a failure."""
    failure: Optional[BaseException]
    """Why the parsed lines gave no output, or None."""
    failed_step: Optional[str]
    """Where: a step's name, ``"run"`` (the output was not a list),
    ``"validate"`` (the outputs break the output format) or ``"serialize"``
    (a value JSON cannot hold)."""
    suspect: Optional[int]
    """The first row (an index into ``line_numbers``) the text reader could
    not read as plain numbers (a string, a missing feature, ...), when it
    handed the rest of the batch over to dicts: on a failed batch, the row
    most likely at fault, which the engine's search cuts around first."""
    stopped_line: Optional[int]
    """With ``stop_at_suspect``: the line number of the suspect line the
    reader stopped on (it and the lines after it unread, nothing run), else
    None."""
    @property
    def can_rerun(self) -> bool:
        """Whether the batch kept the cells its text reader read, for
        :meth:`Pipeline.rerun`: it failed with every row read straight into
        the array, or it stopped at a suspect line (the rows before it)."""

class StepStats:
    """The timings of a pipeline's steps: the last call's, and a log-bucketed
    histogram per step since construction (src/step_stats.rs). A worker pool
    sums its workers' into one empty ``StepStats()``."""

    def __init__(self) -> None: ...
    def last_times(self) -> dict[str, float]:
        """Milliseconds per step of the last call (5 decimals), steps that ran only."""
    @property
    def batch_size(self) -> Optional[int]:
        """Rows in the last call; None before the first."""
    def stats(self) -> dict[str, dict[str, float]]:
        """Per step: count, total_ms, mean_ms, min_ms, max_ms, p50_ms, p90_ms, p99_ms."""
    def histograms(self, bounds_ns: list[int]) -> dict[str, tuple[list[int], int, int]]:
        """Per step that has run: ``(counts, total_ns, count)``; ``counts[i]``
        is how many calls took at most ``bounds_ns[i]`` nanoseconds (bounds
        strictly ascending, else ``ValueError``), counted in whole histogram
        buckets, so exact to within one bucket (1/16 of a power of two)."""
    def reset_stats(self) -> None:
        """Clear the histograms (the last call's times stay)."""
    def stats_state(self) -> dict[str, dict[str, Any]]:
        """The histograms as plain data, for ``merge_stats`` in another process:
        per step that has run, ``count``, ``total_ns``, ``min_ns``, ``max_ns``
        and ``buckets``, a list of ``(lowest_ns, count)`` pairs of the non-empty
        buckets."""
    def merge_stats(self, state: dict[str, dict[str, Any]]) -> None:
        """Add a ``stats_state()`` (of a pipeline in another process) to these
        histograms: afterwards they are those of one pipeline that timed every
        call of both. A bucket pair's value may be any value of its bucket (a raw
        sample with count 1 will do). A state that no samples could give (an
        unknown step, a count that is not the buckets' sum, min, max or total
        outside the buckets) is a ``ValueError`` and nothing is added."""

def monotonic_ns() -> int:
    """Nanoseconds from a monotonic clock with an arbitrary origin."""

# --- cutting JSON Lines into batches (src/batch_cut.rs) -----------------------

def line_batch_end(data: bytes, max_lines: int, start: int = 0) -> tuple[int, int]:
    """``(end, count)``: the offset just past the ``max_lines``-th complete line of
    ``data`` counted from ``start``, and how many complete lines lie before it
    (``(start, 0)`` when none is complete)."""

def join_lines(items: list[bytes]) -> bytes:
    """One JSON Lines buffer from single-line messages, adding a newline only to
    items that lack one; a non-bytes item is a TypeError."""

# --- records -> ndarray ---------------------------------------------------

def records_to_ndarray(
    records: list[dict],
    feature_names: list[str],
    dtype: Optional[Any] = None,
    delimiter: Optional[str] = None,
) -> np.ndarray:
    """``numpy.array(rows, dtype=dtype)`` where each row holds one record's
    ``feature_names`` values, each looked up like ``get_nested_field`` (missing
    -> None). Plain bool/int/float cells are written straight into the array;
    anything else is handed to ``numpy.array``, so the result is numpy's own.

    ``records`` must be a list of dicts (ValueError naming the row index
    otherwise); ``feature_names`` a list or tuple of str (TypeError); the
    delimiter defaults to "." and must not be empty (ValueError)."""

class NumpyPlan:
    """The numpy preprocessor's feature paths, compiled once."""

    def __init__(self, features: list[str], delimiter: str) -> None:
        """Compile ``features`` (list or tuple of str) split by ``delimiter``
        (non-empty, else ValueError)."""

    def __call__(self, records: list[dict]) -> np.ndarray:
        """``records_to_ndarray(records, features, None, delimiter)``; any
        failure is raised as ``packflow.exceptions.PreprocessorRuntimeError``
        ("Failed to preprocess inputs with the following exception: ...") with
        the original error as its ``__cause__``."""

    @property
    def features(self) -> list[str]:
        """The feature paths, in column order."""

    @property
    def delimiter(self) -> str:
        """The nested field delimiter."""

# --- records: flattening (src/flatten/) ----------------------------------------

def flatten_dict(obj: dict, delimiter: str = ".", flatten_lists: bool = False) -> dict:
    """A new one-level dict of ``obj``.

    Nested dict keys are joined with ``delimiter`` (a non-str nested key joins as
    ``format(key)``; a top-level key stays the key object itself, and keys below
    a ``None`` key have no parent key). With ``flatten_lists`` list items join
    as their index (``"e.0"``); tuples never do. Empty dicts and lists are kept
    as values, in depth-first order.

    Raises TypeError when ``obj`` is not a dict, ValueError ``duplicated key
    'a.b'`` when two values flatten to the same key, and ValueError naming the
    key path when the nesting is deeper than ``MAX_DEPTH`` (a cycle included).
    """

def flatten_records(
    records: list[dict], delimiter: str = ".", flatten_lists: bool = False
) -> list[dict]:
    """:func:`flatten_dict` of every record, as a new list.

    Raises TypeError for a non-list or a non-dict row (naming the row), and the
    errors of :func:`flatten_dict` with the row index and key path prepended.
    """

# --- records: field access and the records plan (src/records/) ----------------

def check_delimiter_collisions(obj: dict, delimiter: str, path: str = "") -> list[str]:
    """The full paths (joined with ``delimiter``, below ``path`` when given) of
    every key of ``obj`` that contains ``delimiter``, recursing through dict
    values (not lists). A key at the top without ``path`` is returned as is.

    Raises TypeError for a non-dict or a non-str key (naming its path), and
    ValueError when the nesting is deeper than ``MAX_DEPTH``.
    """

def get_nested_field(obj: dict, field: Any, delimiter: Optional[str] = None) -> Any:
    """``obj[field]`` if that key exists, else the value whose key in
    ``flatten_dict(obj, delimiter or ".")`` is ``field``, else None.

    The parts of ``field`` are first walked as keys; only when that walk does
    not end on a value the flattened record keeps is the record scanned for
    other spellings (keys containing the delimiter, non-str keys), where two
    spellings are ValueError ``duplicated key``. A non-dict container is a
    ValueError, anything else a TypeError.
    """

def get_nested_field_direct(obj: dict, field: str, delimiter: str = ".") -> Any:
    """``obj[field]`` if that key exists, else the value reached by walking the
    parts of ``field`` through nested dicts (a dict too), else None.

    Raises TypeError for a non-dict ``obj`` or a non-str ``field`` that is not a
    key, ValueError for an empty delimiter when ``field`` is not a key.
    """

def set_nested_field_direct(obj: dict, field: str, value: Any, delimiter: str = ".") -> None:
    """Set ``value`` at the path ``field`` in ``obj`` (in place), creating dicts
    on the way; stop silently at a non-dict on the way.

    Raises TypeError for a non-dict ``obj`` or a non-str ``field``, ValueError
    for an empty delimiter.
    """

class RecordsPlan:
    """The records preprocessor's config, compiled once: rename sources and
    features as paths sharing their common prefixes, interned output keys.

    Calling it on a batch (a list of dicts) returns a new list of new dicts:
    renamed fields first, then ``feature_names`` in order (a field already
    emitted is not emitted again; None and missing values are skipped), or
    every field when there are no feature names. With
    ``flatten_nested_inputs`` fields are looked up in the flattened record and
    written under their flat names; otherwise they are looked up directly (a
    literal key first, then a walk through nested dicts) and a name containing
    the delimiter is written as a nested path. In that direct mode, when a
    rename key or feature contains the delimiter, every record is first checked
    for keys containing it unless ``ignore_delimiter_collisions``.

    The input records are never modified and values are shared, not copied.
    Every error is ``packflow.exceptions.PreprocessorRuntimeError`` naming the
    row and key path. Without renames, features or flattening the plan is a
    passthrough and returns the batch object itself.
    """

    passthrough: bool
    """True when the plan returns its input unchanged."""

    def __init__(
        self,
        rename_fields: dict[str, str],
        feature_names: list[str],
        flatten_nested_inputs: bool = False,
        flatten_lists: bool = False,
        delimiter: str = ".",
        ignore_delimiter_collisions: bool = False,
    ) -> None: ...
    def __call__(self, records: list[dict]) -> list[dict]:
        """Run the plan over one batch."""

# --- JSON Lines parsing (src/jsonl/) -----------------------------------------

class ParsedLines:
    """Records parsed from a batch of JSON Lines (see :func:`parse_lines`)."""

    @property
    def records(self) -> list[dict[str, Any]]:
        """The lines that are JSON objects, as dicts, in input order."""
    @property
    def line_numbers(self) -> list[int]:
        """The line number of each record."""
    @property
    def errors(self) -> list[tuple[int, bytes, str]]:
        """``(line number, raw line without its ending, message)`` per bad line."""
    @property
    def lines(self) -> int:
        """Non-blank lines seen: ``len(records) + len(errors)``."""

class ParsedArray:
    """A feature array filled from a batch of JSON Lines (see
    :func:`parse_lines_to_ndarray`)."""

    @property
    def array(self) -> np.ndarray:
        """One row per good line, one column per feature (int64, float64 or bool)."""
    @property
    def line_numbers(self) -> list[int]:
        """The line number of each row."""
    @property
    def errors(self) -> list[tuple[int, bytes, str]]:
        """``(line number, raw line without its ending, message)`` per bad line."""
    @property
    def lines(self) -> int:
        """Non-blank lines seen: rows + errors."""

def parse_lines(data: bytes, first_line: int = 1) -> ParsedLines:
    """Parse a batch of JSON Lines (``\\n``-separated, ``\\r\\n`` allowed, blank
    lines skipped) into dicts equal to ``json.loads(line)``; lines that are not
    UTF-8, not JSON, nested deeper than ``MAX_DEPTH`` or not objects are errors.
    Line numbers are ``first_line`` + the index of the line in ``data``."""

def json_to_lines(
    data: bytes, field: Optional[str] = None, *, check_items: bool = True
) -> tuple[bytes, int, bool]:
    """A JSON document (a request body) as JSON Lines for the batch engine:
    ``(lines, rows, single)``. An object gives one line (``single`` true), an
    array of objects one line per item; with ``field``, the document must be an
    object whose ``field`` member is such an array (the last one when the key
    repeats). Newlines between tokens become spaces; nothing else changes.
    Invalid JSON is a ``ValueError`` naming the line and column
    (``"line 2: invalid JSON at column 8: expected ':'"``); so is a document of
    another shape (``"item 1 of the array is a number, not a JSON object"``).

    ``check_items=False``: when the document has a plain shape (an object, an
    array of objects, or an object whose only member is ``field``), cut it
    into lines by its brackets without checking inside the items, which the
    engine parses anyway (it reports a bad item as a bad line); any other
    document is checked whole, as by default."""

def holds_constant_word(data: bytes) -> bool:
    """Whether ``data`` holds ``NaN`` or ``Infinity`` anywhere, strings
    included (``b"NaN" in data or b"Infinity" in data``, eight bytes at a
    time): the server's quick test before it searches for those constants
    outside strings."""

def parse_lines_to_ndarray(
    data: bytes, features: list[str], delimiter: str, first_line: int = 1
) -> ParsedArray | None:
    """Fill a rows x features array straight from a batch of JSON Lines, each
    cell looked up like ``get_nested_field`` in ``json.loads(line)``; ``None``
    when some cell would not be a number or bool (or the lookup is ambiguous),
    so the caller falls back to :func:`parse_lines`. Bad lines are errors as in
    :func:`parse_lines`. An empty ``delimiter`` is a ``ValueError``."""

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

def check_and_dump_lines(outputs: list[Any], n_inputs: int, *, allow_nan: bool = False) -> bytes:
    """``check_outputs(outputs, n_inputs)`` then ``dumps_lines(outputs,
    allow_nan=allow_nan)`` in one pass over the rows (each row checked by writing
    it). Raises what that sequence raises: the check's
    ``InferenceBackendValidationError`` (length, list, dicts, serializable, in
    that order), else the writer's ``ValueError`` (NaN without ``allow_nan``,
    lone surrogates) naming the row and key path."""

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

# -- columns -> rows (packflow.utils.data) --------------------------------------------

def columns_to_records(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{name: col[i] for name, col in columns.items()} for i in range(n)]``.

    A column is a list or tuple (items taken as they are), a 1-D numpy array of
    bool/int/uint/float dtype (values as ``.tolist()`` gives them, read from the
    buffer), a 2-D one (each row a list), or a 1-D/2-D object array (items as
    they are). Keys keep the dict's order and are the same key objects in every
    row (a str subclass name is replaced by a plain str copy). An empty dict
    gives ``[]``. Raises TypeError for a non-dict, a non-str name or another
    column type (naming the column), ValueError naming the first column whose
    length differs from the first column's."""

# -- the Open Inference Protocol (KServe V2) JSON bodies (packflow.serving.v2) ----------

class V2Plan:
    """How a model's backend reads V2 tensors, compiled once per server:
    ``features`` (a numpy backend's feature names, ``None`` for records),
    ``paths`` (the field path each feature is read from), ``delimiter`` (what
    splits a records column's name into a path) and ``max_rows`` (the most rows
    a request may hold). Paths that clash leave every body to Python."""

    def __init__(
        self,
        features: Optional[list[str]],
        paths: list[list[str]],
        delimiter: str,
        max_rows: int,
        cells: bool = False,
    ) -> None:
        """``cells``: a numpy backend's rows of plain numbers are read into
        :class:`FeatureRows` (for a backend whose preprocessor reads feature
        arrays) instead of JSON Lines."""

class V2Offload:
    """A thread that reads V2 bodies and writes V2 answers without ever
    taking the GIL (see ``packflow.serving.offload``). Jobs own copies of
    their input; the results wait until :meth:`take`, and the descriptor of
    :meth:`fileno` turns readable when there are some. Raises ``OSError`` or
    ``RuntimeError`` when the process has no descriptor or thread left to
    give it."""

    def __init__(self) -> None: ...
    def fileno(self) -> int:
        """The descriptor to watch for results (a socket; read by ``take``)."""
    def read(
        self, plan: V2Plan, body: bytes, header_length: Optional[bytes] = None
    ) -> Optional[int]:
        """The ticket of reading ``body`` as :func:`v2_read_request` would;
        ``None`` when the caller must read it (a body over 4 MiB, a header
        length not in plain digits, or stopped)."""
    def write(
        self,
        lines: list[bytes],
        outputs: Optional[list[str]],
        model_name: str,
        model_version: Optional[str],
        id: Optional[str],
        binary: Optional[dict[str, bool]] = None,
        binary_default: bool = False,
    ) -> Optional[int]:
        """The ticket of writing the answer :func:`v2_write_answer` would
        write; ``None`` when the caller must (as there, or stopped)."""
    def take(self) -> list[tuple[int, Any]]:
        """The finished jobs: ``(ticket, result)``, the result what
        :func:`v2_read_request` or :func:`v2_write_answer` would give."""
    def stop(self) -> None:
        """End the thread once the jobs queued are done; later jobs are
        refused (``None``)."""

def v2_read_request(
    plan: V2Plan, body: bytes, header_length: Optional[bytes] = None
) -> Optional[
    tuple[bytes | FeatureRows, int, Optional[str], Optional[list[str]], dict[str, bool], bool]
]:
    """A V2 infer body read as ``V2Api.parse_infer_python`` reads it:
    ``(lines, rows, id, outputs, binary, binary_data_output)``, the lines byte
    for byte those of ``dumps_lines`` over its rows; with the plan's
    ``cells``, a numpy backend's rows are :class:`FeatureRows` instead, each
    cell what the engine's text reader reads from those lines (rows holding
    an integer past int64 stay lines). ``header_length``: the request's
    Inference-Header-Content-Length, when binary data follows a JSON header
    (the binary tensor data extension). ``None`` for any body it does not
    read exactly so: not JSON, an error of any kind, integers past 64 bits,
    duplicate keys, nesting deeper than 64, a byte-order mark, FP16 or BYTES
    binary data, a BOOL byte other than 0 or 1, more than 2,097,152 values
    of binary data, a header length other than plain digits, a body over 4
    MiB (its value tree would take up to 16 bytes per body byte). Python then
    reads the body and words the error."""

def v2_write_answer(
    lines: list[bytes],
    outputs: Optional[list[str]],
    model_name: str,
    model_version: Optional[str],
    id: Optional[str],
    binary: Optional[dict[str, bool]] = None,
    binary_default: bool = False,
) -> Optional[tuple[bytes, Optional[int]]]:
    """The answer to an infer request from its output lines (one JSON object
    per row), as ``V2Api.render_python`` writes it: one tensor of shape [N]
    per output (``outputs``, or every key in the order first seen), and the
    length of its JSON header when binary data follows it (the outputs
    ``binary`` flags, the others as ``binary_default`` says). ``None`` when
    Python must write it: an unknown output, more than 4,000,000 values, lines
    that are not plain JSON (NaN, integers past 64 bits, duplicate keys), more
    than 32 keys."""
