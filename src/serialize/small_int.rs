//! Exact ints that fit one CPython digit, read from the object's layout
//! instead of through `PyLong_AsLongLong` (the common case in model outputs:
//! ids, counts, classes). The layout is checked once at run time against
//! known values; anything else, or another layout, falls back to the C API.

use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::ffi;

const UNKNOWN: u8 = 0;
const USABLE: u8 = 1;
const UNUSABLE: u8 = 2;

/// Whether [`read_layout`] agrees with CPython on this interpreter.
static LAYOUT: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The value of an exact int of at most one 30-bit digit, `None` for others
/// (bigger ints, or a layout this build does not know).
///
/// # Safety
/// `obj` must point to a live exact `int` and the GIL must be held.
#[inline(always)]
pub unsafe fn small_int(obj: *mut ffi::PyObject) -> Option<i64> {
    match LAYOUT.load(Ordering::Relaxed) {
        // SAFETY: the caller's guarantee, passed on.
        USABLE => unsafe { read_layout(obj) },
        UNUSABLE => None,
        // SAFETY: the GIL is held (caller's guarantee); then as above.
        _ => unsafe {
            if probe() {
                read_layout(obj)
            } else {
                None
            }
        },
    }
}

/// Checks [`read_layout`] on ints made by CPython, once.
#[cold]
#[inline(never)]
unsafe fn probe() -> bool {
    let cases: [i64; 6] = [0, 1, -1, 0x2345_6789, -0x3fff_ffff, 1 << 30];
    let mut ok = true;
    for v in cases {
        // SAFETY: the GIL is held (caller's guarantee); a new int or null.
        let obj = unsafe { ffi::PyLong_FromLongLong(v) };
        if obj.is_null() {
            // SAFETY: GIL held; the MemoryError is dropped, the probe fails.
            unsafe { ffi::PyErr_Clear() };
            ok = false;
            break;
        }
        // SAFETY: `obj` is a live exact int we own; released right after.
        let read = unsafe { read_layout(obj) };
        // SAFETY: ours, released once; the GIL is held.
        unsafe { ffi::Py_DECREF(obj) };
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
    LAYOUT.store(if ok { USABLE } else { UNUSABLE }, Ordering::Relaxed);
    ok
}

/// CPython <= 3.11: `ob_size` is the signed digit count, digits follow.
#[cfg(not(any(Py_3_12, Py_LIMITED_API, PyPy, GraalPy)))]
#[inline(always)]
unsafe fn read_layout(obj: *mut ffi::PyObject) -> Option<i64> {
    #[repr(C)]
    struct Long {
        head: ffi::PyVarObject,
        digit: u32,
    }
    // SAFETY: `obj` is a live int (caller's guarantee): a var-object header
    // then at least one digit (CPython allocates one even for zero). The
    // digit is only read when `ob_size` says it is there.
    unsafe {
        let long = obj as *const Long;
        let size = (*long).head.ob_size;
        match size {
            0 => Some(0),
            1 => Some(i64::from((*long).digit)),
            -1 => Some(-i64::from((*long).digit)),
            _ => None,
        }
    }
}

/// CPython >= 3.12: `lv_tag` holds the digit count (<< 3) and the sign (low
/// two bits: 0 positive, 1 zero, 2 negative); digits follow.
#[cfg(all(Py_3_12, not(any(Py_LIMITED_API, PyPy, GraalPy))))]
#[inline(always)]
unsafe fn read_layout(obj: *mut ffi::PyObject) -> Option<i64> {
    #[repr(C)]
    struct Long {
        head: ffi::PyObject,
        lv_tag: usize,
        digit: u32,
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
        Some(sign * i64::from((*long).digit))
    }
}

/// Another interpreter: the C API always.
#[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
#[inline(always)]
unsafe fn read_layout(_obj: *mut ffi::PyObject) -> Option<i64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::prelude::*;
    use pyo3::types::PyInt;

    #[test]
    fn reads_one_digit_ints_and_declines_bigger_ones() {
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
            assert_eq!(LAYOUT.load(Ordering::Relaxed), USABLE);
        });
    }
}
