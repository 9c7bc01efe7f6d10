//! `RecordsPlan`: the records preprocessor's config compiled once (input paths
//! as a trie, interned output keys, the output's nested dicts) and run over a
//! whole batch in one call.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::collisions::{collisions, is_clean, Needle};
use super::input_trie::InputTrie;
use crate::dict_slot::SlotHint;
use crate::errors::{preprocessor_runtime_error, type_error, type_name, type_repr, PathSegment};
use crate::flatten::Flattener;
use crate::gc_pause::GcPause;
use crate::lookup::{find_flat, get_direct, set_direct, FieldPath};
use crate::walk::{is_kept_leaf, Problem, TraverseError};

const RUNTIME_PREFIX: &str = "Failed to preprocess inputs with the following exception: ";

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
    /// Per input-trie node: reached through keys spelled as their text.
    spelled: Vec<bool>,
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
    /// True when the plan hands records on unchanged.
    pub fn is_passthrough(&self) -> bool {
        self.passthrough
    }

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
            spelled: Vec::with_capacity(self.inputs.nodes.len()),
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
        self.inputs.eval(
            d,
            self.flatten_lists,
            true,
            &mut scratch.vals,
            &mut scratch.spelled,
            &mut scratch.hints,
        )?;
        scratch.found.clear();
        let mut complete = true;
        for s in &self.steps {
            let walked = scratch.vals[s.node].clone();
            let v = match walked {
                Some(v) if is_kept_leaf(&v, self.flatten_lists)? => Some(v),
                _ => find_flat(d, &s.source, self.flatten_lists, None)
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
        self.inputs.eval(
            d,
            false,
            false,
            &mut scratch.vals,
            &mut scratch.spelled,
            &mut scratch.hints,
        )?;
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
