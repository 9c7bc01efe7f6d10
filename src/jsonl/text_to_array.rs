//! JSON Lines straight into a 2-D feature array, without a dict per event: each
//! object is scanned with a trie of the feature paths; matching leaves are read
//! as numbers, everything else is validated and skipped.
//!
//! A cell takes the value `get_flat` would find in the dict `json.loads` builds
//! (a literal top-level key equal to the whole feature first, else the path of
//! keys). Whenever that is not certainly a number or a bool (missing, a string,
//! null, a container, an int beyond i64, a key that could spell the feature
//! another way, a repeated key on a feature path), the whole batch gives up
//! (`Bail`) and the caller takes the dict path, so the result is always exact.

use super::scanner::{
    bytes_eq, decode_escaped, not_an_object, LineError, Number, Scanner, SyntaxError,
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    Unset,
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A key to look for: its first eight bytes as a word decide most lookups.
struct KeyPattern {
    head: u64,
    bytes: Box<[u8]>,
    node: usize,
}

/// The first eight bytes of `key` (zero-padded) as a little-endian word.
#[inline(always)]
fn head_word(key: &[u8]) -> u64 {
    if key.len() >= 8 {
        u64::from_le_bytes(key[..8].try_into().expect("8 bytes"))
    } else {
        let mut w = [0u8; 8];
        w[..key.len()].copy_from_slice(key);
        u64::from_le_bytes(w)
    }
}

/// `head_word` of the key at `buf[start..end]`, reading a whole word in place
/// when the buffer goes on long enough (it usually does: `":` and a value follow).
#[inline(always)]
fn head_in(buf: &[u8], start: usize, end: usize) -> u64 {
    let len = end - start;
    if start + 8 <= buf.len() {
        let w = u64::from_le_bytes(buf[start..start + 8].try_into().expect("8 bytes"));
        if len >= 8 {
            w
        } else {
            w & ((1u64 << (len * 8)) - 1)
        }
    } else {
        head_word(&buf[start..end])
    }
}

impl KeyPattern {
    #[inline(always)]
    fn matches(&self, head: u64, key: &[u8]) -> bool {
        self.head == head
            && self.bytes.len() == key.len()
            && (key.len() <= 8 || bytes_eq(&self.bytes[8..], &key[8..]))
    }
}

/// One key of a feature path, with the features that end there.
#[derive(Default)]
struct Node {
    children: Vec<KeyPattern>,
    columns: Vec<usize>,
    /// The rest of each feature path below this node, as text: a key containing
    /// the delimiter that starts one of them could spell it another way.
    rests: Vec<Box<[u8]>>,
}

/// The features compiled into a trie over their delimiter-separated parts.
pub struct Plan {
    nodes: Vec<Node>,
    /// Top-level keys equal to a whole nested feature name (they win).
    literals: Vec<(Box<[u8]>, Vec<usize>)>,
    delimiter: Box<[u8]>,
    columns: usize,
    /// A feature where the delimiter overlaps itself (`a___b` with `__`) can be
    /// spelled by keys the trie does not see: such plans are left to the dict path.
    pub irregular: bool,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    match needle {
        [b] => hay.contains(b),
        _ => hay.len() >= needle.len() && hay.windows(needle.len()).any(|w| bytes_eq(w, needle)),
    }
}

impl Plan {
    /// How many features (columns) the plan reads.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// `delimiter` must not be empty (checked by the caller).
    pub fn new(features: &[String], delimiter: &str) -> Plan {
        let mut plan = Plan {
            nodes: vec![Node::default()],
            literals: Vec::new(),
            delimiter: delimiter.as_bytes().into(),
            columns: features.len(),
            irregular: false,
        };
        for (col, feature) in features.iter().enumerate() {
            let all = feature
                .as_bytes()
                .windows(delimiter.len())
                .filter(|w| *w == delimiter.as_bytes())
                .count();
            if all != feature.matches(delimiter).count() {
                plan.irregular = true;
            }
            let parts: Vec<&str> = feature.split(delimiter).collect();
            if parts.len() > 1 {
                let name: &[u8] = feature.as_bytes();
                match plan.literals.iter_mut().find(|(k, _)| **k == *name) {
                    Some((_, cols)) => cols.push(col),
                    None => plan.literals.push((name.into(), vec![col])),
                }
            }
            let mut node = 0;
            for (i, part) in parts.iter().enumerate() {
                plan.nodes[node]
                    .rests
                    .push(parts[i..].join(delimiter).into_bytes().into());
                let found = plan.nodes[node]
                    .children
                    .iter()
                    .find(|k| *k.bytes == *part.as_bytes())
                    .map(|k| k.node);
                node = match found {
                    Some(c) => c,
                    None => {
                        let c = plan.nodes.len();
                        plan.nodes.push(Node::default());
                        plan.nodes[node].children.push(KeyPattern {
                            head: head_word(part.as_bytes()),
                            bytes: part.as_bytes().into(),
                            node: c,
                        });
                        c
                    }
                };
            }
            plan.nodes[node].columns.push(col);
        }
        plan
    }

    /// True when `key` (holding the delimiter) could begin another spelling of
    /// a feature below `node`.
    fn ambiguous(&self, node: usize, key: &[u8], top: bool) -> bool {
        let d = &*self.delimiter;
        self.nodes[node].rests.iter().any(|rest| {
            (!top && **rest == *key)
                || (rest.len() >= key.len() + d.len()
                    && rest.starts_with(key)
                    && rest[key.len()..].starts_with(d))
        })
    }
}

pub enum Stop {
    Syntax(SyntaxError),
    Bail,
}

impl From<SyntaxError> for Stop {
    fn from(e: SyntaxError) -> Self {
        Stop::Syntax(e)
    }
}

/// What one line gave.
pub enum LineFill {
    Row,
    Error(LineError),
    Bail,
}

/// Scans lines against a plan; the rows go to `cells`, row-major.
pub struct Filler<'p> {
    plan: &'p Plan,
    int_limit: usize,
    path: Vec<Cell>,
    literal: Vec<Cell>,
    /// Per node (then per literal): the object visit that last matched it, to
    /// catch a key repeated within one object.
    stamps: Vec<u64>,
    visit: u64,
    /// The objects open along a feature path: (trie node, visit).
    open: Vec<(usize, u64)>,
    scratch: String,
    pub cells: Vec<Cell>,
    pub any_int: bool,
    pub any_float: bool,
}

