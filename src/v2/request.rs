//! A V2 infer body (JSON, and binary data after a JSON header) to the rows the Python path
//! (`V2Api.parse_infer`) makes of it, byte for byte, without a Python object
//! per value. Only bodies every check of the Python path accepts are read
//! here; anything else is `Unsupported`, and Python reads it and words the
//! error, so the two paths cannot disagree on what a 400 says.

use std::borrow::Cow;

use super::binary::{decode, Raw};
use super::value::{
    parse_document, write_float, write_int_as_float, write_value, Unsupported, Value, MAX_NESTING,
};
use crate::jsonl::Cell;
use crate::serialize::string::write_escaped;
use crate::serialize::writer::JsonWriter;

/// Dimensions a shape may have, and values it may hold (as in v2.py).
const MAX_DIMS: usize = 32;
/// Requests of more tensors are read by Python (the names here are compared
/// pairwise and a record's fields looked up by scanning).
const MAX_TENSORS: usize = 64;
const MAX_VALUES: u64 = 1 << 32;
/// The most values a request's binary data may hold for Rust to read it: as
/// the value tree of a JSON body, at most 64 MiB for the body read at a time.
const MAX_BINARY_VALUES: usize = 2 << 20;
/// The tensor of a records backend whose elements are records as JSON text.
const RECORDS: &str = "records";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Datatype {
    Bool,
    Bytes,
    /// An integer type and its range.
    Int(i128, i128),
    /// A float type and the magnitude from which a number rounds to
    /// infinity in it (none for FP64: a finite f64 is an FP64).
    Float(Option<f64>),
}

/// The magnitudes from which a number rounds to infinity in FP16 and FP32
/// (65504 and FLT_MAX are their largest finite values), as the Python path
/// has them.
const FP16_LIMIT: f64 = 65520.0;
const FP32_LIMIT: f64 = 340282356779733661637539395458142568448.0; // 2**128 - 2**103

impl Datatype {
    fn of(name: &str) -> Option<Datatype> {
        Some(match name {
            "BOOL" => Datatype::Bool,
            "BYTES" => Datatype::Bytes,
            "INT8" => Datatype::Int(-(1 << 7), (1 << 7) - 1),
            "INT16" => Datatype::Int(-(1 << 15), (1 << 15) - 1),
            "INT32" => Datatype::Int(-(1 << 31), (1 << 31) - 1),
            "INT64" => Datatype::Int(-(1 << 63), (1 << 63) - 1),
            "UINT8" => Datatype::Int(0, (1 << 8) - 1),
            "UINT16" => Datatype::Int(0, (1 << 16) - 1),
            "UINT32" => Datatype::Int(0, (1 << 32) - 1),
            "UINT64" => Datatype::Int(0, (1 << 64) - 1),
            "FP16" => Datatype::Float(Some(FP16_LIMIT)),
            "FP32" => Datatype::Float(Some(FP32_LIMIT)),
            "FP64" => Datatype::Float(None),
            _ => return None,
        })
    }

    /// Whether `value` is an element of this datatype.
    fn holds(self, value: &Value<'_>) -> bool {
        match (self, value) {
            (Datatype::Bool, Value::Bool(_)) => true,
            (Datatype::Bytes, Value::Str(_)) => true,
            (Datatype::Float(limit), Value::Int(v)) => within(*v as f64, limit),
            (Datatype::Float(limit), Value::UInt(v)) => within(*v as f64, limit),
            (Datatype::Float(limit), Value::Float(f, ..)) => f.is_finite() && within(*f, limit),
            (Datatype::Int(low, high), Value::Int(v)) => (low..=high).contains(&(*v as i128)),
            (Datatype::Int(low, high), Value::UInt(v)) => (low..=high).contains(&(*v as i128)),
            _ => false,
        }
    }
}

/// Whether `v` is below a float type's limit in magnitude (an integer is
/// compared as the f64 nearest it: exact below 2**53, far below FP32's limit).
fn within(v: f64, limit: Option<f64>) -> bool {
    match limit {
        Some(limit) => v.abs() < limit,
        None => true,
    }
}

