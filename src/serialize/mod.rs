//! JSON serialization of Python values in one traversal: `dumps`, `dumps_lines`
//! and the serializability check behind `check_outputs` share the dispatch
//! below, so a value passes the check exactly when `dumps(value,
//! allow_nan=True)` can write it, lone surrogates aside (json.dumps, which the
//! check follows, accepts them; UTF-8 cannot hold them).

pub mod dict;
mod list;
pub(crate) mod number;
pub mod numpy;
pub(crate) mod string;
pub mod writer;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::{intern, PyTypeInfo};

use crate::errors::{
    add_note, location, type_error, type_name, value_error, KeyPath, PathSegment, MAX_DEPTH,
};

use writer::{Emit, JsonWriter, NoWrite};

/// Why a value cannot be written.
#[derive(Debug)]
pub enum Fault {
    /// A value of a type JSON has no spelling for.
    Unsupported(String),
    /// A dict key of a type json.dumps rejects.
    Key(String),
    /// NaN or an infinity while `allow_nan` is off.
    NonFinite(f64),
    /// Nesting beyond `MAX_DEPTH` (also what a reference cycle looks like).
    TooDeep,
    /// A str holding a lone surrogate, which UTF-8 cannot encode.
    Surrogate,
    /// A numpy array of a dtype that is not written (complex, str, datetime...).
    Dtype(String),
    /// A dict changed size while it was being read.
    Changed,
    /// A Python call on the way failed (an ndarray subclass's `tolist`, `str` of a huge int).
    Python(PyErr),
}

/// NaN or an infinity met while `allow_nan` is off (kept small: it is the
/// error type of every float write).
#[derive(Debug, Clone, Copy)]
pub struct NonFinite(pub f64);

impl From<NonFinite> for Fault {
    fn from(v: NonFinite) -> Self {
        Fault::NonFinite(v.0)
    }
}

impl From<NonFinite> for SerError {
    #[cold]
    fn from(v: NonFinite) -> Self {
        Fault::from(v).into()
    }
}

/// A fault and where it happened, the key path filled in as the error unwinds.
/// Boxed so that `Result<(), SerError>` is one register on the hot path.
#[derive(Debug)]
pub struct SerError(Box<Detail>);

#[derive(Debug)]
struct Detail {
    fault: Fault,
    path: KeyPath,
}

impl From<Fault> for SerError {
    #[cold]
    fn from(fault: Fault) -> Self {
        SerError(Box::new(Detail {
            fault,
            path: KeyPath::default(),
        }))
    }
}

impl From<PyErr> for SerError {
    fn from(err: PyErr) -> Self {
        Fault::Python(err).into()
    }
}

/// `Decimal` for `decimal.Decimal`: the class's own name, as json.dumps names it.
fn short_name(qualified: &str) -> &str {
    qualified.rsplit('.').next().unwrap_or(qualified)
}

/// Paths longer than this are cut in messages (a cycle makes a 255-step path).
const SHOWN_SEGMENTS: usize = 12;

impl SerError {
    /// Prepends the step the error came through.
    #[cold]
    pub fn at(mut self, seg: PathSegment) -> Self {
        self.0.path = std::mem::take(&mut self.0.path).push_front(seg);
        self
    }

    /// What went wrong, without where.
    pub fn reason(&self) -> String {
        match &self.0.fault {
            // json.dumps's wording, so code matching its messages keeps working.
            Fault::Unsupported(t) => {
                format!("Object of type {} is not JSON serializable", short_name(t))
            }
            Fault::Key(t) => format!(
                "keys must be str, int, float, bool or None, not {}",
                short_name(t)
            ),
            Fault::NonFinite(v) => {
                let name = if v.is_nan() {
                    "NaN"
                } else if *v > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                };
                // Said without naming `allow_nan`: `packflow run` has no such option.
                format!(
                    "Out of range float values are not JSON compliant: {name} (strict JSON \
                     has no NaN or Infinity; use None or a finite number)"
                )
            }
            Fault::TooDeep => {
                format!("nesting deeper than {MAX_DEPTH} levels (or a reference cycle)")
            }
            Fault::Surrogate => {
                "str contains a lone surrogate, which cannot be encoded as UTF-8".into()
            }
            Fault::Dtype(d) => {
                format!("Object of type ndarray is not JSON serializable (numpy dtype {d})")
            }
            Fault::Changed => "dict changed size while being serialized".into(),
            Fault::Python(err) => err.to_string(),
        }
    }

    /// `row 3, key "a.b"`, `key "a.b"`, `row 3`, or "" for the value itself.
    pub fn location(&self, row: Option<usize>) -> String {
        let path = &self.0.path;
        if row.is_none() && path.0.is_empty() {
            return String::new();
        }
        if path.0.len() <= SHOWN_SEGMENTS {
            return location(row, path);
        }
        let mut short = KeyPath(path.0[..SHOWN_SEGMENTS].to_vec());
        short.0.push(PathSegment::Key("...".into()));
        location(row, &short)
    }

    /// `location: reason`, or the reason alone for the value itself.
    pub fn message(&self, row: Option<usize>) -> String {
        let loc = self.location(row);
        if loc.is_empty() {
            self.reason()
        } else {
            format!("{loc}: {}", self.reason())
        }
    }

    /// TypeError for a type that cannot be written, ValueError for a value that
    /// cannot; a Python error from the way is re-raised with a note saying where.
    pub fn into_pyerr(self, py: Python<'_>, row: Option<usize>) -> PyErr {
        let message = self.message(row);
        let loc = self.location(row);
        match self.0.fault {
            Fault::Unsupported(_) | Fault::Key(_) | Fault::Dtype(_) => type_error(message),
            Fault::NonFinite(_) | Fault::TooDeep | Fault::Surrogate | Fault::Changed => {
                value_error(message)
            }
            Fault::Python(err) => {
                if !loc.is_empty() {
                    // Best effort: a note is extra context, never a reason to fail.
                    let _ = add_note(py, &err, format!("while serializing {loc}"));
                }
                err
            }
        }
    }
}

