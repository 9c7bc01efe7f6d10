//! The one JSON writer, and the no-op twin that `check_outputs` drives through
//! the same traversal: a value is accepted exactly when it could be written.

use pyo3::prelude::*;
use pyo3::types::PyString;

use super::number::{write_f64, FloatText};
use super::string::{needs_escape, utf8_bytes, write_escaped};
use super::NonFinite;

/// How many floats `Emit::f64_run` takes at once.
pub const RUN: usize = 4;

/// Where a traversal sends its output. `WRITES` is false for the checker, so
/// work that only produces bytes (numeric array bodies) can be skipped.
pub trait Emit {
    const WRITES: bool;
    fn byte(&mut self, b: u8);
    fn raw(&mut self, bytes: &[u8]);
    /// A str's UTF-8 bytes, quoted and escaped.
    fn str(&mut self, s: &[u8]);
    fn i64(&mut self, v: i64);
    fn u64(&mut self, v: u64);
    /// A float; non-finite values follow the `allow_nan` policy.
    fn f64(&mut self, v: f64) -> Result<(), NonFinite>;
    /// Up to `RUN` floats with `,` between; on an error nothing is written.
    fn f64_run(&mut self, values: &[f64]) -> Result<(), NonFinite> {
        for (i, &v) in values.iter().take(RUN).enumerate() {
            if i > 0 {
                self.byte(b',');
            }
            self.f64(v)?;
        }
        Ok(())
    }
    /// Room for about `n` more bytes (a hint before a big array).
    fn expect(&mut self, n: usize);
    /// A str dict key followed by `:`.
    fn str_key(&mut self, key: &Bound<'_, PyString>) -> Result<(), super::Fault>;
}

/// Compact JSON into one buffer, formatted like Python's `json.dumps`.
///
/// The buffer is kept initialised up to its length and written through a
/// cursor, so short pieces (numbers, keys) are copied with fixed-size moves
/// instead of a `memcpy` call each.
pub struct JsonWriter {
    buf: Vec<u8>,
    pos: usize,
    allow_nan: bool,
    keys: KeyCache,
}

thread_local! {
    /// The last writer's buffer, kept for the next one: a fresh multi-megabyte
    /// buffer per batch costs more in page faults than the writing itself.
    static SPARE_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Buffers above this size are given back to the allocator, not kept.
const KEEP_AT_MOST: usize = 64 << 20;

impl JsonWriter {
    pub fn new(allow_nan: bool, capacity: usize) -> Self {
        let mut buf = SPARE_BUFFER.with(|spare| spare.take());
        if buf.len() < capacity.max(64) {
            buf.resize(capacity.max(64), 0);
        }
        Self {
            buf,
            pos: 0,
            allow_nan,
            keys: KeyCache::default(),
        }
    }

    /// What has been written.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.pos]
    }

    pub fn len(&self) -> usize {
        self.pos
    }

    /// Makes room for `additional` more bytes beyond what is written.
    #[inline(always)]
    pub fn reserve(&mut self, additional: usize) {
        if self.buf.len() - self.pos < additional {
            self.grow(additional);
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) {
        let needed = self.pos.saturating_add(additional);
        let size = needed.max(self.buf.len().saturating_mul(2));
        self.buf.resize(size, 0);
    }

    /// Appends `s`; pieces up to 32 bytes take two overlapping moves.
    #[inline(always)]
    pub fn put(&mut self, s: &[u8]) {
        let n = s.len();
        self.reserve(n);
        let dst = &mut self.buf[self.pos..self.pos + n];
        if (17..=32).contains(&n) {
            dst[..16].copy_from_slice(&s[..16]);
            dst[n - 16..].copy_from_slice(&s[n - 16..]);
        } else if (8..=16).contains(&n) {
            dst[..8].copy_from_slice(&s[..8]);
            dst[n - 8..].copy_from_slice(&s[n - 8..]);
        } else if (4..8).contains(&n) {
            dst[..4].copy_from_slice(&s[..4]);
            dst[n - 4..].copy_from_slice(&s[n - 4..]);
        } else if n < 4 {
            for (d, &b) in dst.iter_mut().zip(s) {
                *d = b;
            }
        } else {
            dst.copy_from_slice(s);
        }
        self.pos += n;
    }

    #[inline(always)]
    pub fn push(&mut self, b: u8) {
        self.reserve(1);
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    /// `v` in decimal, the digits written in place (no intermediate buffer).
    #[inline]
    pub fn put_u64(&mut self, v: u64) {
        let n = decimal_len(v);
        self.reserve(20);
        let dst = &mut self.buf[self.pos..self.pos + n];
        let mut rest = v;
        let mut end = n;
        while rest >= 100 {
            let pair = (rest % 100) as usize * 2;
            rest /= 100;
            dst[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
            end -= 2;
        }
        if rest >= 10 {
            let pair = rest as usize * 2;
            dst[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        } else {
            dst[end - 1] = b'0' + rest as u8;
        }
        self.pos += n;
    }

    #[inline]
    pub fn put_i64(&mut self, v: i64) {
        if v < 0 {
            self.push(b'-');
        }
        self.put_u64(v.unsigned_abs());
    }
}

impl Drop for JsonWriter {
    fn drop(&mut self) {
        if self.buf.len() <= KEEP_AT_MOST {
            let buf = std::mem::take(&mut self.buf);
            SPARE_BUFFER.with(|spare| {
                let kept = spare.take();
                spare.set(if kept.len() > buf.len() { kept } else { buf });
            });
        }
    }
}

/// "00" "01" ... "99".
static DIGIT_PAIRS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        table[2 * i] = b'0' + (i / 10) as u8;
        table[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    table
};

/// Number of decimal digits of `v` (1 for 0): log10 estimated from the bit
/// length (1233/4096 ~ log10(2)), corrected by one comparison.
#[inline(always)]
fn decimal_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros();
    let estimate = ((bits * 1233) >> 12) as usize;
    estimate + usize::from((v | 1) >= POW10[estimate])
}

static POW10: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// Keys already written, by object identity: rows of a batch share their key
/// objects, so `"label":` is escaped once and copied after. Each slot holds a
/// reference to its key, so no other object can take its address meanwhile.
#[derive(Default)]
struct KeyCache {
    slots: Option<Box<[KeySlot]>>,
    misses: usize,
}

const KEY_SLOTS: usize = 64;
const KEY_TEXT: usize = 32;

#[derive(Default)]
struct KeySlot {
    key: Option<Py<PyString>>,
    len: u8,
    text: [u8; KEY_TEXT],
}

impl KeyCache {
    /// The slot for `key`, once enough keys were written to pay for the table.
    #[inline]
    fn slot(&mut self, key: &Bound<'_, PyString>) -> Option<&mut KeySlot> {
        if self.slots.is_none() {
            self.misses += 1;
            if self.misses < 16 {
                return None;
            }
            self.slots = Some((0..KEY_SLOTS).map(|_| KeySlot::default()).collect());
        }
        let index = (key.as_ptr() as usize >> 4) % KEY_SLOTS;
        self.slots.as_mut().map(|slots| &mut slots[index])
    }
}

impl Emit for JsonWriter {
    const WRITES: bool = true;

    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.push(b);
    }

    #[inline(always)]
    fn raw(&mut self, bytes: &[u8]) {
        self.put(bytes);
    }

    #[inline]
    fn str(&mut self, s: &[u8]) {
        if needs_escape(s) {
            write_escaped(self, s);
        } else {
            self.reserve(s.len() + 2);
            self.push(b'"');
            self.put(s);
            self.push(b'"');
        }
    }

    #[inline]
    fn i64(&mut self, v: i64) {
        self.put_i64(v);
    }

    #[inline]
    fn u64(&mut self, v: u64) {
        self.put_u64(v);
    }

    #[inline]
    fn str_key(&mut self, key: &Bound<'_, PyString>) -> Result<(), super::Fault> {
        let Some(slot) = self.keys.slot(key) else {
            self.str(utf8_bytes(key)?);
            self.push(b':');
            return Ok(());
        };
        if slot.key.as_ref().is_some_and(|k| k.is(key)) {
            let (text, len) = (slot.text, slot.len as usize);
            self.put(&text[..len]);
            return Ok(());
        }
        let start = self.pos;
        self.str(utf8_bytes(key)?);
        self.push(b':');
        let written = &self.buf[start..self.pos];
        // Re-borrow: `self.str` needed the whole writer.
        if let Some(slot) = self.keys.slot(key) {
            if written.len() <= KEY_TEXT {
                slot.text[..written.len()].copy_from_slice(written);
                slot.len = written.len() as u8;
                slot.key = Some(key.clone().unbind());
            }
        }
        Ok(())
    }

    #[inline]
    fn f64(&mut self, v: f64) -> Result<(), NonFinite> {
        write_f64(self, v, self.allow_nan)
    }

    #[inline]
    fn f64_run(&mut self, values: &[f64]) -> Result<(), NonFinite> {
        // All are formatted before any is copied: a copy that reads text the
        // formatter has only just stored stalls on store forwarding, and back
        // to back (numpy rows, lists of scores) those stalls add up.
        let mut texts = [
            FloatText::new(),
            FloatText::new(),
            FloatText::new(),
            FloatText::new(),
        ];
        let mut outs: [&[u8]; RUN] = [&[]; RUN];
        for ((text, &v), out) in texts.iter_mut().zip(values).zip(outs.iter_mut()) {
            *out = text.format(v, self.allow_nan)?;
        }
        let outs = &outs[..values.len().min(RUN)];
        self.reserve(outs.iter().map(|t| t.len() + 1).sum());
        for (k, text) in outs.iter().enumerate() {
            if k > 0 {
                self.push(b',');
            }
            self.put(text);
        }
        Ok(())
    }

    fn expect(&mut self, n: usize) {
        self.reserve(n);
    }
}

/// Writes nothing and accepts non-finite floats, as `json.dumps` does by default.
pub struct NoWrite;

impl Emit for NoWrite {
    const WRITES: bool = false;
    #[inline(always)]
    fn byte(&mut self, _: u8) {}
    #[inline(always)]
    fn raw(&mut self, _: &[u8]) {}
    #[inline(always)]
    fn str(&mut self, _: &[u8]) {}
    #[inline(always)]
    fn i64(&mut self, _: i64) {}
    #[inline(always)]
    fn u64(&mut self, _: u64) {}
    #[inline(always)]
    fn f64(&mut self, _: f64) -> Result<(), NonFinite> {
        Ok(())
    }
    #[inline(always)]
    fn expect(&mut self, _: usize) {}
    #[inline(always)]
    fn str_key(&mut self, _: &Bound<'_, PyString>) -> Result<(), super::Fault> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_copies_every_length_and_grows() {
        let src: Vec<u8> = (0u8..100).collect();
        let mut w = JsonWriter::new(false, 1);
        let mut want = Vec::new();
        for n in 0..100 {
            w.put(&src[..n]);
            want.extend_from_slice(&src[..n]);
            w.push(b'|');
            want.push(b'|');
        }
        assert_eq!(w.bytes(), &want[..]);
        assert_eq!(w.len(), want.len());
    }

    #[test]
    fn ints_are_written_in_decimal() {
        let mut w = JsonWriter::new(false, 0);
        for v in [0i64, 7, -7, 10, 99, 100, -12345, i64::MIN, i64::MAX] {
            w.put_i64(v);
            w.push(b' ');
        }
        for v in [
            9_999_999_999_999_999_999u64,
            10_000_000_000_000_000_000,
            u64::MAX,
        ] {
            w.put_u64(v);
            w.push(b' ');
        }
        let want = "0 7 -7 10 99 100 -12345 -9223372036854775808 9223372036854775807 \
                    9999999999999999999 10000000000000000000 18446744073709551615 ";
        assert_eq!(std::str::from_utf8(w.bytes()).unwrap(), want);
    }

    #[test]
    fn decimal_len_counts_digits() {
        assert_eq!(decimal_len(0), 1);
        let mut p = 1u64;
        for n in 1..20 {
            assert_eq!(decimal_len(p), n, "10^{}", n - 1);
            assert_eq!(decimal_len(p - 1), (n - 1).max(1));
            p = p.wrapping_mul(10);
        }
        assert_eq!(decimal_len(u64::MAX), 20);
    }

    #[test]
    fn non_finite_follows_allow_nan() {
        let mut w = JsonWriter::new(true, 0);
        w.f64(f64::NAN).unwrap();
        w.f64(f64::NEG_INFINITY).unwrap();
        assert_eq!(w.bytes(), b"NaN-Infinity");
        let mut strict = JsonWriter::new(false, 0);
        assert!(matches!(strict.f64(f64::INFINITY), Err(NonFinite(_))));
    }
}
