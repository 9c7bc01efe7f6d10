//! The batch engine's one entry: a batch of raw JSON Lines in, its output
//! lines, bad lines and counts out, in one Rust call. Read (into records, or
//! straight into the numpy preprocessor's array) -> the backend's steps (the
//! hooks are the only Python) -> check the outputs and write them as JSON
//! Lines. When the steps or the check fail, the failure comes back as data
//! (the exception and where it happened), so the caller can split the batch
//! and find the rows at fault.

use std::time::Instant;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use pyo3::{PyTraverseError, PyVisit};

use crate::feature_rows::FeatureRows;
use crate::jsonl::{cells_to_array, int_limit, read_array, read_records, Cell, RowCells};
use crate::pipeline::{elapsed_ns, wrap_step_error, Pipeline, Preprocess};
use crate::validate::{check_and_dump, DumpError};

/// What one batch gave (see `_core.pyi`).
#[pyclass(module = "packflow._core", frozen)]
pub struct BatchOutcome {
    /// One JSON line per good input line, in order (empty when `failure`).
    #[pyo3(get)]
    output: Py<PyBytes>,
    /// The line number of each good (parsed) line.
    #[pyo3(get)]
    line_numbers: Py<PyList>,
    /// `(line number, raw line, message)` for each line that did not parse.
    #[pyo3(get)]
    errors: Py<PyList>,
    /// Non-blank lines seen.
    #[pyo3(get)]
    read: usize,
    /// Output lines written: the good lines, or 0 when the batch failed.
    #[pyo3(get)]
    written: usize,
    /// Why the good lines gave no output: the exception, or None.
    #[pyo3(get)]
    failure: Option<Py<PyAny>>,
    /// Where it happened: a step (`preprocess`, `transform_inputs`, `execute`,
    /// `transform_outputs`), `run` (the output was not a list), `validate`
    /// (the outputs break the output format) or `serialize` (a value JSON
    /// cannot hold).
    #[pyo3(get)]
    failed_step: Option<&'static str>,
    /// The first row the text reader could not read as plain numbers (a
    /// string, a missing feature, ...): on a failed batch, the row most
    /// likely at fault. None when it read every row (or read no text).
    #[pyo3(get)]
    suspect: Option<usize>,
    /// Asked to stop at a suspect row (`stop_at_suspect`), the reader met
    /// one: its line number. That line and those after it were not read,
    /// nothing was run (`output` is empty), and the rows before it kept
    /// their cells for `rerun`. None otherwise.
    #[pyo3(get)]
    stopped_line: Option<u64>,
    /// The cells the text reader read, kept when the batch failed (every
    /// row read from the text) or stopped at a suspect row (the rows before it).
    cells: Option<RowCells>,
    /// The pipeline that ran the batch (its address: only compared), so
    /// `rerun` takes only its own outcomes.
    owner: usize,
}

#[pymethods]
impl BatchOutcome {
    /// Whether `Pipeline.rerun` can run rows of this (failed) batch again
    /// from the cells already read.
    #[getter]
    fn can_rerun(&self) -> bool {
        self.cells.is_some()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let step = match self.failed_step {
            Some(step) => format!("'{step}'"),
            None => "None".to_string(),
        };
        format!(
            "BatchOutcome(read={}, written={}, errors={}, failed_step={step})",
            self.read,
            self.written,
            self.errors.bind(py).len(),
        )
    }

    /// The collector must see the failure: its traceback holds the frame
    /// that keeps this outcome, a cycle only the collector can free.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(failure) = &self.failure {
            visit.call(failure)?;
        }
        visit.call(&self.line_numbers)?;
        visit.call(&self.errors)
    }
}

impl BatchOutcome {
    /// The outcome of rows given already read (`line_numbers`, one each),
    /// before they run: no bad lines, nothing written yet.
    fn of_rows(pipeline: &Pipeline, line_numbers: Bound<'_, PyList>, rows: usize) -> BatchOutcome {
        let py = line_numbers.py();
        BatchOutcome {
            output: PyBytes::new(py, b"").unbind(),
            line_numbers: line_numbers.unbind(),
            errors: PyList::empty(py).unbind(),
            read: rows,
            written: 0,
            failure: None,
            failed_step: None,
            suspect: None,
            stopped_line: None,
            cells: None,
            owner: pipeline.address(),
        }
    }
}

/// The next batch, when the caller already holds it: its bytes and first line
/// number (see src/read_ahead.rs).
pub type Ahead<'a, 'py> = Option<(&'a Bound<'py, PyBytes>, u64)>;

