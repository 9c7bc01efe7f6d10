//! Remembered entry positions for repeated literal-key lookups across records
//! of the same shape: the key is checked at the position it held in an earlier
//! record before asking the dict to hash-probe for it.

use std::ptr;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::ffi::{self, same_text};

/// Where a key sat in earlier dicts. `UNKNOWN` learns it from the next dict
/// (once); `NEVER` means it was not a str key there and is not looked for.
pub struct SlotHint {
    pos: ffi::Py_ssize_t,
}

const UNKNOWN: ffi::Py_ssize_t = -1;
const NEVER: ffi::Py_ssize_t = -2;

impl SlotHint {
    pub fn new() -> Self {
        SlotHint { pos: UNKNOWN }
    }

    /// `d[key]` when the entry at the remembered position holds `key`; `None`
    /// means "not known here", never "missing": the caller then looks it up.
    /// `key` must be an exact, ready str (an interned field name).
    #[inline]
    pub fn get<'py>(
        &mut self,
        d: &Bound<'py, PyDict>,
        key: &Bound<'py, PyString>,
    ) -> Option<Bound<'py, PyAny>> {
        if self.pos == UNKNOWN {
            self.pos = learn(d, key).unwrap_or(NEVER);
        }
        self.at(d, key)
    }

    /// The entry at the remembered position, when it holds `key`.
    #[inline(always)]
    fn at<'py>(
        &self,
        d: &Bound<'py, PyDict>,
        key: &Bound<'py, PyString>,
    ) -> Option<Bound<'py, PyAny>> {
        if self.pos < 0 {
            return None;
        }
        let mut pos = self.pos;
        let mut k: *mut ffi::PyObject = ptr::null_mut();
        let mut v: *mut ffi::PyObject = ptr::null_mut();
        // SAFETY: `d` is a live dict and the GIL is held (we hold a `Bound`).
        // `dict_next` reads the entry at index >= pos (or returns 0) and hands
        // back borrowed references; `same_text` runs no Python code, and the
        // value is turned into an owned reference before anything else can
        // run, so both stay valid while used.
        unsafe {
            if ffi::dict_next(d.as_ptr(), &mut pos, &mut k, &mut v) == 0
                || !same_text(k, key.as_ptr())
            {
                return None;
            }
            Some(Bound::from_borrowed_ptr(d.py(), v))
        }
    }

    /// `d[key]`, and whether the key `d` holds for it is known to be an exact
    /// str of that text: the key flattening spells as `key` (`verify` asks for
    /// that answer when the remembered position cannot give it). An equal key
    /// of another type (a str subclass whose `str()` is other text, an object
    /// equal to the str) is never known so; only spelling the keys can tell,
    /// which the callers' scans do.
    #[inline(always)]
    pub fn get_checked<'py>(
        &mut self,
        d: &Bound<'py, PyDict>,
        key: &Bound<'py, PyString>,
        verify: bool,
    ) -> PyResult<(Option<Bound<'py, PyAny>>, bool)> {
        match self.at(d, key) {
            Some(v) => Ok((Some(v), true)),
            None => self.get_checked_elsewhere(d, key, verify),
        }
    }

    /// `get_checked` when the remembered position does not hold `key`.
    #[cold]
    #[inline(never)]
    fn get_checked_elsewhere<'py>(
        &mut self,
        d: &Bound<'py, PyDict>,
        key: &Bound<'py, PyString>,
        verify: bool,
    ) -> PyResult<(Option<Bound<'py, PyAny>>, bool)> {
        if self.pos == UNKNOWN {
            if let Some(v) = self.get(d, key) {
                return Ok((Some(v), true));
            }
        }
        let found = d.get_item(key)?;
        if found.is_none() || !verify {
            return Ok((found, false));
        }
        // Present but not at the remembered position: the entries say which
        // key holds it (and where to look in the next record).
        match learn(d, key) {
            Some(pos) => {
                self.pos = pos;
                Ok((found, true))
            }
            None => Ok((found, false)),
        }
    }

    /// `d[key]` only when the key `d` holds for it is known to be an exact str
    /// of that text (see [`SlotHint::get_checked`]); `None` also when it is not.
    #[inline]
    pub fn get_spelled<'py>(
        &mut self,
        d: &Bound<'py, PyDict>,
        key: &Bound<'py, PyString>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (found, spelled) = self.get_checked(d, key, true)?;
        Ok(found.filter(|_| spelled))
    }
}

