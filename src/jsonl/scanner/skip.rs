//! Stepping over a whole value: validated, nothing built (a key the plan does
//! not read, or a line that is not an object), without recursion.

use super::{Scanner, SyntaxError};
use crate::errors::MAX_DEPTH;

/// The JSON type of a value, for "not a JSON object: array" messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Object,
    Array,
    String,
    Number,
    Boolean,
    Null,
}

impl ValueKind {
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Object => "object",
            ValueKind::Array => "array",
            ValueKind::String => "string",
            ValueKind::Number => "number",
            ValueKind::Boolean => "boolean",
            ValueKind::Null => "null",
        }
    }
}

impl Scanner<'_> {
    /// Validates the value at the cursor and steps over it, building nothing.
    /// `depth` is the number of containers around it.
    #[inline(always)]
    pub fn skip_value(&mut self, depth: usize) -> Result<ValueKind, SyntaxError> {
        match self.peek() {
            Some(b'{' | b'[') => self.skip_container(depth),
            _ => self.skip_scalar(),
        }
    }

    /// Steps over a value that is not a container.
    #[inline(always)]
    fn skip_scalar(&mut self) -> Result<ValueKind, SyntaxError> {
        let Some(b) = self.peek() else {
            return Err(SyntaxError::invalid(self.pos, "expected a value"));
        };
        match b {
            b'"' => {
                self.scan_string()?;
                Ok(ValueKind::String)
            }
            b'-' | b'0'..=b'9' => {
                self.skip_number()?;
                Ok(ValueKind::Number)
            }
            b't' | b'f' => {
                self.scan_bool()?;
                Ok(ValueKind::Boolean)
            }
            b'n' => {
                self.expect_word(b"null")?;
                Ok(ValueKind::Null)
            }
            b'N' => {
                self.expect_word(b"NaN")?;
                Ok(ValueKind::Number)
            }
            b'I' => {
                self.expect_word(b"Infinity")?;
                Ok(ValueKind::Number)
            }
            _ => Err(SyntaxError::invalid(self.pos, "expected a value")),
        }
    }

    /// `skip_value` for an object or array (the cursor is on `{` or `[`).
    /// Iterative, with the open containers as bits, so no input can exhaust
    /// the stack.
    #[inline(never)]
    fn skip_container(&mut self, depth: usize) -> Result<ValueKind, SyntaxError> {
        let kind = if self.buf[self.pos] == b'{' {
            ValueKind::Object
        } else {
            ValueKind::Array
        };
        // Bit i set: the container at level i is an object.
        let mut objects = [0u64; MAX_DEPTH / 64 + 1];
        let mut level = 0usize;
        let is_object =
            |objects: &[u64], level: usize| objects[level / 64] >> (level % 64) & 1 == 1;
        'open: loop {
            // The cursor is on `{` or `[`: open it.
            self.enter(depth + level)?;
            let object = self.buf[self.pos] == b'{';
            if object {
                objects[level / 64] |= 1 << (level % 64);
            } else {
                objects[level / 64] &= !(1 << (level % 64));
            }
            level += 1;
            self.pos += 1;
            self.skip_ws();
            let empty = if object {
                self.peek() == Some(b'}')
            } else {
                self.peek() == Some(b']')
            };
            if empty {
                self.pos += 1;
                level -= 1;
            } else {
                // The first member: key and value, or an item.
                if object {
                    if self.peek() != Some(b'"') {
                        return Err(SyntaxError::invalid(self.pos, "expected a string key"));
                    }
                    self.scan_string()?;
                    self.expect(b':', "expected ':'")?;
                    self.skip_ws();
                }
                if let Some(b'{' | b'[') = self.peek() {
                    continue 'open;
                }
                self.skip_scalar()?;
            }
            // After a value: close containers or move on to the next member.
            loop {
                if level == 0 {
                    return Ok(kind);
                }
                self.skip_ws();
                let object = is_object(&objects, level - 1);
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_ws();
                        if object {
                            if self.peek() != Some(b'"') {
                                return Err(SyntaxError::invalid(
                                    self.pos,
                                    "expected a string key",
                                ));
                            }
                            self.scan_string()?;
                            self.expect(b':', "expected ':'")?;
                            self.skip_ws();
                        }
                        if let Some(b'{' | b'[') = self.peek() {
                            continue 'open;
                        }
                        self.skip_scalar()?;
                    }
                    Some(b'}') if object => {
                        self.pos += 1;
                        level -= 1;
                    }
                    Some(b']') if !object => {
                        self.pos += 1;
                        level -= 1;
                    }
                    _ => {
                        let what = if object {
                            "expected ',' or '}'"
                        } else {
                            "expected ',' or ']'"
                        };
                        return Err(SyntaxError::invalid(self.pos, what));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonl::scanner::ErrorKind;

    fn skip(text: &str) -> Result<ValueKind, SyntaxError> {
        let mut sc = Scanner::new(text, 4300);
        sc.skip_ws();
        let k = sc.skip_value(0)?;
        sc.finish()?;
        Ok(k)
    }

    #[test]
    fn skips_whole_values() {
        assert_eq!(
            skip(
                r#" {"a": [1, 2.5, "x", null, true, false, NaN, -Infinity, {}], "b": {"c": []}} "#
            ),
            Ok(ValueKind::Object)
        );
        assert_eq!(skip("[]"), Ok(ValueKind::Array));
        assert_eq!(skip("\"s\""), Ok(ValueKind::String));
        assert_eq!(skip("Infinity"), Ok(ValueKind::Number));
        assert_eq!(skip("null"), Ok(ValueKind::Null));
        assert_eq!(skip("false"), Ok(ValueKind::Boolean));
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "{1:2}",
            "tru",
            "nul",
            "nan",
            "[1]x",
            "{'a':1}",
        ] {
            assert!(skip(bad).is_err(), "{bad}");
        }
        assert_eq!(
            skip("[1]]").unwrap_err(),
            SyntaxError::invalid(3, "extra data after the value")
        );
        assert_eq!(
            skip("{\"a\" 1}").unwrap_err(),
            SyntaxError::invalid(5, "expected ':'")
        );
        assert_eq!(
            skip("{\"a\":1 2}").unwrap_err(),
            SyntaxError::invalid(7, "expected ',' or '}'")
        );
    }

    #[test]
    fn depth_limit_is_an_error_not_a_crash() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(skip(&ok), Ok(ValueKind::Array));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(skip(&deep).unwrap_err().kind, ErrorKind::TooDeep);
        let very = "[{\"a\":".repeat(100_000);
        assert_eq!(skip(&very).unwrap_err().kind, ErrorKind::TooDeep);
    }
}
