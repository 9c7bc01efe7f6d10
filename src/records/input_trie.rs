//! The input side of a records plan: its field paths as a trie of their parts,
//! evaluated once per record with remembered key positions.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::dict_slot::SlotHint;
use crate::lookup::{canonical_index, FieldPath};

/// The input paths of a plan as a trie of their parts, so a prefix shared by
/// several fields (`src` in `src.ip` and `src.port`) is looked up once per record.
#[derive(Default)]
pub(super) struct InputTrie {
    pub(super) nodes: Vec<InNode>,
}

pub(super) struct InNode {
    key: Py<PyString>,
    /// The part as a list index (`str(i)`), for enumerated lists.
    index: Option<usize>,
    parent: Option<usize>,
}

impl InputTrie {
    /// The node reached by `path`'s parts, added as needed.
    pub(super) fn add(&mut self, py: Python<'_>, path: &FieldPath) -> usize {
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
    pub(super) fn eval<'py>(
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
