//! `ensure_native_types` / `ensure_valid_output`: model outputs made of plain
//! Python values, numpy arrays read through their buffer; other libraries'
//! values (pandas, torch, PIL) go to a Python fallback.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PySet, PyString, PyTuple};
use pyo3::{intern, PyTypeInfo};

use crate::errors::{PathSegment, MAX_DEPTH};
use crate::serialize::dict::key_text;
use crate::serialize::numpy::{classify, scalar_value, ArrayData, Elem, Items, NumpyObj, Position};
use crate::serialize::{Fault, SerError};
use crate::walk::DictItems;

type Converted<'py> = Result<Bound<'py, PyAny>, SerError>;

#[inline(always)]
fn is_exact<T: PyTypeInfo>(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_exact_instance_of::<T>()
}

/// `obj` with every value native: scalars of the native types (and their
/// subclasses) kept as they are, numpy values as `.tolist()` gives them, dicts
/// rebuilt with converted values, lists/tuples/sets as new lists, anything else
/// `fallback(obj)`. `depth` is the nesting level of a container found here.
fn convert<'py>(
    obj: &Bound<'py, PyAny>,
    fallback: &Bound<'py, PyAny>,
    depth: usize,
) -> Converted<'py> {
    if is_exact::<PyString>(obj)
        || is_exact::<PyFloat>(obj)
        || is_exact::<PyInt>(obj)
        || is_exact::<PyBool>(obj)
        || obj.is_none()
    {
        return Ok(obj.clone());
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        return convert_dict(d, fallback, depth);
    }
    if let Ok(l) = obj.cast_exact::<PyList>() {
        return convert_items(l.iter(), fallback, depth);
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        return convert_items(t.iter(), fallback, depth);
    }
    convert_other(obj, fallback, depth)
}

#[inline(never)]
fn convert_other<'py>(
    obj: &Bound<'py, PyAny>,
    fallback: &Bound<'py, PyAny>,
    depth: usize,
) -> Converted<'py> {
    let py = obj.py();
    // Subclasses of the native scalars (numpy.float64, numpy.str_, IntEnum) are
    // native already.
    if obj.is_instance_of::<PyInt>()
        || obj.is_instance_of::<PyFloat>()
        || obj.is_instance_of::<PyString>()
    {
        return Ok(obj.clone());
    }
    match classify(obj)? {
        Some(NumpyObj::Scalar(elem)) => return Ok(scalar_value(obj, elem)?.to_py(py)),
        Some(NumpyObj::Array(arr)) => {
            let data = ArrayData::new(&arr);
            if let Items::Num(elem) = data.items {
                if depth + data.ndim() > MAX_DEPTH {
                    return Err(Fault::TooDeep.into());
                }
                return Ok(build_nums(py, &data, elem, 0, data.origin())?);
            }
            return Ok(obj.call_method0(intern!(py, "tolist"))?);
        }
        Some(NumpyObj::ArraySubclass | NumpyObj::OtherScalar) => {
            return Ok(obj.call_method0(intern!(py, "tolist"))?);
        }
        None => {}
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return convert_dict(d, fallback, depth);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return convert_items(l.iter(), fallback, depth);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return convert_items(t.iter(), fallback, depth);
    }
    if obj.is_instance_of::<PySet>() {
        let items: Vec<Bound<'py, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
        return convert_items(items.into_iter(), fallback, depth);
    }
    Ok(fallback.call1((obj,))?)
}

fn convert_dict<'py>(
    d: &Bound<'py, PyDict>,
    fallback: &Bound<'py, PyAny>,
    depth: usize,
) -> Converted<'py> {
    if depth >= MAX_DEPTH {
        return Err(Fault::TooDeep.into());
    }
    let out = PyDict::new(d.py());
    let mut items = DictItems::new(d);
    for (k, v) in &mut items {
        let converted = convert(&v, fallback, depth + 1)
            .map_err(|err| err.at(PathSegment::Key(key_text(&k))))?;
        out.set_item(&k, converted)?;
    }
    if items.changed() {
        return Err(Fault::Changed.into());
    }
    Ok(out.into_any())
}

fn convert_items<'py>(
    items: impl ExactSizeIterator<Item = Bound<'py, PyAny>>,
    fallback: &Bound<'py, PyAny>,
    depth: usize,
) -> Converted<'py> {
    if depth >= MAX_DEPTH {
        return Err(Fault::TooDeep.into());
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.enumerate() {
        out.push(convert(&item, fallback, depth + 1).map_err(|err| err.at(PathSegment::Index(i)))?);
    }
    Ok(PyList::new(fallback.py(), out)?.into_any())
}

