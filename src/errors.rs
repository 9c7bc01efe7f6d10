//! Shared error plumbing: where in a batch something went wrong (row index and key
//! path), the nesting limit, and the packflow exception classes raised from Rust.

use std::fmt::Write as _;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Deepest nesting any traversal follows; deeper input (or a cycle) is an error.
pub const MAX_DEPTH: usize = 255;

/// One step of a key path: a dict key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A key path, built only when an error needs it (the hot path carries no path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<PathSegment>);

impl KeyPath {
    pub fn push_front(mut self, seg: PathSegment) -> Self {
        self.0.insert(0, seg);
        self
    }

    /// `src.port`, `scores[3]`, `a.b[0].c`; empty for the row itself.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            match seg {
                PathSegment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PathSegment::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

/// "row 17, key \"src.port\"" or "row 17" when the row itself is at fault.
pub fn location(row: Option<usize>, path: &KeyPath) -> String {
    let p = path.render();
    match (row, p.is_empty()) {
        (Some(r), true) => format!("row {r}"),
        (Some(r), false) => format!("row {r}, key \"{p}\""),
        (None, true) => "the value".to_string(),
        (None, false) => format!("key \"{p}\""),
    }
}

pub fn type_error(msg: impl Into<String>) -> PyErr {
    PyTypeError::new_err(msg.into())
}

pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// The name of an object's type, for messages (`dict`, `numpy.ndarray`, ...).
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    let ty = obj.get_type();
    let name = ty
        .fully_qualified_name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string());
    name.strip_prefix("builtins.").unwrap_or(&name).to_string()
}

/// Adds a PEP 678 note to an exception. Python 3.10 has no `add_note`: the note
/// is appended to `__notes__` by hand, where code reads it the same way (3.10's
/// tracebacks do not print notes).
pub fn add_note(py: Python<'_>, err: &PyErr, note: String) -> PyResult<()> {
    #[cfg(Py_3_11)]
    {
        err.add_note(py, note)
    }
    #[cfg(not(Py_3_11))]
    {
        use pyo3::types::PyList;
        let value = err.value(py);
        let notes = match value.getattr_opt(pyo3::intern!(py, "__notes__"))? {
            Some(notes) => notes,
            None => {
                let notes = PyList::empty(py);
                value.setattr(pyo3::intern!(py, "__notes__"), &notes)?;
                notes.into_any()
            }
        };
        notes.call_method1(pyo3::intern!(py, "append"), (note,))?;
        Ok(())
    }
}

/// `<class 'int'>`, `<class 'numpy.ndarray'>`: the type as `repr(type(obj))`
/// spells it, which is how Packflow 0.4's messages name a type.
pub fn type_repr(obj: &Bound<'_, PyAny>) -> String {
    match obj.get_type().repr() {
        Ok(r) => r.to_string(),
        Err(_) => format!("<class '{}'>", type_name(obj)),
    }
}

macro_rules! packflow_exception {
    ($fn_name:ident, $cell:ident, $class:literal) => {
        static $cell: PyOnceLock<Py<PyType>> = PyOnceLock::new();

        /// Builds a `packflow.exceptions` instance of this class with `msg`.
        pub fn $fn_name(py: Python<'_>, msg: impl Into<String>) -> PyErr {
            match $cell.import(py, "packflow.exceptions", $class) {
                Ok(cls) => match cls.call1((msg.into(),)) {
                    Ok(exc) => PyErr::from_value(exc),
                    Err(e) => e,
                },
                Err(e) => e,
            }
        }
    };
}

packflow_exception!(runtime_error, RUNTIME_ERROR, "InferenceBackendRuntimeError");
packflow_exception!(
    validation_error,
    VALIDATION_ERROR,
    "InferenceBackendValidationError"
);
packflow_exception!(
    preprocessor_runtime_error,
    PREPROCESSOR_RUNTIME_ERROR,
    "PreprocessorRuntimeError"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_keys_and_indices() {
        let p = KeyPath(vec![
            PathSegment::Key("a".into()),
            PathSegment::Index(2),
            PathSegment::Key("b".into()),
        ]);
        assert_eq!(p.render(), "a[2].b");
        assert_eq!(location(Some(3), &p), "row 3, key \"a[2].b\"");
        assert_eq!(location(Some(0), &KeyPath::default()), "row 0");
    }

    #[test]
    fn push_front_prepends() {
        let p =
            KeyPath(vec![PathSegment::Key("c".into())]).push_front(PathSegment::Key("b".into()));
        assert_eq!(p.render(), "b.c");
    }
}
