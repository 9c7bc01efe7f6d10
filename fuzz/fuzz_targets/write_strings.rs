#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| packflow_fuzz::targets::write_strings(data));
