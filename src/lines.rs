//! Cutting a byte buffer of JSON Lines into batches: where the n-th complete
//! line ends, found with a word-at-a-time newline search (no per-line objects).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Offset just past the `max_lines`-th newline at or after `start`, and how many
/// complete lines lie between; `(start, 0)` when none is complete.
pub fn complete_lines(buf: &[u8], start: usize, max_lines: usize) -> (usize, usize) {
    let mut pos = start.min(buf.len());
    let mut end = pos;
    let mut n = 0;
    while n < max_lines {
        match buf[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                pos += i + 1;
                end = pos;
                n += 1;
            }
            None => break,
        }
    }
    (end, n)
}

/// `(end, count)`: the offset just past the `max_lines`-th complete line of
/// `data` counted from `start`, and the number of complete lines before it.
#[pyfunction]
#[pyo3(signature = (data, max_lines, start=0))]
pub fn line_batch_end(data: &Bound<'_, PyBytes>, max_lines: usize, start: usize) -> (usize, usize) {
    complete_lines(data.as_bytes(), start, max_lines)
}

#[cfg(test)]
mod tests {
    use super::complete_lines;

    #[test]
    fn counts_complete_lines_only() {
        let buf = b"a\nbb\nccc";
        assert_eq!(complete_lines(buf, 0, 10), (5, 2));
        assert_eq!(complete_lines(buf, 0, 1), (2, 1));
        assert_eq!(complete_lines(buf, 2, 1), (5, 1));
        assert_eq!(complete_lines(buf, 5, 3), (5, 0));
        assert_eq!(complete_lines(b"", 0, 3), (0, 0));
        assert_eq!(complete_lines(b"\n\n", 0, 5), (2, 2));
        assert_eq!(complete_lines(buf, 99, 1), (8, 0));
    }
}
