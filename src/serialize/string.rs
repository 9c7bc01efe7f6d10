//! JSON string escaping as `json.dumps(..., ensure_ascii=False)` does it: only
//! `"`, `\` and control characters below 0x20 are escaped; UTF-8 passes through.

/// For each byte: 0 = copy as is, `u` = `\u00XX`, else the letter after `\`.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

use pyo3::exceptions::PyUnicodeEncodeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::writer::JsonWriter;
use super::Fault;

/// The UTF-8 bytes of a str. A compact ASCII str is read in place (what
/// CPython's own UTF-8 accessor does, without the call); others go through
/// CPython's cached UTF-8. A lone surrogate has no UTF-8 form.
#[inline]
pub fn utf8_bytes<'a>(s: &'a Bound<'_, PyString>) -> Result<&'a [u8], Fault> {
    // SAFETY: `s` is a live str (typed Bound) and the GIL is held; the text
    // is immutable for the object's lifetime, which `'a` is tied to.
    if let Some(text) = unsafe { crate::ffi::ascii_str_bytes(s.as_ptr()) } {
        return Ok(text);
    }
    match s.to_str() {
        Ok(text) => Ok(text.as_bytes()),
        Err(err) if err.is_instance_of::<PyUnicodeEncodeError>(s.py()) => Err(Fault::Surrogate),
        Err(err) => Err(Fault::Python(err)),
    }
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `word` is zero (exact, no false positives).
#[inline(always)]
fn has_zero_byte(word: u64) -> bool {
    word.wrapping_sub(LOW) & !word & HIGH != 0
}

/// Whether `s` holds a byte that must be escaped, eight bytes at a time.
#[inline]
pub fn needs_escape(s: &[u8]) -> bool {
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // A control byte (< 0x20), '"' or '\\'. Bytes >= 0x80 never borrow
        // into a false hit: `w & !HIGH` keeps the subtraction within each byte.
        let control = (w & !HIGH).wrapping_add(LOW * (0x80 - 0x20)) | w;
        if !control & HIGH != 0
            || has_zero_byte(w ^ (LOW * u64::from(b'"')))
            || has_zero_byte(w ^ (LOW * u64::from(b'\\')))
        {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| ESCAPE[b as usize] != 0)
}

/// Appends `s` (valid UTF-8) as a quoted JSON string, escaping as needed.
pub fn write_escaped(w: &mut JsonWriter, s: &[u8]) {
    w.reserve(s.len() + 2);
    w.push(b'"');
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        w.put(&s[start..i]);
        if esc == b'u' {
            w.put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            w.put(&[b'\\', esc]);
        }
        start = i + 1;
    }
    w.put(&s[start..]);
    w.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut w = JsonWriter::new(false, 0);
        write_escaped(&mut w, s.as_bytes());
        String::from_utf8(w.bytes().to_vec()).unwrap()
    }

    #[test]
    fn escape_scan_agrees_with_the_table() {
        // Every byte value at every position of a 9-byte window.
        for b in 0u8..=255 {
            for at in 0..9 {
                let mut s = *b"abcdefghi";
                s[at] = b;
                let want = s.iter().any(|&c| ESCAPE[c as usize] != 0);
                assert_eq!(needs_escape(&s), want, "byte {b:#x} at {at}");
            }
        }
        assert!(!needs_escape("héllo wörld 😀 long enough".as_bytes()));
        assert!(needs_escape("héllo wörld 😀 long\u{1}".as_bytes()));
    }

    #[test]
    fn escapes_like_python_json() {
        assert_eq!(esc(""), r#""""#);
        assert_eq!(esc("plain"), r#""plain""#);
        assert_eq!(esc("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(esc("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(esc("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(esc("é😀\u{2028}"), "\"é😀\u{2028}\"");
    }
}
