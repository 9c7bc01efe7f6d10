//! JSON text to Python objects in one pass, with no intermediate tree: objects
//! become dicts, arrays lists, and so on, equal to what `json.loads` returns.
//! Short object keys come from a small fixed-size cache shared across lines and
//! calls, so the thousand `"src"` keys of a batch are one str object.

use std::hash::Hasher;
use std::sync::{Mutex, TryLockError};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use rustc_hash::FxHasher;

use super::scanner::{
    bytes_eq, decode_escaped, not_an_object, LineError, Number, Scanner, StrSpan, SyntaxError,
};

const KEY_SLOTS: usize = 1024;
const MAX_CACHED_KEY: usize = 64;

/// Direct-mapped cache of key strings: a slot holds the last key whose bytes
/// hashed there. A miss costs what building the str would have cost anyway.
pub struct KeyCache {
    slots: Vec<Option<CachedKey>>,
}

/// A cached key: its bytes and its str object.
type CachedKey = (Box<[u8]>, Py<PyString>);

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            slots: (0..KEY_SLOTS).map(|_| None).collect(),
        }
    }
}

/// The slot of a key's bytes: the top bits of its Fx hash.
#[inline(always)]
fn key_slot(key: &[u8]) -> usize {
    let mut h = FxHasher::default();
    h.write(key);
    (h.finish() >> 54) as usize & (KEY_SLOTS - 1)
}

impl KeyCache {
    #[inline]
    pub fn get<'py>(&mut self, py: Python<'py>, key: &str) -> Bound<'py, PyString> {
        if key.len() > MAX_CACHED_KEY {
            return PyString::new(py, key);
        }
        let slot = &mut self.slots[key_slot(key.as_bytes())];
        if let Some((bytes, s)) = slot {
            if bytes_eq(bytes, key.as_bytes()) {
                return s.bind(py).clone();
            }
        }
        let s = PyString::new(py, key);
        *slot = Some((key.as_bytes().into(), s.clone().unbind()));
        s
    }
}

static SHARED_KEYS: Mutex<Option<KeyCache>> = Mutex::new(None);

/// Runs `f` with the process-wide key cache, or with a fresh one when another
/// thread holds it (never waits: the holder may be waiting for the GIL).
pub fn with_key_cache<R>(f: impl FnOnce(&mut KeyCache) -> R) -> R {
    match SHARED_KEYS.try_lock() {
        Ok(mut guard) => f(guard.get_or_insert_with(KeyCache::default)),
        // The cache holds only finished str objects, so a panic elsewhere
        // cannot have left it inconsistent.
        Err(TryLockError::Poisoned(p)) => f(p.into_inner().get_or_insert_with(KeyCache::default)),
        Err(TryLockError::WouldBlock) => f(&mut KeyCache::default()),
    }
}

pub enum BuildError {
    Syntax(SyntaxError),
    /// A lone surrogate escape: valid for Python, not a Rust string.
    Fallback,
    Py(PyErr),
}

impl From<SyntaxError> for BuildError {
    fn from(e: SyntaxError) -> Self {
        BuildError::Syntax(e)
    }
}

impl From<PyErr> for BuildError {
    fn from(e: PyErr) -> Self {
        BuildError::Py(e)
    }
}

static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A container being built: its items so far are in the builder's stack (a
/// list) or already in the dict (with the key of the value being parsed).
enum Open<'py> {
    Dict(Bound<'py, PyDict>, Option<Bound<'py, PyString>>),
    List(usize),
}

/// Builds the Python value of each line; reuses its buffers across lines.
/// Iterative (open containers on a heap stack), so nesting never grows the
/// native stack.
pub struct Builder<'py, 'c> {
    py: Python<'py>,
    keys: &'c mut KeyCache,
    int_limit: usize,
    scratch: String,
    open: Vec<Open<'py>>,
    /// Items of the open lists, innermost last.
    stack: Vec<Bound<'py, PyAny>>,
}

