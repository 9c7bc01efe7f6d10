//! `packflow._core`: the Rust hot path of packflow. This file only registers what
//! the other modules define; each concern lives in its own file.

use pyo3::prelude::*;

mod errors;
mod histogram;
mod lookup;
mod normalize;
mod pipeline;
mod serialize;
mod validate;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MAX_DEPTH", errors::MAX_DEPTH)?;
    m.add_class::<pipeline::Pipeline>()?;
    m.add_function(wrap_pyfunction!(pipeline::monotonic_ns, m)?)?;
    m.add_function(wrap_pyfunction!(validate::check_inputs, m)?)?;
    m.add_function(wrap_pyfunction!(validate::check_outputs, m)?)?;
    m.add_function(wrap_pyfunction!(validate::missing_keys, m)?)?;
    m.add_function(wrap_pyfunction!(serialize::dumps, m)?)?;
    m.add_function(wrap_pyfunction!(serialize::dumps_lines, m)?)?;
    m.add_function(wrap_pyfunction!(normalize::ensure_native_types, m)?)?;
    m.add_function(wrap_pyfunction!(normalize::ensure_valid_output, m)?)?;
    Ok(())
}
