//! A JSON document (an HTTP request body) as JSON Lines: an object gives one
//! line, an array of objects one line per item, so such bodies feed the same
//! batch engine as streams do. The document is validated with the line
//! scanner and copied item by item; nothing is built.

use super::scanner::{Scanner, SyntaxError, ValueKind};

/// Why a document gives no lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// Not JSON (the offset is in the whole document).
    Syntax(SyntaxError),
    /// JSON, but not the shape asked for.
    Shape(String),
}

impl From<SyntaxError> for DocumentError {
    fn from(e: SyntaxError) -> Self {
        DocumentError::Syntax(e)
    }
}

impl DocumentError {
    /// The message, with the 1-based line and column of a syntax error.
    pub fn message(&self, text: &[u8]) -> String {
        match self {
            DocumentError::Shape(msg) => msg.clone(),
            DocumentError::Syntax(e) => {
                let pos = e.pos.min(text.len());
                let line_start = text[..pos]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let line = text[..line_start].iter().filter(|&&b| b == b'\n').count() + 1;
                let local = SyntaxError {
                    pos: pos - line_start,
                    kind: e.kind.clone(),
                };
                format!("line {line}: {}", local.message(&text[line_start..]))
            }
        }
    }
}

/// The lines of a document: `out` holds one line per row, each ending in `\n`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DocumentLines {
    pub out: Vec<u8>,
    pub rows: usize,
    /// The document was one object (not an array).
    pub single: bool,
}

impl DocumentLines {
    /// Appends `item` as one line: a `\n` in valid JSON outside a string is
    /// whitespace, so it becomes a space.
    pub(super) fn push(&mut self, item: &[u8]) {
        if item.contains(&b'\n') {
            self.out
                .extend(item.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
        } else {
            self.out.extend_from_slice(item);
        }
        self.out.push(b'\n');
        self.rows += 1;
    }
}

const BOM: &str = "\u{feff}";

fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Array => "an array",
        ValueKind::Object => "an object",
        ValueKind::String => "a string",
        ValueKind::Number => "a number",
        ValueKind::Boolean => "a boolean",
        ValueKind::Null => "null",
    }
}

/// The lines of `text`: an object, or an array of objects; with `field`, an
/// object whose `field` member is an array of objects (the last one wins when
/// the key repeats, as in `json.loads`).
pub fn document_lines(
    text: &str,
    field: Option<&str>,
    int_limit: usize,
) -> Result<DocumentLines, DocumentError> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let mut sc = Scanner::document(text, int_limit);
    let mut lines = DocumentLines::default();
    sc.skip_ws();
    if sc.at_end() {
        return Err(DocumentError::Shape("the body is empty".into()));
    }
    match field {
        None => match sc.peek() {
            Some(b'{') => {
                let start = sc.pos;
                sc.skip_value(0)?;
                lines.push(&sc.buf[start..sc.pos]);
                lines.single = true;
            }
            Some(b'[') => items(&mut sc, &mut lines)?,
            _ => {
                let kind = sc.skip_value(0)?;
                sc.finish()?;
                return Err(DocumentError::Shape(format!(
                    "the body is {}, not a JSON object or an array of objects",
                    kind_name(kind)
                )));
            }
        },
        Some(name) => member_items(&mut sc, name, &mut lines)?,
    }
    sc.finish()?;
    Ok(lines)
}

/// The array at the cursor, one line per item; every item must be an object.
fn items(sc: &mut Scanner<'_>, lines: &mut DocumentLines) -> Result<(), DocumentError> {
    sc.pos += 1;
    sc.skip_ws();
    if sc.peek() == Some(b']') {
        sc.pos += 1;
        return Ok(());
    }
    let mut index = 0usize;
    loop {
        sc.skip_ws();
        let start = sc.pos;
        // Each item becomes a line of its own, parsed at depth 0 by the engine.
        let kind = sc.skip_value(0)?;
        if kind != ValueKind::Object {
            return Err(DocumentError::Shape(format!(
                "item {index} of the array is {}, not a JSON object",
                kind_name(kind)
            )));
        }
        lines.push(&sc.buf[start..sc.pos]);
        index += 1;
        sc.skip_ws();
        match sc.peek() {
            Some(b',') => sc.pos += 1,
            Some(b']') => {
                sc.pos += 1;
                return Ok(());
            }
            _ => return Err(SyntaxError::invalid(sc.pos, "expected ',' or ']'").into()),
        }
    }
}

