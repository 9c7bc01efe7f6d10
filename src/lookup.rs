//! Nested field access by delimited path, compiled once (`FieldPath`) and applied
//! per record. Two semantics, both from Packflow 0.4:
//! - *direct*: a literal key first, else a walk through nested dicts by the path's
//!   parts; whatever sits there (a dict too) is the value.
//! - *flat*: a literal key first, else the value whose key in the flattened record
//!   (keys joined with the delimiter, lists not enumerated, empty dicts kept)
//!   equals the field; a non-empty dict is never such a value. `find_flat` is
//!   the same without the literal shortcut and optionally with lists enumerated
//!   (the records preprocessor's flatten mode).

use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::dict_slot::SlotHint;
use crate::errors::{value_error, PathSegment, MAX_DEPTH};
use crate::walk::{
    classify, is_kept_leaf, key_bytes, str_bytes, DictItems, ItemKey, Node, Problem, TraverseError,
};

/// A field name split into parts once, with its key objects made ahead of time
/// so lookups reuse their cached hashes.
pub struct FieldPath {
    pub field: Py<PyString>,
    pub text: String,
    pub delimiter: String,
    pub parts: Vec<Py<PyString>>,
    /// True when the field contains the delimiter (it is a nested path).
    pub nested: bool,
}

impl FieldPath {
    pub fn new(py: Python<'_>, field: &str, delimiter: &str) -> PyResult<Self> {
        if delimiter.is_empty() {
            return Err(value_error(
                "empty separator: the nested field delimiter must not be empty",
            ));
        }
        let parts: Vec<Py<PyString>> = field
            .split(delimiter)
            .map(|p| PyString::intern(py, p).unbind())
            .collect();
        Ok(FieldPath {
            field: PyString::intern(py, field).unbind(),
            text: field.to_string(),
            delimiter: delimiter.to_string(),
            nested: parts.len() > 1,
            parts,
        })
    }

    /// The whole field as its only part: for an empty delimiter, which cannot
    /// split a field but still joins keys when flattening.
    pub fn unsplit(py: Python<'_>, field: &str, delimiter: &str) -> Self {
        let key = PyString::intern(py, field).unbind();
        FieldPath {
            parts: vec![key.clone_ref(py)],
            field: key,
            text: field.to_string(),
            delimiter: delimiter.to_string(),
            nested: false,
        }
    }

    /// For a one-off lookup: the caller's field object is reused and the parts
    /// are plain (not interned) strings, made only when there are several.
    pub fn transient(field: &Bound<'_, PyString>, delimiter: &str) -> PyResult<Self> {
        if delimiter.is_empty() {
            return Err(value_error(
                "empty separator: the nested field delimiter must not be empty",
            ));
        }
        let py = field.py();
        let text = field.to_str()?;
        let nested = text.contains(delimiter);
        let parts = if nested {
            text.split(delimiter)
                .map(|p| PyString::new(py, p).unbind())
                .collect()
        } else {
            vec![field.clone().unbind()]
        };
        Ok(FieldPath {
            field: field.clone().unbind(),
            text: text.to_string(),
            delimiter: delimiter.to_string(),
            parts,
            nested,
        })
    }
}

