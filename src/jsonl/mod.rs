//! JSON Lines parsing for the streaming runner: one call per batch of raw line
//! bytes gives the records (`parse_lines`) or the numpy feature array
//! (`parse_lines_to_ndarray`), plus the bad lines with their line numbers.
//!
//! Per line: blank lines (only spaces, tabs, CR) are skipped and not counted; a
//! UTF-8 BOM at the start of a line is ignored (as `json.loads(bytes)` does);
//! invalid UTF-8, invalid JSON, nesting deeper than `MAX_DEPTH` and a value that
//! is not an object are errors for that line only.

mod document;
mod lines;
mod parser;
mod read;
pub(crate) mod scanner;
mod split;
mod text_to_array;

/// The word-at-a-time newline search, shared with the stream cutter.
pub(crate) use scanner::find_newline;

/// Whether `data` holds `NaN` or `Infinity` anywhere (inside strings too):
/// the quick test before the server's exact search for the constants JSON
/// does not have. Same answer as ``b"NaN" in data or b"Infinity" in data``,
/// eight bytes at a time, without the GIL for large bodies.
#[pyfunction]
pub fn holds_constant_word(py: Python<'_>, data: &[u8]) -> bool {
    if data.len() < 1 << 16 {
        return scanner::holds_constant_word(data);
    }
    py.detach(|| scanner::holds_constant_word(data))
}

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::errors::value_error;
use document::document_lines;
use text_to_array::Plan;

pub use read::{cells_to_array, read_array, read_records, scan_batch, RowCells, Scanned};
pub use text_to_array::Cell;
/// The feature paths compiled for reading them from JSON text.
pub use text_to_array::Plan as TextPlan;

/// Records parsed from a batch of JSON Lines.
#[pyclass(module = "packflow._core", frozen, get_all)]
pub struct ParsedLines {
    /// The lines that are JSON objects, as dicts, in input order.
    records: Py<PyList>,
    /// The line number of each record.
    line_numbers: Py<PyList>,
    /// `(line number, raw line bytes, message)` for each bad line.
    errors: Py<PyList>,
    /// Non-blank lines seen: `len(records) + len(errors)`.
    lines: usize,
}

#[pymethods]
impl ParsedLines {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "ParsedLines(records={}, errors={}, lines={})",
            self.records.bind(py).len(),
            self.errors.bind(py).len(),
            self.lines
        )
    }
}

/// A feature array filled from a batch of JSON Lines.
#[pyclass(module = "packflow._core", frozen, get_all)]
pub struct ParsedArray {
    /// One row per good line, one column per feature.
    array: Py<PyAny>,
    line_numbers: Py<PyList>,
    errors: Py<PyList>,
    lines: usize,
}

#[pymethods]
impl ParsedArray {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "ParsedArray(shape={}, errors={}, lines={})",
            self.array.bind(py).getattr("shape")?.repr()?,
            self.errors.bind(py).len(),
            self.lines
        ))
    }
}

static INT_MAX_STR_DIGITS: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();

/// `sys.get_int_max_str_digits()`, 0 (no limit) where Python has none.
pub(crate) fn int_limit(py: Python<'_>) -> PyResult<usize> {
    let getter = INT_MAX_STR_DIGITS.get_or_try_init(py, || -> PyResult<_> {
        Ok(py
            .import("sys")?
            .getattr_opt("get_int_max_str_digits")?
            .map(Bound::unbind))
    })?;
    match getter {
        Some(f) => f.bind(py).call0()?.extract(),
        None => Ok(0),
    }
}

fn error_tuple<'py>(
    py: Python<'py>,
    line_no: u64,
    raw: &[u8],
    message: &str,
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            line_no.into_pyobject(py)?.into_any(),
            PyBytes::new(py, raw).into_any(),
            message.into_pyobject(py)?.into_any(),
        ],
    )
}

