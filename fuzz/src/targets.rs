//! One check per fuzz target: panics (a finding) when a property fails.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::{agrees, core_fn, error_entry, fail, init, oracle, serde_parse};

/// The non-blank lines of a batch as `parse_lines` documents them: `(index,
/// raw bytes without the line ending)`, blank lines skipped but counted.
fn lines_of(data: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.last() == Some(&b'\n') {
        pieces.pop();
    }
    for (index, piece) in pieces.into_iter().enumerate() {
        let raw = piece.strip_suffix(b"\r").unwrap_or(piece);
        if !raw.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            out.push((index, raw));
        }
    }
    out
}

/// Nesting of brackets outside strings: an upper bound on a valid line's depth,
/// so serde_json (recursive) only sees lines the library accepts the depth of.
fn bracket_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Python's json accepts what serde_json refuses in two places: the constants
/// NaN/Infinity and lone surrogate escapes.
fn beyond_serde(text: &str) -> bool {
    if text.contains("NaN") || text.contains("Infinity") {
        return true;
    }
    let b = text.as_bytes();
    b.windows(4).any(|w| {
        w[0] == b'\\' && w[1] == b'u' && matches!(w[2], b'd' | b'D') && {
            let c = w[3].to_ascii_lowercase();
            (b'8'..=b'9').contains(&c) || (b'a'..=b'f').contains(&c)
        }
    })
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// A record: what `json.loads` gives (Python oracle) and what serde_json reads.
fn check_record(py: Python<'_>, raw: &[u8], record: &Bound<'_, PyAny>) {
    let text = std::str::from_utf8(raw).expect("a record's line is UTF-8");
    let text = strip_bom(text);
    if let Err(e) = oracle(py).call_method1("check_record", (text, record)) {
        fail(py, "record differs from json.loads", e);
    }
    match serde_parse(text.as_bytes()) {
        Ok(v) => {
            assert!(
                crate::depth(&v) <= 255,
                "accepted a line nested past 255: {text:?}"
            );
            if let Err(why) = agrees(record, &v) {
                panic!("record differs from serde_json: {why}\nline: {text:?}");
            }
        }
        Err(e) => assert!(
            beyond_serde(text),
            "accepted a line serde_json rejects ({e}): {text:?}"
        ),
    }
}

/// An error line: the raw bytes, a message that says where, and a line the
/// oracles reject too.
fn check_error(py: Python<'_>, raw: &[u8], got: &(u64, Vec<u8>, String)) {
    let (_, got_raw, msg) = got;
    assert_eq!(got_raw.as_slice(), raw, "raw bytes of error line");
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => {
            let want = format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1);
            assert_eq!(msg, &want, "message of a non-UTF-8 line");
            return;
        }
    };
    let chars = text.chars().count();
    let too_deep = msg.contains("nesting deeper than 255 levels");
    let too_long = msg.contains("exceeds the limit of");
    if let Some(rest) = msg.strip_prefix("invalid JSON at column ") {
        let column: usize = rest
            .split(':')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no column in {msg:?}"));
        assert!(
            (1..=chars + 1).contains(&column),
            "column {column} outside a line of {chars} characters: {msg:?}"
        );
    } else if !msg.starts_with("not a JSON object: ") && !msg.starts_with("invalid JSON: ") {
        panic!("unexpected error message {msg:?} for {text:?}");
    }
    let text = strip_bom(text);
    if let Err(e) = oracle(py).call_method1("check_rejected", (text, msg, too_deep)) {
        fail(py, "error line json.loads accepts", e);
    }
    if too_deep || too_long || bracket_depth(text) > 255 {
        return;
    }
    if let Ok(v) = serde_parse(text.as_bytes()) {
        let kind = match v {
            serde_json::Value::Object(_) => "object",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Null => "null",
        };
        assert_eq!(
            msg,
            &format!("not a JSON object: {kind}"),
            "serde_json reads the line as a {kind}: {text:?}"
        );
    }
}

