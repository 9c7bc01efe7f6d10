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
    /// Some path goes on below this node.
    has_children: bool,
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
                    if let Some(p) = parent {
                        self.nodes[p].has_children = true;
                    }
                    self.nodes.push(InNode {
                        key: key.clone_ref(py),
                        index: canonical_index(text),
                        parent,
                        has_children: false,
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
    ///
    /// `flat`: the flattened record's semantics, where a key below the top
    /// level, or with keys below it, is spelled by its `str()`; a node is then
    /// reached only through keys known to be exact strs of the parts' text,
    /// and is None otherwise (the caller's scan spells the keys). `spelled` is
    /// scratch space, one flag per node.
    pub(super) fn eval<'py>(
        &self,
        d: &Bound<'py, PyDict>,
        lists: bool,
        flat: bool,
        vals: &mut Vec<Option<Bound<'py, PyAny>>>,
        spelled: &mut Vec<bool>,
        hints: &mut Vec<SlotHint>,
    ) -> PyResult<()> {
        let py = d.py();
        vals.clear();
        spelled.clear();
        if hints.len() != self.nodes.len() {
            hints.clear();
            hints.resize_with(self.nodes.len(), SlotHint::new);
        }
        for (n, hint) in self.nodes.iter().zip(hints.iter_mut()) {
            let (v, ok) = match n.parent {
                // A top-level key is the field itself when nothing is below it.
                None => hint.get_checked(d, n.key.bind(py), flat && n.has_children)?,
                Some(p) => match &vals[p] {
                    Some(_) if flat && !spelled[p] => (None, false),
                    None => (None, false),
                    Some(pv) => {
                        if let Ok(pd) = pv.cast::<PyDict>() {
                            let (v, ok) = hint.get_checked(pd, n.key.bind(py), flat)?;
                            (v.filter(|_| ok || !flat), ok)
                        } else if let (true, Some(i), Ok(l)) = (lists, n.index, pv.cast::<PyList>())
                        {
                            if i < l.len() {
                                (Some(l.get_item(i)?), true)
                            } else {
                                (None, false)
                            }
                        } else {
                            (None, false)
                        }
                    }
                },
            };
            vals.push(v);
            spelled.push(ok);
        }
        Ok(())
    }
}
