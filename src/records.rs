//! Records preprocessing: the per-record field helpers of `packflow.utils` and
//! `RecordsPlan`, the records preprocessor's config compiled once (paths,
//! interned output keys) and run over a whole batch in one call.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::Borrowed;

use crate::dict_slot::SlotHint;
use crate::errors::{
    preprocessor_runtime_error, type_error, type_name, type_repr, value_error, PathSegment,
    MAX_DEPTH,
};
use crate::flatten::{
    bytes_to_str, classify, key_bytes, key_segment, str_bytes, DictItems, Flattener, Node, Problem,
    TraverseError,
};
use crate::gc_pause::GcPause;
use crate::lookup::{
    find_flat, get_direct, get_direct_once, get_flat, set_direct, set_direct_once, FieldPath,
};

const RUNTIME_PREFIX: &str = "Failed to preprocess inputs with the following exception: ";

// ---------------------------------------------------------------------------
// Delimiter collisions
// ---------------------------------------------------------------------------

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
    for item in DictItems::new(d) {
        let (k, v) = item?;
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
    Ok(())
}

/// True when no key below `d` contains the delimiter, all keys are str and the
/// nesting is within the limit; anything else goes to `collisions` for the
/// exact report. No paths are built on this, the per-record, pass.
fn is_clean(d: &Bound<'_, PyDict>, needle: &Needle, depth: usize) -> bool {
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
enum Needle {
    Byte([u8; 1]),
    /// One non-ASCII character (its UTF-8 bytes and its code point).
    Char(Vec<u8>, u32),
    Text(Vec<u8>),
}

impl Needle {
    fn new(delimiter: &str) -> Self {
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
        #[cfg(not(Py_3_12))]
        if ffi::PyUnicode_IS_READY(k) == 0 {
            return None;
        }
        let len = ffi::PyUnicode_GET_LENGTH(k) as usize;
        let data = ffi::PyUnicode_DATA(k);
        // PEP 393: the characters are `len` code units of the str's kind.
        Some(match ffi::PyUnicode_KIND(k) {
            ffi::PyUnicode_1BYTE_KIND => {
                c < 0x100 && std::slice::from_raw_parts(data.cast::<u8>(), len).contains(&(c as u8))
            }
            ffi::PyUnicode_2BYTE_KIND => {
                c < 0x1_0000
                    && std::slice::from_raw_parts(data.cast::<u16>(), len).contains(&(c as u16))
            }
            ffi::PyUnicode_4BYTE_KIND => {
                std::slice::from_raw_parts(data.cast::<u32>(), len).contains(&c)
            }
            _ => return None,
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

fn collisions<'py>(
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

// ---------------------------------------------------------------------------
// Single-record field access
// ---------------------------------------------------------------------------

/// The reference's error type for a non-dict: flattening rejects a container
/// (ValueError), `in` rejects anything else (TypeError).
fn not_a_dict_for_flat(func: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let ty = obj.get_type();
    let container = ["__contains__", "__iter__", "__getitem__"]
        .iter()
        .any(|n| ty.hasattr(*n).unwrap_or(false));
    let msg = format!("{func} expects a dict, got {}", type_name(obj));
    if container {
        value_error(msg)
    } else {
        type_error(msg)
    }
}

fn expect_dict<'a, 'py>(
    func: &str,
    obj: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyDict>> {
    obj.cast::<PyDict>()
        .map_err(|_| type_error(format!("{func} expects a dict, got {}", type_name(obj))))
}

fn expect_str<'a, 'py>(
    func: &str,
    field: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyString>> {
    field.cast::<PyString>().map_err(|_| {
        type_error(format!(
            "{func}: the field must be a str, got {}",
            type_name(field)
        ))
    })
}

/// `obj[field]`, else the value at `field` in the flattened `obj` (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (obj, field, delimiter=None))]
pub fn get_nested_field<'py>(
    obj: &Bound<'py, PyAny>,
    field: &Bound<'py, PyAny>,
    delimiter: Option<&str>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    let d = obj
        .cast::<PyDict>()
        .map_err(|_| not_a_dict_for_flat("get_nested_field", obj))?;
    if let Some(v) = d.get_item(field)? {
        return Ok(Some(v));
    }
    // A non-str field can only be a top-level key, which was just looked up.
    let Ok(f) = field.cast::<PyString>() else {
        return Ok(None);
    };
    let delimiter = delimiter.filter(|s| !s.is_empty()).unwrap_or(".");
    // Without the delimiter, only a key below a `None` key can still spell it.
    if !f.to_str()?.contains(delimiter) && d.get_item(py.None())?.is_none() {
        return Ok(None);
    }
    get_flat(d, &FieldPath::transient(f, delimiter)?)
}

/// `obj[field]`, else the walk of the field's parts through nested dicts (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (obj, field, delimiter="."))]
pub fn get_nested_field_direct<'py>(
    obj: &Bound<'py, PyAny>,
    field: &Bound<'py, PyAny>,
    delimiter: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let d = expect_dict("get_nested_field_direct", obj)?;
    match field.cast::<PyString>() {
        Ok(f) => get_direct_once(d, f, delimiter),
        // A non-str field can still be a literal key; it cannot be a path.
        Err(_) => match d.get_item(field)? {
            Some(v) => Ok(Some(v)),
            None => expect_str("get_nested_field_direct", field).map(|_| None),
        },
    }
}

/// Sets `value` at the field's path, creating dicts on the way (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (obj, field, value, delimiter="."))]
pub fn set_nested_field_direct(
    obj: &Bound<'_, PyAny>,
    field: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    delimiter: &str,
) -> PyResult<()> {
    let d = expect_dict("set_nested_field_direct", obj)?;
    let f = expect_str("set_nested_field_direct", field)?;
    set_direct_once(d, f, delimiter, value)
}

// ---------------------------------------------------------------------------
// RecordsPlan
// ---------------------------------------------------------------------------

/// The input paths of a plan as a trie of their parts, so a prefix shared by
/// several fields (`src` in `src.ip` and `src.port`) is looked up once per record.
#[derive(Default)]
struct InputTrie {
    nodes: Vec<InNode>,
}

struct InNode {
    key: Py<PyString>,
    /// The part as a list index (`str(i)`), for enumerated lists.
    index: Option<usize>,
    parent: Option<usize>,
}

impl InputTrie {
    /// The node reached by `path`'s parts, added as needed.
    fn add(&mut self, py: Python<'_>, path: &FieldPath) -> usize {
        let texts: Vec<&str> = if path.nested {
            path.text.split(path.delimiter.as_str()).collect()
        } else {
            vec![path.text.as_str()]
        };
        let mut parent = None;
        for (key, text) in path.parts.iter().zip(texts) {
            let found = self.nodes.iter().position(|n| {
                n.parent == parent && n.key.bind(py).to_str().is_ok_and(|t| t == text)
            });
            parent = Some(match found {
                Some(i) => i,
                None => {
                    self.nodes.push(InNode {
                        key: key.clone_ref(py),
                        index: canonical_index(text),
                        parent,
                    });
                    self.nodes.len() - 1
                }
            });
        }
        parent.expect("a path has at least one part")
    }

    /// The value at every node for this record (parents come before children).
    /// `hints` holds one remembered entry position per node, kept across the
    /// records of a batch (they mostly share one shape).
    fn eval<'py>(
        &self,
        d: &Bound<'py, PyDict>,
        lists: bool,
        vals: &mut Vec<Option<Bound<'py, PyAny>>>,
        hints: &mut Vec<SlotHint>,
    ) -> PyResult<()> {
        let py = d.py();
        vals.clear();
        if hints.len() != self.nodes.len() {
            hints.clear();
            hints.resize_with(self.nodes.len(), SlotHint::new);
        }
        for (n, hint) in self.nodes.iter().zip(hints.iter_mut()) {
            let v = match n.parent {
                None => hinted_get(d, n.key.bind(py), hint)?,
                Some(p) => match &vals[p] {
                    None => None,
                    Some(pv) => {
                        if let Ok(pd) = pv.cast::<PyDict>() {
                            hinted_get(pd, n.key.bind(py), hint)?
                        } else if let (true, Some(i), Ok(l)) = (lists, n.index, pv.cast::<PyList>())
                        {
                            if i < l.len() {
                                Some(l.get_item(i)?)
                            } else {
                                None
                            }
                        } else {
                            None
                        }
                    }
                },
            };
            vals.push(v);
        }
        Ok(())
    }
}

/// `d[key]` by the remembered position when it holds `key`, else by lookup.
#[inline]
fn hinted_get<'py>(
    d: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
    hint: &mut SlotHint,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match hint.get(d, key) {
        Some(v) => Ok(Some(v)),
        None => d.get_item(key),
    }
}

/// `i` when `text` is `str(i)`.
fn canonical_index(text: &str) -> Option<usize> {
    let canonical = text == "0" || (!text.is_empty() && !text.starts_with('0'));
    if canonical && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// One output field: a rename (first) or a feature, in config order.
struct Step {
    source: FieldPath,
    /// The source's node in the input trie.
    node: usize,
    /// The output key; in direct mode, the target when it has no delimiter.
    key: Py<PyString>,
    /// Direct mode, a target containing the delimiter: a nested output path.
    target: Option<FieldPath>,
    is_feature: bool,
    /// A feature an earlier step may already have emitted (checked per record).
    may_exist: bool,
    /// Direct mode fast path: the output-trie node of the leaf's parent dict
    /// (None: the output itself) and the leaf key.
    out_parent: Option<usize>,
    leaf: Py<PyString>,
}

/// Direct mode when no output path is a prefix of another: every nested dict of
/// the output is one this plan creates, at most once per record.
struct OutNode {
    key: Py<PyString>,
    parent: Option<usize>,
}

enum Mode {
    /// Flatten mode with selected fields: each path resolved against the
    /// record with flat semantics, no flattened dict built.
    FlatSelect,
    /// Flatten mode without feature_names: every field of the flattened record.
    FlatAll,
    /// Structure kept, nested paths walked directly.
    Direct,
}

/// The records preprocessor's config, compiled (see `_core.pyi`).
#[pyclass(frozen, module = "packflow._core")]
pub struct RecordsPlan {
    #[pyo3(get)]
    passthrough: bool,
    mode: Mode,
    delimiter: String,
    /// The delimiter as the collision check searches for it.
    needle: Needle,
    flatten_lists: bool,
    /// Direct mode with a nested rename key or feature: every record is first
    /// checked for keys containing the delimiter.
    check_collisions: bool,
    inputs: InputTrie,
    steps: Vec<Step>,
    /// Flatten mode with distinct output names: all the names, in order, with
    /// None values; a record with every field present starts from a copy.
    template: Option<Py<PyDict>>,
    /// Direct mode with prefix-free output paths (see `OutNode`).
    out_nodes: Option<Vec<OutNode>>,
}

/// A failure in one row, turned into PreprocessorRuntimeError at the boundary.
struct RowError {
    row: Option<usize>,
    err: TraverseError,
}

fn path_for(py: Python<'_>, field: &str, delimiter: &str) -> PyResult<FieldPath> {
    if delimiter.is_empty() {
        Ok(FieldPath::unsplit(py, field, delimiter))
    } else {
        FieldPath::new(py, field, delimiter)
    }
}

fn parts_of<'a>(field: &'a str, delimiter: &str) -> Vec<&'a str> {
    if delimiter.is_empty() {
        vec![field]
    } else {
        field.split(delimiter).collect()
    }
}

fn is_prefix(a: &[&str], b: &[&str]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Per-batch scratch space, reused across rows.
struct Scratch<'py> {
    vals: Vec<Option<Bound<'py, PyAny>>>,
    found: Vec<Option<Bound<'py, PyAny>>>,
    owned: Vec<Bound<'py, PyDict>>,
    out_dicts: Vec<Option<Bound<'py, PyDict>>>,
    /// One remembered entry position per input-trie node.
    hints: Vec<SlotHint>,
}

#[pymethods]
impl RecordsPlan {
    #[new]
    #[pyo3(signature = (rename_fields, feature_names, flatten_nested_inputs=false, flatten_lists=false, delimiter=".", ignore_delimiter_collisions=false))]
    fn new(
        py: Python<'_>,
        rename_fields: &Bound<'_, PyDict>,
        feature_names: Vec<String>,
        flatten_nested_inputs: bool,
        flatten_lists: bool,
        delimiter: &str,
        ignore_delimiter_collisions: bool,
    ) -> PyResult<Self> {
        let direct = !flatten_nested_inputs;
        let mut pairs: Vec<(String, String, bool)> = Vec::new();
        for (k, v) in rename_fields.iter() {
            let source: String = k.extract().map_err(|_| {
                type_error(format!(
                    "rename_fields keys must be str, got {}",
                    type_name(&k)
                ))
            })?;
            let target: String = v.extract().map_err(|_| {
                type_error(format!(
                    "rename_fields values must be str, got {}",
                    type_name(&v)
                ))
            })?;
            pairs.push((source, target, false));
        }
        pairs.extend(feature_names.iter().map(|f| (f.clone(), f.clone(), true)));

        let mut inputs = InputTrie::default();
        let mut steps: Vec<Step> = Vec::with_capacity(pairs.len());
        // Output paths as parts (direct) or whole names (flatten).
        let mut emitted: Vec<Vec<&str>> = Vec::with_capacity(pairs.len());
        let mut overlapping = false;
        for (source, target, is_feature) in &pairs {
            let out: Vec<&str> = if direct {
                parts_of(target, delimiter)
            } else {
                vec![target.as_str()]
            };
            let clash = emitted.iter().any(|e| {
                if direct {
                    is_prefix(e, &out) || is_prefix(&out, e)
                } else {
                    *e == out
                }
            });
            overlapping |= clash;
            let source = path_for(py, source, delimiter)?;
            let node = inputs.add(py, &source);
            let nested_target = direct && !delimiter.is_empty() && target.contains(delimiter);
            steps.push(Step {
                node,
                source,
                key: PyString::intern(py, target).unbind(),
                target: if nested_target {
                    Some(FieldPath::new(py, target, delimiter)?)
                } else {
                    None
                },
                is_feature: *is_feature,
                may_exist: *is_feature && clash,
                out_parent: None,
                leaf: PyString::intern(py, out.last().copied().unwrap_or("")).unbind(),
            });
            emitted.push(out);
        }

        let template = if !direct && !feature_names.is_empty() && !overlapping {
            let t = PyDict::new(py);
            for s in &steps {
                t.set_item(s.key.bind(py), py.None())?;
            }
            Some(t.unbind())
        } else {
            None
        };

        let out_nodes = if direct && !overlapping && !delimiter.is_empty() {
            let mut nodes: Vec<(OutNode, String)> = Vec::new();
            for (s, parts) in steps.iter_mut().zip(&emitted) {
                let mut parent = None;
                for part in &parts[..parts.len() - 1] {
                    let found = nodes
                        .iter()
                        .position(|(n, t)| n.parent == parent && t == part);
                    parent = Some(match found {
                        Some(i) => i,
                        None => {
                            nodes.push((
                                OutNode {
                                    key: PyString::intern(py, part).unbind(),
                                    parent,
                                },
                                part.to_string(),
                            ));
                            nodes.len() - 1
                        }
                    });
                }
                s.out_parent = parent;
            }
            Some(nodes.into_iter().map(|(n, _)| n).collect())
        } else {
            None
        };

        let uses_nested_paths = pairs
            .iter()
            .any(|(source, _, _)| source.contains(delimiter));
        let mode = if direct {
            Mode::Direct
        } else if feature_names.is_empty() {
            Mode::FlatAll
        } else {
            Mode::FlatSelect
        };
        Ok(RecordsPlan {
            passthrough: pairs.is_empty() && !flatten_nested_inputs,
            mode,
            delimiter: delimiter.to_string(),
            needle: Needle::new(delimiter),
            flatten_lists,
            check_collisions: direct && uses_nested_paths && !ignore_delimiter_collisions,
            inputs,
            steps,
            template,
            out_nodes,
        })
    }

    /// Runs the plan over a batch; the passthrough plan returns the batch itself.
    fn __call__<'py>(&self, records: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = records.py();
        if self.passthrough {
            return Ok(records.clone());
        }
        let Ok(list) = records.cast::<PyList>() else {
            return Err(preprocessor_runtime_error(
                py,
                format!(
                    "{RUNTIME_PREFIX}the batch: expected a list of records, got {}",
                    type_name(records)
                ),
            ));
        };
        self.run(list)
            .map(Bound::into_any)
            .map_err(|e| self.raise(py, e))
    }

    fn __repr__(&self) -> String {
        let mode = match self.mode {
            Mode::FlatSelect | Mode::FlatAll => "flatten",
            Mode::Direct => "direct",
        };
        format!(
            "RecordsPlan(mode={mode}, fields={}, delimiter={:?}, passthrough={})",
            self.steps.len(),
            self.delimiter,
            if self.passthrough { "True" } else { "False" }
        )
    }
}

impl RecordsPlan {
    fn raise(&self, py: Python<'_>, e: RowError) -> PyErr {
        let msg = format!("{RUNTIME_PREFIX}{}", e.err.message(py, e.row));
        let err = preprocessor_runtime_error(py, msg);
        if let Problem::Python(cause) = e.err.problem {
            err.set_cause(py, Some(cause));
        }
        err
    }

    fn run<'py>(&self, list: &Bound<'py, PyList>) -> Result<Bound<'py, PyList>, RowError> {
        let py = list.py();
        // Every dict made here is alive until the batch returns (see gc_pause).
        let _gc = GcPause::new(py);
        let mut rows = Vec::with_capacity(list.len());
        let mut scratch = Scratch {
            vals: Vec::with_capacity(self.inputs.nodes.len()),
            found: Vec::with_capacity(self.steps.len()),
            owned: Vec::new(),
            out_dicts: Vec::new(),
            hints: Vec::new(),
        };
        let mut flattener = Flattener::new(&self.delimiter, self.flatten_lists);
        for (i, row) in list.iter().enumerate() {
            let at = |err: TraverseError| RowError { row: Some(i), err };
            let Ok(d) = row.cast::<PyDict>() else {
                // Names the index itself, as the numpy preprocessor's message does.
                return Err(RowError {
                    row: None,
                    err: TraverseError::new(Problem::Message(format!(
                        "Value at index {i} is not a dictionary. Received type: {}",
                        type_repr(&row)
                    ))),
                });
            };
            let out = match self.mode {
                Mode::FlatSelect => self.flat_select(d, &mut scratch).map_err(at)?,
                Mode::FlatAll => self.flat_all(d, &mut flattener).map_err(at)?,
                Mode::Direct => {
                    if self.check_collisions {
                        self.check_row(d).map_err(at)?;
                    }
                    if self.delimiter.is_empty() {
                        return Err(at(TraverseError::new(Problem::Message(
                            "the nested field delimiter is empty, so nested paths cannot be split"
                                .to_string(),
                        ))));
                    }
                    self.direct(d, &mut scratch).map_err(at)?
                }
            };
            rows.push(out);
        }
        PyList::new(py, rows).map_err(|e| RowError {
            row: None,
            err: e.into(),
        })
    }

    fn check_row(&self, d: &Bound<'_, PyDict>) -> Result<(), TraverseError> {
        if is_clean(d, &self.needle, 0) {
            return Ok(());
        }
        let found = collisions(d, &self.delimiter, "")?;
        if found.is_empty() {
            return Ok(());
        }
        let listed = found.repr()?.to_string();
        // Packflow 0.4's wording; the row is added after it.
        Err(TraverseError::new(Problem::Message(format!(
            "Keys containing the delimiter '{}' were found: {listed}. This can cause ambiguity \
             when using nested path access. Either rename these keys or set \
             ignore_delimiter_collisions=True to bypass this check. Note: Setting \
             ignore_delimiter_collisions=True may result in undefined behavior if key \
             collisions occur during flatten/unflatten operations.",
            self.delimiter
        ))))
    }

    fn flat_select<'py>(
        &self,
        d: &Bound<'py, PyDict>,
        scratch: &mut Scratch<'py>,
    ) -> Result<Bound<'py, PyDict>, TraverseError> {
        let py = d.py();
        self.inputs
            .eval(d, self.flatten_lists, &mut scratch.vals, &mut scratch.hints)?;
        scratch.found.clear();
        let mut complete = true;
        for s in &self.steps {
            let walked = scratch.vals[s.node].clone();
            let v = match walked {
                Some(v) if is_kept_leaf(&v, self.flatten_lists)? => Some(v),
                _ => find_flat(d, &s.source, self.flatten_lists)
                    .map_err(|e| at_field(e, &s.source))?,
            };
            let v = v.filter(|v| !v.is_none());
            complete &= v.is_some();
            scratch.found.push(v);
        }
        if let (true, Some(t)) = (complete, &self.template) {
            let out = t.bind(py).copy()?;
            for (s, v) in self.steps.iter().zip(scratch.found.drain(..)) {
                out.set_item(s.key.bind(py), v.expect("complete"))?;
            }
            return Ok(out);
        }
        let out = PyDict::new(py);
        for (s, v) in self.steps.iter().zip(scratch.found.drain(..)) {
            let key = s.key.bind(py);
            if s.may_exist && out.contains(key)? {
                continue;
            }
            if let Some(v) = v {
                out.set_item(key, v)?;
            }
        }
        Ok(out)
    }

    fn flat_all<'py>(
        &self,
        d: &Bound<'py, PyDict>,
        flattener: &mut Flattener<'_>,
    ) -> Result<Bound<'py, PyDict>, TraverseError> {
        let py = d.py();
        let flat = flattener.flatten(d)?;
        if self.steps.is_empty() {
            return Ok(flat);
        }
        let out = PyDict::new(py);
        for s in &self.steps {
            if let Some(v) = flat.get_item(s.source.field.bind(py))? {
                if !v.is_none() {
                    out.set_item(s.key.bind(py), v)?;
                }
            }
        }
        out.update(flat.as_mapping())?;
        Ok(out)
    }

    /// A source's value by the direct lookup: the literal key first (skipped
    /// when the collision check has just shown no key contains the delimiter),
    /// else the walk the trie did.
    fn direct_value<'py>(
        &self,
        d: &Bound<'py, PyDict>,
        s: &Step,
        vals: &[Option<Bound<'py, PyAny>>],
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        if s.source.nested && !self.check_collisions {
            if let Some(v) = d.get_item(s.source.field.bind(d.py()))? {
                return Ok(Some(v));
            }
        }
        Ok(vals[s.node].clone())
    }

    fn direct<'py>(
        &self,
        d: &Bound<'py, PyDict>,
        scratch: &mut Scratch<'py>,
    ) -> Result<Bound<'py, PyDict>, TraverseError> {
        let py = d.py();
        self.inputs
            .eval(d, false, &mut scratch.vals, &mut scratch.hints)?;
        let out = PyDict::new(py);
        if let Some(nodes) = &self.out_nodes {
            scratch.out_dicts.clear();
            scratch.out_dicts.resize(nodes.len(), None);
            for s in &self.steps {
                let Some(v) = self.direct_value(d, s, &scratch.vals)? else {
                    continue;
                };
                if v.is_none() {
                    continue;
                }
                let parent = match s.out_parent {
                    None => out.clone(),
                    Some(n) => out_dict(&out, nodes, n, &mut scratch.out_dicts)?,
                };
                parent.set_item(s.leaf.bind(py), v)?;
            }
        } else {
            scratch.owned.clear();
            for s in self.steps.iter() {
                if s.may_exist && get_direct(&out, &s.source)?.is_some_and(|v| !v.is_none()) {
                    continue;
                }
                let Some(v) = self.direct_value(d, s, &scratch.vals)? else {
                    continue;
                };
                if v.is_none() {
                    continue;
                }
                match &s.target {
                    Some(p) => {
                        own_path(&out, p, &mut scratch.owned)?;
                        set_direct(&out, p, &v)?;
                    }
                    None => out.set_item(s.key.bind(py), v)?,
                }
            }
        }
        if !self.steps.iter().any(|s| s.is_feature) {
            out.update(d.as_mapping())?;
        }
        Ok(out)
    }
}

