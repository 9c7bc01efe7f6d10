//! The backend call path: preprocess -> transform_inputs -> execute ->
//! transform_outputs, each step timed with a monotonic nanosecond clock and
//! recorded twice: the last call (for `get_metrics()`) and a histogram per step
//! (for `get_stats()`). One Rust call per batch; the hooks are the only Python.
//! The histograms export as plain data and merge, so the statistics of backends
//! in several worker processes add up to one.

use std::sync::Mutex;
use std::time::Instant;

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::errors::{runtime_error, type_repr};
use crate::histogram::Histogram;

pub const STEPS: [&str; 4] = [
    "preprocess",
    "transform_inputs",
    "execute",
    "transform_outputs",
];

struct State {
    last_ns: [Option<u64>; 4],
    batch_size: Option<usize>,
    stats: [Histogram; 4],
}

/// Runs a backend's steps and keeps their timings. `frozen` plus a mutex: the
/// lock is held only while recording, never across a call into user code, so a
/// hook may read the metrics (or the backend may run on several threads).
#[pyclass(module = "packflow._core", frozen)]
pub struct Pipeline {
    /// None: the identity (a passthrough preprocessor), timed but not called.
    preprocess: Option<Py<PyAny>>,
    verbose: bool,
    state: Mutex<State>,
}

/// `getattr(obj, name, None)` without raising and clearing an AttributeError
/// when the attribute is missing: the optional hooks are looked up on every call.
fn lookup_optional<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    crate::ffi::get_optional_attr(obj, name)
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn wrap_step_error(py: Python<'_>, step: &str, cause: PyErr) -> PyErr {
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

impl Pipeline {
    /// The steps after input checking; `pretimed` replaces the preprocess call.
    fn run_steps<'py>(
        &self,
        py: Python<'py>,
        backend: &Bound<'py, PyAny>,
        batch: Bound<'py, PyAny>,
        batch_size: usize,
        pretimed: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut times: [Option<u64>; 4] = [pretimed, None, None, None];
        let hooks = [
            None,
            lookup_optional(backend, intern!(py, "transform_inputs"))?,
            Some(backend.getattr(intern!(py, "execute"))?),
            lookup_optional(backend, intern!(py, "transform_outputs"))?,
        ];
        let mut data = batch;
        for (i, step) in STEPS.iter().enumerate() {
            let start = Instant::now();
            let result = match (i, &hooks[i]) {
                (0, _) if pretimed.is_some() => continue,
                (0, _) => match &self.preprocess {
                    Some(p) => p.bind(py).call1((&data,)),
                    None => Ok(data.clone()),
                },
                (_, Some(hook)) => hook.call1((&data,)),
                (_, None) => continue,
            };
            match result {
                Ok(out) => {
                    times[i] = Some(elapsed_ns(start));
                    data = out;
                }
                Err(e) => {
                    self.record(batch_size, &times);
                    // Only an `Exception` is a step failure; KeyboardInterrupt,
                    // SystemExit and other BaseExceptions go through untouched.
                    if !e.is_instance_of::<PyException>(py) {
                        return Err(e);
                    }
                    return Err(wrap_step_error(py, step, e));
                }
            }
        }
        self.record(batch_size, &times);
        Ok(data)
    }

    /// The output must be a list; log metrics when verbose.
    fn finish<'py>(
        &self,
        py: Python<'py>,
        backend: &Bound<'py, PyAny>,
        data: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !data.is_instance_of::<PyList>() {
            return Err(runtime_error(
                py,
                format!(
                    "Output of inference backend is not a list. Received type: {}",
                    type_repr(&data)
                ),
            ));
        }
        if self.verbose {
            backend.call_method0(intern!(py, "_log_metrics"))?;
        }
        Ok(data)
    }

    /// This call's step times become the last call's, all four: a step that did
    /// not run (after a failure, or an optional hook) is None, never an earlier
    /// call's time.
    fn record(&self, batch_size: usize, times: &[Option<u64>; 4]) {
        // A poisoned lock only means another thread panicked while recording;
        // the counters are still plain integers, so keep going.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.batch_size = Some(batch_size);
        st.last_ns = *times;
        for (i, t) in times.iter().enumerate() {
            if let Some(ns) = *t {
                st.stats[i].record(ns);
            }
        }
    }
}

#[pymethods]
impl Pipeline {
    #[new]
    #[pyo3(signature = (preprocess, verbose=false))]
    fn new(preprocess: Option<Py<PyAny>>, verbose: bool) -> Self {
        Pipeline {
            preprocess,
            verbose,
            state: Mutex::new(State {
                last_ns: [None; 4],
                batch_size: None,
                stats: Default::default(),
            }),
        }
    }

