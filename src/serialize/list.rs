//! Lists and tuples, written as JSON arrays.

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
    // pyo3's list iterator re-reads the length at each step, so a list that
    // shrinks under a callback is walked safely.
    write_items(e, list.iter(), depth)
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
