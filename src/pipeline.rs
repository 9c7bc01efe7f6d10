//! The backend call path: preprocess -> transform_inputs -> execute ->
//! transform_outputs, each step timed with a monotonic nanosecond clock and
//! recorded in the backend's `StepStats`. One Rust call per batch; the hooks
//! are the only Python. `run` takes records; `run_lines` (src/engine.rs) takes
//! the raw JSON Lines of a batch and returns its output lines.

use std::sync::Arc;
use std::time::Instant;

use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use pyo3::{PyTraverseError, PyVisit};

use crate::errors::{runtime_error, type_repr};
use crate::jsonl::TextPlan;
use crate::read_ahead::AheadSlot;
use crate::records::RecordsPlan;
use crate::records_to_array::NumpyPlan;
use crate::step_stats::{StepStats, STEPS};

/// How the preprocess step runs, decided once when the pipeline is built.
pub enum Preprocess {
    /// Hands the batch on as it came; timed, nothing called.
    Identity,
    /// The records preprocessor's compiled plan.
    Records(Py<RecordsPlan>),
    /// The numpy preprocessor's compiled plan, and the same features compiled
    /// for reading them straight from JSON text (None when the text reader
    /// cannot take them: a delimiter that overlaps itself).
    Numpy(Py<NumpyPlan>, Option<Arc<TextPlan>>),
    /// A preprocessor whose subclass changed how it works: called as it is.
    Call(Py<PyAny>),
}

/// Runs a backend's steps and records their timings.
#[pyclass(module = "packflow._core", frozen)]
pub struct Pipeline {
    pub(crate) preprocess: Preprocess,
    pub(crate) stats: Py<StepStats>,
    /// Called with the backend after each call whose steps all ran (the
    /// verbose mode's metrics log).
    on_call: Option<Py<PyAny>>,
    /// The next batch's text, when `run_lines` was given it to read ahead.
    pub(crate) ahead: AheadSlot,
}

/// `getattr(obj, name, None)` without raising and clearing an AttributeError
/// when the attribute is missing: the optional hooks are looked up on every call.
fn lookup_optional<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    crate::ffi::get_optional_attr(obj, name)
}

pub fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A step's `Exception` as packflow reports it: an `InferenceBackendRuntimeError`
/// naming the step, caused by the backend's own exception.
pub fn wrap_step_error(py: Python<'_>, step: &str, cause: PyErr) -> PyErr {
    let text = cause
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let err = runtime_error(
        py,
        format!("{step}() failed with the following error: {text}"),
    );
    err.set_cause(py, Some(cause));
    // The failed step as data, so callers (the batch engine's error rows) never
    // parse it out of the message. Setting an attribute on a fresh exception
    // instance cannot fail short of MemoryError; then the step is just absent.
    let _ = err.value(py).setattr(intern!(py, "step"), step);
    err
}

/// Why a call failed: in a step (named), or after the steps (`None`: the
/// output was not a list).
pub struct StepFailure {
    pub step: Option<&'static str>,
    pub err: PyErr,
}

impl StepFailure {
    /// A `BaseException` that is not an `Exception` (KeyboardInterrupt,
    /// SystemExit) is never a step failure: it goes through untouched.
    fn from_step(py: Python<'_>, step: &'static str, err: PyErr) -> Result<Self, PyErr> {
        if !err.is_instance_of::<PyException>(py) {
            return Err(err);
        }
        Ok(StepFailure {
            step: Some(step),
            err: wrap_step_error(py, step, err),
        })
    }
}

