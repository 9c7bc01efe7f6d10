//! Every use of CPython (and numpy) internals in one place: the private
//! functions this crate declares itself, and every read of a struct layout the
//! C API does not promise to keep, each behind the version gates it needs. A new
//! Python version is a review of this file. The rest of the C API is pyo3's,
//! re-exported here so the crate has one `ffi`.
//!
//! The portable build (`cfg(packflow_portable)`, chosen by build.rs for the
//! `portable` feature or a Python this file was not reviewed for) compiles none
//! of the internals: each function below has a public-C-API body there, slower
//! but correct on any CPython pyo3 supports.

use std::ffi::c_int;
#[cfg(not(packflow_portable))]
use std::sync::atomic::{AtomicU8, Ordering};

use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

pub use pyo3::ffi::*;

// The private layouts below are CPython 3.10 to 3.13's (with the GIL). build.rs
// builds the portable variant for any other; this only guards that choice.
#[cfg(all(
    any(Py_3_14, Py_GIL_DISABLED),
    not(any(packflow_portable, Py_LIMITED_API, PyPy, GraalPy))
))]
compile_error!(
    "src/ffi.rs reads private CPython layouts known for 3.10 to 3.13 only: review it for this \
     Python version before building, or build with the `portable` feature"
);

/// The CPython version this module was compiled for ("3.11").
const BUILT_FOR: &str = env!("PACKFLOW_BUILT_FOR_PYTHON");

/// Which build this is ("fast" or "portable"), how it was selected ("default",
/// "feature", "automatic") and why: set by build.rs (src/build_select.rs).
pub const BUILD: &str = env!("PACKFLOW_BUILD");
pub const BUILD_SELECTED: &str = env!("PACKFLOW_BUILD_SELECTED");
pub const BUILD_REASON: &str = env!("PACKFLOW_BUILD_REASON");

// ---------------------------------------------------------------------------
// Private functions, declared here because pyo3-ffi does not export them
// ---------------------------------------------------------------------------

#[cfg(not(any(Py_3_13, packflow_portable)))]
extern "C" {
    // Part of CPython's C API from 3.7 to 3.12 (cpython/object.h); 3.13 made
    // it public as PyObject_GetOptionalAttr. Skips building the AttributeError.
    fn _PyObject_LookupAttr(
        obj: *mut PyObject,
        name: *mut PyObject,
        result: *mut *mut PyObject,
    ) -> c_int;
}

#[cfg(not(any(Py_3_13, Py_LIMITED_API, PyPy, GraalPy, packflow_portable)))]
extern "C" {
    // What `PyDict_Next` calls (cpython/dictobject.h, up to 3.12; 3.13 moved it
    // to the internal headers), minus one call per entry.
    fn _PyDict_Next(
        dict: *mut PyObject,
        pos: *mut Py_ssize_t,
        key: *mut *mut PyObject,
        value: *mut *mut PyObject,
        hash: *mut Py_hash_t,
    ) -> c_int;
}

#[cfg(not(packflow_portable))]
extern "C" {
    // Both in cpython/dictobject.h and cpython/bytesobject.h from 3.10 to 3.13.
    fn _PyDict_NewPresized(minused: Py_ssize_t) -> *mut PyObject;
    fn _PyBytes_Resize(bytes: *mut *mut PyObject, newsize: Py_ssize_t) -> c_int;
}

