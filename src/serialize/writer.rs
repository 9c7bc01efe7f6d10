//! The one JSON writer, and the no-op twin that `check_outputs` drives through
//! the same traversal: a value is accepted exactly when it could be written.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::number::{write_f64, FloatText};
use super::string::{needs_escape, utf8_bytes, write_escaped};
use super::NonFinite;
use crate::ffi;

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
/// The buffer is written through a cursor, so short pieces (numbers, keys) are
/// copied with fixed-size moves instead of a `memcpy` call each. It is either
/// a reused `Vec` or, for output handed to Python, the `bytes` object that is
/// returned, written in place (copying megabytes of output into a new `bytes`
/// at the end took an eighth of the time).
pub struct JsonWriter {
    /// Start of the buffer: `cap` writable bytes, the first `pos` written.
    ptr: *mut u8,
    cap: usize,
    pos: usize,
    store: Store,
    allow_nan: bool,
    keys: KeyCache,
}

enum Store {
    /// Zero-filled up to its length (= `cap`).
    Vec(Vec<u8>),
    /// A `bytes` object of size `cap` that no one else has seen (refcount 1),
    /// so it may still be written; its bytes past `pos` are uninitialised.
    Bytes(*mut ffi::PyObject),
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
            ptr: buf.as_mut_ptr(),
            cap: buf.len(),
            pos: 0,
            store: Store::Vec(buf),
            allow_nan,
            keys: KeyCache::default(),
        }
    }

    /// A writer whose buffer is the `bytes` object [`Self::into_bytes`] returns.
    pub fn for_bytes(_py: Python<'_>, allow_nan: bool, capacity: usize) -> Self {
        let cap = capacity.max(64);
        // SAFETY: the GIL is held (`_py`). A null data pointer asks for an
        // uninitialised `bytes` of `cap` bytes (plus CPython's trailing NUL);
        // on failure (null) the writer uses a Vec instead.
        let obj =
            unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), cap as ffi::Py_ssize_t) };
        if obj.is_null() {
            // SAFETY: as above; the MemoryError is dropped for the fallback.
            unsafe { ffi::PyErr_Clear() };
            return Self::new(allow_nan, capacity);
        }
        Self {
            // SAFETY: `obj` is a live bytes object.
            ptr: unsafe { ffi::PyBytes_AS_STRING(obj) } as *mut u8,
            cap,
            pos: 0,
            store: Store::Bytes(obj),
            allow_nan,
            keys: KeyCache::default(),
        }
    }

    /// What has been written as a `bytes` object (without a copy for a
    /// writer made by [`Self::for_bytes`]).
    pub fn into_bytes<'py>(mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let Store::Bytes(mut obj) = self.store else {
            return Ok(PyBytes::new(py, self.bytes()));
        };
        self.store = Store::Vec(Vec::new());
        if self.cap - self.pos <= self.pos / 8 + 4096 {
            // Little room left over: the size is set without reallocating.
            // Shrinking the block made the next batch's (same-size) request
            // larger than the block malloc last freed, which then took fresh
            // pages from the OS (a page fault per 4 KiB) on every batch.
            // SAFETY: `obj` is a bytes object of `cap >= pos` bytes with
            // refcount 1, ours and unseen; the GIL is held (`py`).
            // (The portable build cannot: it resizes below.)
            unsafe {
                if ffi::bytes_truncate_in_place(obj, self.pos) {
                    return Ok(Bound::from_owned_ptr(py, obj).cast_into_unchecked());
                }
            }
        }
        // SAFETY: `obj` has refcount 1 and is ours; shrinking it to what was
        // written (pos <= cap) keeps the written bytes and adds the NUL. On
        // failure CPython frees it and sets `obj` to null with an exception.
        unsafe {
            if ffi::bytes_resize(&mut obj, self.pos) < 0 {
                return Err(PyErr::fetch(py));
            }
            Ok(Bound::from_owned_ptr(py, obj).cast_into_unchecked())
        }
    }

    /// What has been written.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` addresses `cap >= pos` bytes of the buffer, the first
        // `pos` of them written.
        unsafe { std::slice::from_raw_parts(self.ptr, self.pos) }
    }

    /// The next `n` bytes of the buffer, which `reserve(n)` made room for.
    #[inline(always)]
    fn tail(&mut self, n: usize) -> *mut u8 {
        debug_assert!(self.cap - self.pos >= n);
        // SAFETY: pos <= cap, so the pointer stays inside (or one past) the buffer.
        unsafe { self.ptr.add(self.pos) }
    }

    pub fn len(&self) -> usize {
        self.pos
    }

    /// Forgets what was written, keeping the buffer.
    pub fn clear(&mut self) {
        self.pos = 0;
    }

    /// Makes room for `additional` more bytes beyond what is written.
    #[inline(always)]
    pub fn reserve(&mut self, additional: usize) {
        if self.cap - self.pos < additional {
            self.grow(additional);
        }
    }

    /// After the first of `n` rows: rows of a batch are alike, so room for
    /// the others is made from its size (capped: past that the buffer grows
    /// as it goes).
    pub fn size_for_rows(&mut self, n: usize) {
        let per_row = self.len() + self.len() / 8;
        self.reserve(per_row.saturating_mul(n.saturating_sub(1)).min(1 << 28));
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) {
        let needed = self.pos.saturating_add(additional);
        let size = needed.max(self.cap.saturating_mul(2));
        match &mut self.store {
            Store::Vec(buf) => {
                buf.resize(size, 0);
                self.ptr = buf.as_mut_ptr();
            }
            Store::Bytes(obj) => {
                // A new bytes object and a copy (not `_PyBytes_Resize`, which
                // would lose the text if it failed); none left: a Vec.
                // SAFETY: the GIL is held (a Bytes store is only made with
                // it, and the writer is not Send); `old` is ours and the
                // first `pos` bytes at `ptr` are written.
                unsafe {
                    let old = *obj;
                    let new =
                        ffi::PyBytes_FromStringAndSize(std::ptr::null(), size as ffi::Py_ssize_t);
                    if new.is_null() {
                        ffi::PyErr_Clear();
                        let mut buf = vec![0u8; size];
                        buf[..self.pos].copy_from_slice(self.bytes());
                        self.ptr = buf.as_mut_ptr();
                        self.store = Store::Vec(buf);
                    } else {
                        let dst = ffi::PyBytes_AS_STRING(new) as *mut u8;
                        std::ptr::copy_nonoverlapping(self.ptr, dst, self.pos);
                        *obj = new;
                        self.ptr = dst;
                    }
                    ffi::Py_DECREF(old);
                }
            }
        }
        self.cap = size;
    }

    /// Appends `s`; pieces up to 32 bytes take two overlapping moves.
    #[inline(always)]
    pub fn put(&mut self, s: &[u8]) {
        let n = s.len();
        self.reserve(n);
        let dst = self.tail(n);
        let src = s.as_ptr();
        // SAFETY: `reserve(n)` made `n` bytes at `dst` writable and `s` has
        // `n` bytes; every move below stays within the first `n` of each, and
        // the source (borrowed) never overlaps our buffer's unwritten tail.
        unsafe {
            use std::ptr::copy_nonoverlapping as copy;
            if (17..=32).contains(&n) {
                copy(src, dst, 16);
                copy(src.add(n - 16), dst.add(n - 16), 16);
            } else if (8..=16).contains(&n) {
                copy(src, dst, 8);
                copy(src.add(n - 8), dst.add(n - 8), 8);
            } else if (4..8).contains(&n) {
                copy(src, dst, 4);
                copy(src.add(n - 4), dst.add(n - 4), 4);
            } else if n < 4 {
                for i in 0..n {
                    *dst.add(i) = *src.add(i);
                }
            } else {
                copy(src, dst, n);
            }
        }
        self.pos += n;
    }

    #[inline(always)]
    pub fn push(&mut self, b: u8) {
        self.reserve(1);
        // SAFETY: `reserve(1)` made room for one byte.
        unsafe { *self.tail(1) = b };
        self.pos += 1;
    }

    /// `v` in decimal.
    #[inline]
    pub fn put_u64(&mut self, v: u64) {
        self.put(itoa::Buffer::new().format(v).as_bytes());
    }

    #[inline]
    pub fn put_i64(&mut self, v: i64) {
        self.put(itoa::Buffer::new().format(v).as_bytes());
    }
}

