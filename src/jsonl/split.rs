//! A request body cut into JSON Lines without checking what is inside its
//! items: the engine parses each item anyway, and reports a bad one. Only the
//! structure around the items is read (the array, the commas, the `field`
//! member), and an item is skipped by counting brackets outside strings. Any
//! body this fast cut is not sure of (a shape other than the plain ones, a
//! raw newline inside a string, which the cut would turn into a space) is left
//! to `document_lines`, which checks everything and names what is wrong.

use super::document::DocumentLines;
use super::scanner::skip_plain_text;
use crate::errors::MAX_DEPTH;

/// The closing quote of the string whose text starts at `data[i]`, eight
/// bytes at a time through plain text; None at a control character (a raw
/// newline would be turned into a space: the checked path names it) or when
/// the data ends first.
#[inline]
fn string_end(data: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = skip_plain_text(data, i);
        match *data.get(i)? {
            b'"' => return Some(i),
            b'\\' => i += 2,
            b if b < 0x20 => return None,
            _ => i += 1,
        }
    }
}

#[inline]
fn skip_ws(data: &[u8], mut pos: usize) -> usize {
    while pos < data.len() && matches!(data[pos], b' ' | b'\t' | b'\r' | b'\n') {
        pos += 1;
    }
    pos
}

/// The end (exclusive) of the object starting at `data[start] == b'{'`, found
/// by counting brackets outside strings; None when the data ends first, nests
/// past `MAX_DEPTH`, or a string holds a raw newline.
fn object_end(data: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < data.len() {
        match data[i] {
            b'"' => i = string_end(data, i + 1)?,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
            }
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The objects of the array at `data[pos] == b'['`, appended to `lines`; the
/// position after its `]`.
fn items(data: &[u8], mut pos: usize, lines: &mut DocumentLines) -> Option<usize> {
    pos = skip_ws(data, pos + 1);
    if data.get(pos) == Some(&b']') {
        return Some(pos + 1);
    }
    loop {
        if data.get(pos) != Some(&b'{') {
            return None;
        }
        let end = object_end(data, pos)?;
        lines.push(&data[pos..end]);
        pos = skip_ws(data, end);
        match data.get(pos)? {
            b',' => pos = skip_ws(data, pos + 1),
            b']' => return Some(pos + 1),
            _ => return None,
        }
    }
}

/// The body's lines, as `document_lines` gives them for a body it accepts, or
/// None when the fast cut cannot tell (see the module's note).
pub fn split_document(data: &[u8], field: Option<&str>) -> Option<DocumentLines> {
    let mut lines = DocumentLines::default();
    let mut pos = skip_ws(data, 0);
    match field {
        None => match data.get(pos)? {
            b'{' => {
                let end = object_end(data, pos)?;
                lines.push(&data[pos..end]);
                lines.single = true;
                pos = end;
            }
            b'[' => pos = items(data, pos, &mut lines)?,
            _ => return None,
        },
        Some(name) => {
            // Only `{"<name>": [...]}`, the key written plainly; anything
            // else (other members, an escaped key) takes the checked path.
            if data.get(pos) != Some(&b'{') {
                return None;
            }
            pos = skip_ws(data, pos + 1);
            let key_end = pos + 1 + name.len();
            if data.get(pos) != Some(&b'"')
                || data.get(pos + 1..key_end)? != name.as_bytes()
                || data.get(key_end) != Some(&b'"')
            {
                return None;
            }
            pos = skip_ws(data, key_end + 1);
            if data.get(pos) != Some(&b':') {
                return None;
            }
            pos = skip_ws(data, pos + 1);
            if data.get(pos) != Some(&b'[') {
                return None;
            }
            pos = skip_ws(data, items(data, pos, &mut lines)?);
            if data.get(pos) != Some(&b'}') {
                return None;
            }
            pos += 1;
        }
    }
    (skip_ws(data, pos) == data.len()).then_some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonl::document::document_lines;

    fn split(text: &str, field: Option<&str>) -> Option<(String, usize, bool)> {
        split_document(text.as_bytes(), field)
            .map(|d| (String::from_utf8(d.out).unwrap(), d.rows, d.single))
    }

    #[test]
    fn plain_bodies_cut_as_the_checked_path_cuts_them() {
        for (text, field) in [
            (" {\"a\": 1}\n", None),
            ("[{\"a\":\n 1}, {}]", None),
            ("[ ]", None),
            ("[{\"s\": \"}]\\\"{\"}, {\"b\": [1, {\"c\": []}]}]", None),
            (
                "{\"instances\": [{\"a\": 1}, {\"b\": 2}]}",
                Some("instances"),
            ),
            ("{ \"instances\" : [ ] }", Some("instances")),
        ] {
            let checked = document_lines(text, field, 4300).unwrap();
            let fast = split_document(text.as_bytes(), field).unwrap();
            assert_eq!(fast, checked, "{text:?}");
        }
    }

    #[test]
    fn anything_unsure_is_left_to_the_checked_path() {
        for (text, field) in [
            ("", None),
            ("[1, 2]", None),
            ("[{\"a\": 1} {\"b\": 2}]", None),
            ("[{\"a\": 1},]", None),
            ("[{\"a\": 1}", None),
            ("[{\"a\": \"x\ny\"}]", None),
            ("{\"a\": 1} {\"b\": 2}", None),
            ("\u{feff}[{}]", None),
            ("{\"x\": 1, \"instances\": [{}]}", Some("instances")),
            ("{\"instan\\u0063es\": [{}]}", Some("instances")),
            ("{\"instances\": [{}], \"x\": 1}", Some("instances")),
            ("[{\"a\": \"unterminated}]", None),
        ] {
            assert_eq!(split(text, field), None, "{text:?}");
        }
        let deep = format!("[{}{}]", "{\"a\":[".repeat(200), "]}".repeat(200));
        assert_eq!(split(&deep, None), None);
    }
}
