//! Byte-level JSON scanning shared by the object builder and the ndarray filler:
//! whitespace, strings (validated here, unescaped on demand), numbers (validated
//! and parsed to the values Python's `int()`/`float()` give), and skipping a whole
//! value without building anything. Pure Rust: no Python in this file.
//!
//! The grammar is the one Python's `json.loads` accepts: RFC 8259 plus the
//! constants `NaN`, `Infinity` and `-Infinity`; control characters inside
//! strings are errors (strict mode); whitespace is space, tab and CR. A `\n`
//! ends the line: the scanner never steps over one, so it can run over a whole
//! batch and stop where the line does (a `Scanner::document` treats it as
//! whitespace, for a request body that spans lines).

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

/// A scanned string: the raw bytes between the quotes are `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrSpan {
    pub start: usize,
    pub end: usize,
    /// True when the raw text holds a backslash escape (it must be decoded).
    pub escaped: bool,
}

/// A scanned number, classified the way Python's json module does: a fraction or
/// an exponent makes a float, otherwise an int.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    /// Above `i64::MAX`, at most `u64::MAX`.
    UInt(u64),
    /// An integer too big for 64 bits: its text is `start..end` of the line.
    BigInt {
        start: usize,
        end: usize,
    },
    Float(f64),
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Nonzero when some byte of `w` is zero. The lowest flagged byte is exact
/// (borrows only flag bytes above a real hit), so `trailing_zeros` finds it.
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

/// Flags bytes of `w` that end a run of plain string text: `"`, `\`, or a
/// control character (< 0x20).
#[inline(always)]
fn string_specials(w: u64) -> u64 {
    zero_bytes(w ^ (ONES * b'"' as u64))
        | zero_bytes(w ^ (ONES * b'\\' as u64))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

/// Offset of the first `\n` in `buf` at or after `from`, if any.
pub fn find_newline(buf: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while pos + 8 <= buf.len() {
        let w = u64::from_le_bytes(buf[pos..pos + 8].try_into().expect("8 bytes"));
        let m = zero_bytes(w ^ (ONES * b'\n' as u64));
        if m != 0 {
            return Some(pos + (m.trailing_zeros() / 8) as usize);
        }
        pos += 8;
    }
    buf[pos.min(buf.len())..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| pos + i)
}

/// Equality of short byte strings (keys) without a call to `memcmp`.
#[inline(always)]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i + 8 <= a.len() {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return false;
        }
        i += 8;
    }
    a[i..].iter().zip(&b[i..]).all(|(x, y)| x == y)
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

/// Flags the bytes of `w` that are not ASCII digits; the lowest flag is exact
/// (below it every byte is a digit, so no carry or borrow reaches it).
#[inline(always)]
fn non_digits(w: u64) -> u64 {
    (w.wrapping_add(ONES * 0x46) | w.wrapping_sub(ONES * 0x30)) & HIGHS
}

/// The value of the first `n` (1..=8) digit bytes of `w`, first byte most
/// significant (the SWAR method of Lemire's fast_float).
#[inline(always)]
fn digits_value(w: u64, n: usize) -> u64 {
    let mut v = w.wrapping_sub(ONES * 0x30);
    if n < 8 {
        v = (v & ((1u64 << (8 * n)) - 1)) << (8 * (8 - n));
    }
    v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let mask = 0x0000_00FF_0000_00FF;
    let mul1 = 100 + (1_000_000u64 << 32);
    let mul2 = 1 + (10_000u64 << 32);
    ((v & mask)
        .wrapping_mul(mul1)
        .wrapping_add(((v >> 16) & mask).wrapping_mul(mul2)))
        >> 32
}

const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Steps over a run of digits, eight at a time where the buffer allows,
/// adding them to `mantissa` while the total stays within 19 digits (past
/// that the mantissa is unused: `digits` says so).
#[inline(always)]
fn eat_digits(buf: &[u8], pos: &mut usize, mantissa: &mut u64, digits: &mut usize) {
    loop {
        if *pos + 8 <= buf.len() {
            let w = u64::from_le_bytes(buf[*pos..*pos + 8].try_into().expect("8 bytes"));
            let m = non_digits(w);
            let n = if m == 0 {
                8
            } else {
                (m.trailing_zeros() / 8) as usize
            };
            if n == 0 {
                return;
            }
            if *digits + n <= 19 {
                *mantissa = *mantissa * POW10_U64[n] + digits_value(w, n);
            }
            *digits += n;
            *pos += n;
            if n < 8 {
                return;
            }
        } else {
            while let Some(&d) = buf.get(*pos) {
                if !d.is_ascii_digit() {
                    return;
                }
                if *digits < 19 {
                    *mantissa = *mantissa * 10 + (d - b'0') as u64;
                }
                *digits += 1;
                *pos += 1;
            }
            return;
        }
    }
}