/// Literal key first, else walk the parts through nested dicts.
pub fn get_direct<'py>(
    obj: &Bound<'py, PyDict>,
    path: &FieldPath,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    if let Some(v) = obj.get_item(path.field.bind(py))? {
        return Ok(Some(v));
    }
    if !path.nested {
        return Ok(None);
    }
    let mut current: Bound<'py, PyAny> = obj.clone().into_any();
    for part in &path.parts {
        let Ok(d) = current.cast::<PyDict>() else {
            return Ok(None);
        };
        match d.get_item(part.bind(py))? {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// Literal key first, else the flattened-path value (see the module docs).
/// `hints` (one per part, kept across records) as in [`find_flat`].
pub fn get_flat<'py>(
    obj: &Bound<'py, PyDict>,
    path: &FieldPath,
    hints: Option<&mut [SlotHint]>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    if let Some(v) = obj.get_item(path.field.bind(py))? {
        return Ok(Some(v));
    }
    find_flat(obj, path, false, hints).map_err(|e| e.into_pyerr(py, None))
}

/// The value whose key in `flatten_dict(obj, delimiter, lists)` is the field,
/// without building the flattened dict.
///
/// The parts are walked as plain keys (list indices too when `lists`); a walk
/// that ends on a value the flattened record keeps is the answer. Otherwise the
/// record is scanned for every spelling of the field (keys containing the
/// delimiter, non-str keys joined as text, keys below a `None` key, other
/// mappings), and two spellings are the reference's "duplicated key" error.
/// Unlike the reference, a duplicate elsewhere in the record, or a second
/// spelling of a field the walk found, is not reported.
///
/// The flattened record spells a key by its `str()`, so a nested walk only
/// follows keys known to be exact strs of the part's text (a str subclass
/// equal to the part may spell as other text); any other key is left to the
/// scan. `hints` (one per part) remember where each part's key sat, for
/// records of one shape.
pub fn find_flat<'py>(
    obj: &Bound<'py, PyDict>,
    path: &FieldPath,
    lists: bool,
    mut hints: Option<&mut [SlotHint]>,
) -> Result<Option<Bound<'py, PyAny>>, TraverseError> {
    let py = obj.py();
    let mut current: Bound<'py, PyAny> = obj.clone().into_any();
    let mut walked = true;
    debug_assert!(hints.as_ref().map_or(true, |h| h.len() == path.parts.len()));
    for (i, part) in path.parts.iter().enumerate() {
        let next = if let Ok(d) = current.cast::<PyDict>() {
            if !path.nested {
                // A top-level key that is the whole field is kept as it is.
                d.get_item(part.bind(py))?
            } else if let Some(h) = hints.as_deref_mut() {
                h[i].get_spelled(d, part.bind(py))?
            } else {
                SlotHint::new().get_spelled(d, part.bind(py))?
            }
        } else if let (true, Ok(l)) = (lists, current.cast::<PyList>()) {
            match list_index(part.bind(py).to_str()?, l.len()) {
                Some(i) => Some(l.get_item(i)?),
                None => None,
            }
        } else {
            None
        };
        match next {
            Some(v) => current = v,
            None => {
                walked = false;
                break;
            }
        }
    }
    if walked && is_kept_leaf(&current, lists)? {
        return Ok(Some(current));
    }
    // Without the delimiter in the field, only a key with no parent key can
    // spell it: a top-level key (the walk saw it) or one below a `None` key.
    if !path.nested && !path.delimiter.is_empty() && obj.get_item(py.None())?.is_none() {
        return Ok(None);
    }
    let mut found = None;
    scan_into(
        Node::Dict(obj),
        path.text.as_bytes(),
        path.delimiter.as_bytes(),
        lists,
        true,
        0,
        &path.text,
        &mut found,
    )?;
    Ok(found)
}

/// `i` when `text` is `str(i)`: how the reference spells a list index in a path.
pub fn canonical_index(text: &str) -> Option<usize> {
    let canonical = text == "0" || (!text.is_empty() && !text.starts_with('0'));
    if canonical && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// `str(i)` for an index of a list of `len` items, as the reference enumerates.
fn list_index(part: &str, len: usize) -> Option<usize> {
    canonical_index(part).filter(|&i| i < len)
}

/// How an item's key reads in the flattened record.
struct KeyTexts<'a> {
    /// What a flat key ending here equals; None for a key object no str equals.
    eq: Option<Cow<'a, [u8]>>,
    /// What the keys of its children start with; None below a `None` key,
    /// where there is still no parent key.
    join: Option<Cow<'a, [u8]>>,
}

