//! `packflow._core`: the Rust hot path of packflow. This file only registers what
//! the other modules define; each concern lives in its own file.

use pyo3::prelude::*;

mod errors;
mod histogram;
mod jsonl;
mod lookup;
mod pipeline;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MAX_DEPTH", errors::MAX_DEPTH)?;
    m.add_class::<pipeline::Pipeline>()?;
    m.add_function(wrap_pyfunction!(pipeline::monotonic_ns, m)?)?;
    m.add_class::<jsonl::ParsedLines>()?;
    m.add_class::<jsonl::ParsedArray>()?;
    m.add_function(wrap_pyfunction!(jsonl::parse_lines, m)?)?;
    m.add_function(wrap_pyfunction!(jsonl::parse_lines_to_ndarray, m)?)?;
    Ok(())
}
