//! Strings: validated in the scan (eight bytes at a time over plain text), their
//! escapes decoded only when a caller needs the text.

use super::words::skip_plain_text;
use super::{Scanner, SyntaxError};

/// A scanned string: the raw bytes between the quotes are `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrSpan {
    pub start: usize,
    pub end: usize,
    /// True when the raw text holds a backslash escape (it must be decoded).
    pub escaped: bool,
}

#[inline(always)]
fn hex_value(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as u32),
        b'a'..=b'f' => Some((b - b'a' + 10) as u32),
        b'A'..=b'F' => Some((b - b'A' + 10) as u32),
        _ => None,
    }
}

impl<'a> Scanner<'a> {
    /// Scans a string whose opening quote is at the cursor; leaves the cursor
    /// after the closing quote. Escapes are validated, not decoded.
    #[inline(always)]
    pub fn scan_string(&mut self) -> Result<StrSpan, SyntaxError> {
        let open = self.pos;
        let start = open + 1;
        let buf = self.buf;
        let mut pos = start;
        let mut escaped = false;
        loop {
            pos = skip_plain_text(buf, pos);
            let Some(&b) = buf.get(pos) else {
                return Err(SyntaxError::invalid(open, "unterminated string"));
            };
            match b {
                b'"' => {
                    self.pos = pos + 1;
                    return Ok(StrSpan {
                        start,
                        end: pos,
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    match buf.get(pos + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 2,
                        Some(b'u') => {
                            let hex = buf.get(pos + 2..pos + 6);
                            match hex {
                                Some(h) if h.iter().all(|&c| hex_value(c).is_some()) => pos += 6,
                                _ => {
                                    return Err(SyntaxError::invalid(pos, "invalid \\uXXXX escape"))
                                }
                            }
                        }
                        None | Some(b'\n') => {
                            return Err(SyntaxError::invalid(open, "unterminated string"))
                        }
                        Some(_) => return Err(SyntaxError::invalid(pos, "invalid escape")),
                    }
                }
                // The end of the line: the same error as the end of the text.
                b'\n' if !self.multiline => {
                    return Err(SyntaxError::invalid(open, "unterminated string"))
                }
                0x00..=0x1F => {
                    return Err(SyntaxError::invalid(pos, "control character in string"));
                }
                _ => pos += 1,
            }
        }
    }

    /// The raw text of a scanned string (valid UTF-8: quotes are ASCII, so the
    /// span starts and ends on character boundaries).
    #[inline(always)]
    pub fn raw_str(&self, span: StrSpan) -> &'a str {
        &self.text[span.start..span.end]
    }
}

/// Why an escaped string could not be decoded to a Rust `String`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoneSurrogate;

/// Decodes the escapes of a validated raw string into `out` (cleared first).
/// A `\uD800`-style escape without its pair is a valid Python str but not a
/// Rust one: the caller falls back to Python for that line.
pub fn decode_escaped(raw: &str, out: &mut String) -> Result<(), LoneSurrogate> {
    out.clear();
    let bytes = raw.as_bytes();
    let mut i = 0;
    let mut plain = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&raw[plain..i]);
        let c = bytes[i + 1];
        i += 2;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => {
                let hi = hex4(&bytes[i..i + 4]);
                i += 4;
                if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate pairs only with an escaped low one right after.
                    if bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u') {
                        let lo = hex4(&bytes[i + 2..i + 6]);
                        if (0xDC00..0xE000).contains(&lo) {
                            i += 6;
                            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            char::from_u32(cp).ok_or(LoneSurrogate)?
                        } else {
                            return Err(LoneSurrogate);
                        }
                    } else {
                        return Err(LoneSurrogate);
                    }
                } else {
                    char::from_u32(hi).ok_or(LoneSurrogate)?
                }
            }
        };
        out.push(ch);
        plain = i;
    }
    out.push_str(&raw[plain..]);
    Ok(())
}

fn hex4(h: &[u8]) -> u32 {
    h.iter()
        .fold(0, |acc, &c| (acc << 4) | hex_value(c).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonl::scanner::{ErrorKind, Scanner};

    fn string(text: &str) -> Result<String, SyntaxError> {
        let mut sc = Scanner::new(text, 0);
        let span = sc.scan_string()?;
        sc.finish()?;
        let mut out = String::new();
        if span.escaped {
            decode_escaped(sc.raw_str(span), &mut out).expect("no lone surrogate");
        } else {
            out.push_str(sc.raw_str(span));
        }
        Ok(out)
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(string(r#""""#).unwrap(), "");
        assert_eq!(
            string(r#""plain text long enough for a word""#).unwrap(),
            "plain text long enough for a word"
        );
        assert_eq!(
            string(r#""a\"b\\c\/d\b\f\n\r\t""#).unwrap(),
            "a\"b\\c/d\u{8}\u{c}\n\r\t"
        );
        assert_eq!(string(r#""\u00e9\u4e2D""#).unwrap(), "é中");
        assert_eq!(string(r#""\ud83d\ude00!""#).unwrap(), "😀!");
        assert_eq!(string("\"héllo wörld 😀\"").unwrap(), "héllo wörld 😀");
        let mut out = String::new();
        assert_eq!(decode_escaped(r"\ud800", &mut out), Err(LoneSurrogate));
        assert_eq!(decode_escaped(r"\udc00x", &mut out), Err(LoneSurrogate));
        assert_eq!(
            decode_escaped(r"\ud800\u0041", &mut out),
            Err(LoneSurrogate)
        );
    }

    #[test]
    fn bad_strings() {
        let err = string("\"abc").unwrap_err();
        assert_eq!(err, SyntaxError::invalid(0, "unterminated string"));
        assert_eq!(
            string("\"ab\\").unwrap_err().kind,
            ErrorKind::Invalid("unterminated string")
        );
        assert_eq!(
            string("\"a\\x\"").unwrap_err(),
            SyntaxError::invalid(2, "invalid escape")
        );
        assert_eq!(
            string("\"a\\u12g4\"").unwrap_err().kind,
            ErrorKind::Invalid("invalid \\uXXXX escape")
        );
        assert_eq!(
            string("\"a\\u12\"").unwrap_err().kind,
            ErrorKind::Invalid("invalid \\uXXXX escape")
        );
        // A control character anywhere, including past the word-at-a-time part.
        for at in 0..20 {
            let text = format!("\"{}\t{}\"", "x".repeat(at), "y".repeat(20));
            assert_eq!(
                string(&text).unwrap_err(),
                SyntaxError::invalid(at + 1, "control character in string"),
                "{at}"
            );
        }
        assert!(string("\"a\u{7f}b\"").is_ok());
    }
}
