//! Records to a 2-D ndarray (one row per record, one column per feature), typed
//! exactly as `numpy.array(rows, dtype=dtype)` would type the gathered rows.
//!
//! One pass gathers the cells. When every cell is a plain bool, int (within
//! 64 bits) or float and the dtype is inferred or a simple numeric one, the
//! values are written straight into a fresh array. Anything else (None, str,
//! subclasses such as numpy scalars, huge ints, lists, other dtypes, values the
//! dtype would reject or warn about) builds the Python rows and lets
//! `numpy.array` decide, so the result, warnings and errors are numpy's own.

use numpy::{Element, IxDyn, PyArray, PyArrayDescr, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::dict_slot::SlotHint;
use crate::errors::{preprocessor_runtime_error, type_name, type_repr, value_error};
use crate::lookup::{get_flat, FieldPath};

const DEFAULT_DELIMITER: &str = ".";
const RUNTIME_PREFIX: &str = "Failed to preprocess inputs with the following exception: ";

/// A cell the fast path can write without asking numpy.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    Bool(bool),
    Int(i64),
    Float(f64),
}

/// Which Python scalar kinds were seen; numpy's inference over the whole 2-D
/// list depends only on these (float > int > bool, nothing seen -> float64).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Kinds {
    bool: bool,
    int: bool,
    float: bool,
}

/// The element types the fast path writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Bool,
    I32,
    I64,
    F32,
    F64,
}

impl Kinds {
    fn inferred(self) -> Target {
        if self.float || !(self.int || self.bool) {
            Target::F64
        } else if self.int {
            Target::I64
        } else {
            Target::Bool
        }
    }
}

/// What the caller asked for: numpy's inference, one of the fast targets, or
/// something only numpy handles.
enum Requested {
    Infer,
    Fast(Target),
    NumpyOnly,
}

fn requested_target(dtype: Option<&Bound<'_, PyAny>>) -> Requested {
    let Some(obj) = dtype else {
        return Requested::Infer;
    };
    if obj.is_none() {
        return Requested::Infer;
    }
    let py = obj.py();
    // An invalid spec is left for numpy.array, which raises its own error.
    let Ok(descr) = PyArrayDescr::new(py, obj) else {
        return Requested::NumpyOnly;
    };
    // Identity with the builtin descriptors: a byte-swapped, aliased or
    // metadata-carrying dtype goes through numpy and keeps its exact form.
    let candidates: [(Bound<'_, PyArrayDescr>, Target); 5] = [
        (PyArrayDescr::of::<f64>(py), Target::F64),
        (PyArrayDescr::of::<f32>(py), Target::F32),
        (PyArrayDescr::of::<i64>(py), Target::I64),
        (PyArrayDescr::of::<i32>(py), Target::I32),
        (PyArrayDescr::of::<bool>(py), Target::Bool),
    ];
    candidates
        .into_iter()
        .find(|(d, _)| d.is(&descr))
        .map_or(Requested::NumpyOnly, |(_, t)| Requested::Fast(t))
}

/// The record at `index` as a dict (subclasses accepted, like the reference).
fn as_record<'a, 'py>(
    rec: &'a Bound<'py, PyAny>,
    index: usize,
) -> PyResult<&'a Bound<'py, PyDict>> {
    rec.cast::<PyDict>().map_err(|_| {
        value_error(format!(
            "Value at index {index} is not a dictionary. Received type: {}",
            type_repr(rec)
        ))
    })
}

fn as_records<'a, 'py>(records: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyList>> {
    records.cast::<PyList>().map_err(|_| {
        value_error(format!(
            "Value for `records` must be a list of dictionaries. Received type: {}",
            type_repr(records)
        ))
    })
}

/// One remembered entry position per part of every path, in one allocation.
struct PartHints(Vec<SlotHint>);

impl PartHints {
    fn new(paths: &[FieldPath]) -> Self {
        let total = paths.iter().map(|p| p.parts.len()).sum();
        PartHints(std::iter::repeat_with(SlotHint::new).take(total).collect())
    }

    /// Each path's hints, in the order of `paths` (those it was made for).
    fn iter_mut<'a>(
        &'a mut self,
        paths: &'a [FieldPath],
    ) -> impl Iterator<Item = &'a mut [SlotHint]> + 'a {
        let mut rest = self.0.as_mut_slice();
        paths.iter().map(move |p| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(p.parts.len());
            rest = tail;
            head
        })
    }
}