/// One input tensor, checked: its values flat, row-major.
struct Tensor<'b, 'a> {
    name: &'b str,
    datatype: Datatype,
    shape: Vec<u64>,
    values: Vec<&'b Value<'a>>,
}

impl Tensor<'_, '_> {
    /// N of a tensor that is one column: shape [N] or [N, 1].
    fn column_rows(&self) -> Option<u64> {
        match self.shape[..] {
            [n] | [n, 1] => Some(n),
            _ => None,
        }
    }
}

/// A JSON object's members, in order: each leaf a column.
#[derive(Debug, Default)]
pub struct Template {
    members: Vec<(Vec<u8>, Node)>,
}

#[derive(Debug)]
enum Node {
    Leaf(usize),
    Branch(Template),
}

impl Template {
    /// The rows' shape when column j goes to `paths[j]`, in the order a dict
    /// built path by path has (`_build_rows`); `Unsupported` when one path
    /// is another's prefix or repeats it (one row cannot hold both).
    pub fn new<S: AsRef<str>>(paths: &[Vec<S>]) -> Result<Template, Unsupported> {
        let mut root = Template::default();
        for (column, path) in paths.iter().enumerate() {
            let (last, head) = path.split_last().ok_or(Unsupported)?;
            let mut node = &mut root;
            for part in head {
                let key = key_json(part.as_ref());
                let at = match node.members.iter().position(|(k, _)| *k == key) {
                    Some(at) => at,
                    None => {
                        node.members.push((key, Node::Branch(Template::default())));
                        node.members.len() - 1
                    }
                };
                node = match &mut node.members[at].1 {
                    Node::Branch(t) => t,
                    Node::Leaf(_) => return Err(Unsupported),
                };
            }
            let key = key_json(last.as_ref());
            if node.members.iter().any(|(k, _)| *k == key) {
                return Err(Unsupported);
            }
            node.members.push((key, Node::Leaf(column)));
        }
        Ok(root)
    }

    fn write(&self, w: &mut JsonWriter, columns: &[Column<'_, '_>], row: usize) {
        w.push(b'{');
        for (i, (key, node)) in self.members.iter().enumerate() {
            if i > 0 {
                w.push(b',');
            }
            w.put(key);
            match node {
                Node::Leaf(j) => columns[*j].write(w, row),
                Node::Branch(t) => t.write(w, columns, row),
            }
        }
        w.push(b'}');
    }
}

/// `"key":` as the writer spells it.
fn key_json(key: &str) -> Vec<u8> {
    let mut w = JsonWriter::new(false, key.len() + 8);
    write_escaped(&mut w, key.as_bytes());
    w.push(b':');
    w.bytes().to_vec()
}

/// Column `offset` of a tensor whose rows are `stride` values.
struct Column<'t, 'a> {
    values: &'t [&'t Value<'a>],
    datatype: Datatype,
    stride: usize,
    offset: usize,
}

impl Column<'_, '_> {
    fn write(&self, w: &mut JsonWriter, row: usize) {
        let value = self.values[row * self.stride + self.offset];
        match (self.datatype, value) {
            // A JSON integer in a float tensor is a float (json.loads made
            // it an int; the Python path converts it).
            (Datatype::Float(_), Value::Int(v)) => write_int_as_float(w, *v),
            (Datatype::Float(_), Value::UInt(v)) => write_float(w, *v as f64),
            _ => write_value(w, value),
        }
    }

    /// The cell the engine's text reader would read from what `write`
    /// writes; `None` for a value it does not read as a plain number (an
    /// integer past int64).
    fn cell(&self, row: usize) -> Option<Cell> {
        let value = self.values[row * self.stride + self.offset];
        Some(match (self.datatype, value) {
            (Datatype::Float(_), Value::Int(v)) => Cell::Float(*v as f64),
            (Datatype::Float(_), Value::UInt(v)) => Cell::Float(*v as f64),
            (_, Value::Float(v, _)) => Cell::Float(*v),
            (_, Value::Int(v)) => Cell::Int(*v),
            (_, Value::Bool(b)) => Cell::Bool(*b),
            _ => return None,
        })
    }
}

