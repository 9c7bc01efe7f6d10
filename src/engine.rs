//! The batch engine's one entry: a batch of raw JSON Lines in, its output
//! lines, bad lines and counts out, in one Rust call. Read (into records, or
//! straight into the numpy preprocessor's array) -> the backend's steps (the
//! hooks are the only Python) -> check the outputs and write them as JSON
//! Lines. When the steps or the check fail, the failure comes back as data
//! (the exception and where it happened), so the caller can split the batch
//! and find the rows at fault.

use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::jsonl::{read_array, read_records};
use crate::pipeline::{elapsed_ns, wrap_step_error, Pipeline, Preprocess};
use crate::validate::{check_and_dump, DumpError};

/// What one batch gave (see `_core.pyi`).
#[pyclass(module = "packflow._core", frozen, get_all)]
pub struct BatchOutcome {
    /// One JSON line per good input line, in order (empty when `failure`).
    output: Py<PyBytes>,
    /// The line number of each good (parsed) line.
    line_numbers: Py<PyList>,
    /// `(line number, raw line, message)` for each line that did not parse.
    errors: Py<PyList>,
    /// Non-blank lines seen.
    read: usize,
    /// Output lines written: the good lines, or 0 when the batch failed.
    written: usize,
    /// Why the good lines gave no output: the exception, or None.
    failure: Option<Py<PyAny>>,
    /// Where it happened: a step (`preprocess`, `transform_inputs`, `execute`,
    /// `transform_outputs`), `run` (the output was not a list), `validate`
    /// (the outputs break the output format) or `serialize` (a value JSON
    /// cannot hold).
    failed_step: Option<&'static str>,
}

#[pymethods]
impl BatchOutcome {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "BatchOutcome(read={}, written={}, errors={}, failed_step={:?})",
            self.read,
            self.written,
            self.errors.bind(py).len(),
            self.failed_step
        )
    }
}

pub fn run_lines(
    pipeline: &Pipeline,
    py: Python<'_>,
    backend: &Bound<'_, PyAny>,
    data: &[u8],
    first_line: u64,
    allow_nan: bool,
) -> PyResult<BatchOutcome> {
    let start = Instant::now();
    let batch = match &pipeline.preprocess {
        Preprocess::Numpy(numpy, Some(text)) => {
            read_array(py, data, first_line, text, numpy.get())?
        }
        _ => read_records(py, data, first_line)?,
    };
    let read_ns = elapsed_ns(start);
    let rows = batch.line_numbers.len();
    let mut outcome = BatchOutcome {
        output: PyBytes::new(py, b"").unbind(),
        line_numbers: batch.line_numbers.unbind(),
        errors: batch.errors.unbind(),
        read: batch.lines,
        written: 0,
        failure: None,
        failed_step: None,
    };
    if rows == 0 {
        return Ok(outcome);
    }
    // Reading the array was the preprocess step: its time is that step's.
    let mut times = [None; 4];
    let input = match batch.input {
        Ok(input) => {
            if batch.preprocessed {
                times[0] = Some(read_ns);
            }
            input
        }
        Err(err) => {
            pipeline.step_stats().record(rows, &times);
            outcome.failure = Some(
                wrap_step_error(py, "preprocess", err)
                    .into_value(py)
                    .into_any(),
            );
            outcome.failed_step = Some("preprocess");
            return Ok(outcome);
        }
    };
    let outputs = match pipeline.run_steps(backend, input, rows, times)? {
        Ok(outputs) => outputs,
        Err(failure) => {
            outcome.failure = Some(failure.err.into_value(py).into_any());
            outcome.failed_step = Some(failure.step.unwrap_or("run"));
            return Ok(outcome);
        }
    };
    match check_and_dump(&outputs, rows, allow_nan) {
        Ok(bytes) => {
            outcome.output = bytes.unbind();
            outcome.written = rows;
        }
        Err(DumpError::Invalid(err)) => {
            outcome.failure = Some(err.into_value(py).into_any());
            outcome.failed_step = Some("validate");
        }
        Err(DumpError::Unwritable(err)) => {
            outcome.failure = Some(err.into_value(py).into_any());
            outcome.failed_step = Some("serialize");
        }
    }
    Ok(outcome)
}
