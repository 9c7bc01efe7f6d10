//! Dicts: a size-checked walk over the entries, and keys converted to text as
//! json does (str as is; int, float, bool and None spelled as JSON).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use pyo3::Borrowed;

use super::writer::Emit;
use super::{value, Fault, SerError};
use crate::errors::{type_name, PathSegment, MAX_DEPTH};
use crate::ffi;

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
    let py = dict.py();
    let len = dict.len();
    let mut pos: ffi::Py_ssize_t = 0;
    let mut first = true;
    e.byte(b'{');
    loop {
        if dict.len() != len {
            return Err(Fault::Changed.into());
        }
        let mut key: *mut ffi::PyObject = std::ptr::null_mut();
        let mut val: *mut ffi::PyObject = std::ptr::null_mut();
        // SAFETY: `dict` is a live dict and the GIL is held (a Bound).
        // PyDict_Next bounds-checks `pos` against the current table, so it is
        // sound even if a callback modified the dict meanwhile.
        if unsafe { ffi::dict_next(dict.as_ptr(), &mut pos, &mut key, &mut val) } == 0 {
            break;
        }
        if !first {
            e.byte(b',');
        }
        first = false;
        // Common case without reference counting: a compact ASCII str key
        // and a plain scalar value. The dict holds both, and nothing below
        // runs Python code (str_key only reads the key, adds a reference to
        // it for its cache and may drop an evicted key, which the cache only
        // holds for exact strs, whose deallocation runs no Python code), so
        // the borrowed pointers stay valid.
        // SAFETY: `key` and `val` are live (borrowed from the dict just now).
        let fast = unsafe { ffi::PyUnicode_CheckExact(key) != 0 && ffi::is_compact_ascii(key) };
        if fast {
            // SAFETY: as above; the Borrowed does not outlive this iteration.
            // The type was checked just above.
            let k = unsafe { Borrowed::from_ptr(py, key).cast_unchecked::<PyString>() };
            e.str_key(&k)?;
            // SAFETY: as above (live, GIL held).
            match unsafe { super::plain_scalar(e, val) } {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => {
                    // A Rust-side error only: no Python code ran since the
                    // lookup, so `key` is still the dict's; own it now.
                    let k = k.to_owned();
                    return Err(SerError::from(err).at(PathSegment::Key(key_text(k.as_any()))));
                }
            }
            // Any other value: owned references from here, as it may run
            // Python code. Still the dict's: nothing ran since the lookup.
            let k = k.to_owned();
            // SAFETY: as above.
            let v = unsafe { Bound::from_borrowed_ptr(py, val) };
            value(e, &v, depth + 1)
                .map_err(|err| err.at(PathSegment::Key(key_text(k.as_any()))))?;
            continue;
        }
        // SAFETY: live borrowed pointers, turned into owned references before
        // any other code runs (a callback below may change the dict).
        let (k, v) = unsafe {
            (
                Bound::from_borrowed_ptr(py, key),
                Bound::from_borrowed_ptr(py, val),
            )
        };
        write_key(e, &k).map_err(|err| err.at(PathSegment::Key(key_text(&k))))?;
        value(e, &v, depth + 1).map_err(|err| err.at(PathSegment::Key(key_text(&k))))?;
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