/// How a backend reads rows: the numpy features and where each goes in a
/// row, or records (column paths split on `delimiter`).
pub struct Layout {
    /// The feature names of a numpy backend, else `None`.
    pub features: Option<Vec<String>>,
    /// The rows of a numpy backend (`None`: its paths clash; Python says how).
    pub template: Option<Template>,
    pub delimiter: String,
    /// The most rows a request may hold (the server's queue).
    pub max_rows: u64,
    /// Whether a numpy backend's rows go to the engine as feature cells
    /// (its preprocessor is the stock one, which reads them) rather than
    /// JSON Lines.
    pub cells: bool,
}

/// An infer request's rows as the engine takes them.
#[derive(Debug, PartialEq)]
pub enum Rows {
    /// JSON Lines, one object a row.
    Lines(Vec<u8>),
    /// Feature cells, row-major, and how many a row has.
    Cells(Vec<Cell>, usize),
}

/// What an infer request's answer needs besides its rows.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub data: Rows,
    pub rows: usize,
    pub id: Option<String>,
    /// The outputs asked for by name, in order; `None`: all of them.
    pub outputs: Option<Vec<String>>,
    /// `binary_data` of the outputs that give it, in order.
    pub binary: Vec<(String, bool)>,
    pub binary_default: bool,
}

/// The request of a V2 body, or `Unsupported`. `header`: the length of its
/// JSON header when binary data follows it (the request's
/// `Inference-Header-Content-Length`), else the whole body is JSON.
pub fn read_request(
    body: &[u8],
    header: Option<usize>,
    layout: &Layout,
) -> Result<Request, Unsupported> {
    let (json, mut raw) = match header {
        None => (body, None),
        Some(n) if n <= body.len() => (&body[..n], Some(Raw::new(&body[n..]))),
        Some(_) => return Err(Unsupported),
    };
    let text = std::str::from_utf8(json).map_err(|_| Unsupported)?;
    let doc = parse_document(text)?;
    let Value::Obj(_) = doc else {
        return Err(Unsupported);
    };
    let id = match doc.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::Str(s)) => Some(s.to_string()),
        Some(_) => return Err(Unsupported),
    };
    let params = match doc.get("parameters") {
        None | Some(Value::Null) => None,
        Some(Value::Obj(members)) => Some(members),
        Some(_) => return Err(Unsupported),
    };
    let Some(Value::Arr(inputs)) = doc.get("inputs") else {
        return Err(Unsupported);
    };
    if inputs.is_empty() || inputs.len() > MAX_TENSORS {
        return Err(Unsupported);
    }
    // The values sent as binary data, taken in input order; every byte
    // after the header must belong to a tensor.
    let mut budget = MAX_BINARY_VALUES;
    let decoded = inputs
        .iter()
        .map(|item| binary_values(item, raw.as_mut(), layout, &mut budget))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.is_some_and(|raw| !raw.all_used()) {
        return Err(Unsupported);
    }
    let tensors = inputs
        .iter()
        .zip(&decoded)
        .map(|(item, values)| read_tensor(item, layout.max_rows, values.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, t) in tensors.iter().enumerate() {
        if tensors[..i].iter().any(|o| o.name == t.name) {
            return Err(Unsupported);
        }
    }
    let (outputs, binary) = read_outputs(doc.get("outputs"))?;
    let binary_default =
        match params.and_then(|p| p.iter().find(|(k, _)| k == "binary_data_output")) {
            None => false,
            Some((_, Value::Bool(b))) => *b,
            Some(_) => return Err(Unsupported),
        };
    let (data, rows) = match &layout.features {
        Some(features) => feature_rows(&tensors, features, layout)?,
        None => record_lines(&tensors, &layout.delimiter).map(|(l, n)| (Rows::Lines(l), n))?,
    };
    Ok(Request {
        data,
        rows,
        id,
        outputs,
        binary,
        binary_default,
    })
}