/// One batch through the whole path. With `ahead` (and the numpy
/// preprocessor: reading into dicts needs the GIL), the next batch's text is
/// read on a second thread from now until the call that runs it.
#[allow(clippy::too_many_arguments)]
pub fn run_lines(
    pipeline: &Pipeline,
    py: Python<'_>,
    backend: &Bound<'_, PyAny>,
    data: &[u8],
    first_line: u64,
    allow_nan: bool,
    stop_at_suspect: bool,
    ahead: Ahead<'_, '_>,
) -> PyResult<BatchOutcome> {
    let mut start = Instant::now();
    let batch = match &pipeline.preprocess {
        Preprocess::Numpy(numpy, Some(text)) => {
            let limit = int_limit(py)?;
            let prepared = pipeline.ahead.take_for(py, data, first_line, limit);
            if prepared.is_some() {
                // Waiting for the pass is not reading: its own time counts.
                start = Instant::now();
            }
            if let Some((next, next_first_line)) = ahead {
                // A batch whose line numbers would overflow is refused when
                // it is run; nothing to read ahead then.
                if next_first_line
                    .checked_add(next.as_bytes().len() as u64)
                    .is_some()
                {
                    pipeline.ahead.start(py, text, limit, next, next_first_line);
                }
            }
            // The text reader's time counts whether it ran here or ahead.
            let scan_ahead_ns = prepared.as_ref().map_or(0, |s| s.scan_ns);
            let batch = read_array(
                py,
                data,
                first_line,
                text,
                numpy.get(),
                stop_at_suspect,
                prepared,
                limit,
            )?;
            (batch, scan_ahead_ns)
        }
        _ => (read_records(py, data, first_line)?, 0),
    };
    let (batch, scan_ahead_ns) = batch;
    let read_ns = elapsed_ns(start).saturating_add(scan_ahead_ns);
    let rows = batch.line_numbers.len();
    let mut outcome = BatchOutcome {
        output: PyBytes::new(py, b"").unbind(),
        line_numbers: batch.line_numbers.unbind(),
        errors: batch.errors.unbind(),
        read: batch.lines,
        written: 0,
        failure: None,
        failed_step: None,
        suspect: batch.handed_over_at.filter(|&at| at < rows),
        stopped_line: batch.stopped_line,
        cells: None,
        owner: pipeline.address(),
    };
    if batch.stopped_line.is_some() {
        outcome.cells = batch.cells;
        return Ok(outcome);
    }
    if rows == 0 {
        return Ok(outcome);
    }
    // Reading the array was the preprocess step: its time is that step's.
    let mut times = [None; 4];
    if batch.preprocessed {
        times[0] = Some(read_ns);
    }
    run_input(
        pipeline,
        backend,
        batch.input,
        rows,
        times,
        allow_nan,
        &mut outcome,
    )?;
    if outcome.failure.is_some() {
        // Kept for the search for the failing rows (`rerun`).
        outcome.cells = batch.cells;
    }
    Ok(outcome)
}

/// Rows already read into feature cells (a door's numeric tensors) through
/// the steps after preprocessing: the array is built from the cells as the
/// text reader builds it from the same numbers, so a row gives what its
/// JSON line would. The rows are numbered from `first_line`; a failed batch
/// keeps its cells for `rerun`. Only for the stock numpy preprocessor
/// reading `rows.columns` features (else a `ValueError`).
pub fn run_rows(
    pipeline: &Pipeline,
    py: Python<'_>,
    backend: &Bound<'_, PyAny>,
    rows: &FeatureRows,
    first_line: u64,
    allow_nan: bool,
) -> PyResult<BatchOutcome> {
    let columns = match &pipeline.preprocess {
        Preprocess::Numpy(_, Some(text)) => text.columns(),
        _ => {
            return Err(crate::errors::value_error(
                "this backend does not read feature arrays with the stock numpy preprocessor: \
                 give it JSON Lines",
            ))
        }
    };
    if rows.columns != columns {
        return Err(crate::errors::value_error(format!(
            "the rows have {} values each; the backend reads {columns} features",
            rows.columns
        )));
    }
    let n = rows.rows();
    let Some(last) = first_line.checked_add(n as u64) else {
        return Err(crate::errors::value_error(
            "the rows' line numbers would overflow",
        ));
    };
    let began = Instant::now();
    let any_int = rows.cells.iter().any(|c| matches!(c, Cell::Int(_)));
    let any_float = rows.cells.iter().any(|c| matches!(c, Cell::Float(_)));
    let input = cells_to_array(py, &rows.cells, n, columns, any_int, any_float);
    let times = [Some(elapsed_ns(began)), None, None, None];
    let numbers: Vec<u64> = (first_line..last).collect();
    let mut outcome = BatchOutcome::of_rows(pipeline, PyList::new(py, &numbers)?, n);
    if n == 0 {
        return Ok(outcome);
    }
    run_input(pipeline, backend, input, n, times, allow_nan, &mut outcome)?;
    if outcome.failure.is_some() {
        // Kept for the search for the failing rows (`rerun`).
        outcome.cells = Some(RowCells::new(rows.cells.clone(), columns, numbers));
    }
    Ok(outcome)
}

