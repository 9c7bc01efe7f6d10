//! The I/O checks behind `check_io`: inputs are a list of dicts; outputs are a
//! list of dicts, one per input, each JSON-serializable; declared output keys
//! that no row has.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::errors::{type_error, type_name, type_repr, validation_error};
use crate::serialize;
use crate::serialize::writer::JsonWriter;

/// Inputs must be a list (or list subclass) of dicts.
#[pyfunction]
pub fn check_inputs(inputs: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = inputs.py();
    let list = inputs.cast::<PyList>().map_err(|_| {
        validation_error(
            py,
            format!(
                "Production inputs will be in a list format. Input type received was {}",
                type_repr(inputs)
            ),
        )
    })?;
    for (i, item) in list.iter().enumerate() {
        if !item.is_instance_of::<PyDict>() {
            return Err(validation_error(
                py,
                format!(
                    "Value at index {i} is not a dictionary. Type found was {}",
                    type_repr(&item)
                ),
            ));
        }
    }
    Ok(())
}

/// In the order the reference checks them: as many outputs as inputs, a list,
/// every row a dict, every row JSON-serializable. One pass over the rows: the
/// first serializability failure is kept until every row has been seen to be a
/// dict, since a non-dict row anywhere is reported first.
#[pyfunction]
pub fn check_outputs(outputs: &Bound<'_, PyAny>, n_inputs: usize) -> PyResult<()> {
    let list = output_list(outputs, n_inputs)?;
    check_rows(&list)
}

/// `check_outputs`, then the rows as JSON Lines (`dumps_lines(outputs,
/// allow_nan=allow_nan)`), in one pass over the rows: each row is checked by
/// writing it. On any failure the rows are checked again, so the error is the
/// one `check_outputs` raises; if they pass (NaN without `allow_nan`, a lone
/// surrogate), the writer's own error is raised, as `dumps_lines` raises it.
#[pyfunction]
#[pyo3(signature = (outputs, n_inputs, *, allow_nan = false))]
pub fn check_and_dump_lines<'py>(
    outputs: &Bound<'py, PyAny>,
    n_inputs: usize,
    allow_nan: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    check_and_dump(outputs, n_inputs, allow_nan).map_err(DumpError::into_err)
}

/// Why `check_and_dump` failed: the rows break packflow's output format
/// (`InferenceBackendValidationError`), or they pass it but the writer
/// refused a value (NaN without `allow_nan`, a lone surrogate).
pub enum DumpError {
    Invalid(PyErr),
    Unwritable(PyErr),
}

impl DumpError {
    pub fn into_err(self) -> PyErr {
        match self {
            DumpError::Invalid(e) | DumpError::Unwritable(e) => e,
        }
    }
}

/// `check_and_dump_lines` with its two kinds of failure told apart.
pub fn check_and_dump<'py>(
    outputs: &Bound<'py, PyAny>,
    n_inputs: usize,
    allow_nan: bool,
) -> Result<Bound<'py, PyBytes>, DumpError> {
    let py = outputs.py();
    let list = output_list(outputs, n_inputs).map_err(DumpError::Invalid)?;
    let n = list.len();
    let mut w = JsonWriter::for_bytes(py, allow_nan, 256);
    for (i, row) in list.iter().enumerate() {
        let written = if row.is_instance_of::<PyDict>() {
            serialize::value(&mut w, &row, 0)
        } else {
            Err(serialize::Fault::Unsupported(type_name(&row)).into())
        };
        if let Err(err) = written {
            return Err(failed_write(&list, err, i));
        }
        w.push(b'\n');
        if i == 0 && n > 1 {
            w.size_for_rows(n);
        }
    }
    w.into_bytes(py).map_err(DumpError::Unwritable)
}

/// The error of a failed `check_and_dump`: `check_outputs`' own if the
/// rows fail it, else the writer's.
#[cold]
#[inline(never)]
fn failed_write(list: &Bound<'_, PyList>, err: serialize::SerError, row: usize) -> DumpError {
    match check_rows(list) {
        Err(checked) => DumpError::Invalid(checked),
        Ok(()) => DumpError::Unwritable(err.into_pyerr(list.py(), Some(row))),
    }
}

/// `outputs` as a list of `n_inputs` items, or the validation error saying why not.
fn output_list<'py>(outputs: &Bound<'py, PyAny>, n_inputs: usize) -> PyResult<Bound<'py, PyList>> {
    let py = outputs.py();
    let n_outputs = outputs.len().map_err(|_| {
        validation_error(
            py,
            format!(
                "Outputs must be a list with one dict per input; got {}, which has no length \
                 ({n_inputs} inputs)",
                type_name(outputs)
            ),
        )
    })?;
    if n_outputs != n_inputs {
        return Err(validation_error(
            py,
            format!(
                "Inputs and Outputs must have matching lengths. Received {n_inputs} inputs and \
                 returned {n_outputs} outputs."
            ),
        ));
    }
    outputs.cast::<PyList>().cloned().map_err(|_| {
        validation_error(
            py,
            format!(
                "Outputs must be a Python list of dicts. Type returned was {}",
                type_name(outputs)
            ),
        )
    })
}

/// Every row a dict, then every row serializable.
fn check_rows(list: &Bound<'_, PyList>) -> PyResult<()> {
    let py = list.py();
    let mut unserializable: Option<(usize, serialize::SerError)> = None;
    for (i, row) in list.iter().enumerate() {
        if !row.is_instance_of::<PyDict>() {
            return Err(validation_error(
                py,
                format!(
                    "Outputs must be a list of dictionaries. Value at index {i} is not a \
                     dictionary. Type found was {}",
                    type_repr(&row)
                ),
            ));
        }
        if unserializable.is_none() {
            if let Err(err) = serialize::check(&row) {
                unserializable = Some((i, err));
            }
        }
    }
    match unserializable {
        None => Ok(()),
        Some((i, err)) => {
            // Packflow 0.4's message (json.dumps's reason after "Error: "), then where.
            let loc = err.location(None);
            let at = if loc.is_empty() {
                String::new()
            } else {
                format!(" ({loc})")
            };
            Err(validation_error(
                py,
                format!(
                    "Value at index {i} is not JSON Serializable. Please ensure returned values \
                     are native Python types. Error: {}{at}",
                    err.reason()
                ),
            ))
        }
    }
}

/// The declared keys no output row has, sorted and without repeats.
#[pyfunction]
pub fn missing_keys(outputs: &Bound<'_, PyList>, declared: Vec<String>) -> PyResult<Vec<String>> {
    let py = outputs.py();
    let mut rows = Vec::with_capacity(outputs.len());
    for (i, row) in outputs.iter().enumerate() {
        match row.cast_into::<PyDict>() {
            Ok(d) => rows.push(d),
            Err(err) => {
                return Err(type_error(format!(
                    "missing_keys: output at index {i} is not a dict (type {})",
                    type_name(&err.into_inner())
                )))
            }
        }
    }
    let mut declared = declared;
    declared.sort();
    declared.dedup();
    let mut missing = Vec::new();
    for key in declared {
        let key_obj = PyString::new(py, &key);
        let mut found = false;
        for row in &rows {
            if row.contains(&key_obj)? {
                found = true;
                break;
            }
        }
        if !found {
            missing.push(key);
        }
    }
    Ok(missing)
}