/// The values of a tensor that gives a `binary_data_size`, read from `raw`
/// (`None` for a tensor whose values are in its "data"). Only a tensor of a
/// shape the layout takes is decoded (as the Python path reads no value
/// before every head fits): a value takes 32 bytes in the tree and a byte
/// in the body, so a body of a 4 MiB tensor over the row limit would
/// otherwise cost 128 MiB for nothing. At most `budget` values (what is
/// left of `MAX_BINARY_VALUES`; past it, Python reads them, 8 bytes each in
/// its list).
fn binary_values(
    item: &Value<'_>,
    raw: Option<&mut Raw<'_>>,
    layout: &Layout,
    budget: &mut usize,
) -> Result<Option<Vec<Value<'static>>>, Unsupported> {
    let size = match item.get("parameters") {
        Some(params @ Value::Obj(_)) => match params.get("binary_data_size") {
            None => return Ok(None),
            Some(Value::Int(size)) => u64::try_from(*size).map_err(|_| Unsupported)?,
            Some(_) => return Err(Unsupported),
        },
        _ => return Ok(None),
    };
    // Values given twice, or binary data with no header length to find it.
    let (None, Some(raw)) = (item.get("data"), raw) else {
        return Err(Unsupported);
    };
    let datatype = item
        .get("datatype")
        .and_then(Value::as_str)
        .ok_or(Unsupported)?;
    let Some(Value::Arr(dims)) = item.get("shape") else {
        return Err(Unsupported);
    };
    let shape = dims
        .iter()
        .map(|d| match *d {
            Value::Int(d) => u64::try_from(d).map_err(|_| Unsupported),
            _ => Err(Unsupported),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let k = layout.features.as_ref().map(|f| f.len() as u64);
    // A column ([N], [N, 1]), or a numpy backend's [N, k]: N rows of at
    // most max(k, 1) values, N within the limit.
    let count = match shape[..] {
        [n] | [n, 1] => n,
        [n, width] if Some(width) == k => n.checked_mul(width).ok_or(Unsupported)?,
        _ => return Err(Unsupported),
    };
    if shape[0] > layout.max_rows || count > MAX_VALUES {
        return Err(Unsupported);
    }
    *budget = usize::try_from(count)
        .ok()
        .and_then(|c| budget.checked_sub(c))
        .ok_or(Unsupported)?;
    decode(raw.take(size)?, datatype, count).map(Some)
}

/// An input tensor, checked; `binary`: its values when sent as binary data.
fn read_tensor<'b, 'a>(
    item: &'b Value<'a>,
    max_rows: u64,
    binary: Option<&'b [Value<'static>]>,
) -> Result<Tensor<'b, 'a>, Unsupported> {
    let Value::Obj(_) = item else {
        return Err(Unsupported);
    };
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .ok_or(Unsupported)?;
    if name.is_empty() {
        return Err(Unsupported);
    }
    let datatype = item
        .get("datatype")
        .and_then(Value::as_str)
        .and_then(Datatype::of)
        .ok_or(Unsupported)?;
    let Some(Value::Arr(dims)) = item.get("shape") else {
        return Err(Unsupported);
    };
    if dims.is_empty() || dims.len() > MAX_DIMS {
        return Err(Unsupported);
    }
    let mut shape = Vec::with_capacity(dims.len());
    let mut expected: u64 = 1;
    for d in dims {
        let Value::Int(d) = *d else {
            return Err(Unsupported);
        };
        let d = u64::try_from(d).map_err(|_| Unsupported)?;
        expected = expected.checked_mul(d).ok_or(Unsupported)?;
        if expected > MAX_VALUES {
            return Err(Unsupported);
        }
        shape.push(d);
    }
    if shape[0] > max_rows {
        return Err(Unsupported);
    }
    let values: Vec<&'b Value<'a>> = match binary {
        Some(decoded) => decoded.iter().collect(),
        None => {
            let Some(Value::Arr(data)) = item.get("data") else {
                return Err(Unsupported);
            };
            let mut values = Vec::with_capacity(data.len());
            flatten(data, &shape, &mut values)?;
            values
        }
    };
    if values.len() as u64 != expected || !values.iter().all(|v| datatype.holds(v)) {
        return Err(Unsupported);
    }
    Ok(Tensor {
        name,
        datatype,
        shape,
        values,
    })
}