impl<'py, 'c> Builder<'py, 'c> {
    pub fn new(py: Python<'py>, keys: &'c mut KeyCache, int_limit: usize) -> Self {
        Builder {
            py,
            keys,
            int_limit,
            scratch: String::new(),
            open: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// The dict of the line whose JSON starts at `text[start]` (past a BOM), or
    /// why it is not a JSON object, and where the scan stopped (on the line's
    /// `\n` or end, or on the error). Python errors other than bad input (out
    /// of memory) propagate.
    #[allow(clippy::type_complexity)]
    pub fn parse_line(
        &mut self,
        text: &str,
        start: usize,
    ) -> PyResult<(Result<Bound<'py, PyDict>, LineError>, usize)> {
        let mut sc = Scanner::new(text, self.int_limit);
        sc.pos = start;
        sc.skip_ws();
        if sc.peek() != Some(b'{') {
            let err = not_an_object(&mut sc);
            return Ok((Err(err), sc.pos));
        }
        self.open.clear();
        self.stack.clear();
        let built = self
            .value(&mut sc)
            .and_then(|v| sc.finish().map(|_| v).map_err(BuildError::from));
        match built {
            Ok(v) => match v.cast_into_exact::<PyDict>() {
                Ok(d) => Ok((Ok(d), sc.pos)),
                Err(_) => Ok((Err(LineError::Other("not a JSON object".into())), sc.pos)),
            },
            Err(BuildError::Syntax(e)) => {
                let stop = e.pos;
                Ok((Err(LineError::Syntax(e)), stop))
            }
            Err(BuildError::Py(e)) => Err(e),
            Err(BuildError::Fallback) => self.fallback(text, start),
        }
    }

    /// A line with a lone surrogate escape: checked by the scanner (syntax,
    /// depth), then built by `json.loads`.
    #[allow(clippy::type_complexity)]
    fn fallback(
        &mut self,
        text: &str,
        start: usize,
    ) -> PyResult<(Result<Bound<'py, PyDict>, LineError>, usize)> {
        let mut sc = Scanner::new(text, self.int_limit);
        sc.pos = start;
        sc.skip_ws();
        if let Err(e) = sc.skip_value(0).and_then(|_| sc.finish()) {
            let stop = e.pos;
            return Ok((Err(LineError::Syntax(e)), stop));
        }
        let stop = sc.pos;
        let py = self.py;
        let loads = JSON_LOADS.import(py, "json", "loads")?;
        let outcome = match loads.call1((&text[start..stop],)) {
            Ok(v) => match v.cast_into::<PyDict>() {
                Ok(d) => Ok(d),
                Err(_) => Err(LineError::Other("not a JSON object".into())),
            },
            Err(e) => Err(LineError::Other(format!("invalid JSON: {}", e.value(py)))),
        };
        Ok((outcome, stop))
    }

    /// The value at the cursor, containers included.
    fn value(&mut self, sc: &mut Scanner<'_>) -> Result<Bound<'py, PyAny>, BuildError> {
        let py = self.py;
        'value: loop {
            // Open a container, or read a scalar into `value`.
            let mut value = match sc.peek() {
                Some(b'{') => {
                    sc.enter(self.open.len())?;
                    sc.pos += 1;
                    sc.skip_ws();
                    let dict = PyDict::new(py);
                    if sc.peek() == Some(b'}') {
                        sc.pos += 1;
                        dict.into_any()
                    } else {
                        let key = self.key(sc)?;
                        self.open.push(Open::Dict(dict, Some(key)));
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    sc.enter(self.open.len())?;
                    sc.pos += 1;
                    sc.skip_ws();
                    if sc.peek() == Some(b']') {
                        sc.pos += 1;
                        PyList::empty(py).into_any()
                    } else {
                        self.open.push(Open::List(self.stack.len()));
                        continue 'value;
                    }
                }
                _ => self.scalar(sc)?,
            };
            // A value is complete: put it in its container, then go on to the
            // next member or close the container (which completes it in turn).
            loop {
                let Some(top) = self.open.last_mut() else {
                    return Ok(value);
                };
                match top {
                    Open::Dict(dict, key) => {
                        if let Some(k) = key.take() {
                            // Like dict(pairs): a repeated key keeps its first
                            // position and takes the last value.
                            dict.set_item(k, value)?;
                        }
                        sc.skip_ws();
                        match sc.peek() {
                            Some(b',') => {
                                sc.pos += 1;
                                sc.skip_ws();
                                let k = self.key(sc)?;
                                if let Some(Open::Dict(_, key)) = self.open.last_mut() {
                                    *key = Some(k);
                                }
                                continue 'value;
                            }
                            Some(b'}') => {
                                sc.pos += 1;
                                value = dict.clone().into_any();
                                self.open.pop();
                            }
                            _ => {
                                return Err(
                                    SyntaxError::invalid(sc.pos, "expected ',' or '}'").into()
                                )
                            }
                        }
                    }
                    Open::List(base) => {
                        let base = *base;
                        self.stack.push(value);
                        sc.skip_ws();
                        match sc.peek() {
                            Some(b',') => {
                                sc.pos += 1;
                                sc.skip_ws();
                                continue 'value;
                            }
                            Some(b']') => {
                                sc.pos += 1;
                                self.open.pop();
                                value = PyList::new(py, self.stack.drain(base..))?.into_any();
                            }
                            _ => {
                                return Err(
                                    SyntaxError::invalid(sc.pos, "expected ',' or ']'").into()
                                )
                            }
                        }
                    }
                }
            }
        }
    }

    /// An object key and its colon; the cursor ends on the value.
    #[inline]
    fn key(&mut self, sc: &mut Scanner<'_>) -> Result<Bound<'py, PyString>, BuildError> {
        if sc.peek() != Some(b'"') {
            return Err(SyntaxError::invalid(sc.pos, "expected a string key").into());
        }
        let span = sc.scan_string()?;
        let key = if span.escaped {
            self.string(sc, span)?
        } else {
            self.keys.get(self.py, sc.raw_str(span))
        };
        sc.expect(b':', "expected ':'")?;
        sc.skip_ws();
        Ok(key)
    }

    #[inline]
    fn scalar(&mut self, sc: &mut Scanner<'_>) -> Result<Bound<'py, PyAny>, BuildError> {
        let py = self.py;
        match sc.peek() {
            Some(b'"') => {
                let span = sc.scan_string()?;
                Ok(self.string(sc, span)?.into_any())
            }
            Some(b'-' | b'0'..=b'9') => self.number(sc),
            Some(b't' | b'f') => Ok(PyBool::new(py, sc.scan_bool()?).to_owned().into_any()),
            Some(b'n') => {
                sc.expect_word(b"null")?;
                Ok(py.None().into_bound(py))
            }
            Some(b'N') => {
                sc.expect_word(b"NaN")?;
                Ok(PyFloat::new(py, f64::NAN).into_any())
            }
            Some(b'I') => {
                sc.expect_word(b"Infinity")?;
                Ok(PyFloat::new(py, f64::INFINITY).into_any())
            }
            _ => Err(SyntaxError::invalid(sc.pos, "expected a value").into()),
        }
    }

    #[inline]
    fn number(&mut self, sc: &mut Scanner<'_>) -> Result<Bound<'py, PyAny>, BuildError> {
        let py = self.py;
        Ok(match sc.scan_number()? {
            Number::Int(v) => v.into_pyobject(py).map_err(PyErr::from)?.into_any(),
            Number::UInt(v) => v.into_pyobject(py).map_err(PyErr::from)?.into_any(),
            Number::Float(v) => PyFloat::new(py, v).into_any(),
            Number::BigInt { start, end } => {
                py.get_type::<PyInt>().call1((&sc.text[start..end],))?
            }
        })
    }

    #[inline]
    fn string(
        &mut self,
        sc: &Scanner<'_>,
        span: StrSpan,
    ) -> Result<Bound<'py, PyString>, BuildError> {
        if !span.escaped {
            return Ok(PyString::new(self.py, sc.raw_str(span)));
        }
        decode_escaped(sc.raw_str(span), &mut self.scratch).map_err(|_| BuildError::Fallback)?;
        Ok(PyString::new(self.py, &self.scratch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(py: Python<'_>, text: &str) -> Result<String, String> {
        let mut keys = KeyCache::default();
        let mut b = Builder::new(py, &mut keys, 4300);
        let (outcome, _) = b.parse_line(text, 0).expect("no Python error");
        outcome
            .map(|d| d.repr().unwrap().to_string())
            .map_err(|e| e.message(text.as_bytes(), 0))
    }

    #[test]
    fn builds_dicts() {
        Python::initialize();
        Python::attach(|py| {
            assert_eq!(
                parse(
                    py,
                    r#"{"a": [1, -2.5, "x\n", null, true, false, {}], "b": {"c": []}}"#
                ),
                Ok("{'a': [1, -2.5, 'x\\n', None, True, False, {}], 'b': {'c': []}}".into())
            );
            assert_eq!(
                parse(py, r#"{"a": 1, "b": 2, "a": 3}"#),
                Ok("{'a': 3, 'b': 2}".into())
            );
            assert_eq!(
                parse(
                    py,
                    r#"{"big": 123456789012345678901234567890, "u": 18446744073709551615}"#
                ),
                Ok("{'big': 123456789012345678901234567890, 'u': 18446744073709551615}".into())
            );
            assert_eq!(
                parse(
                    py,
                    r#"{"n": NaN, "i": Infinity, "m": -Infinity, "z": -0.0, "h": 1e400}"#
                ),
                Ok("{'n': nan, 'i': inf, 'm': -inf, 'z': -0.0, 'h': inf}".into())
            );
            assert_eq!(
                parse(py, r#"{"s": "\ud800"}"#),
                Ok("{'s': '\\ud800'}".into())
            );
        });
    }

    #[test]
    fn reports_bad_lines() {
        Python::initialize();
        Python::attach(|py| {
            assert_eq!(parse(py, "[1, 2]"), Err("not a JSON object: array".into()));
            assert_eq!(
                parse(py, " \"s\" "),
                Err("not a JSON object: string".into())
            );
            assert_eq!(parse(py, "3"), Err("not a JSON object: number".into()));
            assert_eq!(parse(py, "null"), Err("not a JSON object: null".into()));
            assert_eq!(
                parse(py, r#"{"a": 1 "b": 2}"#),
                Err("invalid JSON at column 9: expected ',' or '}'".into())
            );
            assert_eq!(
                parse(py, r#"{"a": 1} x"#),
                Err("invalid JSON at column 10: extra data after the value".into())
            );
            assert_eq!(
                parse(py, "[1"),
                Err("invalid JSON at column 3: expected ',' or ']'".into())
            );
            assert_eq!(
                parse(py, r#"{"s": "\ud800", "t": }"#),
                Err("invalid JSON at column 22: expected a value".into())
            );
            let deep = format!("{}{}", "{\"a\":".repeat(300), "}".repeat(300));
            assert!(parse(py, &deep)
                .unwrap_err()
                .contains("nesting deeper than 255"));
        });
    }

    #[test]
    fn keys_are_shared() {
        Python::initialize();
        Python::attach(|py| {
            let mut keys = KeyCache::default();
            let a = keys.get(py, "src");
            let b = keys.get(py, "src");
            assert!(a.is(&b));
            let long = "k".repeat(MAX_CACHED_KEY + 1);
            assert!(!keys.get(py, &long).is(keys.get(py, &long)));
        });
    }
}