/// The feature's value in the record (None when missing), with lookup errors
/// placed at their row.
fn lookup<'py>(
    rec: &Bound<'py, PyDict>,
    path: &FieldPath,
    index: usize,
    hints: &mut [SlotHint],
) -> PyResult<Option<Bound<'py, PyAny>>> {
    get_flat(rec, path, Some(hints)).map_err(|e| {
        let py = rec.py();
        if !e.is_instance_of::<PyValueError>(py) {
            return e;
        }
        let msg = e.value(py).to_string();
        // "what (key \"a.b\")" becomes "what (row 3, key \"a.b\")".
        let located = match msg.rfind(" (key ") {
            Some(at) if msg.ends_with(')') => {
                format!("{} (row {index}, {}", &msg[..at], &msg[at + 2..])
            }
            _ => format!("{msg} (row {index})"),
        };
        let err = value_error(located);
        err.set_cause(py, Some(e));
        err
    })
}

/// Per-cell kind tags, kept beside the raw 8-byte payloads.
const TAG_BOOL: u8 = 0;
const TAG_INT: u8 = 1;
const TAG_FLOAT: u8 = 2;

/// A plain float, int within 64 bits or bool as (tag, raw payload bits);
/// `None` for anything else.
#[inline]
fn classify(v: &Bound<'_, PyAny>) -> Option<(u8, u64)> {
    if let Ok(f) = v.cast_exact::<PyFloat>() {
        Some((TAG_FLOAT, f.value().to_bits()))
    } else if v.is_exact_instance_of::<PyInt>() {
        // Only overflow fails here (an exact int always converts otherwise);
        // such an int goes to numpy, which may pick uint64, float64 or object.
        v.extract::<i64>().ok().map(|i| (TAG_INT, i as u64))
    } else if v.is_exact_instance_of::<PyBool>() {
        Some((TAG_BOOL, u64::from(v.is_truthy().ok()?)))
    } else {
        None
    }
}

fn decode(raw: u64, tag: u8) -> Cell {
    match tag {
        TAG_FLOAT => Cell::Float(f64::from_bits(raw)),
        TAG_INT => Cell::Int(raw as i64),
        _ => Cell::Bool(raw != 0),
    }
}

/// The single fast pass: each cell's payload goes to `raw` (row-major), its
/// kind to `tags`. `Ok(None)`: some cell needs numpy (or the list changed
/// length under us).
fn gather_fast(
    records: &Bound<'_, PyList>,
    paths: &[FieldPath],
    raw: &mut [f64],
    tags: &mut Vec<u8>,
) -> PyResult<Option<Kinds>> {
    let mut kinds = Kinds::default();
    let mut slots = raw.iter_mut();
    let mut rows = 0;
    let mut hints: Vec<SlotHint> = paths.iter().map(|_| SlotHint::new()).collect();
    let mut part_hints = PartHints::new(paths);
    for (index, rec) in records.iter().enumerate() {
        let rec = as_record(&rec, index)?;
        let mut parts = part_hints.iter_mut(paths);
        for (path, hint) in paths.iter().zip(hints.iter_mut()) {
            let parts = parts.next().expect("one per path");
            let hinted = if path.nested {
                None
            } else {
                hint.get(rec, path.field.bind(rec.py()))
            };
            let found = match hinted {
                Some(v) => Some(v),
                None => lookup(rec, path, index, parts)?,
            };
            let Some(value) = found else {
                return Ok(None);
            };
            let Some((tag, bits)) = classify(&value) else {
                return Ok(None);
            };
            let Some(slot) = slots.next() else {
                return Ok(None);
            };
            *slot = f64::from_bits(bits);
            tags.push(tag);
            match tag {
                TAG_FLOAT => kinds.float = true,
                TAG_INT => kinds.int = true,
                _ => kinds.bool = true,
            }
        }
        rows += 1;
    }
    Ok((rows * paths.len() == raw.len()).then_some(kinds))
}

/// False when writing the cells as `target` would differ from numpy: floats
/// into an int dtype (numpy truncates, or raises for nan/inf/huge), ints out
/// of int32 range (numpy raises), floats that overflow float32 (numpy warns).
fn converts_cleanly(mut cells: impl Iterator<Item = Cell>, kinds: Kinds, target: Target) -> bool {
    match target {
        Target::F64 | Target::Bool => true,
        Target::I64 => !kinds.float,
        Target::I32 => {
            !kinds.float && cells.all(|c| !matches!(c, Cell::Int(i) if i32::try_from(i).is_err()))
        }
        Target::F32 => {
            cells.all(|c| !matches!(c, Cell::Float(x) if x.is_finite() && (x as f32).is_infinite()))
        }
    }
}

