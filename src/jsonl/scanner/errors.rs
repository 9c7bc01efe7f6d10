//! What went wrong on a line, and where: a syntax error's byte offset becomes
//! a 1-based character column in the message.

use super::{Scanner, ValueKind};
use crate::errors::MAX_DEPTH;

/// What went wrong, and where (a byte offset in the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: usize,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not JSON: the text says what was expected or found.
    Invalid(&'static str),
    /// A container nested deeper than `MAX_DEPTH`.
    TooDeep,
    /// An integer with more digits than `sys.get_int_max_str_digits()` allows
    /// (Python's `json.loads` refuses it too).
    IntTooLong { digits: usize, limit: usize },
}

impl SyntaxError {
    pub fn invalid(pos: usize, what: &'static str) -> Self {
        SyntaxError {
            pos,
            kind: ErrorKind::Invalid(what),
        }
    }

    /// The message for the errors list; `line` is the text the offset refers to.
    pub fn message(&self, line: &[u8]) -> String {
        let column = column_at(line, self.pos);
        match &self.kind {
            ErrorKind::Invalid(what) => format!("invalid JSON at column {column}: {what}"),
            ErrorKind::TooDeep => {
                format!("invalid JSON at column {column}: nesting deeper than {MAX_DEPTH} levels")
            }
            ErrorKind::IntTooLong { digits, limit } => format!(
                "invalid JSON at column {column}: an integer with {digits} digits exceeds \
                 the limit of {limit} digits (sys.set_int_max_str_digits)"
            ),
        }
    }
}

/// Why a line gives no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    Syntax(SyntaxError),
    NotObject(ValueKind),
    Other(String),
}

impl LineError {
    /// The message for the errors list; `line` is the raw line, which starts
    /// at `line_start` in the scanned text.
    pub fn message(&self, line: &[u8], line_start: usize) -> String {
        match self {
            LineError::Syntax(e) => SyntaxError {
                pos: e.pos.saturating_sub(line_start),
                kind: e.kind.clone(),
            }
            .message(line),
            LineError::NotObject(kind) => format!("not a JSON object: {}", kind.name()),
            LineError::Other(msg) => msg.clone(),
        }
    }
}

impl From<SyntaxError> for LineError {
    fn from(e: SyntaxError) -> Self {
        LineError::Syntax(e)
    }
}

/// The error for a line whose value (at the cursor) is not an object.
pub fn not_an_object(sc: &mut Scanner<'_>) -> LineError {
    match sc.skip_value(0).and_then(|kind| sc.finish().map(|_| kind)) {
        Ok(kind) => LineError::NotObject(kind),
        Err(e) => LineError::Syntax(e),
    }
}

/// 1-based column in characters of byte offset `pos` (UTF-8 continuation
/// bytes do not start a character).
pub fn column_at(line: &[u8], pos: usize) -> usize {
    let end = pos.min(line.len());
    line[..end].iter().filter(|&&b| (b & 0xC0) != 0x80).count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters() {
        assert_eq!(column_at(b"abc", 0), 1);
        assert_eq!(column_at("é€x".as_bytes(), 5), 3);
        let err = SyntaxError::invalid(6, "expected ',' or '}'");
        assert_eq!(
            err.message("{\"é\":1 2}".as_bytes()),
            "invalid JSON at column 6: expected ',' or '}'"
        );
    }
}