/// Rows `start..stop` of a failed (or stopped) batch run again, their feature
/// array built afresh from the cells the text reader read (no line read
/// again). None when the outcome kept no cells (see `BatchOutcome.can_rerun`).
pub fn rerun(
    pipeline: &Pipeline,
    py: Python<'_>,
    backend: &Bound<'_, PyAny>,
    failed: &BatchOutcome,
    start: usize,
    stop: usize,
    allow_nan: bool,
) -> PyResult<Option<BatchOutcome>> {
    let Some(cells) = &failed.cells else {
        return Ok(None);
    };
    if failed.owner != pipeline.address() {
        return Err(crate::errors::value_error(
            "the outcome is another pipeline's: rerun it with that one",
        ));
    }
    let began = Instant::now();
    let Some(input) = cells.array(py, start, stop) else {
        return Err(crate::errors::value_error(format!(
            "rows {start}..{stop} are not rows of this batch ({} rows)",
            cells.rows()
        )));
    };
    let times = [Some(elapsed_ns(began)), None, None, None];
    let line_numbers = PyList::new(py, cells.line_numbers(start, stop))?;
    let rows = stop - start;
    let mut outcome = BatchOutcome::of_rows(pipeline, line_numbers, rows);
    if rows > 0 {
        run_input(
            pipeline,
            backend,
            input,
            rows,
            times,
            allow_nan,
            &mut outcome,
        )?;
    }
    Ok(Some(outcome))
}

/// The steps, the check and the write for `rows` rows of `input`, into `outcome`.
fn run_input(
    pipeline: &Pipeline,
    backend: &Bound<'_, PyAny>,
    input: PyResult<Bound<'_, PyAny>>,
    rows: usize,
    times: [Option<u64>; 4],
    allow_nan: bool,
    outcome: &mut BatchOutcome,
) -> PyResult<()> {
    let py = backend.py();
    let input = match input {
        Ok(input) => input,
        Err(err) => {
            // The array was not built: the preprocess step did not complete.
            pipeline.step_stats().record(rows, &[None; 4]);
            let err = wrap_step_error(py, "preprocess", err);
            outcome.failure = Some(as_data(py, err));
            outcome.failed_step = Some("preprocess");
            return Ok(());
        }
    };
    let outputs = match pipeline.run_steps(backend, input, rows, times)? {
        Ok(outputs) => outputs,
        Err(failure) => {
            outcome.failure = Some(as_data(py, failure.err));
            outcome.failed_step = Some(failure.step.unwrap_or("run"));
            return Ok(());
        }
    };
    match check_and_dump(&outputs, rows, allow_nan) {
        Ok(bytes) => {
            outcome.output = bytes.unbind();
            outcome.written = rows;
        }
        Err(DumpError::Invalid(err)) => {
            outcome.failure = Some(as_data(py, err));
            outcome.failed_step = Some("validate");
        }
        Err(DumpError::Unwritable(err)) => {
            outcome.failure = Some(as_data(py, err));
            outcome.failed_step = Some("serialize");
        }
    }
    Ok(())
}

/// A failure kept as data (the outcome's `failure`): the exception without
/// its traceback, nor those of its cause and context. Only its type, text and
/// step are reported; a traceback would keep the hook's frame alive, and with
/// it the frames that called into Rust, whose locals hold this outcome: a
/// cycle per failed attempt, left to the collector's full passes. The walk
/// stops at the exception the caller is handling (the context of everything
/// raised while it is), which is the caller's, not ours to change.
fn as_data(py: Python<'_>, err: PyErr) -> Py<PyAny> {
    let value = err.into_value(py).into_any();
    let handled = py
        .import(intern!(py, "sys"))
        .and_then(|sys| sys.call_method0(intern!(py, "exc_info")))
        .and_then(|info| info.get_item(1))
        .ok()
        .filter(|e| !e.is_none());
    let mut todo = vec![value.bind(py).clone()];
    // A chain is one to three exceptions; the bound guards against cycles.
    for _ in 0..16 {
        let Some(exc) = todo.pop() else { break };
        if handled.as_ref().is_some_and(|h| h.is(&exc)) {
            continue;
        }
        // Setting `__traceback__` to None on an exception cannot fail.
        let _ = exc.setattr(intern!(py, "__traceback__"), py.None());
        for link in [intern!(py, "__cause__"), intern!(py, "__context__")] {
            if let Ok(next) = exc.getattr(link) {
                if !next.is_none() {
                    todo.push(next);
                }
            }
        }
    }
    value
}