impl Pipeline {
    /// The preprocess step on `data` (a list of records).
    pub fn preprocess<'py>(&self, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = data.py();
        match &self.preprocess {
            Preprocess::Identity => Ok(data.clone()),
            Preprocess::Records(plan) => plan.bind(py).call1((data,)),
            Preprocess::Numpy(plan, _) => plan.get().call(data),
            Preprocess::Call(f) => f.bind(py).call1((data,)),
        }
    }

    pub fn step_stats(&self) -> &StepStats {
        self.stats.get()
    }

    /// This pipeline's address, an identity for its batches' outcomes.
    pub fn address(&self) -> usize {
        self as *const Pipeline as usize
    }

    /// Every step from `first` on; `times[0]`, when set, is the preprocess
    /// time of a batch preprocessed before (a feature array read from text).
    /// Records the times whatever happens. The outer `Err` is a
    /// `BaseException` to re-raise as it is.
    pub fn run_steps<'py>(
        &self,
        backend: &Bound<'py, PyAny>,
        batch: Bound<'py, PyAny>,
        batch_size: usize,
        mut times: [Option<u64>; 4],
    ) -> PyResult<Result<Bound<'py, PyAny>, StepFailure>> {
        let py = backend.py();
        let hooks = [
            None,
            lookup_optional(backend, intern!(py, "transform_inputs"))?,
            Some(backend.getattr(intern!(py, "execute"))?),
            lookup_optional(backend, intern!(py, "transform_outputs"))?,
        ];
        let outcome = self.steps(&hooks, batch, &mut times);
        self.step_stats().record(batch_size, &times);
        match outcome {
            Ok(data) if data.is_instance_of::<PyList>() => {
                if let Some(on_call) = &self.on_call {
                    if let Err(err) = on_call.bind(py).call1((backend,)) {
                        if !err.is_instance_of::<PyException>(py) {
                            return Err(err);
                        }
                        return Ok(Err(StepFailure { step: None, err }));
                    }
                }
                Ok(Ok(data))
            }
            Ok(data) => Ok(Err(StepFailure {
                step: None,
                err: runtime_error(
                    py,
                    format!(
                        "Output of inference backend is not a list. Received type: {}",
                        type_repr(&data)
                    ),
                ),
            })),
            Err((step, err)) => StepFailure::from_step(py, step, err).map(Err),
        }
    }

    fn steps<'py>(
        &self,
        hooks: &[Option<Bound<'py, PyAny>>; 4],
        batch: Bound<'py, PyAny>,
        times: &mut [Option<u64>; 4],
    ) -> Result<Bound<'py, PyAny>, (&'static str, PyErr)> {
        let mut data = batch;
        for (i, step) in STEPS.iter().enumerate() {
            let start = Instant::now();
            let result = match (i, &hooks[i]) {
                (0, _) if times[0].is_some() => continue,
                (0, _) => self.preprocess(&data),
                (_, Some(hook)) => hook.call1((&data,)),
                (_, None) => continue,
            };
            match result {
                Ok(out) => {
                    times[i] = Some(elapsed_ns(start));
                    data = out;
                }
                Err(e) => return Err((step, e)),
            }
        }
        Ok(data)
    }
}

/// What a preprocessor's `compiled()` gave, as the pipeline holds it.
fn preprocess_of(
    preprocessor: &Bound<'_, PyAny>,
    compiled: Option<&Bound<'_, PyAny>>,
) -> Preprocess {
    match compiled {
        Some(c) => {
            if let Ok(plan) = c.cast::<RecordsPlan>() {
                if plan.get().is_passthrough() {
                    return Preprocess::Identity;
                }
                return Preprocess::Records(plan.clone().unbind());
            }
            if let Ok(plan) = c.cast::<NumpyPlan>() {
                let text = plan.get().text_plan().map(Arc::new);
                return Preprocess::Numpy(plan.clone().unbind(), text);
            }
            Preprocess::Call(c.clone().unbind())
        }
        None => Preprocess::Call(preprocessor.clone().unbind()),
    }
}

#[pymethods]
impl Pipeline {
    /// `preprocessor` is called for the preprocess step unless `compiled`, its
    /// compiled plan (a `RecordsPlan` or `NumpyPlan` that does exactly what
    /// calling it does), is given: then the plan runs, and a `NumpyPlan` also
    /// reads JSON Lines straight into the feature array. `on_call`, when given,
    /// is called with the backend after each call whose steps all ran.
    #[new]
    #[pyo3(signature = (preprocessor, compiled=None, on_call=None))]
    fn new(
        py: Python<'_>,
        preprocessor: &Bound<'_, PyAny>,
        compiled: Option<&Bound<'_, PyAny>>,
        on_call: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        Ok(Pipeline {
            preprocess: preprocess_of(preprocessor, compiled),
            stats: Py::new(py, StepStats::default())?,
            on_call,
            ahead: AheadSlot::default(),
        })
    }