/// Nested lists of Python scalars, as `.tolist()` builds them, from `axis` on.
pub(crate) fn build_nums<'py>(
    py: Python<'py>,
    a: &ArrayData<'_>,
    elem: Elem,
    axis: usize,
    pos: Position,
) -> PyResult<Bound<'py, PyAny>> {
    if axis == a.ndim() {
        return Ok(a.read_num(pos, elem).to_py(py));
    }
    let n = a.shape[axis];
    let list = if axis + 1 == a.ndim() {
        PyList::new(
            py,
            (0..n).map(|i| a.read_num(a.step(pos, axis, i), elem).to_py(py)),
        )?
    } else {
        let rows = (0..n)
            .map(|i| build_nums(py, a, elem, axis + 1, a.step(pos, axis, i)))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)?
    };
    Ok(list.into_any())
}

fn into_pyerr(err: SerError, row: Option<usize>, py: Python<'_>) -> PyErr {
    err.into_pyerr(py, row)
}

/// `obj` with numpy (and, through `fallback`, other libraries') values made
/// native; tuples and sets become lists; the input is never modified.
#[pyfunction]
pub fn ensure_native_types<'py>(
    obj: &Bound<'py, PyAny>,
    fallback: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    convert(obj, fallback, 0).map_err(|err| into_pyerr(err, None, obj.py()))
}

/// One dict per item of `output` (any iterable): the item made native, then,
/// unless it is a dict, `{parent_key: item}` (a one-element list unwrapped first).
#[pyfunction]
pub fn ensure_valid_output<'py>(
    output: &Bound<'py, PyAny>,
    parent_key: &Bound<'py, PyAny>,
    fallback: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let py = output.py();
    let _gc = crate::gc_pause::GcPause::new(py);
    let wrap = |item: Bound<'py, PyAny>| -> PyResult<Bound<'py, PyAny>> {
        if item.is_instance_of::<PyDict>() {
            return Ok(item);
        }
        let item = match item.cast::<PyList>() {
            Ok(l) if l.len() == 1 => l.get_item(0)?,
            _ => item,
        };
        let row = PyDict::new(py);
        row.set_item(parent_key, item)?;
        Ok(row.into_any())
    };

    // The rows of a numeric array straight from its buffer.
    if let Some(NumpyObj::Array(arr)) = numpy_array(output)? {
        let data = ArrayData::new(&arr);
        if let (Items::Num(elem), true) = (data.items, data.ndim() >= 1) {
            if data.ndim() > MAX_DEPTH {
                return Err(into_pyerr(Fault::TooDeep.into(), None, py));
            }
            let rows = (0..data.shape[0])
                .map(|i| {
                    wrap(build_nums(
                        py,
                        &data,
                        elem,
                        1,
                        data.step(data.origin(), 0, i),
                    )?)
                })
                .collect::<PyResult<Vec<_>>>()?;
            return PyList::new(py, rows);
        }
    }

    let mut rows = Vec::with_capacity(output.len().unwrap_or(0));
    let mut convert_row = |i: usize, item: &Bound<'py, PyAny>| -> PyResult<()> {
        let native = convert(item, fallback, 0).map_err(|err| into_pyerr(err, Some(i), py))?;
        rows.push(wrap(native)?);
        Ok(())
    };
    if let Ok(l) = output.cast_exact::<PyList>() {
        for (i, item) in l.iter().enumerate() {
            convert_row(i, &item)?;
        }
    } else if let Ok(t) = output.cast_exact::<PyTuple>() {
        for (i, item) in t.iter().enumerate() {
            convert_row(i, &item)?;
        }
    } else {
        for (i, item) in output.try_iter()?.enumerate() {
            convert_row(i, &item?)?;
        }
    }
    PyList::new(py, rows)
}

/// `output` as an exact ndarray, if it is one (without importing numpy otherwise).
fn numpy_array<'py>(output: &Bound<'py, PyAny>) -> PyResult<Option<NumpyObj<'py>>> {
    if is_exact::<PyList>(output) || is_exact::<PyTuple>(output) || is_exact::<PyDict>(output) {
        return Ok(None);
    }
    Ok(match classify(output)? {
        Some(found @ NumpyObj::Array(_)) => Some(found),
        _ => None,
    })
}