    /// Run already-preprocessed `data` (for example an ndarray filled straight from
    /// JSON text) through the remaining steps; `preprocess_ns` is recorded as the
    /// preprocess step and `batch_size` as the call's batch size.
    fn run_prepared<'py>(
        &self,
        py: Python<'py>,
        backend: &Bound<'py, PyAny>,
        data: Bound<'py, PyAny>,
        batch_size: usize,
        preprocess_ns: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = self.run_steps(py, backend, data, batch_size, Some(preprocess_ns))?;
        self.finish(py, backend, data)
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
        let data = self.run_steps(py, backend, batch, batch_size, None)?;
        let data = self.finish(py, backend, data)?;
        if is_dict {
            return data.get_item(0);
        }
        Ok(data)
    }

    /// Milliseconds of each step of the last call, rounded to 5 decimals.
    fn last_times<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let out = PyDict::new(py);
        for (i, step) in STEPS.iter().enumerate() {
            if let Some(ns) = st.last_ns[i] {
                let ms = ns as f64 / 1e6;
                out.set_item(*step, (ms * 1e5).round() / 1e5)?;
            }
        }
        Ok(out)
    }

    /// Rows in the last call, or None before the first call.
    #[getter]
    fn batch_size(&self) -> Option<usize> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .batch_size
    }

    /// Per step that has run: count, total/mean/min/max and p50/p90/p99 in ms.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let out = PyDict::new(py);
        let ms = |ns: u64| ns as f64 / 1e6;
        for (i, step) in STEPS.iter().enumerate() {
            let h = &st.stats[i];
            if h.count() == 0 {
                continue;
            }
            let d = PyDict::new(py);
            let total_ms = h.total() as f64 / 1e6;
            d.set_item("count", h.count())?;
            d.set_item("total_ms", total_ms)?;
            d.set_item("mean_ms", total_ms / h.count() as f64)?;
            d.set_item("min_ms", h.min().map(ms))?;
            d.set_item("max_ms", h.max().map(ms))?;
            d.set_item("p50_ms", h.quantile(0.50).map(ms))?;
            d.set_item("p90_ms", h.quantile(0.90).map(ms))?;
            d.set_item("p99_ms", h.quantile(0.99).map(ms))?;
            out.set_item(*step, d)?;
        }
        Ok(out)
    }

    /// Per step that has run: `(counts, total_ns, count)`, where `counts[i]` is
    /// how many calls took at most `bounds_ns[i]` (ascending), counted in whole
    /// histogram buckets: the cumulative buckets of a Prometheus histogram.
    fn histograms<'py>(
        &self,
        py: Python<'py>,
        bounds_ns: Vec<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if bounds_ns.windows(2).any(|w| w[0] >= w[1]) {
            return Err(crate::errors::value_error(
                "bounds_ns must be strictly ascending",
            ));
        }
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let out = PyDict::new(py);
        for (i, step) in STEPS.iter().enumerate() {
            let h = &st.stats[i];
            if h.count() == 0 {
                continue;
            }
            out.set_item(*step, (h.cumulative(&bounds_ns), h.total(), h.count()))?;
        }
        Ok(out)
    }

    /// Forget the histograms (the last call's times are kept).
    fn reset_stats(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for h in st.stats.iter_mut() {
            h.reset();
        }
    }

    /// The histograms as plain data, for `merge_stats` in another process: per
    /// step that has run, `count`, `total_ns`, `min_ns`, `max_ns` and `buckets`,
    /// a list of `(lowest_ns, count)` pairs for the non-empty buckets.
    fn stats_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let out = PyDict::new(py);
        for (i, step) in STEPS.iter().enumerate() {
            let h = &st.stats[i];
            if h.count() == 0 {
                continue;
            }
            let d = PyDict::new(py);
            d.set_item("count", h.count())?;
            d.set_item("total_ns", h.total())?;
            d.set_item("min_ns", h.min())?;
            d.set_item("max_ns", h.max())?;
            d.set_item("buckets", PyList::new(py, h.buckets())?)?;
            out.set_item(*step, d)?;
        }
        Ok(out)
    }

    /// Add the histograms of a `stats_state()` (of a pipeline in another
    /// process) to this one's. A bucket pair's value may be any value in its
    /// bucket. The whole state is checked before anything is added: an unknown
    /// step, a count that is not the sum of the buckets, or min/max/total that
    /// no samples could give is a ValueError naming the step.
    fn merge_stats(&self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let mut parsed: Vec<(usize, Histogram)> = Vec::with_capacity(STEPS.len());
        for (key, value) in state.iter() {
            let step: String = key.extract()?;
            let i = STEPS.iter().position(|s| *s == step).ok_or_else(|| {
                PyValueError::new_err(format!("stats state: unknown step {step:?}"))
            })?;
            let get = |name: &str| -> PyResult<Bound<'_, PyAny>> {
                value.get_item(name).map_err(|_| {
                    PyValueError::new_err(format!("stats state: step {step:?} has no {name:?}"))
                })
            };
            let buckets: Vec<(u64, u64)> = get("buckets")?.extract()?;
            let count: u64 = get("count")?.extract()?;
            let h = Histogram::from_parts(
                &buckets,
                get("total_ns")?.extract()?,
                get("min_ns")?.extract()?,
                get("max_ns")?.extract()?,
            )
            .map_err(|e| PyValueError::new_err(format!("stats state: step {step:?}: {e}")))?;
            if h.count() != count {
                return Err(PyValueError::new_err(format!(
                    "stats state: step {step:?} has count {count} but its buckets hold {}",
                    h.count()
                )));
            }
            parsed.push((i, h));
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (i, h) in &parsed {
            st.stats[*i].merge(h);
        }
        Ok(())
    }
}

/// Nanoseconds from a monotonic clock with an arbitrary origin.
#[pyfunction]
pub fn monotonic_ns() -> u64 {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    elapsed_ns(*ORIGIN.get_or_init(Instant::now))
}