/// Every spelling of `rest` by joined keys below `node`. `raw` is true while
/// there is no parent key (keys are then compared as objects, so only a str key
/// can equal the field). More than one match is the "duplicated key" error.
#[allow(clippy::too_many_arguments)]
fn scan_into<'py>(
    node: Node<'_, 'py>,
    rest: &[u8],
    delimiter: &[u8],
    lists: bool,
    raw: bool,
    depth: usize,
    field: &str,
    found: &mut Option<Bound<'py, PyAny>>,
) -> Result<(), TraverseError> {
    let mut visit = |key: ItemKey<'_, 'py>, v: Bound<'py, PyAny>| -> Result<(), TraverseError> {
        let texts = match key {
            ItemKey::Index(i) => {
                let t: Cow<'_, [u8]> =
                    Cow::Owned(itoa::Buffer::new().format(i).as_bytes().to_vec());
                KeyTexts {
                    eq: (!raw).then(|| t.clone()),
                    join: Some(t),
                }
            }
            ItemKey::Obj(k) if raw && k.is_none() => KeyTexts {
                eq: None,
                join: None,
            },
            ItemKey::Obj(k) => {
                let join =
                    key_bytes(k).map_err(|e| TraverseError::from(e).within(key.segment()))?;
                let eq = if !raw {
                    Some(join.clone())
                } else if let Ok(s) = k.cast::<PyString>() {
                    Some(str_bytes(s)?)
                } else {
                    None
                };
                KeyTexts {
                    eq,
                    join: Some(join),
                }
            }
        };
        let (eq_text, join_text) = (texts.eq, texts.join);
        let child = classify(&v, lists)?;
        let (container, kept) = match &child {
            Node::Dict(d) => (!d.is_empty(), d.is_empty()),
            Node::List(l) => (!l.is_empty(), l.is_empty()),
            Node::Mapping(_) => (true, false),
            Node::Leaf => (false, true),
        };
        if container {
            let below = match &join_text {
                // Below a `None` key there is still no parent key.
                None => Some((rest, true)),
                Some(t) => rest
                    .strip_prefix(t.as_ref())
                    .and_then(|r| r.strip_prefix(delimiter))
                    .map(|r| (r, false)),
            };
            if let Some((tail, child_raw)) = below {
                if depth + 1 >= MAX_DEPTH {
                    return Err(TraverseError::new(Problem::TooDeep).within(key.segment()));
                }
                scan_into(
                    child,
                    tail,
                    delimiter,
                    lists,
                    child_raw,
                    depth + 1,
                    field,
                    found,
                )
                .map_err(|e| match e.problem {
                    Problem::Duplicate(_) => e,
                    _ => e.within(key.segment()),
                })?;
            }
        } else if kept && eq_text.as_deref() == Some(rest) {
            if found.is_some() {
                return Err(TraverseError::new(Problem::Duplicate(field.to_string()))
                    .within(PathSegment::Key(field.to_string())));
            }
            *found = Some(v);
        }
        Ok(())
    };
    match node {
        Node::Dict(d) => {
            let mut items = DictItems::new(d);
            for (k, v) in &mut items {
                visit(ItemKey::Obj(&k), v)?;
            }
            items.check()?;
        }
        Node::List(l) => {
            for (i, v) in l.iter().enumerate() {
                visit(ItemKey::Index(i), v)?;
            }
        }
        Node::Mapping(m) => {
            let py = m.py();
            for pair in m.call_method0(pyo3::intern!(py, "items"))?.try_iter()? {
                let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = pair?.extract()?;
                visit(ItemKey::Obj(&k), v)?;
            }
        }
        Node::Leaf => {}
    }
    Ok(())
}

