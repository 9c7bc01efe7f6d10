//! The pieces every nested traversal shares (flattening, path lookups, the
//! collision scan, serialization): how a value is treated (node
//! classification), key text, a dict walk that reports a changed dict instead
//! of panicking, and an error that remembers its key path.

use std::borrow::Cow;

use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::errors::{location, type_error, type_name, KeyPath, PathSegment, MAX_DEPTH};
use crate::ffi;

static MAPPING: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FORMAT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// How a flattening traversal treats a value.
pub enum Node<'a, 'py> {
    /// A dict or dict subclass: its items are joined into the parent key.
    Dict(&'a Bound<'py, PyDict>),
    /// A list or list subclass, only when lists are enumerated.
    List(&'a Bound<'py, PyList>),
    /// Any other `collections.abc.Mapping`: flattened through `.items()`; when
    /// empty it vanishes (only empty dicts and lists are kept as values).
    Mapping(&'a Bound<'py, PyAny>),
    /// Anything else is a value of the flattened record.
    Leaf,
}

/// Exact and flag-based checks first; the `Mapping` ABC check only for types no
/// JSON-like record contains.
pub fn classify<'a, 'py>(v: &'a Bound<'py, PyAny>, lists: bool) -> PyResult<Node<'a, 'py>> {
    if let Ok(d) = v.cast::<PyDict>() {
        return Ok(Node::Dict(d));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return Ok(if lists { Node::List(l) } else { Node::Leaf });
    }
    if v.is_none()
        || v.is_instance_of::<PyString>()
        || v.is_instance_of::<PyInt>()
        || v.is_instance_of::<PyFloat>()
        || v.is_instance_of::<PyBool>()
        || v.is_instance_of::<PyTuple>()
        || v.is_instance_of::<PyBytes>()
    {
        return Ok(Node::Leaf);
    }
    let mapping = MAPPING.import(v.py(), "collections.abc", "Mapping")?;
    if v.is_instance(mapping)? {
        Ok(Node::Mapping(v))
    } else {
        Ok(Node::Leaf)
    }
}

/// True when a flattened record keeps `v` as a value: empty dicts and lists
/// are kept, non-empty ones (lists only when enumerated) and other mappings are not.
pub fn is_kept_leaf(v: &Bound<'_, PyAny>, lists: bool) -> PyResult<bool> {
    Ok(match classify(v, lists)? {
        Node::Dict(d) => d.is_empty(),
        Node::List(l) => l.is_empty(),
        Node::Mapping(_) => false,
        Node::Leaf => true,
    })
}

/// A str's text as UTF-8 bytes. Lone surrogates (JSON can carry them) are
/// encoded as Python's "surrogatepass" does, so such keys still join and compare.
pub fn str_bytes<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, [u8]>> {
    match s.to_str() {
        Ok(t) => Ok(Cow::Borrowed(t.as_bytes())),
        Err(_) => {
            let py = s.py();
            let b = s.call_method1(
                intern!(py, "encode"),
                (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
            )?;
            Ok(Cow::Owned(b.cast::<PyBytes>()?.as_bytes().to_vec()))
        }
    }
}

/// The str for bytes made by `str_bytes` (and joins of them).
pub fn bytes_to_str<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyString>> {
    match std::str::from_utf8(b) {
        Ok(t) => Ok(PyString::new(py, t)),
        Err(_) => Ok(PyBytes::new(py, b)
            .call_method1(
                intern!(py, "decode"),
                (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
            )?
            .cast_into::<PyString>()?),
    }
}

/// A key as the reference's reducer writes it, `"{}".format(key)`, as bytes
/// (see `str_bytes`); an exact str is its own text.
pub fn key_bytes<'a>(k: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if k.is_exact_instance_of::<PyString>() {
        return str_bytes(k.cast::<PyString>()?);
    }
    let format = FORMAT.get_or_try_init(k.py(), || {
        k.py()
            .import("builtins")?
            .getattr("format")
            .map(Bound::unbind)
    })?;
    let s = format.bind(k.py()).call1((k, ""))?;
    Ok(Cow::Owned(str_bytes(s.cast::<PyString>()?)?.into_owned()))
}

/// The key's text for messages (never fails: falls back to the type name).
pub fn key_text(k: &Bound<'_, PyAny>) -> String {
    match key_bytes(k) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => format!("<{}>", type_name(k)),
    }
}

/// The key as a path segment for messages.
pub fn key_segment(k: &Bound<'_, PyAny>) -> PathSegment {
    PathSegment::Key(key_text(k))
}

/// The entries of a dict (or dict subclass, by its storage). Unlike pyo3's
/// iterator it never panics: when Python code run during the walk (a key's
/// `__eq__`, `__format__`, a value's conversion...) changes the dict's size,
/// the walk stops and `changed()` / `check()` report it, as Python's own
/// iteration reports it with a RuntimeError.
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

    /// After the walk: Python's RuntimeError when the dict changed size.
    pub fn check(&self) -> PyResult<()> {
        if self.changed {
            return Err(PyRuntimeError::new_err(
                "dictionary changed size during iteration",
            ));
        }
        Ok(())
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
            if ffi::dict_next(self.dict.as_ptr(), &mut self.pos, &mut key, &mut val) == 0 {
                return None;
            }
            Some((
                Bound::from_borrowed_ptr(py, key),
                Bound::from_borrowed_ptr(py, val),
            ))
        }
    }
}

