//! `columns_to_records`: vectorised model outputs (a dict of equal-length
//! columns) turned into output rows, one dict per index, numpy columns read
//! through their buffer.

use crate::ffi;
use ::numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::errors::{type_error, type_name, value_error};
use crate::normalize::build_nums;
use crate::serialize::numpy::{classify, dtype_name, ArrayData, Items, NumpyObj};
use crate::walk::DictItems;

/// Where a column's values come from.
enum Source<'py> {
    List(Bound<'py, PyList>),
    Tuple(Bound<'py, PyTuple>),
    /// A bool/int/uint/float array of 1 or 2 dimensions (index into `arrays`).
    Nums(usize),
    /// An object array of 1 or 2 dimensions (index into `arrays`).
    Objects(usize),
}

struct Column<'py> {
    key: Bound<'py, PyString>,
    source: Source<'py>,
    len: usize,
}

/// The column's name as it shows in a message.
fn shown(key: &Bound<'_, PyString>) -> String {
    key.to_string_lossy().into_owned()
}

/// Reads one column: its source and length. `arrays` keeps numpy columns
/// alive for the `ArrayData` views made later.
fn column<'py>(
    key: Bound<'py, PyString>,
    value: &Bound<'py, PyAny>,
    arrays: &mut Vec<Bound<'py, PyUntypedArray>>,
) -> PyResult<Column<'py>> {
    if let Ok(l) = value.cast::<PyList>() {
        let len = l.len();
        return Ok(Column {
            key,
            source: Source::List(l.clone()),
            len,
        });
    }
    if let Ok(t) = value.cast::<PyTuple>() {
        let len = t.len();
        return Ok(Column {
            key,
            source: Source::Tuple(t.clone()),
            len,
        });
    }
    let unsupported = |what: String| {
        type_error(format!(
            "columns_to_records: column \"{}\" is {what}; columns must be lists, tuples or \
             1-D/2-D numpy arrays",
            shown(&key)
        ))
    };
    match classify(value)? {
        Some(NumpyObj::Array(arr)) => {
            let (ndim, items) = {
                let data = ArrayData::new(&arr);
                (data.ndim(), data.items)
            };
            if !(1..=2).contains(&ndim) {
                return Err(unsupported(format!("a {ndim}-D numpy array")));
            }
            let source = match items {
                Items::Num(_) => Source::Nums(arrays.len()),
                Items::Object => Source::Objects(arrays.len()),
                Items::Other => {
                    return Err(unsupported(format!(
                        "a numpy array of dtype {}",
                        dtype_name(&arr)
                    )))
                }
            };
            let len = arr.shape()[0];
            arrays.push(arr);
            Ok(Column { key, source, len })
        }
        Some(NumpyObj::ArraySubclass) => {
            // A masked array or matrix: its `.tolist()` is the faithful view.
            let plain = value.call_method0(pyo3::intern!(value.py(), "tolist"))?;
            match plain.cast_into::<PyList>() {
                Ok(l) => {
                    let len = l.len();
                    Ok(Column {
                        key,
                        source: Source::List(l),
                        len,
                    })
                }
                Err(_) => Err(unsupported(format!("a 0-D {}", type_name(value)))),
            }
        }
        _ => Err(unsupported(format!("of type {}", type_name(value)))),
    }
}

/// `[{name: column[i] for name in columns} for i in range(n)]`.
#[pyfunction]
pub fn columns_to_records<'py>(columns: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let py = columns.py();
    let _gc = crate::gc_pause::GcPause::new(py);
    let dict = columns.cast::<PyDict>().map_err(|_| {
        type_error(format!(
            "columns_to_records expects a dict of column name -> column, got {}",
            type_name(columns)
        ))
    })?;
    let mut arrays = Vec::new();
    let mut cols = Vec::with_capacity(dict.len());
    let mut items = DictItems::new(dict);
    for (k, v) in &mut items {
        let key = k.cast_into::<PyString>().map_err(|err| {
            type_error(format!(
                "columns_to_records: column names must be str, got {}",
                type_name(&err.into_inner())
            ))
        })?;
        // A str subclass could run Python code (its __hash__/__eq__) on every
        // row's insert, while column buffers are being read: use a plain str
        // copy of its text so the row loop runs no Python code.
        let key = if key.is_exact_instance_of::<PyString>() {
            key
        } else {
            PyString::new(py, key.to_str()?)
        };
        cols.push(column(key, &v, &mut arrays)?);
    }
    if items.changed() {
        return Err(value_error(
            "columns_to_records: the dict changed size while being read",
        ));
    }
    let Some(first) = cols.first() else {
        return Ok(PyList::empty(py));
    };
    let n = first.len;
    if let Some(bad) = cols.iter().find(|c| c.len != n) {
        return Err(value_error(format!(
            "columns_to_records: column \"{}\" has {} values, but column \"{}\" has {n}; all \
             columns must have the same length",
            shown(&bad.key),
            bad.len,
            shown(&first.key)
        )));
    }
    let views: Vec<ArrayData<'_>> = arrays.iter().map(ArrayData::new).collect();
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let row = ffi::dict_new_presized(py, cols.len())?;
        for c in &cols {
            let v = match &c.source {
                // `get_item` re-checks the length: a str-subclass key's
                // `__hash__` could have shrunk the list meanwhile.
                Source::List(l) => l.get_item(i)?,
                Source::Tuple(t) => t.get_item(i)?,
                Source::Nums(a) => {
                    let a = &views[*a];
                    let Items::Num(elem) = a.items else {
                        unreachable!("numeric column")
                    };
                    build_nums(py, a, elem, 1, a.step(a.origin(), 0, i))?
                }
                Source::Objects(a) => object_item(py, &views[*a], i)?,
            };
            row.set_item(&c.key, v)?;
        }
        rows.push(row);
    }
    PyList::new(py, rows)
}

/// Item `i` of a 1-D object array, or row `i` of a 2-D one as a list.
fn object_item<'py>(py: Python<'py>, a: &ArrayData<'_>, i: usize) -> PyResult<Bound<'py, PyAny>> {
    let pos = a.step(a.origin(), 0, i);
    if a.ndim() == 1 {
        return Ok(a.read_object(py, pos));
    }
    let row = (0..a.shape[1]).map(|j| a.read_object(py, a.step(pos, 1, j)));
    Ok(PyList::new(py, row)?.into_any())
}