/// `get_direct` for a one-off call: the field is split as it is walked, with
/// no `FieldPath` (and its allocations) built for a single lookup.
pub fn get_direct_once<'py>(
    obj: &Bound<'py, PyDict>,
    field: &Bound<'py, PyString>,
    delimiter: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Some(v) = obj.get_item(field)? {
        return Ok(Some(v));
    }
    let text = field.to_str()?;
    if delimiter.is_empty() {
        return Err(value_error(
            "empty separator: the nested field delimiter must not be empty",
        ));
    }
    if !text.contains(delimiter) {
        return Ok(None);
    }
    let py = obj.py();
    let mut current: Bound<'py, PyAny> = obj.clone().into_any();
    for part in text.split(delimiter) {
        let Ok(d) = current.cast::<PyDict>() else {
            return Ok(None);
        };
        match d.get_item(PyString::new(py, part))? {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// `set_direct` for a one-off call, splitting the field as it goes.
pub fn set_direct_once(
    obj: &Bound<'_, PyDict>,
    field: &Bound<'_, PyString>,
    delimiter: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if delimiter.is_empty() {
        return Err(value_error(
            "empty separator: the nested field delimiter must not be empty",
        ));
    }
    let text = field.to_str()?;
    let Some((init, last)) = text.rsplit_once(delimiter) else {
        return obj.set_item(field, value);
    };
    let py = obj.py();
    let mut current = obj.clone();
    for part in init.split(delimiter) {
        let part = PyString::new(py, part);
        current = match current.get_item(&part)? {
            None => {
                let child = PyDict::new(py);
                current.set_item(&part, &child)?;
                child
            }
            Some(v) => match v.cast_into::<PyDict>() {
                Ok(child) => child,
                Err(_) => return Ok(()),
            },
        };
    }
    current.set_item(PyString::new(py, last), value)
}

/// Create nested dicts along the path and set the value; stop silently at a
/// non-dict on the way.
pub fn set_direct(
    obj: &Bound<'_, PyDict>,
    path: &FieldPath,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let py = obj.py();
    let (last, init) = path
        .parts
        .split_last()
        .expect("a split string has at least one part");
    let mut current = obj.clone();
    for part in init {
        let part = part.bind(py);
        match current.get_item(part)? {
            None => {
                let child = PyDict::new(py);
                current.set_item(part, &child)?;
                current = child;
            }
            Some(v) => match v.cast_into::<PyDict>() {
                Ok(child) => current = child,
                Err(_) => return Ok(()),
            },
        }
    }
    current.set_item(last.bind(py), value)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn eval<'py>(py: Python<'py>, src: &str) -> Bound<'py, PyDict> {
        let code = std::ffi::CString::new(src).unwrap();
        py.eval(&code, None, None)
            .unwrap()
            .cast_into::<PyDict>()
            .unwrap()
    }

    fn flat(py: Python<'_>, src: &str, field: &str, lists: bool) -> Result<Option<String>, String> {
        let d = eval(py, src);
        let path = FieldPath::new(py, field, ".").unwrap();
        find_flat(&d, &path, lists, None)
            .map(|v| v.map(|v| v.repr().unwrap().to_string()))
            .map_err(|e| e.message(py, None))
    }

    #[test]
    fn find_flat_walks_then_scans() {
        Python::initialize();
        Python::attach(|py| {
            assert_eq!(
                flat(py, "{'a': {'b': 1}}", "a.b", false),
                Ok(Some("1".into()))
            );
            assert_eq!(flat(py, "{'a': {'b': {'c': 1}}}", "a.b", false), Ok(None));
            assert_eq!(
                flat(py, "{'a': {'b': {}}}", "a.b", false),
                Ok(Some("{}".into()))
            );
            assert_eq!(
                flat(py, "{'a.b': {'c': 2}}", "a.b.c", false),
                Ok(Some("2".into()))
            );
            assert_eq!(
                flat(py, "{1: {'c': 3}}", "1.c", false),
                Ok(Some("3".into()))
            );
            assert_eq!(
                flat(py, "{None: {'c': 4}}", "c", false),
                Ok(Some("4".into()))
            );
            assert_eq!(flat(py, "{'l': [5, 6]}", "l.1", false), Ok(None));
            assert_eq!(flat(py, "{'l': [5, 6]}", "l.1", true), Ok(Some("6".into())));
            assert_eq!(flat(py, "{'l': [5, 6]}", "l", true), Ok(None));
            assert_eq!(flat(py, "{'l': []}", "l", true), Ok(Some("[]".into())));
            assert_eq!(
                flat(py, "{'a.b': {'c': 1}, 'a': {'b.c': 2}}", "a.b.c", false),
                Err("duplicated key 'a.b.c' (key \"a.b.c\")".into())
            );
        });
    }

    #[test]
    fn a_nested_walk_follows_only_keys_spelled_as_the_part() {
        Python::initialize();
        Python::attach(|py| {
            let ns = PyDict::new(py);
            let code = "class Lie(str):\n    def __str__(self): return 'lie'\n\
                        rows = [{'0': {'a': 1}}, {Lie('0'): {'a': 2}}, {'x': {Lie('0'): 3}}]";
            py.run(&std::ffi::CString::new(code).unwrap(), None, Some(&ns))
                .unwrap();
            let rows = ns.get_item("rows").unwrap().unwrap();
            let row = |i: usize| rows.get_item(i).unwrap().cast_into::<PyDict>().unwrap();
            let get = |i: usize, field: &str, hints: Option<&mut [SlotHint]>| {
                let path = FieldPath::new(py, field, ".").unwrap();
                find_flat(&row(i), &path, false, hints)
                    .unwrap_or_else(|e| panic!("{}", e.message(py, None)))
                    .map(|v| v.repr().unwrap().to_string())
            };
            let mut hints = [SlotHint::new(), SlotHint::new()];
            assert_eq!(get(0, "0.a", Some(&mut hints)), Some("1".into()));
            // The remembered position holds an equal key that spells as "lie".
            assert_eq!(get(1, "0.a", Some(&mut hints)), None);
            assert_eq!(get(1, "0.a", None), None);
            assert_eq!(get(1, "lie.a", None), Some("2".into()));
            assert_eq!(get(2, "x.0", None), None);
            assert_eq!(get(2, "x.lie", None), Some("3".into()));
            assert_eq!(get(0, "0.a", Some(&mut hints)), Some("1".into()));
        });
    }

    #[test]
    fn one_off_lookups() {
        Python::initialize();
        Python::attach(|py| {
            let d = eval(py, "{'a': {'b': {'c': 1}}, 'a.b': 2, 'x': 3}");
            let get = |f: &str| {
                get_direct_once(&d, &PyString::new(py, f), ".")
                    .unwrap()
                    .map(|v| v.repr().unwrap().to_string())
            };
            assert_eq!(get("a.b"), Some("2".into()));
            assert_eq!(get("a.b.c"), Some("1".into()));
            assert_eq!(get("x.y"), None);
            assert_eq!(get("nope"), None);
            let one = 1i32.into_pyobject(py).unwrap().into_any();
            set_direct_once(&d, &PyString::new(py, "n.m.o"), ".", &one).unwrap();
            set_direct_once(&d, &PyString::new(py, "x.y"), ".", &one).unwrap();
            assert_eq!(get("n.m.o"), Some("1".into()));
            assert_eq!(get("x"), Some("3".into()));
            assert!(set_direct_once(&d, &PyString::new(py, "q"), "", &one).is_err());
        });
    }
}