impl Drop for JsonWriter {
    fn drop(&mut self) {
        let buf = match std::mem::replace(&mut self.store, Store::Vec(Vec::new())) {
            Store::Vec(buf) => buf,
            Store::Bytes(obj) => {
                // SAFETY: ours, and the GIL is held (see `grow`).
                unsafe { ffi::Py_DECREF(obj) };
                return;
            }
        };
        if buf.len() <= KEEP_AT_MOST {
            SPARE_BUFFER.with(|spare| {
                let kept = spare.take();
                spare.set(if kept.len() > buf.len() { kept } else { buf });
            });
        }
    }
}

/// Bytes a `zmij::Buffer` spans: its one field, an array of `MaybeUninit<u8>`.
const ZMIJ_BUFFER: usize = std::mem::size_of::<zmij::Buffer>();
const _: () = assert!(std::mem::align_of::<zmij::Buffer>() == 1 && ZMIJ_BUFFER <= 64);

/// Keys already written, by object identity: rows of a batch share their key
/// objects, so `"label":` is escaped once and copied after. Each slot holds a
/// reference to its key, so no other object can take its address meanwhile.
#[derive(Default)]
struct KeyCache {
    slots: Option<Box<[KeySlot]>>,
    misses: usize,
}

/// Two candidate slots per key (by address): a handful of keys rarely share both.
const KEY_SLOTS: usize = 256;
const KEY_TEXT: usize = 32;

