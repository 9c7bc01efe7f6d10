//! Dicts: a size-checked walk over the entries, and keys converted to text as
//! json does (str as is; int, float, bool and None spelled as JSON).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use super::writer::Emit;
use super::{value, Fault, SerError};
use crate::errors::{type_name, PathSegment, MAX_DEPTH};

/// The entries of a dict (or dict subclass, by its storage). Unlike pyo3's
/// iterator it never panics: a dict that changes size while a callback runs
/// ends the walk and `changed()` reports it.
pub struct DictItems<'py> {
    dict: Bound<'py, PyDict>,
    pos: ffi::Py_ssize_t,
    len: usize,
    changed: bool,
}

impl<'py> DictItems<'py> {
    pub fn new(dict: &Bound<'py, PyDict>) -> Self {
        DictItems {
            dict: dict.clone(),
            pos: 0,
            len: dict.len(),
            changed: false,
        }
    }

    /// Whether the dict changed size during the walk (the walk then stopped early).
    pub fn changed(&self) -> bool {
        self.changed
    }
}

impl<'py> Iterator for DictItems<'py> {
    type Item = (Bound<'py, PyAny>, Bound<'py, PyAny>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.dict.len() != self.len {
            self.changed = true;
            return None;
        }
        let py = self.dict.py();
        let mut key: *mut ffi::PyObject = std::ptr::null_mut();
        let mut val: *mut ffi::PyObject = std::ptr::null_mut();
        // SAFETY: `dict` is a live dict (we own a reference) and the GIL is held
        // (`py`). PyDict_Next bounds-checks `pos` against the current table, so
        // it is sound even if a callback modified the dict; the borrowed key and
        // value are turned into owned references before any other code runs.
        unsafe {
            if ffi::PyDict_Next(self.dict.as_ptr(), &mut self.pos, &mut key, &mut val) == 0 {
                return None;
            }
            Some((
                Bound::from_borrowed_ptr(py, key),
                Bound::from_borrowed_ptr(py, val),
            ))
        }
    }
}

/// The key as it shows in a key path.
pub fn key_text(key: &Bound<'_, PyAny>) -> String {
    match key.cast::<PyString>() {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => key
            .repr()
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "?".into()),
    }
}

pub fn write_dict<E: Emit>(
    e: &mut E,
    dict: &Bound<'_, PyDict>,
    depth: usize,
) -> Result<(), SerError> {
    if depth >= MAX_DEPTH {
        return Err(Fault::TooDeep.into());
    }
    e.byte(b'{');
    let mut items = DictItems::new(dict);
    let mut first = true;
    for (k, v) in &mut items {
        if !first {
            e.byte(b',');
        }
        first = false;
        write_key(e, &k).map_err(|err| err.at(PathSegment::Key(key_text(&k))))?;
        value(e, &v, depth + 1).map_err(|err| err.at(PathSegment::Key(key_text(&k))))?;
    }
    if items.changed() {
        return Err(Fault::Changed.into());
    }
    e.byte(b'}');
    Ok(())
}

/// A key and its `:`, converted as json.dumps does: str as is, numbers quoted,
/// `true`/`false`/`null` quoted.
#[inline]
fn write_key<E: Emit>(e: &mut E, key: &Bound<'_, PyAny>) -> Result<(), SerError> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(e.str_key(s)?);
    }
    write_other_key(e, key)?;
    e.byte(b':');
    Ok(())
}

#[inline(never)]
fn write_other_key<E: Emit>(e: &mut E, key: &Bound<'_, PyAny>) -> Result<(), SerError> {
    if let Ok(f) = key.cast::<PyFloat>() {
        e.byte(b'"');
        e.f64(f.value())?;
        e.byte(b'"');
        return Ok(());
    }
    if let Ok(b) = key.cast_exact::<PyBool>() {
        e.raw(if b.is_true() {
            b"\"true\""
        } else {
            b"\"false\""
        });
        return Ok(());
    }
    if key.is_none() {
        e.raw(b"\"null\"");
        return Ok(());
    }
    if let Ok(i) = key.cast::<PyInt>() {
        e.byte(b'"');
        super::int_value(e, i, i.is_exact_instance_of::<PyInt>())?;
        e.byte(b'"');
        return Ok(());
    }
    Err(Fault::Key(type_name(key)).into())
}
