//! Cutting a growing stream buffer into batches: where the n-th complete line
//! ends (a word-at-a-time newline search, no per-line objects), and joining single-line
//! messages into one buffer. The reader in `packflow.engine.reader` drives it;
//! splitting a batch into lines for parsing is `jsonl/lines.rs`.

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList};

/// Offset just past the `max_lines`-th newline at or after `start`, and how many
/// complete lines lie between; `(start, 0)` when none is complete.
pub fn complete_lines(buf: &[u8], start: usize, max_lines: usize) -> (usize, usize) {
    let mut pos = start.min(buf.len());
    let mut end = pos;
    let mut n = 0;
    while n < max_lines {
        match crate::jsonl::find_newline(buf, pos) {
            Some(i) => {
                pos = i + 1;
                end = pos;
                n += 1;
            }
            None => break,
        }
    }
    (end, n)
}

/// `(end, count)`: the offset just past the `max_lines`-th complete line of
/// `data` (bytes or bytearray) counted from `start`, and the number of complete
/// lines before it.
#[pyfunction]
#[pyo3(signature = (data, max_lines, start=0))]
pub fn line_batch_end(
    data: &Bound<'_, PyAny>,
    max_lines: usize,
    start: usize,
) -> PyResult<(usize, usize)> {
    if let Ok(b) = data.cast::<PyBytes>() {
        return Ok(complete_lines(b.as_bytes(), start, max_lines));
    }
    if let Ok(b) = data.cast::<PyByteArray>() {
        // SAFETY: the slice lives only for this call, which runs no Python code
        // (no callback can resize or free the bytearray's buffer) and holds the
        // GIL (no other thread can either); the module is not built for the
        // free-threaded interpreter.
        return Ok(complete_lines(unsafe { b.as_bytes() }, start, max_lines));
    }
    Err(crate::errors::type_error(format!(
        "data must be bytes or bytearray, got {}",
        crate::errors::type_name(data)
    )))
}

/// Join single-line messages into one buffer of JSON Lines, adding the newline
/// only to items that lack one (so line numbers stay one per item).
#[pyfunction]
pub fn join_lines<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut total = 0;
    for item in items.iter() {
        total += item
            .cast::<PyBytes>()
            .map(|b| b.as_bytes().len() + 1)
            .map_err(|_| {
                crate::errors::type_error(format!(
                    "stream items must be bytes, got {}",
                    crate::errors::type_name(&item)
                ))
            })?;
    }
    let mut out = Vec::with_capacity(total);
    for item in items.iter() {
        let b = item.cast::<PyBytes>()?.as_bytes();
        out.extend_from_slice(b);
        if b.last() != Some(&b'\n') {
            out.push(b'\n');
        }
    }
    Ok(PyBytes::new(py, &out))
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