/// Every line number of `data` counted from `first_line` must fit in a u64, so
/// none is silently capped.
fn check_line_numbers(data: &[u8], first_line: u64) -> PyResult<()> {
    match first_line.checked_add(data.len() as u64) {
        Some(_) => Ok(()),
        None => Err(pyo3::exceptions::PyOverflowError::new_err(format!(
            "first_line {first_line} is too large for {} bytes of lines",
            data.len()
        ))),
    }
}

/// Parses a batch of JSON Lines into dicts (one call per batch; see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (data, first_line = 1))]
pub fn parse_lines(py: Python<'_>, data: &[u8], first_line: u64) -> PyResult<ParsedLines> {
    let batch = read_records(py, data, first_line)?;
    Ok(ParsedLines {
        records: batch.input?.cast_into::<PyList>()?.unbind(),
        line_numbers: batch.line_numbers.unbind(),
        errors: batch.errors.unbind(),
        lines: batch.lines,
    })
}

/// Fills a feature array straight from a batch of JSON Lines, or returns None
/// when some cell is not certainly a number or bool (use `parse_lines` then).
#[pyfunction]
#[pyo3(signature = (data, features, delimiter, first_line = 1))]
pub fn parse_lines_to_ndarray(
    py: Python<'_>,
    data: &[u8],
    features: Vec<String>,
    delimiter: &str,
    first_line: u64,
) -> PyResult<Option<ParsedArray>> {
    if delimiter.is_empty() {
        return Err(value_error(
            "empty separator: the nested field delimiter must not be empty",
        ));
    }
    check_line_numbers(data, first_line)?;
    let plan = Plan::new(&features, delimiter);
    if plan.irregular {
        return Ok(None);
    }
    let limit = int_limit(py)?;
    let scan = py.detach(|| scan_batch(data, first_line, &plan, limit));
    if scan.stopped_at.is_some() {
        return Ok(None);
    }
    let errors = PyList::empty(py);
    for (line_no, start, end, msg) in &scan.errors {
        errors.append(error_tuple(py, *line_no, &data[*start..*end], msg)?)?;
    }
    let line_numbers = PyList::new(py, &scan.line_numbers)?;
    let lines = scan.lines;
    let rows = scan.line_numbers.len();
    let array = read::cells_to_array(
        py,
        &scan.cells,
        rows,
        features.len(),
        scan.any_int,
        scan.any_float,
    )?;
    Ok(Some(ParsedArray {
        array: array.unbind(),
        line_numbers: line_numbers.unbind(),
        errors: errors.unbind(),
        lines,
    }))
}

/// A JSON request body as JSON Lines for the batch engine: `(lines, rows,
/// single)`. An object gives one line (`single`), an array of objects one line
/// per item; with `field`, the body must be an object whose `field` member is
/// such an array. Errors are `ValueError`s naming the line and column, or the
/// item that is not an object. With `check_items=False` the inside of each
/// item is not checked when the body has a plain shape (src/jsonl/split.rs):
/// the engine, which parses every item, reports a bad one.
#[pyfunction]
#[pyo3(signature = (data, field = None, *, check_items = true))]
pub fn json_to_lines<'py>(
    py: Python<'py>,
    data: &[u8],
    field: Option<&str>,
    check_items: bool,
) -> PyResult<(Bound<'py, PyBytes>, usize, bool)> {
    if !check_items {
        if let Some(doc) = py.detach(|| split::split_document(data, field)) {
            return Ok((PyBytes::new(py, &doc.out), doc.rows, doc.single));
        }
    }
    let limit = int_limit(py)?;
    let result = py.detach(|| {
        let text = std::str::from_utf8(data).map_err(|e| {
            let pos = e.valid_up_to();
            let line = data[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = data[..pos]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let column = scanner::column_at(&data[line_start..], pos - line_start);
            format!("line {line}: invalid UTF-8 at column {column}")
        })?;
        document_lines(text, field, limit).map_err(|e| e.message(text.as_bytes()))
    });
    match result {
        Ok(doc) => Ok((PyBytes::new(py, &doc.out), doc.rows, doc.single)),
        Err(msg) => Err(value_error(msg)),
    }
}
