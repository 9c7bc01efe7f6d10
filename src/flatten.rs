//! Flattening nested records into one-level dicts whose keys are the nested keys
//! joined by a delimiter (Packflow 0.4's `flatten_dict`), plus the pieces every
//! nested traversal shares: node classification, key text, a dict iterator that
//! errors instead of panicking, and an error that remembers its key path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::dict_slot::same_text;
use crate::errors::{location, type_error, type_name, type_repr, KeyPath, PathSegment, MAX_DEPTH};

// ---------------------------------------------------------------------------
// Shared traversal pieces
// ---------------------------------------------------------------------------

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

/// Iterates a dict's items like pyo3's iterator, but reports a dict changed by
/// Python code run during the walk (a key's `__eq__`, `__format__`, ...) as
/// Python does, with a RuntimeError, where pyo3 would panic: the size is
/// checked before every step and no step is taken past the original length.
pub struct DictItems<'py> {
    dict: Bound<'py, PyDict>,
    inner: pyo3::types::dict::BoundDictIterator<'py>,
    len: usize,
    taken: usize,
}

impl<'py> DictItems<'py> {
    pub fn new(dict: &Bound<'py, PyDict>) -> Self {
        DictItems {
            dict: dict.clone(),
            inner: dict.iter(),
            len: dict.len(),
            taken: 0,
        }
    }
}

impl<'py> Iterator for DictItems<'py> {
    type Item = PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.taken >= self.len {
            return None;
        }
        if self.dict.len() != self.len {
            self.taken = self.len;
            return Some(Err(PyRuntimeError::new_err(
                "dictionary changed size during iteration",
            )));
        }
        self.taken += 1;
        self.inner.next().map(Ok)
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

// ---------------------------------------------------------------------------
// Flattening
// ---------------------------------------------------------------------------

/// Records of a batch mostly share their keys, so a joined key is made once per
/// batch and reused: no new str, and its hash is already cached on insert.
const KEY_CACHE_LIMIT: usize = 4096;

/// The Fx hash (rustc's): a multiply-rotate over 8-byte words, far cheaper than
/// SipHash on the short keys of a record; no untrusted-collision concern here
/// since the cache is bounded and per batch.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Flattens records with one delimiter and list policy, reusing one key buffer
/// and the joined key objects.
///
/// Records of a batch usually have one shape. A record flattened afresh leaves
/// a template: its result, and the shape it was read from (each item's key
/// object and whether it was a leaf or a container of so many items). The next
/// record is first replayed against that shape: when every key is the same
/// object (or an equal str) and every container has the same size, the
/// flattened keys are necessarily the same, so the result is a copy of the
/// template's (CPython copies a clean dict's key table in one go) with the
/// values replaced, and no key text is built at all. At the first difference
/// the record is built afresh and becomes the template.
pub struct Flattener<'d> {
    delimiter: &'d str,
    lists: bool,
    /// The flattened key of the current parent, as `str_bytes` text; pushed
    /// and truncated per level.
    buf: Vec<u8>,
    keys: HashMap<Box<[u8]>, Py<PyString>, BuildHasherDefault<FxHasher>>,
    template: Option<Template>,
    /// The shape of the record being built afresh, while one is recorded.
    shape: Vec<ShapeStep>,
    /// The record being built cannot be a template (it has a non-dict mapping).
    irregular: bool,
    /// Replay hits minus misses; templates are given up when shapes keep changing.
    score: i32,
}

struct Template {
    dict: Py<PyDict>,
    keys: Vec<Py<PyAny>>,
    shape: Vec<ShapeStep>,
    len: usize,
    lists: bool,
}

/// One item of a template record, in depth-first order.
struct ShapeStep {
    /// The dict key object (kept alive so its identity stays meaningful);
    /// None for a list item, whose index its position fixes.
    key: Option<Py<PyAny>>,
    kind: StepKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StepKind {
    Leaf,
    EmptyDict,
    EmptyList,
    Dict(usize),
    List(usize),
}

/// The flattened key of an item: the key object itself while no parent key
/// exists (top level, or below a `None` key), else the joined text in `buf`.
enum FlatKey<'py> {
    Raw(Bound<'py, PyAny>),
    Text,
}

const SCORE_FLOOR: i32 = -16;

impl<'d> Flattener<'d> {
    pub fn new(delimiter: &'d str, lists: bool) -> Self {
        Flattener {
            delimiter,
            lists,
            buf: Vec::with_capacity(64),
            keys: HashMap::default(),
            template: None,
            shape: Vec::new(),
            irregular: false,
            score: 0,
        }
    }

    /// The str object for the joined key in `buf`.
    fn text_key<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        if let Some(k) = self.keys.get(self.buf.as_slice()) {
            return Ok(k.bind(py).clone());
        }
        let k = bytes_to_str(py, &self.buf)?;
        if self.keys.len() < KEY_CACHE_LIMIT {
            self.keys
                .insert(self.buf.as_slice().into(), k.clone().unbind());
        }
        Ok(k)
    }

    fn recording(&self) -> bool {
        self.score > SCORE_FLOOR
    }