/// The output's nested dict at `node`, created (with its parents) on first use.
fn out_dict<'py>(
    out: &Bound<'py, PyDict>,
    nodes: &[OutNode],
    node: usize,
    made: &mut Vec<Option<Bound<'py, PyDict>>>,
) -> PyResult<Bound<'py, PyDict>> {
    if let Some(d) = &made[node] {
        return Ok(d.clone());
    }
    let parent = match nodes[node].parent {
        None => out.clone(),
        Some(p) => out_dict(out, nodes, p, made)?,
    };
    let child = PyDict::new(out.py());
    parent.set_item(nodes[node].key.bind(out.py()), &child)?;
    made[node] = Some(child.clone());
    Ok(child)
}

/// True when a flattened record keeps `v` as a value.
fn is_kept_leaf(v: &Bound<'_, PyAny>, lists: bool) -> PyResult<bool> {
    Ok(match classify(v, lists)? {
        Node::Dict(d) => d.is_empty(),
        Node::List(l) => l.is_empty(),
        Node::Mapping(_) => false,
        Node::Leaf => true,
    })
}

/// A lookup error names the field it was resolving.
fn at_field(e: TraverseError, path: &FieldPath) -> TraverseError {
    match e.problem {
        Problem::Duplicate(_) => e,
        _ => e.within(PathSegment::Key(path.text.clone())),
    }
}

