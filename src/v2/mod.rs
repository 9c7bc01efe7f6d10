//! The Open Inference Protocol (KServe V2) REST bodies in Rust (JSON, and
//! binary data after a JSON header): an infer request to the JSON Lines rows
//! the engine reads (`read_request`), and the rows' output lines to the
//! answer (`write_answer`). The Python path in
//! `packflow.serving.v2` stays the reference: these functions give `None`
//! for any body they do not read exactly as it would (an error included),
//! and Python then reads it and words its error. One call per request.

mod binary;
mod offload;
mod request;
mod response;
mod value;

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::serialize::writer::JsonWriter;
pub use offload::V2Offload;
use request::{read_request, Layout, Rows, Template};
use response::{write_answer, AnswerHead};
pub(crate) use value::write_float;
use value::Unsupported;

/// Bodies (and output lines) above this size are read without the GIL, so
/// the model thread runs beside the reading: a 100-row body of 9 features
/// (12 kB) takes about 50 us, more than enough to pay for giving the GIL up.
const DETACH_AT: usize = 4 << 10;

/// How a model's backend reads rows, compiled once per server.
#[pyclass(module = "packflow._core", frozen)]
pub struct V2Plan {
    /// Shared with the offload thread's jobs (`V2Offload`).
    layout: Arc<Layout>,
}

#[pymethods]
impl V2Plan {
    /// `features`: a numpy backend's feature names (`None` for records),
    /// `paths`: the field path each feature is read from, `delimiter`: what
    /// splits a records column's name into a path, `max_rows`: the most rows
    /// a request may hold, `cells`: whether a numpy backend's rows go to
    /// the engine as `FeatureRows` (its preprocessor reads feature arrays).
    #[new]
    #[pyo3(signature = (features, paths, delimiter, max_rows, cells = false))]
    fn new(
        features: Option<Vec<String>>,
        paths: Vec<Vec<String>>,
        delimiter: String,
        max_rows: u64,
        cells: bool,
    ) -> Self {
        // Paths that clash (one inside another) leave every body to Python.
        let template = match &features {
            Some(f) if f.len() == paths.len() => Template::new(&paths).ok(),
            _ => None,
        };
        V2Plan {
            layout: Arc::new(Layout {
                features,
                template,
                delimiter,
                max_rows,
                cells,
            }),
        }
    }
}

/// Bodies above this size are left to Python: the value tree takes up to 16
/// bytes per body byte (a body of `0,0,0,...`), where `json.loads` takes
/// about 5; below it, at most 64 MiB for the one body read at a time. Binary
/// data takes 32 bytes per value too, only for rows within the request's
/// limit (`binary_values`): up to a value per body byte with a limit that
/// high, still below what the Python path's lists take.
const MAX_BODY: usize = 4 << 20;

/// `(lines, rows, id, outputs, binary, binary_data_output)` of a V2 infer
/// body, or `None` when Python must read it (see `_core.pyi`).
/// `header_length`: the request's `Inference-Header-Content-Length`.
#[pyfunction]
#[pyo3(signature = (plan, body, header_length = None))]
pub fn v2_read_request<'py>(
    py: Python<'py>,
    plan: &V2Plan,
    body: &[u8],
    header_length: Option<&[u8]>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some(header) = body_header(body, header_length) else {
        return Ok(None);
    };
    let read = if body.len() >= DETACH_AT {
        py.detach(|| guarded(|| read_request(body, header, &plan.layout)))
    } else {
        guarded(|| read_request(body, header, &plan.layout))
    };
    match read {
        Ok(request) => request_tuple(py, request).map(Some),
        Err(Unsupported) => Ok(None),
    }
}

/// Where a body's JSON header ends (`Some(None)`: it is all JSON), or `None`
/// when Python must read it: a body over `MAX_BODY`, a header length not in
/// plain digits or past the body.
fn body_header(body: &[u8], header_length: Option<&[u8]>) -> Option<Option<usize>> {
    if body.len() > MAX_BODY {
        return None;
    }
    match header_length {
        None => Some(None),
        Some(text) => binary::header_length(text, body.len()).map(Some),
    }
}

/// The tuple `v2_read_request` gives for `request`.
fn request_tuple(py: Python<'_>, request: request::Request) -> PyResult<Bound<'_, PyTuple>> {
    let binary = PyDict::new(py);
    for (name, flag) in &request.binary {
        binary.set_item(name, *flag)?;
    }
    let outputs = match &request.outputs {
        Some(names) => PyList::new(py, names)?.into_any(),
        None => py.None().into_bound(py),
    };
    PyTuple::new(
        py,
        [
            match request.data {
                Rows::Lines(lines) => PyBytes::new(py, &lines).into_any(),
                Rows::Cells(cells, columns) => {
                    Bound::new(py, crate::feature_rows::FeatureRows::new(cells, columns))?
                        .into_any()
                }
            },
            request.rows.into_pyobject(py)?.into_any(),
            request.id.into_pyobject(py)?.into_any(),
            outputs,
            binary.into_any(),
            pyo3::types::PyBool::new(py, request.binary_default)
                .to_owned()
                .into_any(),
        ],
    )
}

/// The answer to an infer request from its output lines, and the length of
/// its JSON header when binary data follows it, or `None` when Python must
/// write it (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (lines, outputs, model_name, model_version, id, binary = None, binary_default = false))]
#[allow(clippy::too_many_arguments)] // the answer's parts, as V2Api.render_python takes them
pub fn v2_write_answer<'py>(
    py: Python<'py>,
    lines: &Bound<'py, PyList>,
    outputs: &Bound<'py, PyAny>,
    model_name: &Bound<'py, PyAny>,
    model_version: &Bound<'py, PyAny>,
    id: &Bound<'py, PyAny>,
    binary: Option<&Bound<'py, PyDict>>,
    binary_default: bool,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some(answer) = Answer::of(
        lines,
        outputs,
        model_name,
        model_version,
        id,
        binary,
        binary_default,
    ) else {
        return Ok(None);
    };
    // The answer owns copies of its lines: writable without the GIL.
    let written = if answer.text.len() < DETACH_AT {
        answer.write()
    } else {
        py.detach(|| answer.write())
    };
    match written {
        Ok(written) => written.into_tuple(py).map(Some),
        Err(Unsupported) => Ok(None),
    }
}

