//! `packflow._core`: the Rust hot path of packflow. This file only registers what
//! the other modules define; each concern lives in its own file.

use pyo3::prelude::*;

mod errors;
mod flatten;
mod histogram;
mod lookup;
mod pipeline;
mod records;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MAX_DEPTH", errors::MAX_DEPTH)?;
    m.add_class::<pipeline::Pipeline>()?;
    m.add_function(wrap_pyfunction!(pipeline::monotonic_ns, m)?)?;
    m.add_function(wrap_pyfunction!(flatten::flatten_dict, m)?)?;
    m.add_function(wrap_pyfunction!(flatten::flatten_records, m)?)?;
    m.add_function(wrap_pyfunction!(records::check_delimiter_collisions, m)?)?;
    m.add_function(wrap_pyfunction!(records::get_nested_field, m)?)?;
    m.add_function(wrap_pyfunction!(records::get_nested_field_direct, m)?)?;
    m.add_function(wrap_pyfunction!(records::set_nested_field_direct, m)?)?;
    m.add_class::<records::RecordsPlan>()?;
    Ok(())
}
