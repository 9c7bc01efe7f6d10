//! Floats spelled exactly as Python's `json.dumps` spells them
//! (`float.__repr__`: shortest round-trip digits), and half floats widened.

use super::writer::JsonWriter;
use super::NonFinite;

/// Scratch space for one float's text.
pub struct FloatText {
    shortest: zmij::Buffer,
    /// Only written (whole) when a float needs re-laying out.
    relaid: std::mem::MaybeUninit<[u8; 32]>,
}

impl FloatText {
    pub fn new() -> Self {
        FloatText {
            shortest: zmij::Buffer::new(),
            relaid: std::mem::MaybeUninit::uninit(),
        }
    }

    /// `v` as `repr(v)` spells it: `1.0`, `0.0001`, `1e-05`, `1e+16`,
    /// `1.5e+300`, `-0.0`; NaN and infinities as json.dumps spells them when
    /// `allow_nan`, else an error.
    ///
    /// zmij finds the same shortest round-trip digits as Python's repr (the
    /// shortest string that reads back as `v`, the closest one on a tie) and
    /// lays them out like repr for 1e-4 <= |v| < 1e16: plain decimals, `.0` on
    /// whole numbers. Outside that range the digits are re-laid out the way
    /// repr does it.
    #[inline(always)]
    pub fn format(&mut self, v: f64, allow_nan: bool) -> Result<&[u8], NonFinite> {
        let magnitude = v.abs();
        if (1e-4..1e16).contains(&magnitude) || magnitude == 0.0 {
            return Ok(self.shortest.format_finite(v).as_bytes());
        }
        if v.is_finite() {
            let out = self.relaid.write([0; 32]);
            return Ok(relayout(self.shortest.format_finite(v).as_bytes(), out));
        }
        if !allow_nan {
            return Err(NonFinite(v));
        }
        // The spellings json.dumps uses; not standard JSON, hence opt-in.
        Ok(if v.is_nan() {
            b"NaN"
        } else if v > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        })
    }
}

/// Appends `v` as [`FloatText::format`] spells it.
#[inline(always)]
pub fn write_f64(w: &mut JsonWriter, v: f64, allow_nan: bool) -> Result<(), NonFinite> {
    let mut text = FloatText::new();
    w.put(text.format(v, allow_nan)?);
    Ok(())
}

/// Re-lays out any plain or exponent float text (`-0.00001234`, `1.5e300`,
/// `1e-7`) the way Python's repr does: exponent form when the decimal point
/// position is below -3 or above 16, else plain with `.0` on whole numbers.
#[cold]
#[inline(never)]
fn relayout<'a>(text: &[u8], out: &'a mut [u8; 32]) -> &'a [u8] {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exp) = match body.iter().position(|&b| b == b'e' || b == b'E') {
        Some(e) => (&body[..e], parse_exp(&body[e + 1..])),
        None => (body, 0),
    };
    // Significant digits and the decimal point position: value = 0.DIGITS * 10^point.
    let mut digits = [0u8; 24];
    let mut n = 0usize;
    let mut point: i32 = 0;
    let mut seen_dot = false;
    for &b in mantissa {
        if b == b'.' {
            seen_dot = true;
        } else if n == 0 && b == b'0' {
            if seen_dot {
                point -= 1;
            }
        } else if n < digits.len() {
            digits[n] = b;
            n += 1;
            if !seen_dot {
                point += 1;
            }
        }
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    if n == 0 {
        digits[0] = b'0';
        n = 1;
        point = 1;
    }
    point += exp;

    let mut len = 0usize;
    let mut emit = |b: u8| {
        out[len] = b;
        len += 1;
    };
    if negative {
        emit(b'-');
    }
    if point <= -4 || point > 16 {
        emit(digits[0]);
        if n > 1 {
            emit(b'.');
            digits[1..n].iter().for_each(|&d| emit(d));
        }
        let e = point - 1;
        emit(b'e');
        emit(if e < 0 { b'-' } else { b'+' });
        // At least two digits, as repr writes them.
        let e = e.unsigned_abs();
        if e < 10 {
            emit(b'0');
        }
        itoa::Buffer::new().format(e).bytes().for_each(&mut emit);
    } else if point <= 0 {
        emit(b'0');
        emit(b'.');
        (0..-point).for_each(|_| emit(b'0'));
        digits[..n].iter().for_each(|&d| emit(d));
    } else if (point as usize) < n {
        digits[..point as usize].iter().for_each(|&d| emit(d));
        emit(b'.');
        digits[point as usize..n].iter().for_each(|&d| emit(d));
    } else {
        digits[..n].iter().for_each(|&d| emit(d));
        (n..point as usize).for_each(|_| emit(b'0'));
        emit(b'.');
        emit(b'0');
    }
    &out[..len]
}

