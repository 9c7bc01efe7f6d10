//! A V2 body as a small tree of JSON values, read with the crate's scanner,
//! and written back the way `_core.dumps` writes the Python values
//! `json.loads` would have made. Anything the Python path could read
//! differently (a big integer, NaN, a duplicate key, a lone surrogate, deep
//! nesting) is `Unsupported`: the caller hands the body to Python.

use std::borrow::Cow;

use crate::jsonl::scanner::{decode_escaped, Number, Scanner};
use crate::serialize::number::write_f64;
use crate::serialize::string::write_escaped;
use crate::serialize::writer::JsonWriter;

/// Containers deeper than this are left to Python (which reads up to its
/// recursion limit): far below the scanner's and the writer's limits, and a
/// bound on this parser's recursion.
pub const MAX_NESTING: usize = 64;

/// The body is valid for Python in a way this module does not mirror, or
/// is not JSON at all: Python reads it and gives its own answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// Above `i64::MAX`, at most `u64::MAX`.
    UInt(u64),
    /// Finite.
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Value<'a>>),
    /// Keys in order, each once.
    Obj(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The one JSON document of `text` (whitespace around it, `\n` included, as
/// `json.loads` allows).
pub fn parse_document(text: &str) -> Result<Value<'_>, Unsupported> {
    // A byte-order mark is an error for json.loads(str) and is skipped from
    // bytes: either way, Python's answer.
    if text.starts_with('\u{feff}') {
        return Err(Unsupported);
    }
    let mut sc = Scanner::document(text, 0);
    sc.skip_ws();
    let value = parse_value(&mut sc, 0)?;
    sc.skip_ws();
    if !sc.at_end() {
        return Err(Unsupported);
    }
    Ok(value)
}

fn parse_value<'a>(sc: &mut Scanner<'a>, depth: usize) -> Result<Value<'a>, Unsupported> {
    match sc.peek().ok_or(Unsupported)? {
        b'{' => {
            if depth >= MAX_NESTING {
                return Err(Unsupported);
            }
            sc.pos += 1;
            let mut members: Vec<(Cow<'a, str>, Value<'a>)> = Vec::new();
            sc.skip_ws();
            if sc.peek() == Some(b'}') {
                sc.pos += 1;
                return Ok(Value::Obj(members));
            }
            loop {
                sc.skip_ws();
                if sc.peek() != Some(b'"') {
                    return Err(Unsupported);
                }
                let key = parse_string(sc)?;
                sc.expect(b':', "expected ':'").map_err(|_| Unsupported)?;
                sc.skip_ws();
                let value = parse_value(sc, depth + 1)?;
                // json.loads keeps the last of equal keys at the place of
                // the first: rare enough to leave to it.
                if members.iter().any(|(k, _)| *k == key) {
                    return Err(Unsupported);
                }
                members.push((key, value));
                sc.skip_ws();
                match sc.peek() {
                    Some(b',') => sc.pos += 1,
                    Some(b'}') => {
                        sc.pos += 1;
                        return Ok(Value::Obj(members));
                    }
                    _ => return Err(Unsupported),
                }
            }
        }
        b'[' => {
            if depth >= MAX_NESTING {
                return Err(Unsupported);
            }
            sc.pos += 1;
            let mut items = Vec::new();
            sc.skip_ws();
            if sc.peek() == Some(b']') {
                sc.pos += 1;
                return Ok(Value::Arr(items));
            }
            loop {
                sc.skip_ws();
                items.push(parse_value(sc, depth + 1)?);
                sc.skip_ws();
                match sc.peek() {
                    Some(b',') => sc.pos += 1,
                    Some(b']') => {
                        sc.pos += 1;
                        return Ok(Value::Arr(items));
                    }
                    _ => return Err(Unsupported),
                }
            }
        }
        b'"' => Ok(Value::Str(parse_string(sc)?)),
        b'-' | b'0'..=b'9' => match sc.scan_number().map_err(|_| Unsupported)? {
            Number::Int(v) => Ok(Value::Int(v)),
            Number::UInt(v) => Ok(Value::UInt(v)),
            Number::Float(v) if v.is_finite() => Ok(Value::Float(v)),
            // Twenty digits may still be a u64 (UINT64's top half).
            Number::BigInt { start, end } => sc.text[start..end]
                .parse::<u64>()
                .map(Value::UInt)
                .map_err(|_| Unsupported),
            // -Infinity, 1e400 (inf for Python) and integers past 64 bits.
            _ => Err(Unsupported),
        },
        b't' | b'f' => Ok(Value::Bool(sc.scan_bool().map_err(|_| Unsupported)?)),
        b'n' => {
            sc.expect_word(b"null").map_err(|_| Unsupported)?;
            Ok(Value::Null)
        }
        _ => Err(Unsupported),
    }
}

