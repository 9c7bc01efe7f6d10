//! Replays the committed seed corpus (`fuzz/seeds/<target>/`) through every
//! target's check once, so the targets keep building and passing without a
//! fuzzing run (`make test` runs this; `make fuzz` does the fuzzing).

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

#[test]
fn jsonl_parse_seeds() {
    replay("jsonl_parse", packflow_fuzz::targets::jsonl_parse);
}

#[test]
fn jsonl_ndarray_seeds() {
    replay("jsonl_ndarray", packflow_fuzz::targets::jsonl_ndarray);
}

#[test]
fn write_numbers_seeds() {
    replay("write_numbers", packflow_fuzz::targets::write_numbers);
}

#[test]
fn write_strings_seeds() {
    replay("write_strings", packflow_fuzz::targets::write_strings);
}
