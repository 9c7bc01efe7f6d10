//! Eight bytes at a time (SWAR): finding a byte, the end of plain string text or
//! of a digit run in a `u64` word, and the value of up to eight digits at once.

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
pub(super) fn string_specials(w: u64) -> u64 {
    zero_bytes(w ^ (ONES * b'"' as u64))
        | zero_bytes(w ^ (ONES * b'\\' as u64))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

/// From `pos`, eight bytes at a time, to the first byte that may end a run of
/// plain string text (`"`, `\`, a control character); near the end of `buf`,
/// where the last whole word ends (the caller reads the rest byte by byte).
#[inline(always)]
pub fn skip_plain_text(buf: &[u8], mut pos: usize) -> usize {
    while pos + 8 <= buf.len() {
        let w = u64::from_le_bytes(buf[pos..pos + 8].try_into().expect("8 bytes"));
        let m = string_specials(w);
        if m != 0 {
            return pos + (m.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    pos
}

/// Whether `buf` holds the word `NaN` or `Infinity` anywhere, strings
/// included: the words Python's `json` reads that JSON does not have. Eight
/// bytes at a time to each `N` or `I`, which is then compared whole; a body
/// without either word (nearly every one) is passed over at word speed, and
/// one with them is then searched exactly (outside strings) by the caller.
pub fn holds_constant_word(buf: &[u8]) -> bool {
    let at = |p: usize| buf[p..].starts_with(b"NaN") || buf[p..].starts_with(b"Infinity");
    let mut pos = 0;
    while pos + 8 <= buf.len() {
        let w = u64::from_le_bytes(buf[pos..pos + 8].try_into().expect("8 bytes"));
        let mut m = zero_bytes(w ^ (ONES * b'N' as u64)) | zero_bytes(w ^ (ONES * b'I' as u64));
        // Every flagged byte is checked (flags above a real hit may be
        // false, and checking them costs nothing but time).
        while m != 0 {
            if at(pos + (m.trailing_zeros() / 8) as usize) {
                return true;
            }
            m &= m - 1;
        }
        pos += 8;
    }
    (pos..buf.len()).any(at)
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

/// Flags the bytes of `w` that are not ASCII digits; the lowest flag is exact
/// (below it every byte is a digit, so no carry or borrow reaches it).
#[inline(always)]
pub(super) fn non_digits(w: u64) -> u64 {
    (w.wrapping_add(ONES * 0x46) | w.wrapping_sub(ONES * 0x30)) & HIGHS
}

/// The value of the first `n` (1..=8) digit bytes of `w`, first byte most
/// significant (the SWAR method of Lemire's fast_float).
#[inline(always)]
pub(super) fn digits_value(w: u64, n: usize) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_words_at_every_offset_and_nothing_else() {
        for word in ["NaN", "Infinity"] {
            for pad in 0..20 {
                for tail in 0..12 {
                    let text = format!("{}{word}{}", "x".repeat(pad), "1".repeat(tail));
                    assert!(holds_constant_word(text.as_bytes()), "{text:?}");
                }
            }
        }
        for text in [
            "",
            "Na",
            "Nan",
            "Infinit",
            "N a N",
            "INFINITY nan",
            "\0N\0I",
        ] {
            assert!(!holds_constant_word(text.as_bytes()), "{text:?}");
        }
        // Zero bytes before an N (borrow flags) do not hide a real hit.
        assert!(holds_constant_word(b"\0\0\0\0\0NaN\0\0"));
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
