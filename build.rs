// Exposes pyo3's `Py_3_x` cfgs to this crate, for version-specific C API calls;
// the exact version built for, which src/ffi.rs checks at import; and which
// build this is (src/build_select.rs): `packflow_portable` when src/ffi.rs may
// read no private CPython layout.
#[path = "src/build_select.rs"]
mod build_select;

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    let config = pyo3_build_config::get();
    let version = config.version();
    println!(
        "cargo:rustc-env=PACKFLOW_BUILT_FOR_PYTHON={}.{}",
        version.major, version.minor
    );
    let choice = build_select::choose(&build_select::Target {
        cpython: config.implementation() == pyo3_build_config::PythonImplementation::CPython,
        major: version.major,
        minor: version.minor,
        free_threaded: config.is_free_threaded(),
        portable_feature: std::env::var_os("CARGO_FEATURE_PORTABLE").is_some(),
    });
    println!("cargo::rustc-check-cfg=cfg(packflow_portable)");
    if choice.portable {
        println!("cargo:rustc-cfg=packflow_portable");
    }
    println!(
        "cargo:rustc-env=PACKFLOW_BUILD={}",
        if choice.portable { "portable" } else { "fast" }
    );
    println!(
        "cargo:rustc-env=PACKFLOW_BUILD_SELECTED={}",
        choice.selected
    );
    println!("cargo:rustc-env=PACKFLOW_BUILD_REASON={}", choice.reason);
    if choice.selected == "automatic" {
        println!(
            "cargo:warning=building the portable packflow core: {}",
            choice.reason
        );
    }
}
