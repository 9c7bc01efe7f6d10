//! A V2 body as a small tree of JSON values, read with the crate's scanner,
//! and written back the way `_core.dumps` writes the Python values
//! `json.loads` would have made. Anything the Python path could read
//! differently (a big integer, NaN, a duplicate key, a lone surrogate, deep
//! nesting) is `Unsupported`: the caller hands the body to Python.

use std::borrow::Cow;

use rustc_hash::FxHashSet;

use crate::jsonl::scanner::{decode_escaped, Number, Scanner};
use crate::serialize::number::write_f64;
use crate::serialize::string::write_escaped;
use crate::serialize::writer::JsonWriter;

/// Containers deeper than this are left to Python (which reads up to its
/// recursion limit): far below the scanner's and the writer's limits, and a
/// bound on this parser's recursion.
pub const MAX_NESTING: usize = 64;

/// Members of an object whose keys are compared one by one for a repeat;
/// past them, a set of the keys seen.
const SCAN_KEYS: usize = 16;

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
    /// Finite, with its text in the body (written back as it is when it
    /// is already how `repr` spells the float).
    Float(f64, &'a str),
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
    let start = sc.pos;
    match sc.peek().ok_or(Unsupported)? {
        b'{' => {
            if depth >= MAX_NESTING {
                return Err(Unsupported);
            }
            sc.pos += 1;
            let mut members: Vec<(Cow<'a, str>, Value<'a>)> = Vec::new();
            // Past a few members, keys seen are looked up in a set (a scan
            // of them all per key made a wide object quadratic).
            let mut seen: Option<FxHashSet<Cow<'a, str>>> = None;
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
                let repeated = match &mut seen {
                    Some(set) => !set.insert(key.clone()),
                    None if members.len() < SCAN_KEYS => members.iter().any(|(k, _)| *k == key),
                    None => {
                        let mut set: FxHashSet<Cow<'a, str>> =
                            members.iter().map(|(k, _)| k.clone()).collect();
                        let repeated = !set.insert(key.clone());
                        seen = Some(set);
                        repeated
                    }
                };
                if repeated {
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
            Number::Float(v) if v.is_finite() => Ok(Value::Float(v, &sc.text[start..sc.pos])),
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
        Value::Float(v, text) => {
            if is_repr(text.as_bytes(), *v) {
                w.put(text.as_bytes());
            } else {
                write_float(w, *v);
            }
        }
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

/// Whether `text`, a JSON number that reads as the finite `v`, is already
/// `repr(v)` (most floats in bodies are: `22.0`, `0.5`), so the float need
/// not be formatted again. Sure for plain decimals of at most 15
/// significant digits, no trailing zero but `.0`, in `repr`'s plain range
/// (1e-4 <= |v| < 1e16): decimals that short map to distinct doubles, so no
/// shorter or closer text reads as `v`, and `repr` writes the shortest.
fn is_repr(text: &[u8], v: f64) -> bool {
    let magnitude = v.abs();
    if !(magnitude == 0.0 || (1e-4..1e16).contains(&magnitude)) {
        return false;
    }
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let Some(dot) = digits.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (int, frac) = (&digits[..dot], &digits[dot + 1..]);
    if int.is_empty()
        || frac.is_empty()
        || !int.iter().chain(frac).all(u8::is_ascii_digit)
        || (int.len() > 1 && int[0] == b'0')
    {
        return false;
    }
    if magnitude == 0.0 && !int.iter().chain(frac).all(|&b| b == b'0') {
        // A decimal too small for a float (0.000...01): it reads as 0.0.
        return false;
    }
    let significant = if frac == b"0" {
        // A whole number: its digits up to the last nonzero one.
        int.iter()
            .rposition(|&b| b != b'0')
            .map_or(0, |last| last + 1)
    } else {
        if frac.last() == Some(&b'0') {
            return false;
        }
        let all = int.len() + frac.len();
        let leading = int
            .iter()
            .chain(frac)
            .position(|&b| b != b'0')
            .unwrap_or(all);
        all - leading
    };
    significant <= 15
}

/// An integer as the float `float(v)` is, as `repr` spells it: `v.0` when
/// the float holds it exactly (below 2**53, so below `repr`'s 1e16).
pub fn write_int_as_float(w: &mut JsonWriter, v: i64) {
    if v.unsigned_abs() <= 1 << 53 {
        w.put_i64(v);
        w.put(b".0");
    } else {
        write_float(w, v as f64);
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

    fn repr_of(text: &str) -> String {
        let value = parse_document(text).unwrap();
        let mut w = JsonWriter::new(false, 0);
        write_value(&mut w, &value);
        String::from_utf8(w.bytes().to_vec()).unwrap()
    }

    #[test]
    fn floats_already_as_repr_spells_them_are_kept() {
        // (text, repr of its float): kept or rewritten, always as repr.
        for (text, repr) in [
            ("22.0", "22.0"),
            ("-0.0", "-0.0"),
            ("0.5", "0.5"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("1700000000.0", "1700000000.0"),
            ("22.50", "22.5"),
            ("22.00", "22.0"),
            ("1.0e2", "100.0"),
            ("123456789012345.6", "123456789012345.6"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("0.1000000000000000055511151231257827", "0.1"),
            ("9999999999999999.0", "1e+16"),
            ("999999999999999.9", "999999999999999.9"),
        ] {
            assert_eq!(repr_of(text), repr, "{text}");
        }
        let mut w = JsonWriter::new(false, 0);
        for v in [0, -3, 1 << 53, (1 << 53) + 1, i64::MIN] {
            write_int_as_float(&mut w, v);
            w.push(b' ');
        }
        assert_eq!(
            String::from_utf8(w.bytes().to_vec()).unwrap(),
            "0.0 -3.0 9007199254740992.0 9007199254740992.0 -9.223372036854776e+18 "
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

    #[test]
    fn a_repeated_key_is_found_among_many() {
        let keys: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        let wide = format!("{{{}}}", keys.join(","));
        assert!(parse_document(&wide).is_ok());
        let repeated = format!("{{{},\"k50\":0}}", keys.join(","));
        assert_eq!(parse_document(&repeated), Err(Unsupported));
        assert_eq!(parse_document("{\"a\":1,\"a\":2}"), Err(Unsupported));
    }

    #[test]
    fn a_decimal_that_underflows_is_not_repr() {
        let tiny = format!("0.{}1", "0".repeat(400));
        assert!(!is_repr(tiny.as_bytes(), 0.0));
        assert!(is_repr(b"0.0", 0.0));
        assert!(is_repr(b"-0.0", -0.0));
    }
}