fn parse_string<'a>(sc: &mut Scanner<'a>) -> Result<Cow<'a, str>, Unsupported> {
    let span = sc.scan_string().map_err(|_| Unsupported)?;
    let raw = sc.raw_str(span);
    if !span.escaped {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    decode_escaped(raw, &mut out).map_err(|_| Unsupported)?;
    Ok(Cow::Owned(out))
}

/// Appends `value` as `_core.dumps` writes what `json.loads` makes of it:
/// compact, keys in order, floats as `repr` spells them.
pub fn write_value(w: &mut JsonWriter, value: &Value<'_>) {
    match value {
        Value::Null => w.put(b"null"),
        Value::Bool(true) => w.put(b"true"),
        Value::Bool(false) => w.put(b"false"),
        Value::Int(v) => w.put_i64(*v),
        Value::UInt(v) => w.put_u64(*v),
        Value::Float(v) => write_float(w, *v),
        Value::Str(s) => write_escaped(w, s.as_bytes()),
        Value::Arr(items) => {
            w.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.push(b',');
                }
                write_value(w, item);
            }
            w.push(b']');
        }
        Value::Obj(members) => {
            w.push(b'{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    w.push(b',');
                }
                write_escaped(w, key.as_bytes());
                w.push(b':');
                write_value(w, item);
            }
            w.push(b'}');
        }
    }
}

/// A finite float as `repr` spells it (the values here are finite by
/// construction: the parser leaves the others to Python).
pub fn write_float(w: &mut JsonWriter, v: f64) {
    if write_f64(w, v, false).is_err() {
        w.put(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> Option<String> {
        let value = parse_document(text).ok()?;
        let mut w = JsonWriter::new(false, 0);
        write_value(&mut w, &value);
        Some(String::from_utf8(w.bytes().to_vec()).unwrap())
    }

    #[test]
    fn writes_what_python_would() {
        assert_eq!(
            round_trip(" {\"a\" : [1, 2.50, -0.0, 1e20, true, null],\n\"b\":\"\\u00e9\\n\"} ")
                .as_deref(),
            Some("{\"a\":[1,2.5,-0.0,1e+20,true,null],\"b\":\"é\\n\"}")
        );
        assert_eq!(
            round_trip("18446744073709551615").as_deref(),
            Some("18446744073709551615")
        );
    }

    #[test]
    fn leaves_the_unusual_to_python() {
        for text in [
            "",
            "{",
            "[1,]",
            "NaN",
            "[Infinity]",
            "-Infinity",
            "1e400",
            "123456789012345678901234567890",
            "{\"a\":1,\"a\":2}",
            "\"\\ud800\"",
            "\u{feff}{}",
            "{} x",
            "[01]",
        ] {
            assert_eq!(parse_document(text), Err(Unsupported), "{text:?}");
        }
        let deep = "[".repeat(MAX_NESTING + 1) + &"]".repeat(MAX_NESTING + 1);
        assert_eq!(parse_document(&deep), Err(Unsupported));
        let ok = "[".repeat(MAX_NESTING) + &"]".repeat(MAX_NESTING);
        assert!(parse_document(&ok).is_ok());
    }
}
