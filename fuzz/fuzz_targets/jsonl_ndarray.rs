#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| packflow_fuzz::targets::jsonl_ndarray(data));
