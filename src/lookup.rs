//! Nested field access by delimited path, compiled once (`FieldPath`) and applied
//! per record. Two semantics, both from Packflow 0.4:
//! - *direct*: a literal key first, else a walk through nested dicts by the path's
//!   parts; whatever sits there (a dict too) is the value.
//! - *flat*: a literal key first, else the value whose key in the flattened record
//!   (keys joined with the delimiter, lists not enumerated, empty dicts kept)
//!   equals the field; a non-empty dict is never such a value.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::{value_error, MAX_DEPTH};

/// A field name split into parts once, with its key objects made ahead of time
/// so lookups reuse their cached hashes.
pub struct FieldPath {
    pub field: Py<PyString>,
    pub text: String,
    pub delimiter: String,
    pub parts: Vec<Py<PyString>>,
    /// True when the field contains the delimiter (it is a nested path).
    pub nested: bool,
}

impl FieldPath {
    pub fn new(py: Python<'_>, field: &str, delimiter: &str) -> PyResult<Self> {
        if delimiter.is_empty() {
            return Err(value_error("the nested field delimiter must not be empty"));
        }
        let parts: Vec<Py<PyString>> = field
            .split(delimiter)
            .map(|p| PyString::intern(py, p).unbind())
            .collect();
        Ok(FieldPath {
            field: PyString::intern(py, field).unbind(),
            text: field.to_string(),
            delimiter: delimiter.to_string(),
            nested: parts.len() > 1,
            parts,
        })
    }
}

/// Literal key first, else walk the parts through nested dicts.
pub fn get_direct<'py>(
    obj: &Bound<'py, PyDict>,
    path: &FieldPath,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    if let Some(v) = obj.get_item(path.field.bind(py))? {
        return Ok(Some(v));
    }
    if !path.nested {
        return Ok(None);
    }
    let mut current: Bound<'py, PyAny> = obj.clone().into_any();
    for part in &path.parts {
        let Ok(d) = current.cast::<PyDict>() else {
            return Ok(None);
        };
        match d.get_item(part.bind(py))? {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// True when a flattened record would keep `v` as a value: anything but a
/// non-empty dict.
fn is_flat_leaf(v: &Bound<'_, PyAny>) -> bool {
    match v.cast::<PyDict>() {
        Ok(d) => d.is_empty(),
        Err(_) => true,
    }
}

/// Literal key first, else the flattened-path value (see the module docs).
pub fn get_flat<'py>(
    obj: &Bound<'py, PyDict>,
    path: &FieldPath,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    if let Some(v) = obj.get_item(path.field.bind(py))? {
        return Ok(Some(v));
    }
    if !path.nested {
        // A one-part field that is not a literal key can still be a flattened
        // key only through a non-str key whose text equals it; that needs a scan.
        return scan_flat(obj, &path.text, &path.delimiter);
    }
    // Fast path: the parts as plain keys, ending on a leaf.
    let mut current: Bound<'py, PyAny> = obj.clone().into_any();
    let mut walked = true;
    for part in &path.parts {
        let Ok(d) = current.cast::<PyDict>() else {
            walked = false;
            break;
        };
        match d.get_item(part.bind(py))? {
            Some(v) => current = v,
            None => {
                walked = false;
                break;
            }
        }
    }
    if walked && is_flat_leaf(&current) {
        return Ok(Some(current));
    }
    // Slow path for keys that themselves contain the delimiter or are not str.
    scan_flat(obj, &path.text, &path.delimiter)
}

/// Every way `rest` can be spelled by joined keys below `d`; more than one is the
/// reference's "duplicated key" error.
fn scan_flat<'py>(
    d: &Bound<'py, PyDict>,
    field: &str,
    delimiter: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let mut found: Option<Bound<'py, PyAny>> = None;
    scan_into(d, field, delimiter, true, 0, field, &mut found)?;
    Ok(found)
}

fn scan_into<'py>(
    d: &Bound<'py, PyDict>,
    rest: &str,
    delimiter: &str,
    top: bool,
    depth: usize,
    field: &str,
    found: &mut Option<Bound<'py, PyAny>>,
) -> PyResult<()> {
    if depth >= MAX_DEPTH {
        return Err(value_error(format!(
            "key \"{field}\": nesting deeper than {MAX_DEPTH} levels"
        )));
    }
    for (k, v) in d.iter() {
        let text: String = match k.cast::<PyString>() {
            Ok(s) => s.to_str()?.to_string(),
            // Top-level non-str keys stay as they are in a flattened record, so
            // they can never equal a str field; nested ones are joined as text.
            Err(_) if top => continue,
            Err(_) => k.str()?.to_str()?.to_string(),
        };
        if rest == text {
            if is_flat_leaf(&v) {
                if found.is_some() {
                    return Err(value_error(format!("duplicated key '{field}'")));
                }
                *found = Some(v);
            }
        } else if let Some(tail) = rest
            .strip_prefix(text.as_str())
            .and_then(|t| t.strip_prefix(delimiter))
        {
            if let Ok(child) = v.cast::<PyDict>() {
                if !child.is_empty() {
                    scan_into(child, tail, delimiter, false, depth + 1, field, found)?;
                }
            }
        }
    }
    Ok(())
}

/// Create nested dicts along the path and set the value; stop silently at a
/// non-dict on the way.
pub fn set_direct(
    obj: &Bound<'_, PyDict>,
    path: &FieldPath,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let py = obj.py();
    let (last, init) = path
        .parts
        .split_last()
        .expect("a split string has at least one part");
    let mut current = obj.clone();
    for part in init {
        let part = part.bind(py);
        match current.get_item(part)? {
            None => {
                let child = PyDict::new(py);
                current.set_item(part, &child)?;
                current = child;
            }
            Some(v) => match v.cast_into::<PyDict>() {
                Ok(child) => current = child,
                Err(_) => return Ok(()),
            },
        }
    }
    current.set_item(last.bind(py), value)
}