/// `Some(obj as T)` when `obj`'s type is exactly `T` (one pointer comparison).
#[inline(always)]
fn exact<'a, 'py, T: PyTypeInfo>(obj: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, T>> {
    if obj.is_exact_instance_of::<T>() {
        obj.cast::<T>().ok()
    } else {
        None
    }
}

/// Writes one value. `depth` is the nesting level a container found here
/// would have (0 for the top value).
pub fn value<E: Emit>(e: &mut E, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), SerError> {
    if let Some(s) = exact::<PyString>(obj) {
        return string_value(e, s);
    }
    if let Some(f) = exact::<PyFloat>(obj) {
        return Ok(e.f64(f.value())?);
    }
    if let Some(i) = exact::<PyInt>(obj) {
        return int_value(e, i, true);
    }
    if let Some(d) = exact::<PyDict>(obj) {
        return dict::write_dict(e, d, depth);
    }
    if let Some(l) = exact::<PyList>(obj) {
        return list::write_list(e, l, depth);
    }
    if let Some(b) = exact::<PyBool>(obj) {
        e.raw(if b.is_true() { b"true" } else { b"false" });
        return Ok(());
    }
    if obj.is_none() {
        e.raw(b"null");
        return Ok(());
    }
    if let Some(t) = exact::<PyTuple>(obj) {
        return list::write_tuple(e, t, depth);
    }
    value_other(e, obj, depth)
}

/// Writes an exact str (compact ASCII), float, small int, bool or None
/// from its pointer and returns true; false (nothing written) for anything
/// else. Runs no Python code, takes no reference and cannot fail, except for
/// a non-finite float (which only makes a Rust error).
///
/// # Safety
/// `obj` must point to a live object and the GIL must be held.
#[inline(always)]
pub(crate) unsafe fn plain_scalar<E: Emit>(
    e: &mut E,
    obj: *mut pyo3::ffi::PyObject,
) -> Result<bool, NonFinite> {
    use crate::ffi;
    // SAFETY: `obj` is live and the GIL held (caller's guarantee); each
    // layout is read only after an exact type check.
    unsafe {
        let ty = ffi::Py_TYPE(obj);
        if ty == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
            let Some(text) = ffi::ascii_str_bytes(obj) else {
                return Ok(false);
            };
            if E::WRITES {
                e.str(text);
            }
            return Ok(true);
        }
        if ty == std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
            e.f64(ffi::PyFloat_AS_DOUBLE(obj))?;
            return Ok(true);
        }
        if ty == std::ptr::addr_of_mut!(ffi::PyLong_Type) {
            return Ok(match ffi::small_int(obj) {
                Some(v) => {
                    e.i64(v);
                    true
                }
                None => false,
            });
        }
        if obj == ffi::Py_True() {
            e.raw(b"true");
            return Ok(true);
        }
        if obj == ffi::Py_False() {
            e.raw(b"false");
            return Ok(true);
        }
        if obj == ffi::Py_None() {
            e.raw(b"null");
            return Ok(true);
        }
    }
    Ok(false)
}

