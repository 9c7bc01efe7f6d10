//! Numbers: validated in one pass that also gathers the mantissa (eight digits
//! at a time), then converted to the int or float Python's json module gives.

use super::words::{digits_value, non_digits};
use super::{ErrorKind, Scanner, SyntaxError};

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

impl Scanner<'_> {
    /// Scans a number at the cursor (`-` or a digit; `-Infinity` too).
    #[inline]
    pub fn scan_number(&mut self) -> Result<Number, SyntaxError> {
        let lexed = self.lex_number()?;
        self.convert(lexed)
    }

    /// Validates a number and steps over it, converting nothing (`skip`).
    #[inline(always)]
    pub(super) fn skip_number(&mut self) -> Result<(), SyntaxError> {
        self.lex_number().map(|_| ())
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
}