fn write_array<'py, T: Element + Copy>(
    py: Python<'py>,
    shape: &[usize],
    cells: impl Iterator<Item = Cell>,
    convert: impl Fn(Cell) -> T,
) -> PyResult<Bound<'py, PyAny>> {
    let array = PyArray::<T, IxDyn>::zeros(py, IxDyn(shape), false);
    {
        let mut view = array.readwrite();
        let out = view
            .as_slice_mut()
            .map_err(|e| value_error(format!("fresh array not contiguous: {e}")))?;
        for (slot, cell) in out.iter_mut().zip(cells) {
            *slot = convert(cell);
        }
    }
    Ok(array.into_any())
}

// The conversions numpy applies when it stores a Python scalar of each kind.
fn to_f64(c: Cell) -> f64 {
    match c {
        Cell::Bool(b) => f64::from(u8::from(b)),
        Cell::Int(i) => i as f64,
        Cell::Float(x) => x,
    }
}

fn to_f32(c: Cell) -> f32 {
    // Ints reach float32 through float64 in numpy too (two roundings).
    to_f64(c) as f32
}

fn to_i64(c: Cell) -> i64 {
    match c {
        Cell::Bool(b) => i64::from(b),
        Cell::Int(i) => i,
        Cell::Float(x) => x as i64, // unreachable: converts_cleanly rules floats out
    }
}

fn to_i32(c: Cell) -> i32 {
    i32::try_from(to_i64(c)).unwrap_or_default() // range checked by converts_cleanly
}

fn to_bool(c: Cell) -> bool {
    match c {
        Cell::Bool(b) => b,
        Cell::Int(i) => i != 0,
        // NaN is truthy, -0.0 is not: exactly `x != 0.0`.
        Cell::Float(x) => x != 0.0,
    }
}

/// The fast path, for an inferred (`None`) or a fast requested dtype. The raw
/// payloads go straight into a float64 array, which is the result when numpy
/// would make float64 (after converting any int or bool payloads in place);
/// other dtypes are converted from it into a new array. `Ok(None)`: numpy
/// must decide.
fn try_fast<'py>(
    records: &Bound<'py, PyList>,
    paths: &[FieldPath],
    requested: Option<Target>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = records.py();
    let rows = records.len();
    // numpy.array([]) is 1-D; any row makes it 2-D, even with no columns.
    let two_d = [rows, paths.len()];
    let shape: &[usize] = if rows == 0 { &[0] } else { &two_d };
    let scratch = PyArray::<f64, IxDyn>::zeros(py, IxDyn(shape), false);
    let mut view = scratch.readwrite();
    let raw = view
        .as_slice_mut()
        .map_err(|e| value_error(format!("fresh array not contiguous: {e}")))?;
    let mut tags = Vec::with_capacity(raw.len());
    let Some(kinds) = gather_fast(records, paths, raw, &mut tags)? else {
        return Ok(None);
    };
    let target = requested.unwrap_or_else(|| kinds.inferred());
    let cells = || raw.iter().zip(&tags).map(|(x, t)| decode(x.to_bits(), *t));
    if !converts_cleanly(cells(), kinds, target) {
        return Ok(None);
    }
    let array = match target {
        Target::F64 => {
            if kinds.int || kinds.bool {
                for (slot, tag) in raw.iter_mut().zip(&tags) {
                    *slot = to_f64(decode(slot.to_bits(), *tag));
                }
            }
            drop(view);
            scratch.into_any()
        }
        Target::F32 => write_array(py, shape, cells(), to_f32)?,
        Target::I64 => write_array(py, shape, cells(), to_i64)?,
        Target::I32 => write_array(py, shape, cells(), to_i32)?,
        Target::Bool => write_array(py, shape, cells(), to_bool)?,
    };
    Ok(Some(array))
}