/// An answer: its bytes, and the length of its JSON header when binary data
/// follows it.
struct Written {
    bytes: Vec<u8>,
    json_length: Option<usize>,
}

impl Written {
    fn into_tuple(self, py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
        PyTuple::new(
            py,
            [
                PyBytes::new(py, &self.bytes).into_any(),
                self.json_length.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

/// What an infer answer is written from, copied out of its Python objects.
struct Answer {
    /// The output lines one after another; line i ends at `ends[i]`.
    text: Vec<u8>,
    ends: Vec<usize>,
    outputs: Option<Vec<String>>,
    model_name: String,
    model_version: Option<String>,
    id: Option<String>,
    /// The outputs asked for as binary data or not, and the default.
    binary: Vec<(String, bool)>,
    binary_default: bool,
}

impl Answer {
    /// `None` when Python must write the answer: a str Rust cannot hold (a
    /// lone surrogate), a line that is not bytes, a binary flag not a bool.
    fn of(
        lines: &Bound<'_, PyList>,
        outputs: &Bound<'_, PyAny>,
        model_name: &Bound<'_, PyAny>,
        model_version: &Bound<'_, PyAny>,
        id: &Bound<'_, PyAny>,
        binary: Option<&Bound<'_, PyDict>>,
        binary_default: bool,
    ) -> Option<Answer> {
        let binary = match binary {
            None => Vec::new(),
            Some(flags) => flags
                .iter()
                .map(|(name, flag)| Some((name.extract::<String>().ok()?, flag.extract().ok()?)))
                .collect::<Option<Vec<_>>>()?,
        };
        let outputs = strings_or_none(outputs)?;
        let model_name = model_name.extract::<String>().ok()?;
        let model_version = optional_str(model_version)?.map(str::to_owned);
        let id = optional_str(id)?.map(str::to_owned);
        let mut text = Vec::new();
        let mut ends = Vec::with_capacity(lines.len());
        for line in lines.iter() {
            text.extend_from_slice(line.cast::<PyBytes>().ok()?.as_bytes());
            ends.push(text.len());
        }
        Some(Answer {
            text,
            ends,
            outputs,
            model_name,
            model_version,
            id,
            binary,
            binary_default,
        })
    }

    /// The answer (see `write_answer`), or `Unsupported`.
    fn write(&self) -> Result<Written, Unsupported> {
        guarded(|| {
            let mut start = 0;
            let lines: Vec<&[u8]> = self
                .ends
                .iter()
                .map(|&end| {
                    let line = &self.text[start..end];
                    start = end;
                    line
                })
                .collect();
            let head = AnswerHead {
                model_name: &self.model_name,
                model_version: self.model_version.as_deref(),
                id: self.id.as_deref(),
                binary: &self.binary,
                binary_default: self.binary_default,
            };
            let mut w = JsonWriter::new(false, self.text.len() + 128);
            let mut raw = Vec::new();
            write_answer(&mut w, &mut raw, &lines, self.outputs.as_deref(), &head)?;
            let json = w.bytes();
            if raw.is_empty() {
                return Ok(Written {
                    bytes: json.to_vec(),
                    json_length: None,
                });
            }
            let mut bytes = Vec::with_capacity(json.len() + raw.len());
            bytes.extend_from_slice(json);
            bytes.extend_from_slice(&raw);
            Ok(Written {
                bytes,
                json_length: Some(json.len()),
            })
        })
    }
}

/// `f`'s result, or `Unsupported` should it panic (a bug here): Python then
/// reads the body as it always could, and the server keeps answering.
fn guarded<T>(f: impl FnOnce() -> Result<T, Unsupported>) -> Result<T, Unsupported> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Err(Unsupported))
}

/// `Some(None)` for `None`, `Some(Some(text))` for a str Rust can hold.
fn optional_str<'a>(value: &'a Bound<'_, PyAny>) -> Option<Option<&'a str>> {
    if value.is_none() {
        return Some(None);
    }
    value.extract::<&str>().ok().map(Some)
}

/// The names of a list of str (`Some(None)` for `None`).
fn strings_or_none(value: &Bound<'_, PyAny>) -> Option<Option<Vec<String>>> {
    if value.is_none() {
        return Some(None);
    }
    let list = value.cast::<PyList>().ok()?;
    list.iter()
        .map(|item| item.extract::<String>().ok())
        .collect::<Option<Vec<_>>>()
        .map(Some)
}
