//! Single-record field access, Packflow 0.4's `packflow.utils` helpers: a
//! nested field read with flat or direct semantics, and written along its path.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::{type_error, type_name, value_error};
use crate::lookup::{get_direct_once, get_flat, set_direct_once, FieldPath};

/// The reference's error type for a non-dict: flattening rejects a container
/// (ValueError), `in` rejects anything else (TypeError).
fn not_a_dict_for_flat(func: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let ty = obj.get_type();
    let container = ["__contains__", "__iter__", "__getitem__"]
        .iter()
        .any(|n| ty.hasattr(*n).unwrap_or(false));
    let msg = format!("{func} expects a dict, got {}", type_name(obj));
    if container {
        value_error(msg)
    } else {
        type_error(msg)
    }
}

fn expect_dict<'a, 'py>(
    func: &str,
    obj: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyDict>> {
    obj.cast::<PyDict>()
        .map_err(|_| type_error(format!("{func} expects a dict, got {}", type_name(obj))))
}

fn expect_str<'a, 'py>(
    func: &str,
    field: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyString>> {
    field.cast::<PyString>().map_err(|_| {
        type_error(format!(
            "{func}: the field must be a str, got {}",
            type_name(field)
        ))
    })
}

/// `obj[field]`, else the value at `field` in the flattened `obj` (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (obj, field, delimiter=None))]
pub fn get_nested_field<'py>(
    obj: &Bound<'py, PyAny>,
    field: &Bound<'py, PyAny>,
    delimiter: Option<&str>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    let d = obj
        .cast::<PyDict>()
        .map_err(|_| not_a_dict_for_flat("get_nested_field", obj))?;
    if let Some(v) = d.get_item(field)? {
        return Ok(Some(v));
    }
    // A non-str field can only be a top-level key, which was just looked up.
    let Ok(f) = field.cast::<PyString>() else {
        return Ok(None);
    };
    let delimiter = delimiter.filter(|s| !s.is_empty()).unwrap_or(".");
    // Without the delimiter, only a key below a `None` key can still spell it.
    if !f.to_str()?.contains(delimiter) && d.get_item(py.None())?.is_none() {
        return Ok(None);
    }
    get_flat(d, &FieldPath::transient(f, delimiter)?, None)
}

/// `obj[field]`, else the walk of the field's parts through nested dicts (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (obj, field, delimiter="."))]
pub fn get_nested_field_direct<'py>(
    obj: &Bound<'py, PyAny>,
    field: &Bound<'py, PyAny>,
    delimiter: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let d = expect_dict("get_nested_field_direct", obj)?;
    match field.cast::<PyString>() {
        Ok(f) => get_direct_once(d, f, delimiter),
        // A non-str field can still be a literal key; it cannot be a path.
        Err(_) => match d.get_item(field)? {
            Some(v) => Ok(Some(v)),
            None => expect_str("get_nested_field_direct", field).map(|_| None),
        },
    }
}

/// Sets `value` at the field's path, creating dicts on the way (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (obj, field, value, delimiter="."))]
pub fn set_nested_field_direct(
    obj: &Bound<'_, PyAny>,
    field: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    delimiter: &str,
) -> PyResult<()> {
    let d = expect_dict("set_nested_field_direct", obj)?;
    let f = expect_str("set_nested_field_direct", field)?;
    set_direct_once(d, f, delimiter, value)
}
