//! The binary tensor data extension of V2 REST bodies, in both directions:
//! an input tensor's values read from the bytes after the JSON header (as
//! the Python path's `raw_values` reads them), and an output tensor's values
//! as the bytes `raw_output` writes. What the Python path reads in a way
//! not mirrored here (FP16 and BYTES inputs, a BOOL byte other than 0 or 1,
//! a header length spelled other than in plain digits), or refuses, is
//! `Unsupported`: Python reads the body and words the error.

use super::value::{Unsupported, Value};

/// The length of the JSON header from an `Inference-Header-Content-Length`
/// of plain digits (Python's `int()` also takes signs, spaces and `_`: those
/// are its to read), at most the body's length.
pub fn header_length(text: &[u8], body_len: usize) -> Option<usize> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = text.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    usize::try_from(n).ok().filter(|&n| n <= body_len)
}

/// The bytes after the JSON header, taken tensor by tensor in input order.
pub struct Raw<'b> {
    data: &'b [u8],
    used: usize,
}

impl<'b> Raw<'b> {
    pub fn new(data: &'b [u8]) -> Self {
        Raw { data, used: 0 }
    }

    /// The next `size` bytes, or `Unsupported` past the end.
    pub fn take(&mut self, size: u64) -> Result<&'b [u8], Unsupported> {
        let size = usize::try_from(size).map_err(|_| Unsupported)?;
        let end = self.used.checked_add(size).ok_or(Unsupported)?;
        let chunk = self.data.get(self.used..end).ok_or(Unsupported)?;
        self.used = end;
        Ok(chunk)
    }

    /// Whether every byte was taken (bytes left over are Python's 400).
    pub fn all_used(&self) -> bool {
        self.used == self.data.len()
    }
}

/// The `count` values of a tensor of `datatype` in `chunk`, as the value
/// tree holds the numbers `json.loads` would give for them.
pub fn decode(
    chunk: &[u8],
    datatype: &str,
    count: u64,
) -> Result<Vec<Value<'static>>, Unsupported> {
    let size = match datatype {
        "BOOL" | "INT8" | "UINT8" => 1,
        "INT16" | "UINT16" => 2,
        "INT32" | "UINT32" | "FP32" => 4,
        "INT64" | "UINT64" | "FP64" => 8,
        _ => return Err(Unsupported), // FP16, BYTES: Python's
    };
    if (chunk.len() as u64) != count.checked_mul(size).ok_or(Unsupported)? {
        return Err(Unsupported);
    }
    let items = chunk.chunks_exact(size as usize);
    // `chunks_exact` gives slices of exactly `size` bytes: the conversions
    // to arrays below cannot fail.
    let values = match datatype {
        "BOOL" => items
            .map(|b| match b[0] {
                0 => Ok(Value::Bool(false)),
                1 => Ok(Value::Bool(true)),
                _ => Err(Unsupported),
            })
            .collect::<Result<Vec<_>, _>>()?,
        "INT8" => items.map(|b| Value::Int(i64::from(b[0] as i8))).collect(),
        "UINT8" => items.map(|b| Value::Int(i64::from(b[0]))).collect(),
        "INT16" => items
            .map(|b| Value::Int(i64::from(i16::from_le_bytes([b[0], b[1]]))))
            .collect(),
        "UINT16" => items
            .map(|b| Value::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))))
            .collect(),
        "INT32" => items
            .map(|b| Value::Int(i64::from(i32::from_le_bytes(four(b)))))
            .collect(),
        "UINT32" => items
            .map(|b| Value::Int(i64::from(u32::from_le_bytes(four(b)))))
            .collect(),
        "INT64" => items
            .map(|b| Value::Int(i64::from_le_bytes(eight(b))))
            .collect(),
        "UINT64" => items
            .map(|b| {
                let v = u64::from_le_bytes(eight(b));
                i64::try_from(v).map_or(Value::UInt(v), Value::Int)
            })
            .collect(),
        "FP32" => items
            .map(|b| finite(f64::from(f32::from_le_bytes(four(b)))))
            .collect::<Result<Vec<_>, _>>()?,
        "FP64" => items
            .map(|b| finite(f64::from_le_bytes(eight(b))))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(Unsupported),
    };
    Ok(values)
}

fn four(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

fn eight(b: &[u8]) -> [u8; 8] {
    [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// A float as `tolist()` gives it (no text: written as `repr` spells it);
/// NaN and the infinities are Python's 400.
fn finite(v: f64) -> Result<Value<'static>, Unsupported> {
    if v.is_finite() {
        Ok(Value::Float(v, ""))
    } else {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths_are_plain_digits_within_the_body() {
        assert_eq!(header_length(b"12", 20), Some(12));
        assert_eq!(header_length(b"0", 0), Some(0));
        assert_eq!(header_length(b"21", 20), None);
        for odd in [
            &b""[..],
            b"+1",
            b" 1",
            b"1_0",
            b"-0",
            b"1e2",
            b"99999999999999999999",
        ] {
            assert_eq!(header_length(odd, usize::MAX), None, "{odd:?}");
        }
    }

    #[test]
    fn raw_bytes_are_taken_in_order_and_counted() {
        let mut raw = Raw::new(b"abcdef");
        assert_eq!(raw.take(2), Ok(&b"ab"[..]));
        assert_eq!(raw.take(5), Err(Unsupported));
        assert_eq!(raw.take(u64::MAX), Err(Unsupported));
        assert!(!raw.all_used());
        assert_eq!(raw.take(4), Ok(&b"cdef"[..]));
        assert!(raw.all_used());
    }

    #[test]
    fn values_decode_as_numpy_tolist_gives_them() {
        assert_eq!(
            decode(&[0, 1], "BOOL", 2),
            Ok(vec![Value::Bool(false), Value::Bool(true)])
        );
        assert_eq!(decode(&[2], "BOOL", 1), Err(Unsupported));
        assert_eq!(decode(&[0xff], "INT8", 1), Ok(vec![Value::Int(-1)]));
        assert_eq!(decode(&[0xff], "UINT8", 1), Ok(vec![Value::Int(255)]));
        assert_eq!(
            decode(&(-2i16).to_le_bytes(), "INT16", 1),
            Ok(vec![Value::Int(-2)])
        );
        assert_eq!(
            decode(&u32::MAX.to_le_bytes(), "UINT32", 1),
            Ok(vec![Value::Int(i64::from(u32::MAX))])
        );
        assert_eq!(
            decode(&u64::MAX.to_le_bytes(), "UINT64", 1),
            Ok(vec![Value::UInt(u64::MAX)])
        );
        assert_eq!(
            decode(&0.1f32.to_le_bytes(), "FP32", 1),
            Ok(vec![Value::Float(f64::from(0.1f32), "")])
        );
        assert_eq!(decode(&f64::NAN.to_le_bytes(), "FP64", 1), Err(Unsupported));
        assert_eq!(decode(&[0; 7], "FP64", 1), Err(Unsupported)); // a byte short
        assert_eq!(decode(&[0; 2], "FP16", 1), Err(Unsupported));
        assert_eq!(decode(&[], "FP64", 0), Ok(vec![]));
    }
}
