//! `StepStats`: the timings of a backend's steps. The last call's time per
//! step (for `get_metrics()`) and a histogram per step since construction (for
//! `get_stats()`). The histograms export as plain data and merge, so the
//! statistics of backends in several worker processes add up to one.

use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::histogram::Histogram;

/// The steps of a backend call, in the order they run.
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

/// Step timings. `frozen` plus a mutex: the lock is held only while
/// recording or reading, never across a call into user code, so a hook may
/// read the metrics (or the backend may run on several threads).
#[pyclass(module = "packflow._core", frozen)]
pub struct StepStats {
    state: Mutex<State>,
}

impl Default for StepStats {
    fn default() -> Self {
        StepStats {
            state: Mutex::new(State {
                last_ns: [None; 4],
                batch_size: None,
                stats: Default::default(),
            }),
        }
    }
}

impl StepStats {
    /// This call's step times become the last call's, all four: a step that did
    /// not run (after a failure, or an optional hook) is None, never an earlier
    /// call's time.
    pub fn record(&self, batch_size: usize, times: &[Option<u64>; 4]) {
        let mut st = self.lock();
        st.batch_size = Some(batch_size);
        st.last_ns = *times;
        for (i, t) in times.iter().enumerate() {
            if let Some(ns) = *t {
                st.stats[i].record(ns);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while recording;
        // the counters are still plain integers, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl StepStats {
    /// Empty statistics (a worker pool sums its workers' into one of these).
    #[new]
    fn new() -> Self {
        Self::default()
    }

    fn __repr__(&self) -> String {
        let st = self.lock();
        let counts: Vec<String> = STEPS
            .iter()
            .zip(st.stats.iter())
            .filter(|(_, h)| h.count() > 0)
            .map(|(s, h)| format!("{s}={}", h.count()))
            .collect();
        format!("StepStats({})", counts.join(", "))
    }

    /// Milliseconds of each step of the last call, rounded to 5 decimals.
    fn last_times<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.lock();
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
        self.lock().batch_size
    }

    /// Per step that has run: count, total/mean/min/max and p50/p90/p99 in ms.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.lock();
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
        let st = self.lock();
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
        let mut st = self.lock();
        for h in st.stats.iter_mut() {
            h.reset();
        }
    }

    /// The histograms as plain data, for `merge_stats` in another process: per
    /// step that has run, `count`, `total_ns`, `min_ns`, `max_ns` and `buckets`,
    /// a list of `(lowest_ns, count)` pairs for the non-empty buckets.
    fn stats_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.lock();
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
        let mut st = self.lock();
        for (i, h) in &parsed {
            st.stats[*i].merge(h);
        }
        Ok(())
    }
}