/// What went wrong in a nested traversal.
pub enum Problem {
    /// Nesting deeper than MAX_DEPTH (a cycle looks infinitely deep).
    TooDeep,
    /// Two values flatten to the same key (the key's text).
    Duplicate(String),
    /// A key that must be a str is not (its type name).
    NonStrKey(String),
    /// An error raised by Python code on the way.
    Python(PyErr),
    /// Any other problem, said in words.
    Message(String),
}

/// A traversal error and the key path to where it happened (collected innermost
/// first while unwinding, so the hot path carries no path).
pub struct TraverseError {
    pub problem: Problem,
    rev_path: Vec<PathSegment>,
}

impl From<PyErr> for TraverseError {
    fn from(e: PyErr) -> Self {
        TraverseError::new(Problem::Python(e))
    }
}

impl TraverseError {
    pub fn new(problem: Problem) -> Self {
        TraverseError {
            problem,
            rev_path: Vec::new(),
        }
    }

    /// The error one level up: `seg` is the key (or index) leading to where it was.
    pub fn within(mut self, seg: PathSegment) -> Self {
        self.rev_path.push(seg);
        self
    }

    pub fn key_path(&self) -> KeyPath {
        KeyPath(self.rev_path.iter().rev().cloned().collect())
    }

    /// What happened, without where.
    pub fn what(&self, py: Python<'_>) -> String {
        match &self.problem {
            Problem::TooDeep => format!("nesting deeper than {MAX_DEPTH} levels, or a cycle"),
            Problem::Duplicate(k) => format!("duplicated key '{k}'"),
            Problem::NonStrKey(t) => format!("keys must be str, got a key of type {t}"),
            Problem::Message(m) => m.clone(),
            Problem::Python(e) => {
                let name = e
                    .get_type(py)
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default();
                let text = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
                if text.is_empty() {
                    name
                } else {
                    format!("{name}: {text}")
                }
            }
        }
    }

    /// "what (row 3, key \"a.b\")" (or "what (key \"a.b\")" without a row): what
    /// first, so a message that Packflow 0.4 also gives starts the same way.
    pub fn message(&self, py: Python<'_>, row: Option<usize>) -> String {
        let path = self.key_path();
        if row.is_none() && path.0.is_empty() {
            return self.what(py);
        }
        format!("{} ({})", self.what(py), location(row, &path))
    }

    /// A Python exception: ValueError for depth and duplicates, TypeError for
    /// keys, and a Python error keeps its type with the location prepended.
    pub fn into_pyerr(self, py: Python<'_>, row: Option<usize>) -> PyErr {
        match &self.problem {
            // The reference's exact message when there is no row to name.
            Problem::Duplicate(k) if row.is_none() => {
                crate::errors::value_error(format!("duplicated key '{k}'"))
            }
            Problem::TooDeep | Problem::Duplicate(_) | Problem::Message(_) => {
                crate::errors::value_error(self.message(py, row))
            }
            Problem::NonStrKey(_) => type_error(self.message(py, row)),
            Problem::Python(e) => {
                let path = self.key_path();
                if row.is_none() && path.0.is_empty() {
                    return e.clone_ref(py);
                }
                let text = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
                let msg = format!("{text} ({})", location(row, &path));
                relabel(py, e.clone_ref(py), msg)
            }
        }
    }
}

/// The same exception type with a new message and the original as its cause;
/// the original itself when the type cannot be built from one string.
pub fn relabel(py: Python<'_>, err: PyErr, msg: String) -> PyErr {
    let ty = err.get_type(py);
    match ty.call1((msg,)) {
        Ok(exc) if exc.is_instance_of::<pyo3::exceptions::PyBaseException>() => {
            let new = PyErr::from_value(exc);
            new.set_cause(py, Some(err));
            new
        }
        _ => err,
    }
}

/// A dict key or a list index.
#[derive(Clone, Copy)]
pub enum ItemKey<'a, 'py> {
    Obj(&'a Bound<'py, PyAny>),
    Index(usize),
}

impl<'a, 'py> ItemKey<'a, 'py> {
    pub fn object(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match self {
            ItemKey::Obj(k) => (*k).clone(),
            ItemKey::Index(i) => i
                .into_pyobject(py)
                .map(Bound::into_any)
                .expect("usize to int"),
        }
    }

    pub fn push_text(&self, buf: &mut Vec<u8>) -> PyResult<()> {
        match self {
            ItemKey::Obj(k) => buf.extend_from_slice(&key_bytes(k)?),
            ItemKey::Index(i) => buf.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        }
        Ok(())
    }

    pub fn segment(&self) -> PathSegment {
        match self {
            ItemKey::Obj(k) => key_segment(k),
            ItemKey::Index(i) => PathSegment::Index(*i),
        }
    }
}