/// `parse_lines`: every non-blank line is a record or an error, in order, with
/// its line number; records equal `json.loads` and serde_json's reading; errors
/// carry the raw line and a column, and are lines the oracles reject.
pub fn jsonl_parse(data: &[u8]) {
    init();
    Python::attach(|py| {
        let parsed = core_fn(py, "parse_lines")
            .call1((PyBytes::new(py, data),))
            .unwrap_or_else(|e| fail(py, "parse_lines raised", e));
        let records = parsed.getattr("records").unwrap();
        let records = records.cast::<PyList>().unwrap();
        let numbers: Vec<u64> = parsed.getattr("line_numbers").unwrap().extract().unwrap();
        let errors: Vec<(u64, Vec<u8>, String)> = parsed
            .getattr("errors")
            .unwrap()
            .cast::<PyList>()
            .unwrap()
            .iter()
            .map(|e| error_entry(&e))
            .collect();
        let seen: usize = parsed.getattr("lines").unwrap().extract().unwrap();
        assert_eq!(records.len(), numbers.len(), "a line number per record");
        assert_eq!(
            seen,
            records.len() + errors.len(),
            "lines == records + errors"
        );
        let expected = lines_of(data);
        assert_eq!(expected.len(), seen, "non-blank lines counted");
        let (mut r, mut e) = (0, 0);
        for (index, raw) in expected {
            let line_no = index as u64 + 1;
            if numbers.get(r) == Some(&line_no) {
                check_record(py, raw, &records.get_item(r).unwrap());
                r += 1;
            } else if errors.get(e).map(|x| x.0) == Some(line_no) {
                check_error(py, raw, &errors[e]);
                e += 1;
            } else {
                panic!("line {line_no} is neither a record nor an error");
            }
        }
    });
}

const DELIMITERS: [&str; 5] = [".", "::", "_", "a.", "é"];

/// `parse_lines_to_ndarray`: when it fills an array, the array, line numbers
/// and errors are those of `parse_lines` followed by `records_to_ndarray`. The
/// input's first byte picks the delimiter, its first line lists the features
/// (separated by `|`), the rest is the batch.
pub fn jsonl_ndarray(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (head, batch) = match rest.iter().position(|&b| b == b'\n') {
        Some(nl) => (&rest[..nl], &rest[nl + 1..]),
        None => (rest, &[][..]),
    };
    let features: Vec<String> = String::from_utf8_lossy(head)
        .split('|')
        .take(16)
        .map(str::to_owned)
        .collect();
    let delimiter = DELIMITERS[pick as usize % DELIMITERS.len()];
    init();
    Python::attach(|py| {
        let args = (PyBytes::new(py, batch), features, delimiter);
        if let Err(e) = oracle(py).call_method1("check_ndarray", args) {
            fail(py, "parse_lines_to_ndarray disagrees", e);
        }
    });
}

/// The number writer: `dumps` of ints, floats, their subclasses and numpy
/// scalars and arrays built from the input is what `json.dumps` writes, and
/// serde_json reads every number back to the same value.
pub fn write_numbers(data: &[u8]) {
    init();
    Python::attach(|py| {
        let out = oracle(py)
            .call_method1("check_numbers", (PyBytes::new(py, data),))
            .unwrap_or_else(|e| fail(py, "number writer", e));
        // (finite values as plain Python numbers, what dumps wrote for them)
        let (plain, written): (Bound<'_, PyAny>, Vec<u8>) = out.extract().unwrap();
        let v = serde_parse(&written).unwrap_or_else(|e| {
            panic!(
                "serde_json cannot read dumps output ({e}): {:?}",
                String::from_utf8_lossy(&written)
            )
        });
        if let Err(why) = agrees(&plain, &v) {
            panic!("serde_json reads back other numbers: {why}");
        }
    });
}

/// The string writer: `dumps` of strs of every storage kind (ASCII, latin-1,
/// UCS-2, UCS-4, subclasses) as values and keys is what `json.dumps(...,
/// ensure_ascii=False)` writes, and serde_json reads the same text back; a
/// lone surrogate is a ValueError.
pub fn write_strings(data: &[u8]) {
    init();
    Python::attach(|py| {
        let out = oracle(py)
            .call_method1("check_strings", (PyBytes::new(py, data),))
            .unwrap_or_else(|e| fail(py, "string writer", e));
        let pairs: Vec<(Bound<'_, PyString>, Vec<u8>)> = out.extract().unwrap();
        for (s, written) in pairs {
            let want = s.to_str().expect("encodable str");
            match serde_json::from_slice::<String>(&written) {
                Ok(back) => assert_eq!(back, want, "serde_json reads back another string"),
                Err(e) => panic!(
                    "serde_json cannot read dumps output ({e}): {:?}",
                    String::from_utf8_lossy(&written)
                ),
            }
        }
    });
}