impl<'p> Filler<'p> {
    pub fn new(plan: &'p Plan, int_limit: usize) -> Self {
        Filler {
            plan,
            int_limit,
            path: vec![Cell::Unset; plan.columns],
            literal: vec![Cell::Unset; plan.columns],
            stamps: vec![0; plan.nodes.len() + plan.literals.len()],
            visit: 0,
            open: Vec::new(),
            scratch: String::new(),
            cells: Vec::new(),
            any_int: false,
            any_float: false,
        }
    }

    /// Scans the line whose JSON starts at `text[start]` (past a BOM) and
    /// appends its row; also says where the scan stopped (on the line's `\n`
    /// or end, or on the error).
    pub fn line(&mut self, text: &str, start: usize) -> (LineFill, usize) {
        let mut sc = Scanner::new(text, self.int_limit);
        sc.pos = start;
        sc.skip_ws();
        if sc.peek() != Some(b'{') {
            let err = not_an_object(&mut sc);
            return (LineFill::Error(err), sc.pos);
        }
        self.path.fill(Cell::Unset);
        self.literal.fill(Cell::Unset);
        match self
            .object(&mut sc)
            .and_then(|_| sc.finish().map_err(Stop::from))
        {
            Ok(()) => {}
            Err(Stop::Syntax(e)) => {
                let stop = e.pos;
                return (LineFill::Error(LineError::Syntax(e)), stop);
            }
            Err(Stop::Bail) => return (LineFill::Bail, sc.pos),
        }
        for col in 0..self.plan.columns {
            let cell = match self.literal[col] {
                Cell::Unset => self.path[col],
                lit => lit,
            };
            match cell {
                Cell::Unset => return (LineFill::Bail, sc.pos),
                Cell::Int(_) => self.any_int = true,
                Cell::Float(_) => self.any_float = true,
                Cell::Bool(_) => {}
            }
            self.cells.push(cell);
        }
        (LineFill::Row, sc.pos)
    }

