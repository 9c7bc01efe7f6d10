//! The output lines of a request (one JSON object per row) to the V2 answer,
//! byte for byte what `V2Api.render_python` writes, binary data included
//! (binary.rs has the input side): one tensor of shape [N] per output key, its datatype from
//! its values (BOOL, INT64, UINT64, FP64 when every integer is exact as a
//! float, else BYTES holding strings as they are and other values as JSON
//! text). An unknown output, too many values, or anything the value tree
//! leaves to Python is `Unsupported`: Python answers it.

use super::value::{
    parse_document, write_float, write_int_as_float, write_value, Unsupported, Value,
};
use crate::serialize::string::write_escaped;
use crate::serialize::writer::JsonWriter;

/// The most values an answer may hold (tensors x rows), as in v2.py.
const MAX_OUTPUT_VALUES: usize = 4_000_000;
/// Output keys past this many are left to Python (the key search here is
/// linear).
const MAX_KEYS: usize = 32;
/// The largest integer every float holds exactly.
const EXACT: u64 = 1 << 53;

/// Who answers, to which request, and which outputs go as binary data.
pub struct AnswerHead<'s> {
    pub model_name: &'s str,
    pub model_version: Option<&'s str>,
    pub id: Option<&'s str>,
    /// The outputs that say whether they go as binary data, and what the
    /// others do (the request's `binary_data_output`).
    pub binary: &'s [(String, bool)],
    pub binary_default: bool,
}

impl AnswerHead<'_> {
    fn binary(&self, name: &str) -> bool {
        // The last word on a name counts, as in a dict built in order.
        self.binary
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(self.binary_default, |(_, flag)| *flag)
    }
}

/// The answer's JSON for `lines` (each one row), the outputs `names` (or
/// every key of the rows, in the order first seen); the values of the
/// outputs that go as binary data are appended to `raw`, in order (the
/// answer is then the JSON and `raw` after it).
pub fn write_answer(
    w: &mut JsonWriter,
    raw: &mut Vec<u8>,
    lines: &[&[u8]],
    names: Option<&[String]>,
    head: &AnswerHead<'_>,
) -> Result<(), Unsupported> {
    if lines.is_empty() {
        return Err(Unsupported);
    }
    let rows = lines
        .iter()
        .map(|line| parse_document(std::str::from_utf8(line).map_err(|_| Unsupported)?))
        .collect::<Result<Vec<_>, _>>()?;
    let mut keys: Vec<&str> = Vec::new();
    for row in &rows {
        if let Value::Obj(members) = row {
            for (key, _) in members {
                if !keys.contains(&key.as_ref()) {
                    if keys.len() == MAX_KEYS {
                        return Err(Unsupported);
                    }
                    keys.push(key);
                }
            }
        }
    }
    let names: Vec<&str> = match names {
        Some(names) => {
            if !names.iter().all(|n| keys.contains(&n.as_str())) {
                return Err(Unsupported);
            }
            names.iter().map(String::as_str).collect()
        }
        None => keys,
    };
    if names.len().saturating_mul(rows.len()) > MAX_OUTPUT_VALUES {
        return Err(Unsupported);
    }
    w.put(b"{\"model_name\":");
    write_escaped(w, head.model_name.as_bytes());
    if let Some(version) = head.model_version {
        w.put(b",\"model_version\":");
        write_escaped(w, version.as_bytes());
    }
    if let Some(id) = head.id {
        w.put(b",\"id\":");
        write_escaped(w, id.as_bytes());
    }
    w.put(b",\"outputs\":[");
    let mut column: Vec<&Value<'_>> = Vec::with_capacity(rows.len());
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            w.push(b',');
        }
        column.clear();
        column.extend(rows.iter().map(|row| row.get(name).unwrap_or(&Value::Null)));
        if head.binary(name) {
            write_binary_tensor(w, raw, name, &column);
        } else {
            write_tensor(w, name, &column);
        }
    }
    w.put(b"]}");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutType {
    Bool,
    Int64,
    UInt64,
    Fp64,
    Bytes,
}