/// Before `set_direct` writes along `path` in the output: a dict on the way
/// that came from the input (a renamed or selected nested value) is replaced by
/// a shallow copy, so the caller's records are never modified. `owned` lists
/// the copies made for this record's output; dicts `set_direct` creates are
/// new, and at worst copied once more here, which changes nothing visible.
fn own_path<'py>(
    out: &Bound<'py, PyDict>,
    path: &FieldPath,
    owned: &mut Vec<Bound<'py, PyDict>>,
) -> PyResult<()> {
    let py = out.py();
    let mut current = out.clone();
    for part in &path.parts[..path.parts.len() - 1] {
        let part = part.bind(py);
        let Some(v) = current.get_item(part)? else {
            return Ok(());
        };
        let Ok(child) = v.cast_into::<PyDict>() else {
            return Ok(());
        };
        current = if owned.iter().any(|o| o.is(&child)) {
            child
        } else {
            let copy = child.copy()?;
            current.set_item(part, &copy)?;
            owned.push(copy.clone());
            copy
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_and_compare_by_parts() {
        assert_eq!(parts_of("a.b.c", "."), ["a", "b", "c"]);
        assert_eq!(parts_of("a::b", "::"), ["a", "b"]);
        assert_eq!(parts_of("a.b", ""), ["a.b"]);
        assert!(is_prefix(&["a"], &["a", "b"]));
        assert!(is_prefix(&["a", "b"], &["a", "b"]));
        assert!(!is_prefix(&["a", "b"], &["a"]));
        assert!(!is_prefix(&["a", "c"], &["a", "b", "c"]));
    }

    #[test]
    fn list_indices_are_canonical() {
        assert_eq!(canonical_index("0"), Some(0));
        assert_eq!(canonical_index("12"), Some(12));
        assert_eq!(canonical_index("01"), None);
        assert_eq!(canonical_index("-1"), None);
        assert_eq!(canonical_index(""), None);
        assert_eq!(canonical_index("1a"), None);
        assert_eq!(canonical_index("99999999999999999999999"), None);
    }

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

    #[test]
    fn own_path_copies_shared_dicts_once() {
        Python::initialize();
        Python::attach(|py| {
            let shared = PyDict::new(py);
            shared.set_item("y", 1).unwrap();
            let out = PyDict::new(py);
            out.set_item("cfg", &shared).unwrap();
            let two = 2i32.into_pyobject(py).unwrap().into_any();
            let mut owned = Vec::new();
            let path = FieldPath::new(py, "cfg.z", ".").unwrap();
            own_path(&out, &path, &mut owned).unwrap();
            set_direct(&out, &path, &two).unwrap();
            assert_eq!(shared.repr().unwrap().to_string(), "{'y': 1}");
            assert_eq!(out.repr().unwrap().to_string(), "{'cfg': {'y': 1, 'z': 2}}");
            let path = FieldPath::new(py, "cfg.w", ".").unwrap();
            own_path(&out, &path, &mut owned).unwrap();
            set_direct(&out, &path, &two).unwrap();
            assert_eq!(owned.len(), 1);
            assert_eq!(
                out.repr().unwrap().to_string(),
                "{'cfg': {'y': 1, 'z': 2, 'w': 2}}"
            );
        });
    }
}
