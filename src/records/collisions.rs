//! Keys containing the nested-path delimiter: the full report
//! (`check_delimiter_collisions`) and the cheap per-record check the direct
//! mode of a plan runs first.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::Borrowed;

use crate::errors::{type_error, type_name, MAX_DEPTH};
use crate::ffi;
use crate::walk::{
    bytes_to_str, key_bytes, key_segment, str_bytes, DictItems, Problem, TraverseError,
};

/// Appends to `out` the full path of every key containing the delimiter,
/// recursing into dict values. `buf` holds the current path; while it is empty
/// a path is the key object itself (the reference's `if path` test).
fn collisions_into(
    d: &Bound<'_, PyDict>,
    delimiter: &Needle,
    buf: &mut Vec<u8>,
    out: &Bound<'_, PyList>,
    depth: usize,
) -> Result<(), TraverseError> {
    let py = d.py();
    let mut items = DictItems::new(d);
    for (k, v) in &mut items {
        let Ok(s) = k.cast::<PyString>() else {
            return Err(
                TraverseError::new(Problem::NonStrKey(type_name(&k))).within(key_segment(&k))
            );
        };
        let at = |e: PyErr| TraverseError::from(e).within(key_segment(&k));
        let base = buf.len();
        let raw = buf.is_empty();
        if !raw {
            buf.extend_from_slice(delimiter.bytes());
        }
        buf.extend_from_slice(&key_bytes(&k).map_err(at)?);
        if delimiter.found_in(&str_bytes(s).map_err(at)?) {
            if raw {
                out.append(&k)?;
            } else {
                out.append(bytes_to_str(py, buf)?)?;
            }
        }
        if let Ok(child) = v.cast::<PyDict>() {
            if depth + 1 >= MAX_DEPTH {
                buf.truncate(base);
                return Err(TraverseError::new(Problem::TooDeep).within(key_segment(&k)));
            }
            let res = collisions_into(child, delimiter, buf, out, depth + 1);
            if let Err(e) = res {
                buf.truncate(base);
                return Err(e.within(key_segment(&k)));
            }
        }
        buf.truncate(base);
    }
    items.check()?;
    Ok(())
}