/// The values of a flat array, or of one nested as `shape` is (each array
/// at depth d holding `shape[d]` items; depth is bounded by the shape's 32
/// dimensions), row-major; any other nesting is the Python path's 400.
fn flatten<'b, 'a>(
    items: &'b [Value<'a>],
    shape: &[u64],
    out: &mut Vec<&'b Value<'a>>,
) -> Result<(), Unsupported> {
    if !items.iter().any(|v| matches!(v, Value::Arr(_))) {
        out.extend(items);
        return Ok(());
    }
    nested(items, shape, 0, out)
}

fn nested<'b, 'a>(
    items: &'b [Value<'a>],
    shape: &[u64],
    depth: usize,
    out: &mut Vec<&'b Value<'a>>,
) -> Result<(), Unsupported> {
    if items.len() as u64 != shape[depth] {
        return Err(Unsupported);
    }
    for item in items {
        match item {
            Value::Arr(inner) if depth + 1 < shape.len() => nested(inner, shape, depth + 1, out)?,
            Value::Arr(_) => return Err(Unsupported),
            other if depth + 1 == shape.len() => out.push(other),
            _ => return Err(Unsupported),
        }
    }
    Ok(())
}

type Outputs = (Option<Vec<String>>, Vec<(String, bool)>);

fn read_outputs(outputs: Option<&Value<'_>>) -> Result<Outputs, Unsupported> {
    let items = match outputs {
        None | Some(Value::Null) => return Ok((None, Vec::new())),
        Some(Value::Arr(items)) => items,
        Some(_) => return Err(Unsupported),
    };
    if items.is_empty() {
        return Ok((None, Vec::new())); // none named: all of them
    }
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    let mut asked = rustc_hash::FxHashSet::default();
    let mut binary = Vec::new();
    for item in items {
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .ok_or(Unsupported)?;
        if !asked.insert(name) {
            return Err(Unsupported); // asked twice: the Python path's 400
        }
        names.push(name.to_string());
        if let Some(params @ Value::Obj(_)) = item.get("parameters") {
            match params.get("binary_data") {
                None => {}
                Some(Value::Bool(b)) => binary.push((name.to_string(), *b)),
                Some(_) => return Err(Unsupported),
            }
        }
    }
    Ok((Some(names), binary))
}

/// The rows of a numpy backend: one [N, k] tensor (any name but a
/// feature's), or one column tensor per feature.
fn feature_rows(
    tensors: &[Tensor<'_, '_>],
    features: &[String],
    layout: &Layout,
) -> Result<(Rows, usize), Unsupported> {
    let template = layout.template.as_ref().ok_or(Unsupported)?;
    let k = features.len();
    if tensors.iter().any(|t| t.datatype == Datatype::Bytes) {
        return Err(Unsupported);
    }
    let is_feature = |name: &str| features.iter().any(|f| f == name);
    if let [t] = tensors {
        if t.shape.len() == 2 && !is_feature(t.name) {
            if t.shape[1] != k as u64 {
                return Err(Unsupported);
            }
            let columns: Vec<Column<'_, '_>> = (0..k)
                .map(|j| Column {
                    values: &t.values,
                    datatype: t.datatype,
                    stride: k,
                    offset: j,
                })
                .collect();
            return rows_of(layout, template, &columns, t.shape[0]);
        }
    }
    if tensors.len() != k || !tensors.iter().all(|t| is_feature(t.name)) {
        return Err(Unsupported);
    }
    let n = same_rows(tensors)?;
    let columns = features
        .iter()
        .map(|f| {
            let t = tensors.iter().find(|t| t.name == f).ok_or(Unsupported)?;
            Ok(Column {
                values: &t.values,
                datatype: t.datatype,
                stride: 1,
                offset: 0,
            })
        })
        .collect::<Result<Vec<_>, Unsupported>>()?;
    rows_of(layout, template, &columns, n)
}

/// The rows as cells when the layout takes them and every value is a plain
/// number, else as JSON Lines.
fn rows_of(
    layout: &Layout,
    template: &Template,
    columns: &[Column<'_, '_>],
    n: u64,
) -> Result<(Rows, usize), Unsupported> {
    if layout.cells && n > 0 {
        if let Some(cells) = cells_of(columns, n as usize) {
            return Ok((Rows::Cells(cells, columns.len()), n as usize));
        }
    }
    write_rows(template, columns, n).map(|(lines, n)| (Rows::Lines(lines), n))
}