    /// A new dict of the flattened items of `obj`, in depth-first order.
    pub fn flatten<'py>(
        &mut self,
        obj: &Bound<'py, PyDict>,
    ) -> Result<Bound<'py, PyDict>, TraverseError> {
        let py = obj.py();
        if self.recording() {
            if let Some(t) = &self.template {
                if let Some(out) = replay_record(py, t, obj) {
                    self.score = (self.score + 1).min(16);
                    return Ok(out);
                }
                self.score -= 1;
            }
        }
        let out = PyDict::new(py);
        self.buf.clear();
        self.shape.clear();
        self.irregular = false;
        self.level(&out, Node::Dict(obj), true, 0)?;
        if self.recording() && !self.irregular {
            self.template = Some(Template {
                dict: out.copy()?.unbind(),
                keys: out.keys().iter().map(Bound::unbind).collect(),
                shape: std::mem::take(&mut self.shape),
                len: obj.len(),
                lists: self.lists,
            });
        }
        Ok(out)
    }

    /// One container; returns whether it had any item (the reference keeps an
    /// empty dict or list as a value, and drops a container whose items all
    /// vanished only when it had none at all).
    fn level<'py>(
        &mut self,
        out: &Bound<'py, PyDict>,
        node: Node<'_, 'py>,
        raw: bool,
        depth: usize,
    ) -> Result<bool, TraverseError> {
        let py = out.py();
        let mut has_item = false;
        match node {
            Node::Dict(d) => {
                for item in DictItems::new(d) {
                    let (k, v) = item?;
                    has_item = true;
                    self.item(out, ItemKey::Obj(&k), &v, raw, depth)?;
                }
            }
            Node::List(l) => {
                for (i, v) in l.iter().enumerate() {
                    has_item = true;
                    self.item(out, ItemKey::Index(i), &v, raw, depth)?;
                }
            }
            Node::Mapping(m) => {
                self.irregular = true;
                for pair in m.call_method0(pyo3::intern!(py, "items"))?.try_iter()? {
                    let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = pair?.extract()?;
                    has_item = true;
                    self.item(out, ItemKey::Obj(&k), &v, raw, depth)?;
                }
            }
            Node::Leaf => {}
        }
        Ok(has_item)
    }

    /// One item: its flattened key is pushed on `buf`, and `buf` is back to
    /// where it was when this returns, error or not.
    fn item<'py>(
        &mut self,
        out: &Bound<'py, PyDict>,
        key: ItemKey<'_, 'py>,
        v: &Bound<'py, PyAny>,
        raw: bool,
        depth: usize,
    ) -> Result<(), TraverseError> {
        let base = self.buf.len();
        let res = self.item_inner(out, key, v, raw, depth);
        self.buf.truncate(base);
        res.map_err(|e| e.within(key.segment()))
    }

    fn item_inner<'py>(
        &mut self,
        out: &Bound<'py, PyDict>,
        key: ItemKey<'_, 'py>,
        v: &Bound<'py, PyAny>,
        raw: bool,
        depth: usize,
    ) -> Result<(), TraverseError> {
        let py = out.py();
        let flat = if raw {
            FlatKey::Raw(key.object(py))
        } else {
            self.buf.extend_from_slice(self.delimiter.as_bytes());
            key.push_text(&mut self.buf)?;
            FlatKey::Text
        };
        let node = classify(v, self.lists)?;
        let kind = match &node {
            Node::Dict(d) if d.is_empty() => StepKind::EmptyDict,
            Node::Dict(d) => StepKind::Dict(d.len()),
            Node::List(l) if l.is_empty() => StepKind::EmptyList,
            Node::List(l) => StepKind::List(l.len()),
            Node::Mapping(_) | Node::Leaf => StepKind::Leaf,
        };
        if self.recording() {
            self.shape.push(ShapeStep {
                key: match key {
                    ItemKey::Obj(k) => Some(k.clone().unbind()),
                    ItemKey::Index(_) => None,
                },
                kind,
            });
        }
        let keep_empty = match node {
            Node::Leaf => None,
            Node::Mapping(_) => Some(false),
            _ => Some(true),
        };
        if let Some(keep_empty) = keep_empty {
            if depth + 1 >= MAX_DEPTH {
                return Err(TraverseError::new(Problem::TooDeep));
            }
            let text_len = self.buf.len();
            // Below a raw key the joined text starts with that key; below `None`
            // there is still no parent key (the reference's reducer quirk).
            let child_raw = match &flat {
                FlatKey::Raw(k) if k.is_none() => true,
                FlatKey::Raw(k) => {
                    self.buf.extend_from_slice(&key_bytes(k)?);
                    false
                }
                FlatKey::Text => false,
            };
            let has_child = self.level(out, node, child_raw, depth + 1)?;
            if has_child || !keep_empty {
                return Ok(());
            }
            self.buf.truncate(text_len);
        }
        let k = match flat {
            FlatKey::Raw(k) => k,
            FlatKey::Text => self.text_key(py)?.into_any(),
        };
        let before = out.len();
        out.set_item(&k, v)?;
        if out.len() == before {
            return Err(TraverseError::new(Problem::Duplicate(key_text(&k))));
        }
        Ok(())
    }
}