/// Exact powers of ten for the fast float path (all below 2^53 * 2^22 fit).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum LexedKind {
    #[default]
    Int,
    Float,
    NegInfinity,
}

/// A validated number before conversion (skipping a value stops here).
#[derive(Debug, Clone, Copy, Default)]
struct Lexed {
    kind: LexedKind,
    start: usize,
    end: usize,
    neg: bool,
    mantissa: u64,
    digits: usize,
    exp10: i64,
}

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
            // Jump over plain text eight bytes at a time.
            while pos + 8 <= buf.len() {
                let w = u64::from_le_bytes(buf[pos..pos + 8].try_into().expect("8 bytes"));
                let m = string_specials(w);
                if m != 0 {
                    pos += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                pos += 8;
            }
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

    /// Scans a number at the cursor (`-` or a digit; `-Infinity` too).
    #[inline]
    pub fn scan_number(&mut self) -> Result<Number, SyntaxError> {
        let lexed = self.lex_number()?;
        self.convert(lexed)
    }

    /// Validates a number and collects what converting it needs.
    #[inline(always)]
    fn lex_number(&mut self) -> Result<Lexed, SyntaxError> {
        let buf = self.buf;
        let start = self.pos;
        let mut pos = start;
        let neg = buf[pos] == b'-';
        if neg {
            pos += 1;
            if buf.get(pos) == Some(&b'I') {
                self.pos = pos;
                self.expect_word(b"Infinity")
                    .map_err(|_| SyntaxError::invalid(start, "invalid number"))?;
                return Ok(Lexed {
                    kind: LexedKind::NegInfinity,
                    ..Lexed::default()
                });
            }
        }
        // Digits go into `mantissa` while they fit; `digits` counts every digit
        // taken, so more than 19 means the fast paths are off.
        let mut mantissa: u64 = 0;
        let mut digits: usize = 0;
        match buf.get(pos) {
            Some(b'0') => {
                pos += 1;
                digits = 1;
            }
            Some(b'1'..=b'9') => eat_digits(buf, &mut pos, &mut mantissa, &mut digits),
            _ => return Err(SyntaxError::invalid(start, "invalid number")),
        }
        let int_digits = digits;
        let mut is_float = false;
        let mut frac_digits: i64 = 0;
        if buf.get(pos) == Some(&b'.') {
            is_float = true;
            pos += 1;
            let frac_start = pos;
            eat_digits(buf, &mut pos, &mut mantissa, &mut digits);
            frac_digits = (pos - frac_start) as i64;
            if pos == frac_start {
                return Err(SyntaxError::invalid(pos, "invalid number"));
            }
        }
        let mut exp: i64 = 0;
        if let Some(b'e' | b'E') = buf.get(pos) {
            is_float = true;
            pos += 1;
            let exp_neg = match buf.get(pos) {
                Some(b'-') => {
                    pos += 1;
                    true
                }
                Some(b'+') => {
                    pos += 1;
                    false
                }
                _ => false,
            };
            let exp_start = pos;
            while let Some(&d) = buf.get(pos) {
                if !d.is_ascii_digit() {
                    break;
                }
                exp = (exp * 10 + (d - b'0') as i64).min(1 << 40);
                pos += 1;
            }
            if pos == exp_start {
                return Err(SyntaxError::invalid(pos, "invalid number"));
            }
            if exp_neg {
                exp = -exp;
            }
        }
        if !is_float && int_digits > 19 && self.int_limit > 0 && int_digits > self.int_limit {
            return Err(SyntaxError {
                pos: start,
                kind: ErrorKind::IntTooLong {
                    digits: int_digits,
                    limit: self.int_limit,
                },
            });
        }
        self.pos = pos;
        Ok(Lexed {
            kind: if is_float {
                LexedKind::Float
            } else {
                LexedKind::Int
            },
            start,
            end: pos,
            neg,
            mantissa,
            digits,
            exp10: exp - frac_digits,
        })
    }

    #[inline]
    fn convert(&self, n: Lexed) -> Result<Number, SyntaxError> {
        Ok(match n.kind {
            LexedKind::NegInfinity => Number::Float(f64::NEG_INFINITY),
            LexedKind::Int => {
                if n.digits <= 19 {
                    if !n.neg {
                        return Ok(match i64::try_from(n.mantissa) {
                            Ok(v) => Number::Int(v),
                            Err(_) => Number::UInt(n.mantissa),
                        });
                    }
                    if n.mantissa <= 1u64 << 63 {
                        return Ok(Number::Int((n.mantissa as i128).wrapping_neg() as i64));
                    }
                }
                Number::BigInt {
                    start: n.start,
                    end: n.end,
                }
            }
            LexedKind::Float => {
                // Clinger's fast path: an exact mantissa times an exact power of
                // ten is one correctly rounded operation.
                if n.digits <= 19 && n.mantissa <= (1u64 << 53) && (-22..=22).contains(&n.exp10) {
                    let m = n.mantissa as f64;
                    let v = if n.exp10 >= 0 {
                        m * POW10[n.exp10 as usize]
                    } else {
                        m / POW10[(-n.exp10) as usize]
                    };
                    return Ok(Number::Float(if n.neg { -v } else { v }));
                }
                // The standard library's parser is correctly rounded, like
                // Python's float(), and accepts every JSON number.
                let v = self.text[n.start..n.end]
                    .parse()
                    .map_err(|_| SyntaxError::invalid(n.start, "invalid number"))?;
                Number::Float(v)
            }
        })
    }

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
                self.lex_number()?;
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

    fn number(text: &str) -> Result<Number, SyntaxError> {
        let mut sc = Scanner::new(text, 4300);
        let n = sc.scan_number()?;
        sc.finish()?;
        Ok(n)
    }

    fn float(text: &str) -> f64 {
        match number(text) {
            Ok(Number::Float(v)) => v,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn skip(text: &str) -> Result<ValueKind, SyntaxError> {
        let mut sc = Scanner::new(text, 4300);
        sc.skip_ws();
        let k = sc.skip_value(0)?;
        sc.finish()?;
        Ok(k)
    }

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
    fn integers_by_size() {
        assert_eq!(number("0"), Ok(Number::Int(0)));
        assert_eq!(number("-0"), Ok(Number::Int(0)));
        assert_eq!(number("42"), Ok(Number::Int(42)));
        assert_eq!(number("-9223372036854775808"), Ok(Number::Int(i64::MIN)));
        assert_eq!(number("9223372036854775807"), Ok(Number::Int(i64::MAX)));
        assert_eq!(number("9223372036854775808"), Ok(Number::UInt(1 << 63)));
        assert_eq!(
            number("9999999999999999999"),
            Ok(Number::UInt(9_999_999_999_999_999_999))
        );
        assert_eq!(
            number("-9223372036854775809"),
            Ok(Number::BigInt { start: 0, end: 20 })
        );
        assert_eq!(
            number("18446744073709551615"),
            Ok(Number::BigInt { start: 0, end: 20 })
        );
    }

    #[test]
    fn integer_digit_limit() {
        let long = "7".repeat(4301);
        let err = number(&long).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::IntTooLong {
                digits: 4301,
                limit: 4300
            }
        );
        assert!(number(&"7".repeat(4300)).is_ok());
        // Floats have no digit limit, and 0 means no limit.
        assert!(matches!(number(&format!("{long}.5")), Ok(Number::Float(_))));
        let mut sc = Scanner::new(&long, 0);
        assert!(matches!(sc.scan_number(), Ok(Number::BigInt { .. })));
    }

    #[test]
    fn floats_round_like_python() {
        assert_eq!(float("1.5"), 1.5);
        assert_eq!(float("0.1"), 0.1);
        assert_eq!(float("1e5"), 100000.0);
        assert_eq!(float("1E+2"), 100.0);
        assert_eq!(float("2.5e-3"), 0.0025);
        assert_eq!(float("1e400"), f64::INFINITY);
        assert_eq!(float("-1e400"), f64::NEG_INFINITY);
        assert_eq!(float("1e-400"), 0.0);
        assert!(float("-0.0").is_sign_negative());
        assert_eq!(float("-0.0"), 0.0);
        assert_eq!(float("4.9406564584124654e-324"), 5e-324);
        assert_eq!(float("1.7976931348623157e308"), f64::MAX);
        assert_eq!(float("0.30000000000000004"), 0.30000000000000004);
        assert_eq!(
            float("123456789012345678901234567890.5"),
            1.2345678901234568e29
        );
        assert_eq!(float("9007199254740993.0"), 9007199254740992.0);
        assert_eq!(float("1e99999999999999999999"), f64::INFINITY);
        assert_eq!(float("-Infinity"), f64::NEG_INFINITY);
        for text in [
            "0.1",
            "3.14159",
            "1e22",
            "1e23",
            "8.98846567431158e307",
            "2.2250738585072014e-308",
        ] {
            assert_eq!(float(text), text.parse::<f64>().unwrap(), "{text}");
        }
    }

    /// A small deterministic generator for the exhaustive-ish checks below.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn digit_runs_of_every_length_and_offset() {
        let mut seed = 7;
        for len in 1..=24 {
            for pad in 0..9 {
                let mut digits: String = (0..len)
                    .map(|_| char::from(b'0' + (lcg(&mut seed) % 10) as u8))
                    .collect();
                if digits.starts_with('0') && len > 1 {
                    digits.replace_range(0..1, "7");
                }
                for tail in ["", ",", "]", ".5", "e3", " "] {
                    let text = format!("{}{}{}", " ".repeat(pad), digits, tail);
                    let mut sc = Scanner::new(&text, 0);
                    sc.skip_ws();
                    let n = sc.scan_number().unwrap();
                    let expected: u128 = digits.parse().unwrap();
                    match (n, tail) {
                        (Number::Int(v), _) => assert_eq!(v as u128, expected, "{text}"),
                        (Number::UInt(v), _) => assert_eq!(v as u128, expected, "{text}"),
                        (Number::BigInt { start, end }, _) => {
                            assert!(len > 19);
                            assert_eq!(&text[start..end], digits);
                        }
                        (Number::Float(v), _) => {
                            let t = format!("{digits}{tail}");
                            assert_eq!(v, t.parse::<f64>().unwrap(), "{text}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn random_floats_round_like_std() {
        let mut seed = 11;
        for _ in 0..20_000 {
            let int_len = (lcg(&mut seed) % 6) as usize;
            let frac_len = 1 + (lcg(&mut seed) % 22) as usize;
            let int: String = if int_len == 0 {
                "0".into()
            } else {
                let mut t: String = (0..int_len)
                    .map(|_| char::from(b'0' + (lcg(&mut seed) % 10) as u8))
                    .collect();
                t.replace_range(0..1, "3");
                t
            };
            let frac: String = (0..frac_len)
                .map(|_| char::from(b'0' + (lcg(&mut seed) % 10) as u8))
                .collect();
            let exp = match lcg(&mut seed) % 4 {
                0 => String::new(),
                1 => format!("e{}", lcg(&mut seed) % 30),
                2 => format!("e-{}", lcg(&mut seed) % 330),
                _ => format!("E+{}", lcg(&mut seed) % 310),
            };
            let sign = if lcg(&mut seed) % 2 == 0 { "-" } else { "" };
            let text = format!("{sign}{int}.{frac}{exp}");
            assert_eq!(
                float(&text).to_bits(),
                text.parse::<f64>().unwrap().to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_numbers() {
        for text in [
            "-", "01", "1.", ".5", "1e", "1e+", "+1", "-a", "1.e5", "--1", "-Inf", "0x10",
        ] {
            assert!(number(text).is_err(), "{text}");
        }
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

    #[test]
    fn newlines_found_at_any_offset() {
        for n in 0..40 {
            let mut data = vec![b'x'; 40];
            data[n] = b'\n';
            assert_eq!(find_newline(&data, 0), Some(n));
            assert_eq!(find_newline(&data, n + 1), None);
        }
        assert_eq!(find_newline(b"", 0), None);
        assert_eq!(find_newline(b"ab", 5), None);
    }
}