#[derive(Default)]
struct KeySlot {
    key: Option<Py<PyString>>,
    len: u8,
    text: [u8; KEY_TEXT],
}

impl KeyCache {
    /// Where `key` is cached (`true`) or may be stored (`false`), once enough
    /// keys were written to pay for the table.
    #[inline]
    fn find(&mut self, key: &Bound<'_, PyString>) -> Option<(usize, bool)> {
        if self.slots.is_none() {
            self.misses += 1;
            if self.misses < 16 {
                return None;
            }
            self.slots = Some((0..KEY_SLOTS).map(|_| KeySlot::default()).collect());
        }
        let slots = self.slots.as_ref()?;
        // Fibonacci hashing: the top bits of address * 2^64/phi spread
        // objects that allocation aligns alike.
        let hash = (key.as_ptr() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56;
        let first = hash as usize % KEY_SLOTS;
        let second = first ^ 1;
        for i in [first, second] {
            if slots[i].key.as_ref().is_some_and(|k| k.is(key)) {
                return Some((i, true));
            }
        }
        let free = if slots[first].key.is_none() || slots[second].key.is_some() {
            first
        } else {
            second
        };
        Some((free, false))
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
        let Some((index, hit)) = self.keys.find(key) else {
            self.str(utf8_bytes(key)?);
            self.push(b':');
            return Ok(());
        };
        if hit {
            if let Some(slot) = self.keys.slots.as_ref().map(|slots| &slots[index]) {
                // Copied from the slot itself: a copy to the stack first
                // stalled the reads that followed on store forwarding.
                let text = std::ptr::slice_from_raw_parts(slot.text.as_ptr(), slot.len as usize);
                // SAFETY: `text` points into the boxed slot table, which
                // `put` does not touch (it only writes the output buffer),
                // so it stays valid and unchanged during the copy.
                self.put(unsafe { &*text });
                return Ok(());
            }
        }
        let start = self.pos;
        self.str(utf8_bytes(key)?);
        self.push(b':');
        let len = self.pos - start;
        // Only exact strs are kept: evicting a slot drops its key, and a str
        // subclass's `__del__` could run Python code in the middle of a dict
        // walk that holds borrowed entries. Dropping an exact str runs none.
        if len <= KEY_TEXT && key.is_exact_instance_of::<PyString>() {
            let mut text = [0u8; KEY_TEXT];
            text[..len].copy_from_slice(&self.bytes()[start..]);
            if let Some(slot) = self.keys.slots.as_mut().map(|slots| &mut slots[index]) {
                slot.text = text;
                slot.len = len as u8;
                slot.key = Some(key.clone().unbind());
            }
        }
        Ok(())
    }

    #[inline]
    fn f64(&mut self, v: f64) -> Result<(), NonFinite> {
        let magnitude = v.abs();
        if (1e-4..1e16).contains(&magnitude) || magnitude == 0.0 {
            // The range where zmij's layout is repr's (see FloatText::format),
            // formatted straight into the output: copying the text over from
            // a scratch buffer stalled on store forwarding (zmij's last
            // stores are narrower than the copy's loads).
            self.reserve(ZMIJ_BUFFER);
            let dst = self.tail(ZMIJ_BUFFER).cast::<zmij::Buffer>();
            // SAFETY: `reserve` made ZMIJ_BUFFER bytes at `dst` writable, and
            // a `zmij::Buffer` is exactly that many `MaybeUninit<u8>` (its
            // only field, so at offset 0; checked below), valid whatever the
            // bytes hold and needing no alignment. No other reference to
            // those bytes lives meanwhile. zmij writes the text from the
            // start of the buffer, so its length is what was written.
            let len = unsafe { (*dst).format_finite(v).len() };
            self.pos += len;
            return Ok(());
        }
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
    fn non_finite_follows_allow_nan() {
        let mut w = JsonWriter::new(true, 0);
        w.f64(f64::NAN).unwrap();
        w.f64(f64::NEG_INFINITY).unwrap();
        assert_eq!(w.bytes(), b"NaN-Infinity");
        let mut strict = JsonWriter::new(false, 0);
        assert!(matches!(strict.f64(f64::INFINITY), Err(NonFinite(_))));
    }
}