/// The rows as the reference gathers them: a list of per-record lists.
fn gather_rows<'py>(
    records: &Bound<'py, PyList>,
    paths: &[FieldPath],
    first_row: usize,
) -> PyResult<Bound<'py, PyList>> {
    let py = records.py();
    let rows = PyList::empty(py);
    let mut row: Vec<Bound<'py, PyAny>> = Vec::with_capacity(paths.len());
    let mut part_hints = PartHints::new(paths);
    for (index, rec) in records.iter().enumerate() {
        let rec = as_record(&rec, first_row + index)?;
        row.clear();
        for (path, hints) in paths.iter().zip(part_hints.iter_mut(paths)) {
            let found = lookup(rec, path, first_row + index, hints)?;
            row.push(found.unwrap_or_else(|| py.None().into_bound(py)));
        }
        rows.append(PyList::new(py, &row)?)?;
    }
    Ok(rows)
}

static NUMPY_ARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn numpy_array<'py>(
    rows: &Bound<'py, PyList>,
    dtype: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = rows.py();
    let array = NUMPY_ARRAY.import(py, "numpy", "array")?;
    match dtype {
        Some(d) if !d.is_none() => array.call1((rows, d)),
        _ => array.call1((rows,)),
    }
}

fn to_ndarray<'py>(
    records: &Bound<'py, PyAny>,
    paths: &[FieldPath],
    dtype: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let records = as_records(records)?;
    let fast = match requested_target(dtype) {
        Requested::Infer => try_fast(records, paths, None)?,
        Requested::Fast(t) => try_fast(records, paths, Some(t))?,
        Requested::NumpyOnly => None,
    };
    if let Some(array) = fast {
        return Ok(array);
    }
    let rows = gather_rows(records, paths, 0)?;
    numpy_array(&rows, dtype)
}

/// Feature names from a list or tuple of str (a bare str is refused: it would
/// otherwise be read as one feature per character).
fn feature_list(feature_names: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let items = if let Ok(l) = feature_names.cast::<PyList>() {
        l.to_tuple()
    } else if let Ok(t) = feature_names.cast::<PyTuple>() {
        t.clone()
    } else {
        return Err(crate::errors::type_error(format!(
            "`feature_names` must be a list of str, got {}",
            type_name(feature_names)
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, f)| match f.cast::<PyString>() {
            Ok(s) => Ok(s.to_str()?.to_string()),
            Err(_) => Err(crate::errors::type_error(format!(
                "`feature_names[{i}]` must be a str, got {}",
                type_name(&f)
            ))),
        })
        .collect()
}

fn compile(py: Python<'_>, features: &[String], delimiter: &str) -> PyResult<Vec<FieldPath>> {
    if delimiter.is_empty() {
        return Err(value_error(
            "empty separator: the nested field delimiter must not be empty",
        ));
    }
    features
        .iter()
        .map(|f| FieldPath::new(py, f, delimiter))
        .collect()
}

/// `numpy.array` of the records' feature values (looked up like
/// `get_nested_field`), with a direct fast path for plain numeric cells.
#[pyfunction]
#[pyo3(signature = (records, feature_names, dtype=None, delimiter=None))]
pub fn records_to_ndarray<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyAny>,
    feature_names: &Bound<'py, PyAny>,
    dtype: Option<&Bound<'py, PyAny>>,
    delimiter: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let features = feature_list(feature_names)?;
    let paths = compile(py, &features, delimiter.unwrap_or(DEFAULT_DELIMITER))?;
    to_ndarray(records, &paths, dtype)
}

/// The numpy preprocessor's plan: feature paths compiled once, run per batch.
#[pyclass(frozen, module = "packflow._core")]
pub struct NumpyPlan {
    features: Vec<String>,
    delimiter: String,
    paths: Vec<FieldPath>,
}

impl NumpyPlan {
    /// The batch as a 2-D array; any failure is a `PreprocessorRuntimeError`.
    pub fn call<'py>(&self, records: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = records.py();
        to_ndarray(records, &self.paths, None).map_err(|e| as_preprocess_error(py, e))
    }

    /// The same features compiled for reading them from JSON text, or None
    /// when the text reader cannot take them exactly.
    pub fn text_plan(&self) -> Option<crate::jsonl::TextPlan> {
        let plan = crate::jsonl::TextPlan::new(&self.features, &self.delimiter);
        (!plan.irregular).then_some(plan)
    }

    /// The rows the dict path would gather from `records`, the first being row
    /// `first_row` of its batch (for the messages).
    pub fn gather_rows<'py>(
        &self,
        records: &Bound<'py, PyList>,
        first_row: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        gather_rows(records, &self.paths, first_row)
    }
}