/// The record flattened by the template, or None when its shape differs (or
/// anything at all goes wrong: the fresh build then reports it properly).
fn replay_record<'py>(
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
    expected == key
        || (ffi::PyUnicode_CheckExact(expected) != 0
            && ffi::PyUnicode_IS_READY(expected) != 0
            && same_text(key, expected))
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

/// A dict key or a list index.
#[derive(Clone, Copy)]
pub enum ItemKey<'a, 'py> {
    Obj(&'a Bound<'py, PyAny>),
    Index(usize),
}

impl<'a, 'py> ItemKey<'a, 'py> {
    fn object(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match self {
            ItemKey::Obj(k) => (*k).clone(),
            ItemKey::Index(i) => i
                .into_pyobject(py)
                .map(Bound::into_any)
                .expect("usize to int"),
        }
    }

    fn push_text(&self, buf: &mut Vec<u8>) -> PyResult<()> {
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

// ---------------------------------------------------------------------------
// Python functions
// ---------------------------------------------------------------------------

/// One record flattened (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (obj, delimiter=".", flatten_lists=false))]
pub fn flatten_dict<'py>(
    obj: &Bound<'py, PyAny>,
    delimiter: &str,
    flatten_lists: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let py = obj.py();
    let d = obj.cast::<PyDict>().map_err(|_| {
        type_error(format!(
            "Value for `obj` must be a dictionary-like object. Received type: {}",
            type_repr(obj)
        ))
    })?;
    Flattener::new(delimiter, flatten_lists)
        .flatten(d)
        .map_err(|e| e.into_pyerr(py, None))
}

/// Each record of a list flattened (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (records, delimiter=".", flatten_lists=false))]
pub fn flatten_records<'py>(
    records: &Bound<'py, PyAny>,
    delimiter: &str,
    flatten_lists: bool,
) -> PyResult<Bound<'py, PyList>> {
    let py = records.py();
    let _gc = crate::gc_pause::GcPause::new(py);
    let list = records.cast::<PyList>().map_err(|_| {
        type_error(format!(
            "Value for `records` must be a list. Received type: {}",
            type_repr(records)
        ))
    })?;
    let mut flattener = Flattener::new(delimiter, flatten_lists);
    let mut rows = Vec::with_capacity(list.len());
    for (i, row) in list.iter().enumerate() {
        let d = row.cast::<PyDict>().map_err(|_| {
            type_error(format!(
                "Value for `obj` must be a dictionary-like object. Received type: {} ({})",
                type_repr(&row),
                location(Some(i), &KeyPath::default()),
            ))
        })?;
        rows.push(
            flattener
                .flatten(d)
                .map_err(|e| e.into_pyerr(py, Some(i)))?,
        );
    }
    PyList::new(py, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'py>(py: Python<'py>, src: &str, delim: &str, lists: bool) -> Result<String, String> {
        let obj = py
            .eval(&std::ffi::CString::new(src).unwrap(), None, None)
            .unwrap();
        let d = obj.cast::<PyDict>().unwrap();
        match Flattener::new(delim, lists).flatten(d) {
            Ok(out) => Ok(out.repr().unwrap().to_string()),
            Err(e) => Err(e.message(py, None)),
        }
    }

    #[test]
    fn joins_keys_and_keeps_empty_containers() {
        Python::initialize();
        Python::attach(|py| {
            assert_eq!(
                run(py, "{'a': {'b': 1, 'c': {}}, 'd': []}", ".", false).unwrap(),
                "{'a.b': 1, 'a.c': {}, 'd': []}"
            );
            assert_eq!(
                run(py, "{'e': [1, {'f': 2}, []]}", "_", true).unwrap(),
                "{'e_0': 1, 'e_1_f': 2, 'e_2': []}"
            );
            assert_eq!(
                run(py, "{1: {2: 3}, None: {'x': 4}}", ".", false).unwrap(),
                "{'1.2': 3, 'x': 4}"
            );
        });
    }

    #[test]
    fn reports_duplicates_and_depth() {
        Python::initialize();
        Python::attach(|py| {
            assert_eq!(
                run(py, "{'a.b': 1, 'a': {'b': 2}}", ".", false).unwrap_err(),
                "duplicated key 'a.b' (key \"a.b\")"
            );
            let err = run(
                py,
                "(lambda d: (d.__setitem__('k', d), d)[1])({})",
                ".",
                false,
            )
            .unwrap_err();
            assert!(err.contains("nesting deeper than 255"), "{err}");
            assert!(err.contains("(key \"k.k.k"), "{err}");
        });
    }

    #[test]
    fn buffer_is_restored_between_siblings() {
        Python::initialize();
        Python::attach(|py| {
            assert_eq!(
                run(py, "{'aa': {'bb': {'cc': 1}, 'd': 2}, 'e': 3}", "::", false).unwrap(),
                "{'aa::bb::cc': 1, 'aa::d': 2, 'e': 3}"
            );
        });
    }
}