/// The object at the cursor, whose `name` member holds the items.
fn member_items(
    sc: &mut Scanner<'_>,
    name: &str,
    lines: &mut DocumentLines,
) -> Result<(), DocumentError> {
    if sc.peek() != Some(b'{') {
        let kind = sc.skip_value(0)?;
        sc.finish()?;
        return Err(DocumentError::Shape(format!(
            "the body is {}, not a JSON object with an {name:?} array",
            kind_name(kind)
        )));
    }
    sc.pos += 1;
    sc.skip_ws();
    let mut found = false;
    if sc.peek() == Some(b'}') {
        sc.pos += 1;
    } else {
        let mut key = String::new();
        loop {
            sc.skip_ws();
            if sc.peek() != Some(b'"') {
                return Err(SyntaxError::invalid(sc.pos, "expected a string key").into());
            }
            let span = sc.scan_string()?;
            let raw = sc.raw_str(span);
            let matches = if span.escaped {
                // A key with a lone surrogate escape cannot equal `name`.
                super::scanner::decode_escaped(raw, &mut key).is_ok() && key == name
            } else {
                raw == name
            };
            sc.expect(b':', "expected ':'")?;
            sc.skip_ws();
            if matches {
                found = true;
                *lines = DocumentLines::default();
                if sc.peek() != Some(b'[') {
                    let kind = sc.skip_value(1)?;
                    return Err(DocumentError::Shape(format!(
                        "{name:?} is {}, not an array of objects",
                        kind_name(kind)
                    )));
                }
                items(sc, lines)?;
            } else {
                sc.skip_value(1)?;
            }
            sc.skip_ws();
            match sc.peek() {
                Some(b',') => sc.pos += 1,
                Some(b'}') => {
                    sc.pos += 1;
                    break;
                }
                _ => return Err(SyntaxError::invalid(sc.pos, "expected ',' or '}'").into()),
            }
        }
    }
    if !found {
        return Err(DocumentError::Shape(format!(
            "the body has no {name:?} member (an array of objects)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str, field: Option<&str>) -> Result<(String, usize, bool), String> {
        document_lines(text, field, 4300)
            .map(|d| (String::from_utf8(d.out).unwrap(), d.rows, d.single))
            .map_err(|e| e.message(text.as_bytes()))
    }

    #[test]
    fn object_array_and_member() {
        assert_eq!(
            lines(" {\"a\": 1}\n", None),
            Ok(("{\"a\": 1}\n".into(), 1, true))
        );
        assert_eq!(
            lines("[{\"a\":\n 1}, {}]", None),
            Ok(("{\"a\":  1}\n{}\n".into(), 2, false))
        );
        assert_eq!(lines("[ ]", None), Ok((String::new(), 0, false)));
        assert_eq!(
            lines(
                "{\"x\": [1], \"instances\": [{\"a\": 1}], \"y\": {}}",
                Some("instances")
            ),
            Ok(("{\"a\": 1}\n".into(), 1, false))
        );
        assert_eq!(
            lines(
                "{\"instances\": [{}], \"inst\\u0061nces\": [{}, {}]}",
                Some("instances")
            ),
            Ok(("{}\n{}\n".into(), 2, false))
        );
        assert_eq!(
            lines("\u{feff}{\"s\": \"\u{e9}\"}", None),
            Ok(("{\"s\": \"\u{e9}\"}\n".into(), 1, true))
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        assert_eq!(
            lines("[{\"a\": 1},\n  {\"b\" 2}]", None),
            Err("line 2: invalid JSON at column 8: expected ':'".into())
        );
        assert_eq!(
            lines("{\"a\": \"x\ny\"}", None),
            Err("line 1: invalid JSON at column 9: control character in string".into())
        );
        assert_eq!(
            lines("{} {}", None),
            Err("line 1: invalid JSON at column 4: extra data after the value".into())
        );
        assert_eq!(
            lines("[{}", None),
            Err("line 1: invalid JSON at column 4: expected ',' or ']'".into())
        );
    }

    #[test]
    fn shape_errors() {
        assert_eq!(
            lines("[{}, 3]", None),
            Err("item 1 of the array is a number, not a JSON object".into())
        );
        assert_eq!(
            lines("\"x\"", None),
            Err("the body is a string, not a JSON object or an array of objects".into())
        );
        assert_eq!(lines("  \n", None), Err("the body is empty".into()));
        assert_eq!(
            lines("{\"inputs\": []}", Some("instances")),
            Err("the body has no \"instances\" member (an array of objects)".into())
        );
        assert_eq!(
            lines("{\"instances\": {}}", Some("instances")),
            Err("\"instances\" is an object, not an array of objects".into())
        );
        assert_eq!(
            lines("[]", Some("instances")),
            Err("the body is an array, not a JSON object with an \"instances\" array".into())
        );
    }
}
