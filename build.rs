// Exposes pyo3's `Py_3_x` cfgs to this crate, for version-specific C API calls,
// and the exact version built for, which src/ffi.rs checks at import.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    let version = pyo3_build_config::get().version();
    println!(
        "cargo:rustc-env=PACKFLOW_BUILT_FOR_PYTHON={}.{}",
        version.major, version.minor
    );
}
