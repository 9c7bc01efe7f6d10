//! Byte-level JSON scanning shared by the object builder and the ndarray filler.
//! One job per file: the cursor and its tokens (here); `strings` (validated in
//! the scan, unescaped on demand); `numbers` (validated and parsed to the values
//! Python's `int()`/`float()` give); `skip` (stepping over a whole value,
//! building nothing); `errors` (what went wrong, and where); `words` (eight
//! bytes at a time). Pure Rust: no Python in this module.
//!
//! The grammar is the one Python's `json.loads` accepts: RFC 8259 plus the
//! constants `NaN`, `Infinity` and `-Infinity`; control characters inside
//! strings are errors (strict mode); whitespace is space, tab and CR. A `\n`
//! ends the line: the scanner never steps over one, so it can run over a whole
//! batch and stop where the line does (a `Scanner::document` treats it as
//! whitespace, for a request body that spans lines).

mod errors;
mod numbers;
mod skip;
mod strings;
mod words;

pub use errors::{column_at, not_an_object, ErrorKind, LineError, SyntaxError};
pub use numbers::Number;
pub use skip::ValueKind;
pub use strings::{decode_escaped, StrSpan};
pub use words::{bytes_eq, find_newline, holds_constant_word, skip_plain_text};

use crate::errors::MAX_DEPTH;

/// A cursor over one line of JSON text.
pub struct Scanner<'a> {
    pub text: &'a str,
    pub buf: &'a [u8],
    pub pos: usize,
    /// `sys.get_int_max_str_digits()` (0: no limit).
    pub int_limit: usize,
    /// A whole document, not one line: `\n` is whitespace (see `document`).
    pub multiline: bool,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str, int_limit: usize) -> Self {
        Scanner {
            text,
            buf: text.as_bytes(),
            pos: 0,
            int_limit,
            multiline: false,
        }
    }

    /// A cursor over a JSON document that may span lines (a request body):
    /// `\n` is whitespace between tokens; inside a string it is an error.
    pub fn document(text: &'a str, int_limit: usize) -> Self {
        Scanner {
            multiline: true,
            ..Scanner::new(text, int_limit)
        }
    }

    #[inline(always)]
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline(always)]
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline(always)]
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            // Compact JSON has no whitespace: one comparison settles it. A `\n`
            // ends the line, so it is not whitespace here.
            if b > b' ' {
                break;
            }
            if b == b' ' || b == b'\r' || b == b'\t' || (b == b'\n' && self.multiline) {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Consumes `byte` (after optional whitespace) or fails with `what`.
    #[inline(always)]
    pub fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), SyntaxError> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(SyntaxError::invalid(self.pos, what))
        }
    }

    /// Consumes the literal `word` (already matched on its first byte).
    #[inline(always)]
    pub fn expect_word(&mut self, word: &'static [u8]) -> Result<(), SyntaxError> {
        let end = self.pos + word.len();
        if end <= self.buf.len()
            && word
                .iter()
                .zip(&self.buf[self.pos..end])
                .all(|(a, b)| a == b)
        {
            self.pos += word.len();
            Ok(())
        } else {
            Err(SyntaxError::invalid(self.pos, "expected a value"))
        }
    }

    /// Consumes `true` or `false` (the cursor is on `t` or `f`).
    pub fn scan_bool(&mut self) -> Result<bool, SyntaxError> {
        if self.buf[self.pos] == b't' {
            self.expect_word(b"true")?;
            Ok(true)
        } else {
            self.expect_word(b"false")?;
            Ok(false)
        }
    }

    /// Checks that a container opened at `depth` stays within `MAX_DEPTH`.
    #[inline(always)]
    pub fn enter(&self, depth: usize) -> Result<(), SyntaxError> {
        if depth >= MAX_DEPTH {
            Err(SyntaxError {
                pos: self.pos,
                kind: ErrorKind::TooDeep,
            })
        } else {
            Ok(())
        }
    }

    /// After the top-level value: only whitespace may follow on the line (the
    /// cursor stops on the `\n` ending it, if any).
    pub fn finish(&mut self) -> Result<(), SyntaxError> {
        self.skip_ws();
        if self.at_end() || self.buf[self.pos] == b'\n' {
            Ok(())
        } else {
            Err(SyntaxError::invalid(self.pos, "extra data after the value"))
        }
    }
}
