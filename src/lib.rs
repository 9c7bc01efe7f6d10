//! `packflow._core`: the Rust hot path of packflow. This file only registers what
//! the other modules define; each concern lives in its own file.

use pyo3::prelude::*;

mod batch_cut;
#[cfg(test)]
mod build_select;
mod columns_to_records;
mod dict_slot;
mod engine;
mod errors;
mod feature_rows;
mod ffi;
mod flatten;
mod gc_pause;
mod histogram;
mod jsonl;
mod lookup;
mod normalize;
mod pipeline;
mod read_ahead;
mod records;
mod records_to_array;
mod serialize;
mod step_stats;
mod v2;
mod validate;
mod walk;

/// Which build of this extension is loaded: `build` ("fast" or "portable"),
/// `selected` ("default", "feature" or "automatic"), `reason`, and `python`,
/// the CPython version it was compiled for.
#[pyfunction]
fn build_info(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let info = pyo3::types::PyDict::new(py);
    info.set_item("build", ffi::BUILD)?;
    info.set_item("selected", ffi::BUILD_SELECTED)?;
    info.set_item("reason", ffi::BUILD_REASON)?;
    info.set_item("python", env!("PACKFLOW_BUILT_FOR_PYTHON"))?;
    Ok(info)
}

// The code hands out borrowed references from lists and dicts between calls
// into Python, which is sound only under the GIL: a free-threaded interpreter
// turns the GIL back on to import this module (and says so).
#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    ffi::check_layouts(m.py())?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    m.add("MAX_DEPTH", errors::MAX_DEPTH)?;
    m.add_class::<pipeline::Pipeline>()?;
    m.add_class::<step_stats::StepStats>()?;
    m.add_class::<engine::BatchOutcome>()?;
    m.add_class::<feature_rows::FeatureRows>()?;
    m.add_function(wrap_pyfunction!(pipeline::monotonic_ns, m)?)?;
    m.add_function(wrap_pyfunction!(batch_cut::line_batch_end, m)?)?;
    m.add_function(wrap_pyfunction!(batch_cut::join_lines, m)?)?;
    m.add_function(wrap_pyfunction!(records_to_array::records_to_ndarray, m)?)?;
    m.add_class::<records_to_array::NumpyPlan>()?;
    m.add_function(wrap_pyfunction!(flatten::flatten_dict, m)?)?;
    m.add_function(wrap_pyfunction!(flatten::flatten_records, m)?)?;
    m.add_function(wrap_pyfunction!(records::check_delimiter_collisions, m)?)?;
    m.add_function(wrap_pyfunction!(records::get_nested_field, m)?)?;
    m.add_function(wrap_pyfunction!(records::get_nested_field_direct, m)?)?;
    m.add_function(wrap_pyfunction!(records::set_nested_field_direct, m)?)?;
    m.add_class::<records::RecordsPlan>()?;
    m.add_class::<jsonl::ParsedLines>()?;
    m.add_class::<jsonl::ParsedArray>()?;
    m.add_function(wrap_pyfunction!(jsonl::parse_lines, m)?)?;
    m.add_function(wrap_pyfunction!(jsonl::parse_lines_to_ndarray, m)?)?;
    m.add_function(wrap_pyfunction!(jsonl::json_to_lines, m)?)?;
    m.add_function(wrap_pyfunction!(jsonl::holds_constant_word, m)?)?;
    m.add_function(wrap_pyfunction!(validate::check_inputs, m)?)?;
    m.add_function(wrap_pyfunction!(validate::check_outputs, m)?)?;
    m.add_function(wrap_pyfunction!(validate::check_and_dump_lines, m)?)?;
    m.add_function(wrap_pyfunction!(validate::missing_keys, m)?)?;
    m.add_function(wrap_pyfunction!(serialize::dumps, m)?)?;
    m.add_function(wrap_pyfunction!(serialize::dumps_lines, m)?)?;
    m.add_function(wrap_pyfunction!(normalize::ensure_native_types, m)?)?;
    m.add_function(wrap_pyfunction!(normalize::ensure_valid_output, m)?)?;
    m.add_function(wrap_pyfunction!(columns_to_records::columns_to_records, m)?)?;
    m.add_class::<v2::V2Plan>()?;
    m.add_class::<v2::V2Offload>()?;
    m.add_function(wrap_pyfunction!(v2::v2_read_request, m)?)?;
    m.add_function(wrap_pyfunction!(v2::v2_write_answer, m)?)?;
    Ok(())
}
