//! Records preprocessing: Packflow 0.4's per-record field helpers
//! (`fields`), the delimiter-collision scan (`collisions`), and `RecordsPlan`
//! (`plan`, over the input paths of `input_trie`), the records preprocessor's
//! config compiled once and run over a whole batch in one call.

mod collisions;
mod fields;
mod input_trie;
mod plan;

pub use collisions::check_delimiter_collisions;
pub use fields::{get_nested_field, get_nested_field_direct, set_nested_field_direct};
pub use plan::RecordsPlan;
