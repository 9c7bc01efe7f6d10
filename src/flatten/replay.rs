//! Flattening by a template: a record of the same shape as the last one
//! flattened afresh is flattened by copying that record's result and setting
//! the new values by the template's keys, with no key text built (see
//! `Flattener`).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::ffi;
use crate::walk::{classify, Node};

/// A record flattened afresh, kept to flatten the next records of its shape.
pub(super) struct Template {
    pub(super) dict: Py<PyDict>,
    pub(super) keys: Vec<Py<PyAny>>,
    pub(super) shape: Vec<ShapeStep>,
    pub(super) len: usize,
    pub(super) lists: bool,
}

/// One item of a template record, in depth-first order.
pub(super) struct ShapeStep {
    /// The dict key object (kept alive so its identity stays meaningful);
    /// None for a list item, whose index its position fixes.
    pub(super) key: Option<Py<PyAny>>,
    pub(super) kind: StepKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum StepKind {
    Leaf,
    EmptyDict,
    EmptyList,
    Dict(usize),
    List(usize),
}

/// The record flattened by the template, or None when its shape differs (or
/// anything at all goes wrong: the fresh build then reports it properly).
pub(super) fn replay_record<'py>(
    py: Python<'py>,
    t: &Template,
    obj: &Bound<'py, PyDict>,
) -> Option<Bound<'py, PyDict>> {
    if obj.len() != t.len {
        return None;
    }
    let out = t.dict.bind(py).copy().ok()?;
    let mut pos = 0;
    let mut leaf = 0;
    if !replay(t, &out, obj.as_any(), &mut pos, &mut leaf) {
        return None;
    }
    (pos == t.shape.len() && leaf == t.keys.len()).then_some(out)
}

/// A value's step kind by type checks alone (no Python code runs); None when
/// only `classify` can tell.
///
/// # Safety
/// `v` must be a live object and the GIL held.
#[inline]
unsafe fn quick_kind(v: *mut ffi::PyObject, lists: bool) -> Option<StepKind> {
    if ffi::PyDict_Check(v) != 0 {
        let n = ffi::PyDict_Size(v);
        return Some(if n == 0 {
            StepKind::EmptyDict
        } else {
            StepKind::Dict(n as usize)
        });
    }
    if ffi::PyList_Check(v) != 0 {
        if !lists {
            return Some(StepKind::Leaf);
        }
        let n = ffi::PyList_GET_SIZE(v);
        return Some(if n == 0 {
            StepKind::EmptyList
        } else {
            StepKind::List(n as usize)
        });
    }
    if v == ffi::Py_None()
        || ffi::PyUnicode_Check(v) != 0
        || ffi::PyLong_Check(v) != 0
        || ffi::PyFloat_Check(v) != 0
        || ffi::PyTuple_Check(v) != 0
        || ffi::PyBytes_Check(v) != 0
    {
        return Some(StepKind::Leaf);
    }
    None
}

/// Same key for a template: the same object, or equal exact strs (a record's
/// top-level keys are its own objects; the copy keeps the template's, equal ones).
///
/// # Safety
/// Both must be live objects and the GIL held.
#[inline]
unsafe fn same_key_ptr(expected: *mut ffi::PyObject, key: *mut ffi::PyObject) -> bool {
    expected == key || (ffi::PyUnicode_CheckExact(expected) != 0 && ffi::same_text(key, expected))
}

/// One item of the record being replayed; false at the first difference.
///
/// # Safety
/// `key` (when given) and `v` must be live, the GIL held; `container` is the
/// dict or list they were borrowed from, and `len` its item count.
unsafe fn replay_item<'py>(
    t: &Template,
    out: &Bound<'py, PyDict>,
    (container, len): (*mut ffi::PyObject, ffi::Py_ssize_t),
    key: Option<*mut ffi::PyObject>,
    v: *mut ffi::PyObject,
    pos: &mut usize,
    leaf: &mut usize,
) -> bool {
    let py = out.py();
    let Some(step) = t.shape.get(*pos) else {
        return false;
    };
    *pos += 1;
    match (&step.key, key) {
        (Some(e), Some(k)) if same_key_ptr(e.as_ptr(), k) => {}
        (None, None) => {}
        _ => return false,
    }
    // An owned reference from here: the slow classification may run Python code.
    let value = Bound::from_borrowed_ptr(py, v);
    let kind = match quick_kind(v, t.lists) {
        Some(kind) => kind,
        None => {
            match classify(&value, t.lists) {
                Ok(Node::Leaf) => {}
                _ => return false,
            }
            // Python code ran: give up if it changed the container.
            let now = if ffi::PyDict_Check(container) != 0 {
                ffi::PyDict_Size(container)
            } else {
                ffi::PyList_GET_SIZE(container)
            };
            if now != len {
                return false;
            }
            StepKind::Leaf
        }
    };
    if kind != step.kind {
        return false;
    }
    match kind {
        StepKind::Dict(_) | StepKind::List(_) => replay(t, out, &value, pos, leaf),
        _ => {
            let Some(k) = t.keys.get(*leaf) else {
                return false;
            };
            *leaf += 1;
            if ffi::PyDict_SetItem(out.as_ptr(), k.as_ptr(), value.as_ptr()) != 0 {
                drop(PyErr::fetch(py));
                return false;
            }
            true
        }
    }
}

/// Replays a dict or list (`node`) against the template's shape from `pos`,
/// setting each leaf into `out` by the template's keys.
fn replay<'py>(
    t: &Template,
    out: &Bound<'py, PyDict>,
    node: &Bound<'py, PyAny>,
    pos: &mut usize,
    leaf: &mut usize,
) -> bool {
    let c = node.as_ptr();
    // SAFETY: the GIL is held and `node` is owned for the whole loop. Keys and
    // values are borrowed from it; `replay_item` uses the key only before any
    // Python code can run and takes its own reference to the value first.
    // PyDict_Next bounds-checks every step, so even a container changed by
    // such code is read safely (and `replay_item` then gives up).
    unsafe {
        if ffi::PyDict_Check(c) != 0 {
            let len = ffi::PyDict_Size(c);
            let mut p: ffi::Py_ssize_t = 0;
            let mut k: *mut ffi::PyObject = std::ptr::null_mut();
            let mut v: *mut ffi::PyObject = std::ptr::null_mut();
            while ffi::PyDict_Next(c, &mut p, &mut k, &mut v) != 0 {
                if !replay_item(t, out, (c, len), Some(k), v, pos, leaf) {
                    return false;
                }
            }
            ffi::PyDict_Size(c) == len
        } else if ffi::PyList_Check(c) != 0 {
            let len = ffi::PyList_GET_SIZE(c);
            let mut i = 0;
            while i < len && i < ffi::PyList_GET_SIZE(c) {
                let v = ffi::PyList_GET_ITEM(c, i);
                if !replay_item(t, out, (c, len), None, v, pos, leaf) {
                    return false;
                }
                i += 1;
            }
            ffi::PyList_GET_SIZE(c) == len
        } else {
            false
        }
    }
}
