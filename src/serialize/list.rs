//! Lists and tuples, written as JSON arrays.

use crate::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::writer::Emit;
use super::{value, Fault, SerError};
use crate::errors::{PathSegment, MAX_DEPTH};

pub fn write_list<E: Emit>(
    e: &mut E,
    list: &Bound<'_, PyList>,
    depth: usize,
) -> Result<(), SerError> {
    if depth >= MAX_DEPTH {
        return Err(Fault::TooDeep.into());
    }
    let py = list.py();
    e.byte(b'[');
    // The length is re-read at each step, so a list that shrinks under a
    // callback is walked safely.
    let mut i = 0;
    while i < list.len() {
        if i > 0 {
            e.byte(b',');
        }
        // SAFETY: the GIL is held and `i` is below the current length; the
        // item is borrowed from the list, which holds it while no Python
        // code runs.
        let item = unsafe { ffi::PyList_GET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t) };
        // SAFETY: `item` is live (see above); plain_scalar runs no Python code.
        match unsafe { super::plain_scalar(e, item) } {
            Ok(true) => {}
            Ok(false) => {
                // SAFETY: still the list's (nothing ran since the read); owned
                // from here, as writing it may run Python code.
                let item = unsafe { Bound::from_borrowed_ptr(py, item) };
                value(e, &item, depth + 1).map_err(|err| err.at(PathSegment::Index(i)))?;
            }
            Err(err) => return Err(SerError::from(err).at(PathSegment::Index(i))),
        }
        i += 1;
    }
    e.byte(b']');
    Ok(())
}

pub fn write_tuple<E: Emit>(
    e: &mut E,
    tuple: &Bound<'_, PyTuple>,
    depth: usize,
) -> Result<(), SerError> {
    write_items(e, tuple.iter(), depth)
}

#[inline]
fn write_items<'py, E: Emit>(
    e: &mut E,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> Result<(), SerError> {
    if depth >= MAX_DEPTH {
        return Err(Fault::TooDeep.into());
    }
    e.byte(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            e.byte(b',');
        }
        value(e, &item, depth + 1).map_err(|err| err.at(PathSegment::Index(i)))?;
    }
    e.byte(b']');
    Ok(())
}