    /// The line's object (the cursor is on its `{`), its keys looked up in the
    /// trie. Iterative: the objects open along a feature path are in
    /// `self.open` as (trie node, visit), so the native stack stays flat.
    fn object(&mut self, sc: &mut Scanner<'_>) -> Result<(), Stop> {
        self.open.clear();
        let mut node = 0;
        'open: loop {
            // The cursor is on the `{` of an object at trie node `node`.
            sc.enter(self.open.len())?;
            sc.pos += 1;
            self.visit += 1;
            self.open.push((node, self.visit));
            sc.skip_ws();
            if sc.peek() == Some(b'}') {
                sc.pos += 1;
                self.open.pop();
            } else if let Some(child) = self.member(sc)? {
                node = child;
                continue 'open;
            }
            // After a member: the next one, or the end of the object.
            while !self.open.is_empty() {
                sc.skip_ws();
                match sc.peek() {
                    Some(b',') => {
                        sc.pos += 1;
                        sc.skip_ws();
                        if let Some(child) = self.member(sc)? {
                            node = child;
                            continue 'open;
                        }
                    }
                    Some(b'}') => {
                        sc.pos += 1;
                        self.open.pop();
                    }
                    _ => return Err(SyntaxError::invalid(sc.pos, "expected ',' or '}'").into()),
                }
            }
            return Ok(());
        }
    }

    /// One member of the innermost open object: its key, and its value unless
    /// that is an object to look into (then its trie node, cursor on its `{`).
    #[inline(always)]
    fn member(&mut self, sc: &mut Scanner<'_>) -> Result<Option<usize>, Stop> {
        let Some(&(node, visit)) = self.open.last() else {
            return Ok(None);
        };
        let depth = self.open.len();
        let top = node == 0;
        if sc.peek() != Some(b'"') {
            return Err(SyntaxError::invalid(sc.pos, "expected a string key").into());
        }
        let span = sc.scan_string()?;
        let (key, head): (&[u8], u64) = if span.escaped {
            decode_escaped(sc.raw_str(span), &mut self.scratch).map_err(|_| Stop::Bail)?;
            (self.scratch.as_bytes(), head_word(self.scratch.as_bytes()))
        } else {
            (
                &sc.buf[span.start..span.end],
                head_in(sc.buf, span.start, span.end),
            )
        };
        let plan = self.plan;
        let mut target: Option<(usize, bool)> = plan.nodes[node]
            .children
            .iter()
            .find(|k| k.matches(head, key))
            .map(|k| (k.node, false));
        if target.is_none() && contains(key, &plan.delimiter) {
            if plan.ambiguous(node, key, top) {
                return Err(Stop::Bail);
            }
            if top {
                target = plan
                    .literals
                    .iter()
                    .position(|(k, _)| bytes_eq(k, key))
                    .map(|l| (l, true));
            }
        }
        sc.expect(b':', "expected ':'")?;
        sc.skip_ws();
        let Some((idx, literal)) = target else {
            sc.skip_value(depth)?;
            return Ok(None);
        };
        let stamp = if literal { plan.nodes.len() + idx } else { idx };
        if self.stamps[stamp] == visit {
            // A repeated key: the last value would win; rare enough to leave
            // to the dict path.
            return Err(Stop::Bail);
        }
        self.stamps[stamp] = visit;
        let columns = if literal {
            &plan.literals[idx].1
        } else {
            &plan.nodes[idx].columns
        };
        if !columns.is_empty() {
            let cell = self.scalar(sc)?;
            let cells = if literal {
                &mut self.literal
            } else {
                &mut self.path
            };
            for &c in columns {
                cells[c] = cell;
            }
            Ok(None)
        } else if sc.peek() == Some(b'{') {
            Ok(Some(idx))
        } else {
            sc.skip_value(depth)?;
            Ok(None)
        }
    }

    /// A feature's value: a number or a bool, anything else gives up.
    #[inline(always)]
    fn scalar(&mut self, sc: &mut Scanner<'_>) -> Result<Cell, Stop> {
        match sc.peek() {
            Some(b'-' | b'0'..=b'9') => match sc.scan_number()? {
                Number::Int(v) => Ok(Cell::Int(v)),
                Number::Float(v) => Ok(Cell::Float(v)),
                Number::UInt(_) | Number::BigInt { .. } => Err(Stop::Bail),
            },
            Some(b't' | b'f') => Ok(Cell::Bool(sc.scan_bool()?)),
            Some(b'N') => {
                sc.expect_word(b"NaN")?;
                Ok(Cell::Float(f64::NAN))
            }
            Some(b'I') => {
                sc.expect_word(b"Infinity")?;
                Ok(Cell::Float(f64::INFINITY))
            }
            _ => Err(Stop::Bail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(features: &[&str], delimiter: &str, line: &str) -> Result<Vec<Cell>, String> {
        let features: Vec<String> = features.iter().map(|s| s.to_string()).collect();
        let plan = Plan::new(&features, delimiter);
        let mut f = Filler::new(&plan, 4300);
        match f.line(line, 0).0 {
            LineFill::Row => Ok(f.cells),
            LineFill::Error(e) => Err(e.message(line.as_bytes(), 0)),
            LineFill::Bail => Err("bail".into()),
        }
    }

    const EVENT: &str = r#"{"ts": 17, "src": {"ip": "10.0.0.1", "port": 80, "geo": {"lat": 1.5, "lon": -2}}, "tags": ["a", {"b": 1}], "ok": true, "score": 0.25}"#;

    #[test]
    fn reads_nested_numbers() {
        assert_eq!(
            fill(
                &[
                    "ts",
                    "src.port",
                    "src.geo.lat",
                    "src.geo.lon",
                    "ok",
                    "score"
                ],
                ".",
                EVENT
            ),
            Ok(vec![
                Cell::Int(17),
                Cell::Int(80),
                Cell::Float(1.5),
                Cell::Int(-2),
                Cell::Bool(true),
                Cell::Float(0.25)
            ])
        );
        assert_eq!(
            fill(&["src__port"], "__", r#"{"src": {"port": 8}}"#),
            Ok(vec![Cell::Int(8)])
        );
        assert_eq!(
            fill(&["ts", "ts"], ".", EVENT),
            Ok(vec![Cell::Int(17), Cell::Int(17)])
        );
        assert_eq!(fill(&[], ".", EVENT), Ok(vec![]));
    }

    #[test]
    fn literal_keys_win() {
        assert_eq!(
            fill(&["a.b"], ".", r#"{"a": {"b": 1}, "a.b": 2}"#),
            Ok(vec![Cell::Int(2)])
        );
        assert_eq!(
            fill(&["a.b"], ".", r#"{"a.b": 2, "a": {"b": 1}}"#),
            Ok(vec![Cell::Int(2)])
        );
        assert_eq!(
            fill(&["a", "a.b"], ".", r#"{"a": 5, "a.b": 2}"#),
            Ok(vec![Cell::Int(5), Cell::Int(2)])
        );
        assert_eq!(
            fill(&["x"], ".", r#"{"x": 1, "y.z": "s"}"#),
            Ok(vec![Cell::Int(1)])
        );
        assert_eq!(
            fill(&["a.b"], ".", r#"{"a\u002eb": 2}"#),
            Ok(vec![Cell::Int(2)])
        );
        assert_eq!(
            fill(&["a"], ".", r#"{"\u0061": 3}"#),
            Ok(vec![Cell::Int(3)])
        );
    }

    #[test]
    fn gives_up_when_not_certain() {
        for (features, line) in [
            (&["missing"][..], EVENT),
            (&["src.ip"], EVENT),
            (&["src.geo"], EVENT),
            (&["tags"], EVENT),
            (&["src.port.x"], EVENT),
            (&["a"], r#"{"a": null}"#),
            (&["a"], r#"{"a": 9223372036854775808}"#),
            (&["a"], r#"{"a": 1, "a": 2}"#),
            (&["a.b"], r#"{"a": {"b": 1}, "a": {"c": 2}}"#),
            (&["a.b.c"], r#"{"a": {"b.c": 1}}"#),
            (&["a.b.c"], r#"{"a.b": {"c": 1}}"#),
            (&["a.b.c"], r#"{"a": {"b": {"c": 1}}, "a.b": {"c": 2}}"#),
            (&["a"], r#"{"a": {}}"#),
            (&["a"], r#"{"\ud800": 1}"#),
        ] {
            assert_eq!(
                fill(features, ".", line),
                Err("bail".into()),
                "{features:?} {line}"
            );
        }
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(
            fill(&["a"], ".", "[1]"),
            Err("not a JSON object: array".into())
        );
        assert_eq!(
            fill(&["a"], ".", r#"{"a": 1,}"#),
            Err("invalid JSON at column 9: expected a string key".into())
        );
        assert_eq!(
            fill(&["a"], ".", r#"{"a": 1} 2"#),
            Err("invalid JSON at column 10: extra data after the value".into())
        );
        assert_eq!(
            fill(&["b"], ".", r#"{"a": [}"#),
            Err("invalid JSON at column 8: expected a value".into())
        );
        let deep = format!(
            "{{\"b\": 1, \"a\": {}{}}}",
            "[".repeat(300),
            "]".repeat(300)
        );
        assert!(fill(&["b"], ".", &deep)
            .unwrap_err()
            .contains("nesting deeper"));
    }

    #[test]
    fn specials_are_floats() {
        let cells = fill(
            &["a", "b", "c"],
            ".",
            r#"{"a": NaN, "b": Infinity, "c": -Infinity}"#,
        )
        .unwrap();
        assert!(matches!(cells[0], Cell::Float(v) if v.is_nan()));
        assert_eq!(
            cells[1..],
            [Cell::Float(f64::INFINITY), Cell::Float(f64::NEG_INFINITY)]
        );
    }
}