/// A failure of the numpy preprocessor, as it reports it.
pub fn as_preprocess_error(py: Python<'_>, e: PyErr) -> PyErr {
    let err = preprocessor_runtime_error(py, format!("{RUNTIME_PREFIX}{}", e.value(py)));
    err.set_cause(py, Some(e));
    err
}

/// `numpy.array(rows)` (no dtype), as the dict path builds the array.
pub fn rows_to_array<'py>(rows: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyAny>> {
    numpy_array(rows, None)
}

#[pymethods]
impl NumpyPlan {
    #[new]
    fn new(py: Python<'_>, features: &Bound<'_, PyAny>, delimiter: &str) -> PyResult<Self> {
        let features = feature_list(features)?;
        let paths = compile(py, &features, delimiter)?;
        Ok(NumpyPlan {
            features,
            delimiter: delimiter.to_string(),
            paths,
        })
    }

    /// The batch as a 2-D array; any failure is a `PreprocessorRuntimeError`.
    fn __call__<'py>(&self, records: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.call(records)
    }

    #[getter]
    fn features(&self) -> Vec<String> {
        self.features.clone()
    }

    #[getter]
    fn delimiter(&self) -> &str {
        &self.delimiter
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "NumpyPlan(features={}, delimiter={})",
            PyList::new(py, &self.features)?.repr()?,
            PyString::new(py, &self.delimiter).repr()?
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_follows_numpy_promotion() {
        let k = |bool, int, float| Kinds { bool, int, float };
        assert_eq!(k(false, false, false).inferred(), Target::F64);
        assert_eq!(k(true, false, false).inferred(), Target::Bool);
        assert_eq!(k(true, true, false).inferred(), Target::I64);
        assert_eq!(k(false, true, false).inferred(), Target::I64);
        assert_eq!(k(true, false, true).inferred(), Target::F64);
        assert_eq!(k(true, true, true).inferred(), Target::F64);
    }

    #[test]
    fn conversions_match_python_scalar_storage() {
        assert_eq!(to_f64(Cell::Bool(true)), 1.0);
        assert_eq!(to_f64(Cell::Int(-3)), -3.0);
        assert!(to_f64(Cell::Float(-0.0)).is_sign_negative());
        assert!(to_bool(Cell::Float(f64::NAN)));
        assert!(!to_bool(Cell::Float(-0.0)));
        assert!(to_bool(Cell::Int(-1)));
        // 2**60 + 2**36 + 1 rounds differently directly and through float64.
        let v: i64 = (1 << 60) + (1 << 36) + 1;
        assert_eq!(to_f32(Cell::Int(v)), (v as f64) as f32);
        assert_ne!(to_f32(Cell::Int(v)), v as f32);
    }

    #[test]
    fn unclean_conversions_go_to_numpy() {
        let ints = Kinds {
            int: true,
            ..Kinds::default()
        };
        let floats = Kinds {
            float: true,
            ..Kinds::default()
        };
        assert!(!converts_cleanly(
            [Cell::Int(1 << 31)].into_iter(),
            ints,
            Target::I32
        ));
        assert!(converts_cleanly(
            [Cell::Int(-(1 << 31))].into_iter(),
            ints,
            Target::I32
        ));
        assert!(!converts_cleanly(
            [Cell::Float(1.5)].into_iter(),
            floats,
            Target::I64
        ));
        assert!(!converts_cleanly(
            [Cell::Float(1e300)].into_iter(),
            floats,
            Target::F32
        ));
        assert!(converts_cleanly(
            [Cell::Float(f64::INFINITY)].into_iter(),
            floats,
            Target::F32
        ));
        assert!(converts_cleanly(
            [Cell::Float(1e-300)].into_iter(),
            floats,
            Target::F32
        ));
    }

    #[test]
    fn simple_dtypes_are_recognised_by_identity() {
        Python::initialize();
        Python::attach(|py| {
            let check = |spec: &str, want: Option<Target>| {
                let obj = PyString::new(py, spec).into_any();
                let got = match requested_target(Some(&obj)) {
                    Requested::Fast(t) => Some(t),
                    _ => None,
                };
                assert_eq!(got, want, "{spec}");
            };
            check("float64", Some(Target::F64));
            check("f8", Some(Target::F64));
            check("<f8", Some(Target::F64));
            check("float32", Some(Target::F32));
            check("int64", Some(Target::I64));
            check("int32", Some(Target::I32));
            check("bool", Some(Target::Bool));
            check(">f8", None);
            check("float16", None);
            check("object", None);
            check("not a dtype", None);
        });
    }
}