/// `getattr(obj, name, None)` without raising and then clearing an
/// AttributeError when the attribute is missing.
#[inline]
pub fn get_optional_attr<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    #[cfg(not(any(Py_3_13, packflow_portable)))]
    {
        let py = obj.py();
        let mut out: *mut PyObject = std::ptr::null_mut();
        // SAFETY: both pointers are live objects borrowed for the call and the
        // GIL is held (we have `py`); on 1 `out` is a new strong reference that
        // we take ownership of, on 0 it is NULL, on -1 an exception is set.
        let rc = unsafe { _PyObject_LookupAttr(obj.as_ptr(), name.as_ptr(), &mut out) };
        match rc {
            1 => Ok(Some(unsafe { Bound::from_owned_ptr(py, out) })),
            0 => Ok(None),
            _ => Err(PyErr::fetch(py)),
        }
    }
    // The public PyObject_GetOptionalAttr, from 3.13 (through pyo3).
    #[cfg(Py_3_13)]
    {
        obj.getattr_opt(name)
    }
    // Portable before 3.13: getattr, and a missing attribute's AttributeError
    // cleared as it stands, never fetched into a `PyErr` (which would build
    // the exception object: most of the cost of a miss, paid on every call).
    #[cfg(all(packflow_portable, not(Py_3_13)))]
    {
        let py = obj.py();
        // SAFETY: both pointers are live objects borrowed for the call and the
        // GIL is held (we have `py`); a non-null result is a new reference we
        // own; on null an exception is set, matched and cleared or fetched.
        unsafe {
            let out = PyObject_GetAttr(obj.as_ptr(), name.as_ptr());
            if !out.is_null() {
                return Ok(Some(Bound::from_owned_ptr(py, out)));
            }
            if PyErr_ExceptionMatches(PyExc_AttributeError) != 0 {
                PyErr_Clear();
                return Ok(None);
            }
            Err(PyErr::fetch(py))
        }
    }
}

/// `PyDict_Next`, without the wrapper call where CPython exports its body.
///
/// # Safety
/// As `PyDict_Next`: a live dict, the GIL held, valid out-pointers.
#[inline(always)]
pub unsafe fn dict_next(
    dict: *mut PyObject,
    pos: *mut Py_ssize_t,
    key: *mut *mut PyObject,
    value: *mut *mut PyObject,
) -> c_int {
    #[cfg(not(any(Py_3_13, Py_LIMITED_API, PyPy, GraalPy, packflow_portable)))]
    // SAFETY: the caller's guarantees; a null hash pointer is allowed.
    unsafe {
        _PyDict_Next(dict, pos, key, value, std::ptr::null_mut())
    }
    #[cfg(any(Py_3_13, Py_LIMITED_API, PyPy, GraalPy, packflow_portable))]
    // SAFETY: the caller's guarantees.
    unsafe {
        PyDict_Next(dict, pos, key, value)
    }
}

/// A new dict sized for `n` entries (one allocation instead of a resize as the
/// entries go in).
#[cfg(not(packflow_portable))]
pub fn dict_new_presized(py: Python<'_>, n: usize) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: the GIL is held (`py`); `_PyDict_NewPresized` returns a new
    // reference to a dict, or NULL with an exception set, which
    // `from_owned_ptr_or_err` handles.
    unsafe {
        Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(n as Py_ssize_t))
            .map(|d| d.cast_into_unchecked())
    }
}

