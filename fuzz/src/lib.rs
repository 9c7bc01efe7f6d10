//! What the fuzz targets share: an embedded interpreter that imports this
//! build of the extension (instrumented with the fuzzer's coverage), the
//! oracles written in Python (`oracle.py`), and serde_json as an independent
//! JSON parser. Each target's check lives here too, so `cargo test` can replay
//! the seed corpus through it without libFuzzer.

use std::sync::Once;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

pub mod targets;

// Links the library: its module init is the entry point the targets use, the
// same one Python calls when it imports the extension.
extern crate _core;

extern "C" {
    #[link_name = "PyInit__core"]
    fn pyinit_core() -> *mut ffi::PyObject;
}

/// The Python side of the checks, run in the embedded interpreter.
const ORACLE: &std::ffi::CStr = {
    const SRC: &str = concat!(include_str!("oracle.py"), "\0");
    match std::ffi::CStr::from_bytes_with_nul(SRC.as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("oracle.py holds a NUL byte"),
    }
};

static INIT: Once = Once::new();
static ORACLE_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Starts the interpreter once, with `packflow._core` registered as a builtin
/// module (this binary's copy) ahead of any `_core` shared library on disk.
pub fn init() {
    INIT.call_once(|| {
        // SAFETY: called once, before the interpreter starts, with a static
        // name and the module's own init function.
        let rc =
            unsafe { ffi::PyImport_AppendInittab(c"packflow._core".as_ptr(), Some(pyinit_core)) };
        assert_eq!(rc, 0, "PyImport_AppendInittab failed");
        Python::initialize();
        Python::attach(|py| {
            let sys = py.import("sys").expect("sys");
            let path = sys.getattr("path").expect("sys.path");
            let python_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../python");
            path.call_method1("insert", (0, python_dir))
                .expect("sys.path.insert");
            let core = py
                .import("packflow._core")
                .expect("import packflow._core (is numpy on PYTHONPATH?)");
            let origin: String = core
                .getattr("__spec__")
                .and_then(|s| s.getattr("origin"))
                .and_then(|o| o.extract())
                .expect("packflow._core.__spec__.origin");
            assert_eq!(
                origin, "built-in",
                "the targets must use this binary's copy"
            );
        });
    });
}

/// The oracle module (`oracle.py`).
pub fn oracle(py: Python<'_>) -> &Bound<'_, PyModule> {
    ORACLE_MODULE
        .get_or_init(py, || {
            PyModule::from_code(
                py,
                ORACLE,
                c"packflow_fuzz_oracle.py",
                c"packflow_fuzz_oracle",
            )
            .expect("oracle.py compiles")
            .unbind()
        })
        .bind(py)
}

/// `packflow._core.<name>`.
pub fn core_fn<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyAny> {
    py.import("packflow._core")
        .and_then(|m| m.getattr(name))
        .expect("packflow._core attribute")
}

/// Panics (a finding) with the Python error's traceback text.
pub fn fail(py: Python<'_>, what: &str, err: PyErr) -> ! {
    let tb = err
        .traceback(py)
        .and_then(|t| t.format().ok())
        .unwrap_or_default();
    panic!("{what}: {err}\n{tb}");
}

/// How deep a serde_json value nests (containers counted; a scalar is 0).
pub fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Whether `obj` is exactly the Python value `json.loads` gives for `v`: same
/// types (bool is not int), dict keys in the same order, floats bit for bit.
pub fn agrees(obj: &Bound<'_, PyAny>, v: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    let mismatch = || Err(format!("{obj:?} is not {v}"));
    match v {
        Value::Null => {
            if !obj.is_none() {
                return mismatch();
            }
        }
        Value::Bool(b) => {
            if !obj.is_exact_instance_of::<pyo3::types::PyBool>()
                || obj.is_truthy().ok() != Some(*b)
            {
                return mismatch();
            }
        }
        Value::Number(n) => {
            let text = n.as_str();
            if text.contains(['.', 'e', 'E']) {
                let want: f64 = text.parse().expect("serde_json number text");
                match obj.cast_exact::<PyFloat>() {
                    Ok(f) if f.value().to_bits() == want.to_bits() => {}
                    _ => return mismatch(),
                }
            } else {
                let want = text.strip_prefix("-").filter(|t| *t == "0").unwrap_or(text);
                match obj.cast_exact::<PyInt>() {
                    Ok(i) if i.str().map(|s| s.to_string()).ok().as_deref() == Some(want) => {}
                    _ => return mismatch(),
                }
            }
        }
        Value::String(s) => match obj.cast_exact::<PyString>() {
            Ok(p) if p.to_str().ok() == Some(s.as_str()) => {}
            _ => return mismatch(),
        },
        Value::Array(items) => {
            let Ok(list) = obj.cast_exact::<PyList>() else {
                return mismatch();
            };
            if list.len() != items.len() {
                return mismatch();
            }
            for (o, item) in list.iter().zip(items) {
                agrees(&o, item)?;
            }
        }
        Value::Object(map) => {
            let Ok(dict) = obj.cast_exact::<PyDict>() else {
                return mismatch();
            };
            if dict.len() != map.len() {
                return mismatch();
            }
            for ((k, o), (key, item)) in dict.iter().zip(map) {
                match k.cast_exact::<PyString>() {
                    Ok(p) if p.to_str().ok() == Some(key.as_str()) => {}
                    _ => return Err(format!("key {k:?} is not {key:?}")),
                }
                agrees(&o, item)?;
            }
        }
    }
    Ok(())
}

/// Parses `bytes` with serde_json (any depth: callers bound the input).
pub fn serde_parse(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = serde_json::Value::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// `(line number, raw bytes, message)` of an errors list entry.
pub fn error_entry(item: &Bound<'_, PyAny>) -> (u64, Vec<u8>, String) {
    let t = item.cast::<PyTuple>().expect("an error is a tuple");
    assert_eq!(t.len(), 3, "an error is (line, raw, message)");
    let line: u64 = t.get_item(0).unwrap().extract().expect("line number");
    let raw = t.get_item(1).unwrap();
    let raw = raw
        .cast::<PyBytes>()
        .expect("raw line is bytes")
        .as_bytes()
        .to_vec();
    let msg: String = t.get_item(2).unwrap().extract().expect("message");
    (line, raw, msg)
}
