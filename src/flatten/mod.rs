//! Flattening nested records into one-level dicts whose keys are the nested keys
//! joined by a delimiter (Packflow 0.4's `flatten_dict`), afresh or, for records
//! shaped like the one before, by replaying a template (`replay`).

mod replay;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use rustc_hash::FxHashMap;

use crate::errors::{location, type_error, type_repr, KeyPath, MAX_DEPTH};
use crate::walk::{
    bytes_to_str, classify, key_bytes, key_text, DictItems, ItemKey, Node, Problem, TraverseError,
};
use replay::{replay_record, ShapeStep, StepKind, Template};

/// Records of a batch mostly share their keys, so a joined key is made once per
/// batch and reused: no new str, and its hash is already cached on insert.
const KEY_CACHE_LIMIT: usize = 4096;

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
    keys: FxHashMap<Box<[u8]>, Py<PyString>>,
    template: Option<Template>,
    /// The shape of the record being built afresh, while one is recorded.
    shape: Vec<ShapeStep>,
    /// The record being built cannot be a template (it has a non-dict mapping).
    irregular: bool,
    /// Replay hits minus misses; templates are given up when shapes keep changing.
    score: i32,
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
            keys: FxHashMap::default(),
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
                let mut items = DictItems::new(d);
                for (k, v) in &mut items {
                    has_item = true;
                    self.item(out, ItemKey::Obj(&k), &v, raw, depth)?;
                }
                items.check()?;
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
