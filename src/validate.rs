//! The I/O checks behind `check_io`: inputs are a list of dicts; outputs are a
//! list of dicts, one per input, each JSON-serializable; declared output keys
//! that no row has.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::errors::{type_error, type_name, validation_error};
use crate::serialize;

/// Inputs must be a list (or list subclass) of dicts.
#[pyfunction]
pub fn check_inputs(inputs: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = inputs.py();
    let list = inputs.cast::<PyList>().map_err(|_| {
        validation_error(
            py,
            format!(
                "Inputs must be a list of dicts (a batch of records). Type received was {}",
                type_name(inputs)
            ),
        )
    })?;
    for (i, item) in list.iter().enumerate() {
        if !item.is_instance_of::<PyDict>() {
            return Err(validation_error(
                py,
                format!(
                    "Value at index {i} is not a dictionary. Type found was {}",
                    type_name(&item)
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
                "Inputs and outputs must have matching lengths: received {n_inputs} inputs and \
                 returned {n_outputs} outputs"
            ),
        ));
    }
    let list = outputs.cast::<PyList>().map_err(|_| {
        validation_error(
            py,
            format!(
                "Outputs must be a Python list of dicts. Type returned was {}",
                type_name(outputs)
            ),
        )
    })?;
    let mut unserializable: Option<(usize, serialize::SerError)> = None;
    for (i, row) in list.iter().enumerate() {
        if !row.is_instance_of::<PyDict>() {
            return Err(validation_error(
                py,
                format!(
                    "Outputs must be a list of dictionaries. Value at index {i} is not a \
                     dictionary. Type found was {}",
                    type_name(&row)
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
            let loc = err.location(None);
            let detail = if loc.is_empty() {
                err.reason()
            } else {
                format!("{loc}: {}", err.reason())
            };
            Err(validation_error(
                py,
                format!(
                    "Value at index {i} is not JSON serializable: {detail}. Return native Python \
                     types (dict, list, str, int, float, bool, None) or numpy numbers/arrays"
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