fn cells_of(columns: &[Column<'_, '_>], n: usize) -> Option<Vec<Cell>> {
    let mut cells = Vec::with_capacity(n * columns.len());
    for row in 0..n {
        for column in columns {
            cells.push(column.cell(row)?);
        }
    }
    Some(cells)
}

/// N of tensors that are each one column, the same N for all.
fn same_rows(tensors: &[Tensor<'_, '_>]) -> Result<u64, Unsupported> {
    let n = tensors[0].column_rows().ok_or(Unsupported)?;
    for t in tensors {
        if t.column_rows() != Some(n) {
            return Err(Unsupported);
        }
    }
    Ok(n)
}

/// The rows of a records backend: the `records` BYTES tensor of JSON
/// objects, or columns named by field paths.
fn record_lines(
    tensors: &[Tensor<'_, '_>],
    delimiter: &str,
) -> Result<(Vec<u8>, usize), Unsupported> {
    let n = same_rows(tensors)?;
    if n == 0 {
        return Err(Unsupported);
    }
    if let [t] = tensors {
        if t.datatype == Datatype::Bytes && t.name == RECORDS {
            let mut w = JsonWriter::new(false, t.values.iter().map(|v| text_len(v) + 1).sum());
            for value in &t.values {
                let Value::Str(text) = value else {
                    return Err(Unsupported);
                };
                let record = parse_document(text)?;
                if !matches!(record, Value::Obj(_)) {
                    return Err(Unsupported);
                }
                write_value(&mut w, &record);
                w.push(b'\n');
            }
            return Ok((w.bytes().to_vec(), n as usize));
        }
    }
    if delimiter.is_empty() {
        return Err(Unsupported);
    }
    let paths: Vec<Vec<&str>> = tensors
        .iter()
        .map(|t| t.name.split(delimiter).collect())
        .collect();
    if paths
        .iter()
        .any(|p| p.len() > MAX_NESTING || p.iter().any(|part| part.is_empty()))
    {
        return Err(Unsupported);
    }
    let template = Template::new(&paths)?;
    let columns: Vec<Column<'_, '_>> = tensors
        .iter()
        .map(|t| Column {
            values: &t.values,
            datatype: t.datatype,
            stride: 1,
            offset: 0,
        })
        .collect();
    write_rows(&template, &columns, n)
}

fn text_len(value: &Value<'_>) -> usize {
    match value {
        Value::Str(Cow::Borrowed(s)) => s.len(),
        Value::Str(Cow::Owned(s)) => s.len(),
        _ => 0,
    }
}