/// The entry position of `key` in `d`, found by walking the entries once.
fn learn(d: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> Option<ffi::Py_ssize_t> {
    let mut pos: ffi::Py_ssize_t = 0;
    let mut k: *mut ffi::PyObject = ptr::null_mut();
    let mut v: *mut ffi::PyObject = ptr::null_mut();
    // SAFETY: as in `get`: borrowed references from a live dict, compared
    // without running Python code and not kept.
    unsafe {
        while ffi::dict_next(d.as_ptr(), &mut pos, &mut k, &mut v) != 0 {
            if same_text(k, key.as_ptr()) {
                return Some(pos - 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::types::PyDictMethods;

    fn run(code: &str, f: impl FnOnce(&Bound<'_, PyDict>)) {
        Python::initialize();
        Python::attach(|py| {
            let ns = PyDict::new(py);
            py.run(&std::ffi::CString::new(code).unwrap(), None, Some(&ns))
                .unwrap();
            f(&ns);
        });
    }

    fn get<'py>(ns: &Bound<'py, PyDict>, name: &str) -> Bound<'py, PyDict> {
        ns.get_item(name)
            .unwrap()
            .unwrap()
            .cast_into::<PyDict>()
            .unwrap()
    }

    #[test]
    fn learns_then_hits_the_same_position() {
        run(
            "a = {'x': 1, 'yé': 2}\nb = {'x': 3, ''.join(['y', 'é']): 4}\nc = {'yé': 5, 'x': 6}",
            |ns| {
                let py = ns.py();
                let key = PyString::intern(py, "yé");
                let mut hint = SlotHint::new();
                let (a, b, c) = (get(ns, "a"), get(ns, "b"), get(ns, "c"));
                let v: i64 = hint.get(&a, &key).unwrap().extract().unwrap();
                assert_eq!(v, 2);
                // A different but equal key object at the same position.
                let v: i64 = hint.get(&b, &key).unwrap().extract().unwrap();
                assert_eq!(v, 4);
                // Another position: not known here, the caller looks it up.
                assert!(hint.get(&c, &key).is_none());
            },
        );
    }

    #[test]
    fn absent_non_str_and_subclass_keys_are_never_hits() {
        run(
            "class K(str): pass\na = {1: 1, 'x': 2}\nb = {K('y'): 3}\nc = {}",
            |ns| {
                let py = ns.py();
                let y = PyString::intern(py, "y");
                let mut hint = SlotHint::new();
                assert!(hint.get(&get(ns, "a"), &y).is_none());
                let mut hint = SlotHint::new();
                assert!(hint.get(&get(ns, "b"), &y).is_none());
                let mut hint = SlotHint::new();
                assert!(hint.get(&get(ns, "c"), &y).is_none());
                assert!(hint.get(&get(ns, "a"), &y).is_none());
            },
        );
    }

    #[test]
    fn only_an_exact_str_key_is_spelled_by_its_text() {
        run(
            "class Lie(str):\n    def __str__(self): return 'other'\n\
             class Eq:\n    def __hash__(self): return hash('k')\n    def __eq__(self, o): return o == 'k'\n\
             a = {'k': 1}\nb = {'z': 0, 'k': 2}\nc = {Lie('k'): 3}\nd = {Eq(): 4}\ne = {}",
            |ns| {
                let py = ns.py();
                let key = PyString::intern(py, "k");
                let mut hint = SlotHint::new();
                let spelled = |hint: &mut SlotHint, name: &str| {
                    hint.get_spelled(&get(ns, name), &key)
                        .unwrap()
                        .map(|v| v.extract::<i64>().unwrap())
                };
                assert_eq!(spelled(&mut hint, "a"), Some(1));
                // Moved: found by the entries, and remembered there.
                assert_eq!(spelled(&mut hint, "b"), Some(2));
                assert_eq!(hint.pos, 1);
                // Equal keys that are not exact strs: found, but not as spelled.
                assert_eq!(spelled(&mut hint, "c"), None);
                assert_eq!(spelled(&mut hint, "d"), None);
                assert_eq!(spelled(&mut hint, "e"), None);
                let (raw, spelled) = hint.get_checked(&get(ns, "c"), &key, true).unwrap();
                assert_eq!(raw.unwrap().extract::<i64>().unwrap(), 3);
                assert!(!spelled);
                // Unasked, the entries are not walked: unknown, not refuted.
                let mut hint = SlotHint { pos: NEVER };
                let (raw, spelled) = hint.get_checked(&get(ns, "b"), &key, false).unwrap();
                assert_eq!(raw.unwrap().extract::<i64>().unwrap(), 2);
                assert!(!spelled);
                assert_eq!(hint.pos, NEVER);
            },
        );
    }

    #[test]
    fn a_different_key_at_the_position_is_a_miss() {
        run("a = {'ab': 1}\nb = {'ba': 2}", |ns| {
            let py = ns.py();
            let key = PyString::intern(py, "ab");
            let mut hint = SlotHint::new();
            assert!(hint.get(&get(ns, "a"), &key).is_some());
            assert!(hint.get(&get(ns, "b"), &key).is_none());
        });
    }
}