fn parse_exp(text: &[u8]) -> i32 {
    let (sign, digits) = match text.split_first() {
        Some((b'-', rest)) => (-1, rest),
        Some((b'+', rest)) => (1, rest),
        _ => (1, text),
    };
    sign * digits
        .iter()
        .fold(0i32, |acc, &d| acc * 10 + i32::from(d.wrapping_sub(b'0')))
}

/// The exact value of an IEEE half-precision float (what `float(np.float16(x))` gives).
pub fn f16_to_f64(bits: u16) -> f64 {
    let negative = bits & 0x8000 != 0;
    let exp = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    let magnitude = match exp {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1024.0 + mantissa) * 2f64.powi(exp - 25),
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(v: f64) -> String {
        let mut w = JsonWriter::new(false, 0);
        write_f64(&mut w, v, false).unwrap();
        String::from_utf8(w.bytes().to_vec()).unwrap()
    }

    /// Python's layout of Rust's shortest digits (`{:e}` is shortest round-trip).
    fn oracle(v: f64) -> String {
        let mut out = [0u8; 32];
        String::from_utf8(relayout(format!("{v:e}").as_bytes(), &mut out).to_vec()).unwrap()
    }

    /// Ours equals the oracle, except on an exact tie between two shortest
    /// candidates, where Rust rounds half up and Python (and we) half to even.
    fn check(v: f64) {
        let (ours, theirs) = (repr(v), oracle(v));
        if ours == theirs {
            return;
        }
        assert_eq!(
            ours.parse::<f64>().unwrap(),
            v,
            "ours must read back: {ours}"
        );
        assert_eq!(
            ours.len(),
            theirs.len(),
            "tie candidates are equally short: {ours} {theirs}"
        );
        let last = ours
            .trim_end_matches(".0")
            .bytes()
            .rfind(u8::is_ascii_digit)
            .unwrap();
        assert_eq!(
            (last - b'0') % 2,
            0,
            "a tie goes to the even digit: {ours} vs {theirs}"
        );
    }

    #[test]
    fn random_doubles_match_the_shortest_digits() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..300_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match i % 4 {
                0 => f64::from_bits(x),
                1 => (x >> 11) as f64 / (1u64 << 53) as f64,
                2 => f64::from(f32::from_bits(x as u32)),
                _ => f64::from_bits(x & 0x800F_FFFF_FFFF_FFFF | (u64::from(i) % 2046 + 1) << 52),
            };
            if v.is_finite() {
                check(v);
            }
        }
    }

    #[test]
    fn edge_doubles_match_the_shortest_digits() {
        let mut cases = vec![
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::EPSILON,
            5e-324,
            1e-323,
            1.5e-323,
            2.5e-323,
        ];
        for e in -330..310 {
            let p = format!("1e{e}").parse::<f64>().unwrap();
            cases.extend([p, p * 1.5, p * 9.999999999999999, p * 0.9999999999999999]);
            cases.push(f64::from_bits(p.to_bits() + 1));
            cases.push(f64::from_bits(p.to_bits().saturating_sub(1)));
        }
        for b in 1..=2046u64 {
            cases.push(f64::from_bits(b << 52));
            cases.push(f64::from_bits((b << 52) - 1));
        }
        for v in cases {
            if v.is_finite() && v != 0.0 {
                check(v);
                check(-v);
            }
        }
    }

    #[test]
    fn floats_match_python_repr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (1e-05, "1e-05"),
            (-1.5e-05, "-1.5e-05"),
            (1.2345e-05, "1.2345e-05"),
            (1e-07, "1e-07"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e22, "1e+22"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (123.456, "123.456"),
            (f64::from(0.1f32), "0.10000000149011612"),
        ];
        for (v, want) in cases {
            assert_eq!(repr(*v), *want, "repr of {v:e}");
        }
    }

    #[test]
    fn relayout_handles_every_shape() {
        let mut out = [0u8; 32];
        let cases: &[(&str, &str)] = &[
            ("0.00001234", "1.234e-05"),
            ("-0.00001", "-1e-05"),
            ("1e-7", "1e-07"),
            ("1.5e300", "1.5e+300"),
            ("1e16", "1e+16"),
            ("5e-324", "5e-324"),
            ("123.45", "123.45"),
            ("1234e2", "123400.0"),
            ("0.5e-3", "0.0005"),
            ("0.0", "0.0"),
            ("-1.7976931348623157e+308", "-1.7976931348623157e+308"),
        ];
        for (text, want) in cases {
            let got = relayout(text.as_bytes(), &mut out);
            assert_eq!(
                std::str::from_utf8(got).unwrap(),
                *want,
                "relayout of {text}"
            );
        }
    }

    #[test]
    fn half_floats_are_exact() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x2e66), 0.0999755859375);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
        assert!(f16_to_f64(0x7c00).is_infinite());
        assert!(f16_to_f64(0x7e00).is_nan());
        assert!(f16_to_f64(0x8000).is_sign_negative());
    }
}