fn write_rows(
    template: &Template,
    columns: &[Column<'_, '_>],
    n: u64,
) -> Result<(Vec<u8>, usize), Unsupported> {
    if n == 0 {
        return Err(Unsupported);
    }
    let n = n as usize;
    let mut w = JsonWriter::new(false, 64);
    for row in 0..n {
        template.write(&mut w, columns, row);
        w.push(b'\n');
        if row == 0 && n > 1 {
            w.size_for_rows(n);
        }
    }
    Ok((w.bytes().to_vec(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str, shape: &[u64]) -> Option<usize> {
        let doc = parse_document(text).ok()?;
        let Value::Arr(items) = &doc else { return None };
        let mut out = Vec::new();
        flatten(items, shape, &mut out).ok()?;
        Some(out.len())
    }

    #[test]
    fn data_is_flat_or_nested_as_its_shape() {
        assert_eq!(values("[1,2,3,4,5,6]", &[2, 3]), Some(6));
        assert_eq!(values("[[1,2,3],[4,5,6]]", &[2, 3]), Some(6));
        assert_eq!(values("[[[1,2],[3,4]]]", &[1, 2, 2]), Some(4));
        assert_eq!(values("[[],[]]", &[2, 0]), Some(0));
        // Ragged, deeper than the shape, mixed, or another length on top.
        assert_eq!(values("[[1,2],[3,4,5,6]]", &[2, 3]), None);
        assert_eq!(values("[[[1],[2],[3]],[[4],[5],[6]]]", &[2, 3]), None);
        assert_eq!(values("[1,2,3,[4,5,6]]", &[2, 3]), None);
        assert_eq!(values("[[1,2,3],[4,5,6]]", &[1, 3]), None);
    }

    #[test]
    fn binary_values_of_a_shape_no_layout_takes_are_not_decoded() {
        let layout = |features: Option<Vec<String>>| Layout {
            features,
            template: None,
            delimiter: ".".into(),
            max_rows: 4,
            cells: false,
        };
        let records = layout(None);
        let numpy = layout(Some(vec!["a".into(), "b".into()]));
        let bytes = [1u8; 8];
        let decoded = |shape: &str, layout: &Layout| {
            let text = format!(
                r#"{{"datatype":"UINT8","shape":{shape},"parameters":{{"binary_data_size":8}}}}"#
            );
            let item = parse_document(&text).unwrap();
            let mut raw = Raw::new(&bytes);
            let mut budget = MAX_BINARY_VALUES;
            let values = binary_values(&item, Some(&mut raw), layout, &mut budget);
            // Refused before a byte is taken (or decoded).
            assert_eq!(values.is_ok(), raw.all_used(), "{shape}");
            values.ok().flatten().map(|v| v.len())
        };
        assert_eq!(decoded("[4,2]", &numpy), Some(8));
        assert_eq!(decoded("[8]", &numpy), None); // 8 rows, 4 at most
        assert_eq!(decoded("[8,1]", &records), None);
        assert_eq!(decoded("[4,2]", &records), None); // a records column is [N]
        assert_eq!(decoded("[1,8]", &numpy), None);
        assert_eq!(decoded("[2,2,2]", &numpy), None);
        assert_eq!(decoded("[]", &numpy), None);
    }

    #[test]
    fn narrow_floats_hold_what_rounds_to_a_finite_value() {
        fn holds(datatype: &str, text: &str) -> bool {
            Datatype::of(datatype)
                .unwrap()
                .holds(&parse_document(text).unwrap())
        }
        assert!(holds("FP32", "3.4028235e38"));
        assert!(!holds("FP32", "3.4028235677973366e38"));
        assert!(holds("FP16", "65519"));
        assert!(holds("FP16", "-65519.9"));
        assert!(!holds("FP16", "65520"));
        // A number past f64 is not read at all (the Python path names it).
        assert!(parse_document("1e400").is_err());
        assert!(holds("FP64", "1e300"));
    }

    #[test]
    fn binary_data_is_read_up_to_its_value_budget() {
        let layout = Layout {
            features: Some(vec!["a".into()]),
            template: Template::new(&[vec!["a"]]).ok(),
            delimiter: ".".into(),
            max_rows: u64::MAX,
            cells: true,
        };
        let body = |n: usize| {
            let header = format!(
                r#"{{"inputs":[{{"name":"a","datatype":"BOOL","shape":[{n}],"parameters":{{"binary_data_size":{n}}}}}]}}"#
            );
            let mut body = header.clone().into_bytes();
            body.extend(std::iter::repeat_n(1u8, n));
            (body, header.len())
        };
        let (small, at) = body(3);
        let read = read_request(&small, Some(at), &layout).unwrap();
        assert_eq!(read.rows, 3);
        assert!(matches!(read.data, Rows::Cells(ref c, 1) if c.len() == 3));
        let (large, at) = body(MAX_BINARY_VALUES);
        assert!(read_request(&large, Some(at), &layout).is_ok());
        let (over, at) = body(MAX_BINARY_VALUES + 1);
        assert_eq!(read_request(&over, Some(at), &layout), Err(Unsupported));
        // A header length past the body, or bytes no tensor takes.
        assert_eq!(
            read_request(&small, Some(small.len() + 1), &layout),
            Err(Unsupported)
        );
        let mut extra = small.clone();
        extra.push(0);
        assert_eq!(
            read_request(&extra, Some(at_of(&small)), &layout),
            Err(Unsupported)
        );
    }

    fn at_of(body: &[u8]) -> usize {
        body.iter().rposition(|&b| b == b'}').unwrap() + 1
    }
}