/// Subclasses of the native types (written as their base, like json does), then numpy.
#[inline(never)]
fn value_other<E: Emit>(e: &mut E, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), SerError> {
    if let Ok(s) = obj.cast::<PyString>() {
        return string_value(e, s);
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return int_value(e, i, false);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(e.f64(f.value())?);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict::write_dict(e, d, depth);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return list::write_list(e, l, depth);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return list::write_tuple(e, t, depth);
    }
    match numpy::classify(obj)? {
        Some(numpy::NumpyObj::Scalar(elem)) => {
            Ok(numpy::emit_num(e, numpy::scalar_value(obj, elem)?)?)
        }
        Some(numpy::NumpyObj::Array(arr)) => numpy::write_array(e, &arr, depth),
        Some(numpy::NumpyObj::ArraySubclass) => {
            let plain = obj.call_method0(intern!(obj.py(), "tolist"))?;
            value(e, &plain, depth)
        }
        Some(numpy::NumpyObj::OtherScalar) | None => Err(Fault::Unsupported(type_name(obj)).into()),
    }
}

#[inline]
fn string_value<E: Emit>(e: &mut E, s: &Bound<'_, PyString>) -> Result<(), SerError> {
    if !E::WRITES {
        // json.dumps accepts any str; only encoding to UTF-8 can fail.
        return Ok(());
    }
    e.str(string::utf8_bytes(s)?);
    Ok(())
}

/// An int as json writes it: `int.__repr__`, whatever a subclass's repr says.
#[inline]
fn int_value<E: Emit>(e: &mut E, i: &Bound<'_, PyInt>, exact: bool) -> Result<(), SerError> {
    if exact {
        // SAFETY: `i` is a live exact int and the GIL is held (a Bound).
        if let Some(v) = unsafe { crate::ffi::small_int(i.as_ptr()) } {
            e.i64(v);
            return Ok(());
        }
    }
    // The checker too: past 4300 digits Python refuses to make the text.
    if let Ok(v) = i.extract::<i64>() {
        e.i64(v);
        return Ok(());
    }
    write_big_int(e, i, exact)
}

#[inline(never)]
fn write_big_int<E: Emit>(e: &mut E, i: &Bound<'_, PyInt>, exact: bool) -> Result<(), SerError> {
    if let Ok(v) = i.extract::<u64>() {
        e.u64(v);
        return Ok(());
    }
    let text = if exact {
        i.str()?
    } else {
        let py = i.py();
        PyInt::type_object(py)
            .getattr(intern!(py, "__repr__"))?
            .call1((i,))?
            .cast_into::<PyString>()
            .map_err(PyErr::from)?
    };
    e.raw(text.to_str()?.as_bytes());
    Ok(())
}

/// Whether `obj` can be written (NaN and infinities allowed, as json.dumps'
/// default); the error says where and why not.
pub fn check(obj: &Bound<'_, PyAny>) -> Result<(), SerError> {
    value(&mut NoWrite, obj, 0)
}

/// Compact JSON of `obj` (`json.dumps(obj, separators=(",", ":"),
/// ensure_ascii=False).encode()`), numpy values included.
#[pyfunction]
#[pyo3(signature = (obj, *, allow_nan = false))]
pub fn dumps<'py>(obj: &Bound<'py, PyAny>, allow_nan: bool) -> PyResult<Bound<'py, PyBytes>> {
    let py = obj.py();
    let mut w = JsonWriter::for_bytes(py, allow_nan, 128);
    value(&mut w, obj, 0).map_err(|err| err.into_pyerr(py, None))?;
    w.into_bytes(py)
}

/// JSON Lines: each row written compactly and followed by `\n`, in one buffer.
#[pyfunction]
#[pyo3(signature = (rows, *, allow_nan = false))]
pub fn dumps_lines<'py>(
    rows: &Bound<'py, PyAny>,
    allow_nan: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let py = rows.py();
    let write_rows =
        |w: &mut JsonWriter, items: &mut dyn Iterator<Item = Bound<'py, PyAny>>, n: usize| {
            for (i, row) in items.enumerate() {
                value(w, &row, 0).map_err(|err| err.into_pyerr(py, Some(i)))?;
                w.push(b'\n');
                if i == 0 && n > 1 {
                    w.size_for_rows(n);
                }
            }
            Ok::<(), PyErr>(())
        };
    let mut w = JsonWriter::for_bytes(py, allow_nan, 256);
    if let Ok(list) = rows.cast::<PyList>() {
        write_rows(&mut w, &mut list.iter(), list.len())?;
    } else if let Ok(tuple) = rows.cast::<PyTuple>() {
        write_rows(&mut w, &mut tuple.iter(), tuple.len())?;
    } else {
        return Err(type_error(format!(
            "dumps_lines expects a list of rows, got {}",
            type_name(rows)
        )));
    }
    w.into_bytes(py)
}
