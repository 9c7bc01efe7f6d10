// Exposes pyo3's `Py_3_x` cfgs to this crate, for version-specific C API calls.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