/// The datatype `_output_tensor` gives a column.
fn out_type(column: &[&Value<'_>]) -> OutType {
    if column.iter().all(|v| matches!(v, Value::Bool(_))) {
        return OutType::Bool;
    }
    let (mut ints, mut floats, mut negative, mut above_i64) = (false, false, false, false);
    let mut big: u64 = 0;
    for v in column {
        match v {
            Value::Int(x) => {
                ints = true;
                negative |= *x < 0;
                big = big.max(x.unsigned_abs());
            }
            Value::UInt(x) => {
                ints = true;
                above_i64 = true;
                big = big.max(*x);
            }
            Value::Float(..) => floats = true,
            _ => return OutType::Bytes,
        }
    }
    if !floats {
        if !above_i64 {
            return OutType::Int64;
        }
        if !negative {
            return OutType::UInt64;
        }
    }
    if !ints || big <= EXACT {
        OutType::Fp64
    } else {
        OutType::Bytes
    }
}

/// `{"name":...,"datatype":...,"shape":[N]` of a column's tensor.
fn write_tensor_head(w: &mut JsonWriter, name: &str, kind: OutType, n: usize) {
    w.put(b"{\"name\":");
    write_escaped(w, name.as_bytes());
    w.put(match kind {
        OutType::Bool => b",\"datatype\":\"BOOL\",\"shape\":[".as_slice(),
        OutType::Int64 => b",\"datatype\":\"INT64\",\"shape\":[",
        OutType::UInt64 => b",\"datatype\":\"UINT64\",\"shape\":[",
        OutType::Fp64 => b",\"datatype\":\"FP64\",\"shape\":[",
        OutType::Bytes => b",\"datatype\":\"BYTES\",\"shape\":[",
    });
    w.put_u64(n as u64);
    w.push(b']');
}

/// A tensor whose values go as binary data (as `raw_output` writes them:
/// little-endian numbers, a byte per bool, each string's UTF-8 after its
/// length in 4 bytes), its size in its parameters.
fn write_binary_tensor(w: &mut JsonWriter, raw: &mut Vec<u8>, name: &str, column: &[&Value<'_>]) {
    let kind = out_type(column);
    write_tensor_head(w, name, kind, column.len());
    let start = raw.len();
    let mut text = JsonWriter::new(false, 0);
    for value in column {
        match (kind, value) {
            (OutType::Bool, Value::Bool(b)) => raw.push(u8::from(*b)),
            (OutType::Int64, Value::Int(v)) => raw.extend_from_slice(&v.to_le_bytes()),
            // A UINT64 column's integers are all >= 0.
            (OutType::UInt64, Value::Int(v)) => raw.extend_from_slice(&(*v as u64).to_le_bytes()),
            (OutType::UInt64, Value::UInt(v)) => raw.extend_from_slice(&v.to_le_bytes()),
            // An FP64 column's integers are exact as floats (`out_type`).
            (OutType::Fp64, Value::Int(v)) => raw.extend_from_slice(&(*v as f64).to_le_bytes()),
            (OutType::Fp64, Value::UInt(v)) => raw.extend_from_slice(&(*v as f64).to_le_bytes()),
            (OutType::Fp64, Value::Float(v, _)) => raw.extend_from_slice(&v.to_le_bytes()),
            (_, Value::Str(s)) => {
                raw.extend_from_slice(&(s.len() as u32).to_le_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
            (_, other) => {
                // Other JSON as its text.
                text.clear();
                write_value(&mut text, other);
                raw.extend_from_slice(&(text.bytes().len() as u32).to_le_bytes());
                raw.extend_from_slice(text.bytes());
            }
        }
    }
    w.put(b",\"parameters\":{\"binary_data_size\":");
    w.put_u64((raw.len() - start) as u64);
    w.put(b"}}");
}

fn write_tensor(w: &mut JsonWriter, name: &str, column: &[&Value<'_>]) {
    let kind = out_type(column);
    write_tensor_head(w, name, kind, column.len());
    w.put(b",\"data\":[");
    let mut text = JsonWriter::new(false, 0);
    for (i, value) in column.iter().enumerate() {
        if i > 0 {
            w.push(b',');
        }
        match (kind, value) {
            (OutType::Fp64, Value::Int(v)) => write_int_as_float(w, *v),
            (OutType::Fp64, Value::UInt(v)) => write_float(w, *v as f64),
            (OutType::Bytes, Value::Str(_)) => write_value(w, value),
            (OutType::Bytes, _) => {
                // Other JSON as its text, in a string.
                text.clear();
                write_value(&mut text, value);
                write_escaped(w, text.bytes());
            }
            _ => write_value(w, value),
        }
    }
    w.put(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(lines: &[&str], names: Option<&[String]>) -> Option<String> {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let head = AnswerHead {
            model_name: "m",
            model_version: Some("1"),
            id: None,
            binary: &[],
            binary_default: false,
        };
        let mut w = JsonWriter::new(false, 0);
        let mut raw = Vec::new();
        write_answer(&mut w, &mut raw, &lines, names, &head).ok()?;
        assert!(raw.is_empty());
        Some(String::from_utf8(w.bytes().to_vec()).unwrap())
    }

    #[test]
    fn datatypes_follow_the_values() {
        let got = answer(
            &[
                r#"{"a":true,"b":1,"c":1.5,"d":"x"}"#,
                r#"{"a":false,"b":2,"c":2,"e":[1]}"#,
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            got,
            concat!(
                r#"{"model_name":"m","model_version":"1","outputs":["#,
                r#"{"name":"a","datatype":"BOOL","shape":[2],"data":[true,false]},"#,
                r#"{"name":"b","datatype":"INT64","shape":[2],"data":[1,2]},"#,
                r#"{"name":"c","datatype":"FP64","shape":[2],"data":[1.5,2.0]},"#,
                r#"{"name":"d","datatype":"BYTES","shape":[2],"data":["x","null"]},"#,
                r#"{"name":"e","datatype":"BYTES","shape":[2],"data":["null","[1]"]}]}"#
            )
        );
    }

    #[test]
    fn integers_are_never_rounded() {
        let got = answer(&[r#"{"u":18446744073709551615}"#, r#"{"u":1}"#], None).unwrap();
        assert!(got.contains(r#""datatype":"UINT64""#), "{got}");
        let got = answer(&[r#"{"x":9007199254740993,"y":0.5}"#, r#"{"x":0.5}"#], None).unwrap();
        assert!(
            got.contains(r#""data":["9007199254740993","0.5"]"#),
            "{got}"
        );
        let got = answer(&[r#"{"x":-1}"#, r#"{"x":18446744073709551615}"#], None).unwrap();
        assert!(got.contains(r#""datatype":"BYTES""#), "{got}");
    }

    #[test]
    fn unknown_outputs_and_odd_lines_go_to_python() {
        assert_eq!(answer(&[r#"{"a":1}"#], Some(&["b".to_string()])), None);
        assert_eq!(answer(&[r#"{"a":NaN}"#], None), None);
        assert_eq!(answer(&[], None), None);
        let picked = answer(
            &[r#"{"a":1,"b":2}"#],
            Some(&["b".to_string(), "b".to_string()]),
        )
        .unwrap();
        assert_eq!(picked.matches(r#""name":"b""#).count(), 2);
    }
}