/// A new dict (the public C API has no presizing).
#[cfg(packflow_portable)]
pub fn dict_new_presized(py: Python<'_>, _n: usize) -> PyResult<Bound<'_, PyDict>> {
    Ok(PyDict::new(py))
}

/// Shrinks a `bytes` object to its first `len` bytes, reallocating; on
/// failure CPython frees it, sets `*bytes` to NULL and an exception, and this
/// returns -1.
///
/// # Safety
/// `*bytes` must be a bytes object with refcount 1 that no one else has seen,
/// and the GIL held.
#[inline]
pub unsafe fn bytes_resize(bytes: &mut *mut PyObject, len: usize) -> c_int {
    #[cfg(not(packflow_portable))]
    // SAFETY: the caller's guarantees.
    unsafe {
        _PyBytes_Resize(bytes, len as Py_ssize_t)
    }
    // Portable: a copy of the first `len` bytes replaces it.
    #[cfg(packflow_portable)]
    // SAFETY: the caller's guarantees: `*bytes` is a live bytes object of at
    // least `len` bytes that we own; it is released once, after the copy.
    unsafe {
        let old = *bytes;
        let new = PyBytes_FromStringAndSize(PyBytes_AsString(old), len as Py_ssize_t);
        Py_DECREF(old);
        *bytes = new;
        if new.is_null() {
            -1
        } else {
            0
        }
    }
}

/// Shrinks a `bytes` object to its first `len` bytes without reallocating:
/// the trailing NUL CPython keeps after the data, and the size. False (and
/// nothing done) in the portable build, where the caller resizes instead.
///
/// # Safety
/// `bytes` must be a bytes object of at least `len` bytes with refcount 1,
/// unseen by anyone else (so its hash is still unset), and the GIL held.
#[inline]
#[cfg(not(packflow_portable))]
pub unsafe fn bytes_truncate_in_place(bytes: *mut PyObject, len: usize) -> bool {
    // SAFETY: the block has room for `size + 1 > len` bytes of data (the NUL
    // included); a smaller `ob_size` is what `_PyBytes_Resize` sets too,
    // minus the realloc.
    unsafe {
        *PyBytes_AS_STRING(bytes).cast_mut().add(len) = 0;
        (*bytes.cast::<PyVarObject>()).ob_size = len as Py_ssize_t;
    }
    true
}

/// See the fast build's: a bytes object's size is a private field.
///
/// # Safety
/// None needed; unsafe to match the fast build's signature.
#[inline]
#[cfg(packflow_portable)]
pub unsafe fn bytes_truncate_in_place(_bytes: *mut PyObject, _len: usize) -> bool {
    false
}

// ---------------------------------------------------------------------------
// str layout (PEP 393)
// ---------------------------------------------------------------------------

#[cfg(not(packflow_portable))]
/// Whether `obj` is a compact ASCII str: its characters are its bytes, stored
/// right after the header.
///
/// # Safety
/// `obj` must be a live str (or subclass) and the GIL held.
#[inline(always)]
pub unsafe fn is_compact_ascii(obj: *mut PyObject) -> bool {
    // SAFETY: the caller's guarantees; pyo3 reads the state bits per version.
    unsafe { PyUnicode_IS_COMPACT_ASCII(obj) != 0 }
}

#[cfg(not(packflow_portable))]
/// The text of a compact ASCII str, read in place (what CPython's own UTF-8
/// accessor returns for it, without the call); None for any other str.
///
/// # Safety
/// `obj` must be a live str (or subclass) and the GIL held; the slice must not
/// outlive the object (its text is immutable while it lives).
#[inline(always)]
pub unsafe fn ascii_str_bytes<'a>(obj: *mut PyObject) -> Option<&'a [u8]> {
    // SAFETY: the caller's guarantees; the data of a compact ASCII str is its
    // `length` bytes.
    unsafe {
        if !is_compact_ascii(obj) {
            return None;
        }
        let len = PyUnicode_GET_LENGTH(obj) as usize;
        let data = PyUnicode_DATA(obj) as *const u8;
        Some(std::slice::from_raw_parts(data, len))
    }
}

/// A str's characters as stored: code units of one, two or four bytes (the
/// portable build never reads them in place).
#[cfg_attr(packflow_portable, allow(dead_code))]
pub enum CodeUnits<'a> {
    One(&'a [u8]),
    Two(&'a [u16]),
    Four(&'a [u32]),
}

#[cfg(not(packflow_portable))]
/// The characters of a str, read in place; None for a legacy str that is not
/// ready (before 3.12) or an unknown kind.
///
/// # Safety
/// `obj` must be a live str (or subclass) and the GIL held; the slice must not
/// outlive the object.
#[inline]
pub unsafe fn str_code_units<'a>(obj: *mut PyObject) -> Option<CodeUnits<'a>> {
    // SAFETY: the caller's guarantees. PEP 393: the data is `len` code units
    // of the str's kind.
    unsafe {
        #[cfg(not(Py_3_12))]
        if PyUnicode_IS_READY(obj) == 0 {
            return None;
        }
        let len = PyUnicode_GET_LENGTH(obj) as usize;
        let data = PyUnicode_DATA(obj);
        Some(match PyUnicode_KIND(obj) {
            pyo3::ffi::PyUnicode_1BYTE_KIND => {
                CodeUnits::One(std::slice::from_raw_parts(data.cast(), len))
            }
            pyo3::ffi::PyUnicode_2BYTE_KIND => {
                CodeUnits::Two(std::slice::from_raw_parts(data.cast(), len))
            }
            pyo3::ffi::PyUnicode_4BYTE_KIND => {
                CodeUnits::Four(std::slice::from_raw_parts(data.cast(), len))
            }
            _ => return None,
        })
    }
}

#[cfg(not(packflow_portable))]
/// True only when `k` is an exact str with the same text as `key` (an exact
/// str); false also for anything it cannot decide cheaply, which only sends
/// the caller to the ordinary comparison.
///
/// # Safety
/// Both pointers must be live objects and the GIL held; `key` an exact str.
#[inline]
pub unsafe fn same_text(k: *mut PyObject, key: *mut PyObject) -> bool {
    if k == key {
        return true;
    }
    // SAFETY: the caller's guarantees; every layout read below comes after
    // the exact type check of `k` (`key` is an exact str by contract).
    unsafe {
        if Py_TYPE(k) != std::ptr::addr_of_mut!(PyUnicode_Type)
            || PyUnicode_IS_READY(k) == 0
            || PyUnicode_IS_READY(key) == 0
        {
            return false;
        }
        // A str in a dict has its hash cached; so does an interned key. -1 is
        // "not computed yet": no shortcut then.
        let hash_k = (*k.cast::<PyASCIIObject>()).hash;
        let hash_key = (*key.cast::<PyASCIIObject>()).hash;
        if hash_k != hash_key || hash_k == -1 {
            return false;
        }
        let len = PyUnicode_GET_LENGTH(k);
        let kind = PyUnicode_KIND(k);
        if len != PyUnicode_GET_LENGTH(key) || kind != PyUnicode_KIND(key) {
            return false;
        }
        // Equal text has equal kind (PEP 393 stores each string in its
        // narrowest kind), so equal bytes at equal kind and length is equal text.
        let bytes = len as usize * kind as usize;
        let a = std::slice::from_raw_parts(PyUnicode_DATA(k).cast::<u8>(), bytes);
        let b = std::slice::from_raw_parts(PyUnicode_DATA(key).cast::<u8>(), bytes);
        a == b
    }
}

// ---------------------------------------------------------------------------
// int layout: exact ints of one 30-bit digit
// ---------------------------------------------------------------------------

#[cfg(not(packflow_portable))]
const UNKNOWN: u8 = 0;
#[cfg(not(packflow_portable))]
const USABLE: u8 = 1;
#[cfg(not(packflow_portable))]
const UNUSABLE: u8 = 2;

#[cfg(not(packflow_portable))]
/// Whether [`read_small_int`] agrees with CPython on this interpreter.
static INT_LAYOUT: AtomicU8 = AtomicU8::new(UNKNOWN);

#[cfg(not(packflow_portable))]
/// The value of an exact int of at most one 30-bit digit, read from the
/// object instead of through `PyLong_AsLongLong` (the common case in model
/// outputs: ids, counts, classes); `None` for bigger ints, or when the layout
/// is not the one this build reads (the caller then uses the C API).
///
/// # Safety
/// `obj` must point to a live exact `int` and the GIL must be held.
#[inline(always)]
pub unsafe fn small_int(obj: *mut PyObject) -> Option<i64> {
    match INT_LAYOUT.load(Ordering::Relaxed) {
        // SAFETY: the caller's guarantee, passed on.
        USABLE => unsafe { read_small_int(obj) },
        UNUSABLE => None,
        // SAFETY: the GIL is held (caller's guarantee); then as above.
        _ => unsafe {
            if probe_int_layout() {
                read_small_int(obj)
            } else {
                None
            }
        },
    }
}

#[cfg(not(packflow_portable))]
/// Checks [`read_small_int`] on ints made by CPython, once.
#[cold]
#[inline(never)]
unsafe fn probe_int_layout() -> bool {
    let cases: [i64; 6] = [0, 1, -1, 0x2345_6789, -0x3fff_ffff, 1 << 30];
    let mut ok = true;
    for v in cases {
        // SAFETY: the GIL is held (caller's guarantee); a new int or null.
        let obj = unsafe { PyLong_FromLongLong(v) };
        if obj.is_null() {
            // SAFETY: GIL held; the MemoryError is dropped, the probe fails.
            unsafe { PyErr_Clear() };
            ok = false;
            break;
        }
        // SAFETY: `obj` is a live exact int we own; released right after.
        let read = unsafe { read_small_int(obj) };
        // SAFETY: ours, released once; the GIL is held.
        unsafe { Py_DECREF(obj) };
        let want = if v.unsigned_abs() < 1 << 30 {
            Some(v)
        } else {
            None
        };
        if read != want {
            ok = false;
            break;
        }
    }
    INT_LAYOUT.store(if ok { USABLE } else { UNUSABLE }, Ordering::Relaxed);
    ok
}

/// CPython <= 3.11: `ob_size` is the signed digit count, digits follow.
#[cfg(not(any(Py_3_12, Py_LIMITED_API, PyPy, GraalPy, packflow_portable)))]
#[inline(always)]
unsafe fn read_small_int(obj: *mut PyObject) -> Option<i64> {
    #[repr(C)]
    struct Long {
        head: PyVarObject,
        ob_digit: u32,
    }
    // SAFETY: `obj` is a live int (caller's guarantee): a var-object header
    // then at least one digit (CPython allocates one even for zero). The
    // digit is only read when `ob_size` says it is there.
    unsafe {
        let long = obj as *const Long;
        match (*long).head.ob_size {
            0 => Some(0),
            1 => Some(i64::from((*long).ob_digit)),
            -1 => Some(-i64::from((*long).ob_digit)),
            _ => None,
        }
    }
}

/// CPython >= 3.12: `lv_tag` holds the digit count (<< 3) and the sign (low
/// two bits: 0 positive, 1 zero, 2 negative); digits follow.
#[cfg(all(Py_3_12, not(any(Py_LIMITED_API, PyPy, GraalPy, packflow_portable))))]
#[inline(always)]
unsafe fn read_small_int(obj: *mut PyObject) -> Option<i64> {
    #[repr(C)]
    struct Long {
        head: PyObject,
        lv_tag: usize,
        ob_digit: u32,
    }
    // SAFETY: `obj` is a live int (caller's guarantee): header, tag, then at
    // least one digit (allocated even for zero, read only if compact).
    unsafe {
        let long = obj as *const Long;
        let tag = (*long).lv_tag;
        if tag >= 2 << 3 {
            return None;
        }
        let sign = 1 - (tag & 3) as i64;
        Some(sign * i64::from((*long).ob_digit))
    }
}

/// Another interpreter: the C API always.
#[cfg(all(any(Py_LIMITED_API, PyPy, GraalPy), not(packflow_portable)))]
#[inline(always)]
unsafe fn read_small_int(_obj: *mut PyObject) -> Option<i64> {
    None
}

// ---------------------------------------------------------------------------
// The portable build: the same functions through the public C API
// ---------------------------------------------------------------------------

/// Whether `obj` is an all-ASCII str (the fast build asks the layout whether
/// it is a compact ASCII one; here the UTF-8 and character lengths agree).
///
/// # Safety
/// `obj` must be a live str (or subclass) and the GIL held.
#[cfg(packflow_portable)]
#[inline]
pub unsafe fn is_compact_ascii(obj: *mut PyObject) -> bool {
    // SAFETY: the caller's guarantees.
    unsafe { ascii_str_bytes(obj).is_some() }
}

/// The text of an all-ASCII str: CPython's UTF-8 form, which it caches in the
/// object (for an ASCII str, its own data); None for any other str, or one
/// that has no UTF-8 form (a lone surrogate), whose error is dropped.
///
/// # Safety
/// `obj` must be a live str (or subclass) and the GIL held; the slice must not
/// outlive the object.
#[cfg(packflow_portable)]
#[inline]
pub unsafe fn ascii_str_bytes<'a>(obj: *mut PyObject) -> Option<&'a [u8]> {
    let mut size: Py_ssize_t = 0;
    // SAFETY: the caller's guarantees; the UTF-8 buffer lives as long as the
    // str (CPython keeps it with the object).
    unsafe {
        let data = PyUnicode_AsUTF8AndSize(obj, &mut size);
        if data.is_null() {
            PyErr_Clear();
            return None;
        }
        if size != PyUnicode_GetLength(obj) {
            return None;
        }
        Some(std::slice::from_raw_parts(data.cast::<u8>(), size as usize))
    }
}

/// Always None in the portable build: callers take their general path.
///
/// # Safety
/// None; unsafe to match the fast build's signature.
#[cfg(packflow_portable)]
#[inline]
pub unsafe fn str_code_units<'a>(_obj: *mut PyObject) -> Option<CodeUnits<'a>> {
    None
}

/// True only when `k` is an exact str with the same text as `key` (an exact
/// str), compared by `PyUnicode_Compare`, which runs no Python code for strs.
///
/// # Safety
/// Both pointers must be live objects and the GIL held; `key` an exact str.
#[cfg(packflow_portable)]
#[inline]
pub unsafe fn same_text(k: *mut PyObject, key: *mut PyObject) -> bool {
    if k == key {
        return true;
    }
    // SAFETY: the caller's guarantees; `k` is checked to be an exact str
    // before it is compared.
    unsafe {
        if PyUnicode_CheckExact(k) == 0 || PyUnicode_GetLength(k) != PyUnicode_GetLength(key) {
            return false;
        }
        PyUnicode_Compare(k, key) == 0
    }
}

/// Always None in the portable build: the caller converts through the C API.
///
/// # Safety
/// None; unsafe to match the fast build's signature.
#[cfg(packflow_portable)]
#[inline(always)]
pub unsafe fn small_int(_obj: *mut PyObject) -> Option<i64> {
    None
}

// ---------------------------------------------------------------------------
// numpy
// ---------------------------------------------------------------------------

/// The address of an array's first element (numpy's `PyArray_DATA`).
#[inline]
pub fn ndarray_data(arr: &Bound<'_, PyUntypedArray>) -> *const u8 {
    // SAFETY: `arr` is a live ndarray (the typed Bound) and the GIL is held;
    // reading its `data` field is what numpy's PyArray_DATA macro does.
    unsafe {
        (*numpy::npyffi::objects::_PyArray_GET_ITEM_DATA(arr.as_array_ptr())).data as *const u8
    }
}

// ---------------------------------------------------------------------------
// The check at import
// ---------------------------------------------------------------------------

/// Verifies, once at import, that every private layout this module reads is the
/// one of the running interpreter: values CPython made through its public API
/// are read back through this file's layout code and compared. An unknown or
/// mismatching layout is an ImportError, never wrong results.
pub fn check_layouts(py: Python<'_>) -> PyResult<()> {
    let version = py.version_info();
    let running = format!("{}.{}", version.major, version.minor);
    if running != BUILT_FOR {
        return Err(layout_error(&format!("this is CPython {running}")));
    }
    // The portable build reads no private layout: nothing more to check.
    #[cfg(not(packflow_portable))]
    check_private_layouts(py)?;
    Ok(())
}

#[cfg(not(packflow_portable))]
fn check_private_layouts(py: Python<'_>) -> PyResult<()> {
    // SAFETY: the GIL is held (`py`) for the whole check.
    if !unsafe { probe_int_layout() } {
        return Err(layout_error("the int layout differs"));
    }
    check_str_layout(py).map_err(layout_error)?;
    check_bytes_layout(py).map_err(layout_error)?;
    check_dict_functions(py).map_err(layout_error)?;
    Ok(())
}

fn layout_error(what: &str) -> PyErr {
    pyo3::exceptions::PyImportError::new_err(format!(
        "packflow._core was built for the internal layouts of CPython {BUILT_FOR}, but {what} \
         (running {}); reinstall packflow built for this interpreter",
        Python::version_str().lines().next().unwrap_or("?")
    ))
}

#[cfg(not(packflow_portable))]
fn check_str_layout(py: Python<'_>) -> Result<(), &'static str> {
    let ascii = PyString::new(py, "packflow");
    let latin1 = PyString::new(py, "caf\u{e9}");
    let ucs2 = PyString::new(py, "\u{e9}\u{20ac}");
    let ucs4 = PyString::new(py, "a\u{1f600}");
    let twin = PyString::new(py, "packflow");
    let other = PyString::new(py, "packflox");
    for s in [&ascii, &twin, &other] {
        s.hash().map_err(|_| "a str could not be hashed")?;
    }
    // SAFETY: live str objects made above, the GIL held; no slice outlives them.
    let ok = unsafe {
        ascii_str_bytes(ascii.as_ptr()) == Some(b"packflow".as_slice())
            && ascii_str_bytes(latin1.as_ptr()).is_none()
            && ascii_str_bytes(ucs4.as_ptr()).is_none()
            && matches!(
                str_code_units(ascii.as_ptr()),
                Some(CodeUnits::One(b"packflow"))
            )
            && matches!(
                str_code_units(latin1.as_ptr()),
                Some(CodeUnits::One(&[b'c', b'a', b'f', 0xe9]))
            )
            && matches!(
                str_code_units(ucs2.as_ptr()),
                Some(CodeUnits::Two(&[0xe9, 0x20ac]))
            )
            && matches!(
                str_code_units(ucs4.as_ptr()),
                Some(CodeUnits::Four(&[0x61, 0x1_f600]))
            )
            && !ascii.is(&twin)
            && same_text(twin.as_ptr(), ascii.as_ptr())
            && !same_text(other.as_ptr(), ascii.as_ptr())
    };
    if ok {
        Ok(())
    } else {
        Err("the str layout differs")
    }
}

#[cfg(not(packflow_portable))]
fn check_bytes_layout(py: Python<'_>) -> Result<(), &'static str> {
    const TEXT: &[u8] = b"hello, layout!!!";
    // SAFETY: the GIL is held; a new bytes object of TEXT.len() bytes (or
    // NULL), written and truncated while no one else has seen it.
    let bytes = unsafe {
        let obj = PyBytes_FromStringAndSize(std::ptr::null(), TEXT.len() as Py_ssize_t);
        if obj.is_null() {
            return Err("a bytes object could not be made");
        }
        std::ptr::copy_nonoverlapping(
            TEXT.as_ptr(),
            PyBytes_AS_STRING(obj).cast_mut().cast(),
            TEXT.len(),
        );
        bytes_truncate_in_place(obj, 5);
        Bound::from_owned_ptr(py, obj)
    };
    match bytes.eq(pyo3::types::PyBytes::new(py, b"hello")) {
        Ok(true) if bytes.len().ok() == Some(5) => Ok(()),
        _ => Err("the bytes layout differs"),
    }
}

#[cfg(not(packflow_portable))]
fn check_dict_functions(py: Python<'_>) -> Result<(), &'static str> {
    let d = PyDict::new(py);
    let keys = ["a", "b", "c"];
    for (i, k) in keys.iter().enumerate() {
        d.set_item(k, i).map_err(|_| "a dict could not be filled")?;
    }
    let mut seen = Vec::new();
    let mut pos: Py_ssize_t = 0;
    let mut k: *mut PyObject = std::ptr::null_mut();
    let mut v: *mut PyObject = std::ptr::null_mut();
    // SAFETY: a live dict, the GIL held; the borrowed key is read (its text
    // copied) before the next step, and nothing else runs meanwhile.
    while unsafe { dict_next(d.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
        let key = unsafe { ascii_str_bytes(k) }.map(<[u8]>::to_vec);
        seen.push(key);
    }
    let want: Vec<Option<Vec<u8>>> = keys.iter().map(|k| Some(k.as_bytes().to_vec())).collect();
    let presized = dict_new_presized(py, 8).map_err(|_| "a presized dict could not be made")?;
    let name = PyString::new(py, "keys");
    let missing = PyString::new(py, "no such attribute");
    let attrs = (
        get_optional_attr(d.as_any(), &name),
        get_optional_attr(d.as_any(), &missing),
    );
    if seen == want && presized.is_empty() && matches!(attrs, (Ok(Some(_)), Ok(None))) {
        Ok(())
    } else {
        Err("the dict functions do not behave as expected")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(packflow_portable))]
    fn reads_one_digit_ints_and_declines_bigger_ones() {
        use pyo3::types::PyInt;
        Python::initialize();
        Python::attach(|py| {
            for v in [0i64, 1, -1, 42, -42, (1 << 30) - 1, -((1 << 30) - 1)] {
                let obj = PyInt::new(py, v);
                // SAFETY: a live exact int, GIL held.
                assert_eq!(unsafe { small_int(obj.as_ptr()) }, Some(v));
            }
            for v in [1i64 << 30, -(1 << 30), i64::MAX, i64::MIN] {
                let obj = PyInt::new(py, v);
                // SAFETY: as above.
                assert_eq!(unsafe { small_int(obj.as_ptr()) }, None);
            }
            assert_eq!(INT_LAYOUT.load(Ordering::Relaxed), USABLE);
        });
    }

    #[test]
    fn this_build_is_the_one_its_cfg_says() {
        assert_eq!(
            BUILD,
            if cfg!(packflow_portable) {
                "portable"
            } else {
                "fast"
            }
        );
        assert!(["default", "feature", "automatic"].contains(&BUILD_SELECTED));
        assert!(!BUILD_REASON.is_empty());
    }

    /// What callers rely on, in whichever build this is.
    #[test]
    fn the_functions_keep_their_contract() {
        Python::initialize();
        Python::attach(|py| {
            let ns = PyDict::new(py);
            let code = "class Sub(str): pass\n\
                        sub = Sub('key')\n\
                        lone = '\\ud800'\n\
                        made = ''.join(['k', 'ey'])";
            py.run(&std::ffi::CString::new(code).unwrap(), None, Some(&ns))
                .unwrap();
            let item = |name: &str| ns.get_item(name).unwrap().unwrap();
            let key = PyString::new(py, "key");
            let wide = PyString::new(py, "k\u{e9}y");
            // As dict keys are: the fast build compares cached hashes first.
            for s in [key.as_any(), wide.as_any(), &item("made"), &item("sub")] {
                s.hash().unwrap();
            }
            // SAFETY: live objects made above, the GIL held; no slice outlives them.
            unsafe {
                assert_eq!(ascii_str_bytes(key.as_ptr()), Some(b"key".as_slice()));
                assert!(is_compact_ascii(key.as_ptr()));
                assert_eq!(ascii_str_bytes(wide.as_ptr()), None);
                assert_eq!(ascii_str_bytes(item("lone").as_ptr()), None);
                assert!(PyErr_Occurred().is_null());
                assert!(same_text(item("made").as_ptr(), key.as_ptr()));
                assert!(!same_text(item("sub").as_ptr(), key.as_ptr()));
                assert!(!same_text(wide.as_ptr(), key.as_ptr()));
                let mut obj = PyBytes_FromStringAndSize(b"abcdef".as_ptr().cast(), 6);
                assert_eq!(bytes_resize(&mut obj, 3), 0);
                let shrunk = Bound::from_owned_ptr(py, obj);
                assert_eq!(shrunk.extract::<Vec<u8>>().unwrap(), b"abc");
            }
            assert!(dict_new_presized(py, 4).unwrap().is_empty());
            let attr = |name: &str| get_optional_attr(&key, &PyString::new(py, name)).unwrap();
            assert!(attr("upper").is_some());
            assert!(attr("no_such_attribute").is_none());
        });
    }

    #[test]
    fn the_layouts_of_this_interpreter_pass_the_import_check() {
        Python::initialize();
        Python::attach(|py| {
            check_layouts(py).unwrap();
            let err = layout_error("the str layout differs");
            assert!(err.is_instance_of::<pyo3::exceptions::PyImportError>(py));
            let text = err.to_string();
            assert!(
                text.contains("built for the internal layouts of CPython 3."),
                "{text}"
            );
            assert!(text.contains("the str layout differs"), "{text}");
        });
    }
}