    /// The collector must see what the pipeline holds: a preprocessor or a
    /// callback may lead back to the backend that holds the pipeline.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        match &self.preprocess {
            Preprocess::Identity => {}
            Preprocess::Records(plan) => visit.call(plan)?,
            Preprocess::Numpy(plan, _) => visit.call(plan)?,
            Preprocess::Call(f) => visit.call(f)?,
        }
        if let Some(on_call) = &self.on_call {
            visit.call(on_call)?;
        }
        visit.call(&self.stats)
    }

    /// The step timings of this pipeline's calls.
    #[getter(step_stats)]
    fn get_step_stats(&self, py: Python<'_>) -> Py<StepStats> {
        self.stats.clone_ref(py)
    }

    /// Whether `run_lines` reads the feature array straight from the text.
    #[getter]
    fn reads_arrays(&self) -> bool {
        matches!(self.preprocess, Preprocess::Numpy(_, Some(_)))
    }

    /// Run `inputs` (a dict or a list of dicts) through `backend`'s steps.
    fn run<'py>(
        &self,
        py: Python<'py>,
        backend: &Bound<'py, PyAny>,
        inputs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let is_dict = inputs.is_instance_of::<PyDict>();
        let batch: Bound<'py, PyAny> = if is_dict {
            PyList::new(py, [inputs])?.into_any()
        } else if inputs.is_instance_of::<PyList>() {
            inputs.clone()
        } else {
            return Err(runtime_error(
                py,
                format!(
                    "Inputs must be a dictionary or Records. Type received: {}",
                    type_repr(inputs)
                ),
            ));
        };
        let batch_size = batch.len()?;
        let data = self
            .run_steps(backend, batch, batch_size, [None; 4])?
            .map_err(|f| f.err)?;
        if is_dict {
            return data.get_item(0);
        }
        Ok(data)
    }

    /// Rows `start..stop` of a failed `run_lines` batch run again from the
    /// cells it read, or None when it kept none (see src/engine.rs).
    #[pyo3(signature = (backend, failed, start, stop, *, allow_nan = false))]
    fn rerun<'py>(
        &self,
        py: Python<'py>,
        backend: &Bound<'py, PyAny>,
        failed: &crate::engine::BatchOutcome,
        start: usize,
        stop: usize,
        allow_nan: bool,
    ) -> PyResult<Option<crate::engine::BatchOutcome>> {
        crate::engine::rerun(self, py, backend, failed, start, stop, allow_nan)
    }

    /// Rows already read into feature cells through the steps after
    /// preprocessing (see src/engine.rs `run_rows`), numbered from
    /// `first_line`.
    #[pyo3(signature = (backend, rows, first_line = 1, *, allow_nan = false))]
    fn run_rows<'py>(
        &self,
        py: Python<'py>,
        backend: &Bound<'py, PyAny>,
        rows: &crate::feature_rows::FeatureRows,
        first_line: u64,
        allow_nan: bool,
    ) -> PyResult<crate::engine::BatchOutcome> {
        crate::engine::run_rows(self, py, backend, rows, first_line, allow_nan)
    }

    /// One batch of raw JSON Lines through the whole path (see src/engine.rs);
    /// `ahead`, the next batch as `(bytes, first_line)`, is read meanwhile
    /// (src/read_ahead.rs).
    #[pyo3(signature = (backend, data, first_line = 1, *, allow_nan = false, stop_at_suspect = false, ahead = None))]
    #[allow(clippy::too_many_arguments)]
    fn run_lines<'py>(
        &self,
        py: Python<'py>,
        backend: &Bound<'py, PyAny>,
        data: &[u8],
        first_line: u64,
        allow_nan: bool,
        stop_at_suspect: bool,
        ahead: Option<(Bound<'py, PyBytes>, u64)>,
    ) -> PyResult<crate::engine::BatchOutcome> {
        crate::engine::run_lines(
            self,
            py,
            backend,
            data,
            first_line,
            allow_nan,
            stop_at_suspect,
            ahead.as_ref().map(|(next, line)| (next, *line)),
        )
    }
}

/// Nanoseconds from a monotonic clock with an arbitrary origin.
#[pyfunction]
pub fn monotonic_ns() -> u64 {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    elapsed_ns(*ORIGIN.get_or_init(Instant::now))
}