/// True when no key below `d` contains the delimiter, all keys are str and the
/// nesting is within the limit; anything else goes to `collisions` for the
/// exact report. No paths are built on this, the per-record, pass.
pub(super) fn is_clean(d: &Bound<'_, PyDict>, needle: &Needle, depth: usize) -> bool {
    if depth >= MAX_DEPTH {
        return false;
    }
    let mut pos: ffi::Py_ssize_t = 0;
    let mut k: *mut ffi::PyObject = std::ptr::null_mut();
    let mut v: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: `d` is a live dict and we hold the GIL (the `Bound`). The loop runs
    // no Python code (type-flag checks, reading a str's character data,
    // recursion into dicts), so nothing can mutate or free `d` or its items
    // while the borrowed references from PyDict_Next are in use; none outlives
    // its iteration. Skipping the reference counting of every key and value is
    // what makes this per-record check cheap.
    while unsafe { ffi::PyDict_Next(d.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
        if unsafe { ffi::PyUnicode_Check(k) } == 0 {
            return false;
        }
        // SAFETY: `k` is a live str (checked above), GIL held.
        match unsafe { needle.found_in_str(k) } {
            Some(false) => {}
            Some(true) | None => return false,
        }
        if unsafe { ffi::PyDict_Check(v) } != 0 {
            // SAFETY: `v` is a live dict, borrowed from `d` for this iteration.
            let child = unsafe { Borrowed::from_ptr(d.py(), v) };
            // SAFETY: PyDict_Check passed.
            let child = unsafe { child.cast_unchecked::<PyDict>() };
            if !is_clean(&child, needle, depth + 1) {
                return false;
            }
        }
    }
    true
}

/// The delimiter as searched for in every key: a single byte goes to memchr.
/// UTF-8 is self-synchronising, so a byte search finds exactly the text matches.
pub(super) enum Needle {
    Byte([u8; 1]),
    /// One non-ASCII character (its UTF-8 bytes and its code point).
    Char(Vec<u8>, u32),
    Text(Vec<u8>),
}

impl Needle {
    pub(super) fn new(delimiter: &str) -> Self {
        let mut chars = delimiter.chars();
        match (delimiter.as_bytes(), chars.next(), chars.next()) {
            ([b], _, _) => Needle::Byte([*b]),
            (b, Some(c), None) => Needle::Char(b.to_vec(), c as u32),
            (b, _, _) => Needle::Text(b.to_vec()),
        }
    }

    /// Whether the str `k` contains the delimiter, read from its character
    /// data in place (no UTF-8 copy is made); None when that is not possible
    /// here (a delimiter of several characters, a not-ready legacy str).
    ///
    /// # Safety
    /// `k` must be a live str object and the GIL held.
    #[inline]
    unsafe fn found_in_str(&self, k: *mut ffi::PyObject) -> Option<bool> {
        let c = match self {
            Needle::Byte([b]) => u32::from(*b),
            Needle::Char(_, c) => *c,
            Needle::Text(_) => return None,
        };
        Some(match ffi::str_code_units(k)? {
            ffi::CodeUnits::One(units) => c < 0x100 && units.contains(&(c as u8)),
            ffi::CodeUnits::Two(units) => c < 0x1_0000 && units.contains(&(c as u16)),
            ffi::CodeUnits::Four(units) => units.contains(&c),
        })
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Needle::Byte(b) => b,
            Needle::Char(t, _) | Needle::Text(t) => t,
        }
    }

    fn found_in(&self, text: &[u8]) -> bool {
        match self {
            Needle::Byte([b]) => text.contains(b),
            Needle::Char(t, _) | Needle::Text(t) => {
                t.is_empty() || text.windows(t.len()).any(|w| w == t.as_slice())
            }
        }
    }
}

pub(super) fn collisions<'py>(
    d: &Bound<'py, PyDict>,
    delimiter: &str,
    path: &str,
) -> Result<Bound<'py, PyList>, TraverseError> {
    let out = PyList::empty(d.py());
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(path.as_bytes());
    collisions_into(d, &Needle::new(delimiter), &mut buf, &out, 0)?;
    Ok(out)
}

/// Full paths of the keys containing the delimiter (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (obj, delimiter, path=None))]
pub fn check_delimiter_collisions<'py>(
    obj: &Bound<'py, PyAny>,
    delimiter: &str,
    path: Option<&str>,
) -> PyResult<Bound<'py, PyList>> {
    let d = obj.cast::<PyDict>().map_err(|_| {
        type_error(format!(
            "check_delimiter_collisions expects a dict, got {}",
            type_name(obj)
        ))
    })?;
    collisions(d, delimiter, path.unwrap_or("")).map_err(|e| e.into_pyerr(obj.py(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collisions_list_full_paths() {
        Python::initialize();
        Python::attach(|py| {
            let obj = py
                .eval(
                    c"{'x': {'a.b': {'c.d': 1}}, 'l': [{'e.f': 1}], '': {'g.h': 2}}",
                    None,
                    None,
                )
                .unwrap();
            let found = collisions(obj.cast::<PyDict>().unwrap(), ".", "")
                .ok()
                .unwrap();
            assert_eq!(
                found.repr().unwrap().to_string(),
                "['x.a.b', 'x.a.b.c.d', 'g.h']"
            );
            let found = collisions(obj.cast::<PyDict>().unwrap(), ".", "p")
                .ok()
                .unwrap();
            assert_eq!(
                found.repr().unwrap().to_string(),
                "['p.x.a.b', 'p.x.a.b.c.d', 'p..g.h']"
            );
        });
    }
}
