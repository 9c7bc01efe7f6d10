//! A batch of JSON Lines read for the batch engine, in one pass: the records
//! (dicts), or, for the numpy preprocessor, the feature array straight from the
//! text. When some cell of the batch is not a plain number (a string, a
//! missing feature), the lines read so far keep their cells and the rest are
//! parsed into dicts from where the text reader stopped: no line is read
//! twice, and the array is the one the preprocessor builds from the dicts.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList};

use super::lines::{LineCursor, NextLine};
use super::parser::{with_key_cache, Builder};
use super::text_to_array::{Cell, Filler, LineFill, Plan};
use super::{check_line_numbers, error_tuple, int_limit};
use crate::errors::value_error;
use crate::records_to_array::{as_preprocess_error, rows_to_array, NumpyPlan};

/// What reading a batch gave.
pub struct ReadBatch<'py> {
    /// The good lines as the first step's input: a list of records, or (when
    /// `preprocessed`) the feature array, or the preprocessor's error when the
    /// array could not be built (a lookup that fails on a dict).
    pub input: PyResult<Bound<'py, PyAny>>,
    /// `input` is the preprocess step's output (the array), not records.
    pub preprocessed: bool,
    /// The line number of each good line.
    pub line_numbers: Bound<'py, PyList>,
    /// `(line number, raw line, message)` for each bad line.
    pub errors: Bound<'py, PyList>,
    /// Non-blank lines seen.
    pub lines: usize,
    /// The cells the array was built from (text reader only, none handed
    /// over to dicts), so that rows of it can be built again untouched.
    pub cells: Option<RowCells>,
    /// How many rows the text reader read before it handed the rest over to
    /// dicts (at a cell that is not a plain number), when it did.
    pub handed_over_at: Option<usize>,
    /// With `stop_at_suspect`: the line number of the line the text reader
    /// stopped on, whose lines (it and the rest) were left unread; `input`
    /// is then None and `cells` holds the rows before it.
    pub stopped_line: Option<u64>,
}

/// The plain cells of a batch's rows, row-major, kept to build the feature
/// array of any run of those rows again (the hooks may have changed the array
/// they were given).
pub struct RowCells {
    cells: Vec<Cell>,
    columns: usize,
    line_numbers: Vec<u64>,
}

impl RowCells {
    /// `cells`: a row of `columns` for each of `line_numbers`.
    pub fn new(cells: Vec<Cell>, columns: usize, line_numbers: Vec<u64>) -> RowCells {
        debug_assert_eq!(cells.len(), columns * line_numbers.len());
        RowCells {
            cells,
            columns,
            line_numbers,
        }
    }

    /// The array of rows `start..stop`, typed as `numpy.array` types those
    /// rows alone; None when the range is not within the rows.
    pub fn array<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        stop: usize,
    ) -> Option<PyResult<Bound<'py, PyAny>>> {
        let c = self.columns;
        if start > stop || stop > self.rows() {
            return None;
        }
        let cells = &self.cells[start * c..stop * c];
        let any_int = cells.iter().any(|x| matches!(x, Cell::Int(_)));
        let any_float = cells.iter().any(|x| matches!(x, Cell::Float(_)));
        Some(cells_to_array(
            py,
            cells,
            stop - start,
            c,
            any_int,
            any_float,
        ))
    }

    /// How many rows there are.
    pub fn rows(&self) -> usize {
        self.line_numbers.len()
    }

    /// The line numbers of rows `start..stop` (a range `array` took).
    pub fn line_numbers(&self, start: usize, stop: usize) -> &[u64] {
        &self.line_numbers[start..stop]
    }
}

/// Records, with the bad lines, appended to the lists given; from the cursor's
/// current position.
#[allow(clippy::too_many_arguments)]
fn parse_rest<'py>(
    py: Python<'py>,
    data: &[u8],
    cursor: &mut LineCursor<'_>,
    first_line: u64,
    records: &Bound<'py, PyList>,
    line_numbers: &Bound<'py, PyList>,
    errors: &Bound<'py, PyList>,
    limit: usize,
) -> PyResult<usize> {
    let _gc = crate::gc_pause::GcPause::new(py);
    let mut seen = 0usize;
    with_key_cache(|keys| -> PyResult<()> {
        let mut builder = Builder::new(py, keys, limit);
        loop {
            let line = match cursor.next_line() {
                NextLine::Done => return Ok(()),
                NextLine::NotUtf8(index, start, end, msg) => {
                    seen += 1;
                    let line_no = first_line.saturating_add(index as u64);
                    errors.append(error_tuple(py, line_no, &data[start..end], &msg)?)?;
                    continue;
                }
                NextLine::Line(line) => line,
            };
            seen += 1;
            let line_no = first_line.saturating_add(line.index as u64);
            let (outcome, stop) = builder.parse_line(line.text, line.start)?;
            let (raw_start, raw_end) = cursor.end_line(stop);
            match outcome {
                Ok(record) => {
                    records.append(record)?;
                    line_numbers.append(line_no)?;
                }
                Err(err) => {
                    let raw = &data[raw_start..raw_end];
                    let msg = err.message(raw, line.line_start);
                    errors.append(error_tuple(py, line_no, raw, &msg)?)?;
                }
            }
        }
    })?;
    Ok(seen)
}

/// The lines of `data` as records.
pub fn read_records<'py>(
    py: Python<'py>,
    data: &[u8],
    first_line: u64,
) -> PyResult<ReadBatch<'py>> {
    check_line_numbers(data, first_line)?;
    let records = PyList::empty(py);
    let line_numbers = PyList::empty(py);
    let errors = PyList::empty(py);
    let mut cursor = LineCursor::new(data);
    let lines = parse_rest(
        py,
        data,
        &mut cursor,
        first_line,
        &records,
        &line_numbers,
        &errors,
        int_limit(py)?,
    )?;
    Ok(ReadBatch {
        input: Ok(records.into_any()),
        preprocessed: false,
        line_numbers,
        errors,
        lines,
        cells: None,
        handed_over_at: None,
        stopped_line: None,
    })
}

/// The text reader's pass over a whole batch: owned, borrowing nothing of
/// the batch or of Python, so that it can be made on another thread (ahead of
/// the call that uses it, see src/read_ahead.rs) as well as in that call.
pub struct Scanned {
    /// The line number of each row read.
    pub(super) line_numbers: Vec<u64>,
    /// Line number, raw line range in the batch, message.
    pub(super) errors: Vec<(u64, usize, usize, String)>,
    /// Non-blank lines seen (rows and errors).
    pub(super) lines: usize,
    /// The line the reader could not take, when it stopped early: its index
    /// in the batch and where its raw bytes start.
    pub(super) stopped_at: Option<(usize, usize)>,
    /// The rows' cells, row-major (a stopped line may have left some of its
    /// own after them).
    pub(super) cells: Vec<Cell>,
    pub(super) any_int: bool,
    pub(super) any_float: bool,
    /// How long the pass took.
    pub scan_ns: u64,
    /// Lines passed, blank ones counted (all of them unless it stopped).
    passed: usize,
}

impl Scanned {
    /// Appends the pass over the next piece of the same batch (scanned as
    /// if numbered from 0), which starts `at` bytes and `line_offset` lines
    /// into the batch; `self` covers everything before it and did not stop.
    /// Returns whether the batch is now fully read (the piece did not stop
    /// either, and more pieces may follow).
    pub fn append(&mut self, next: Scanned, at: usize, first_line: u64) -> bool {
        let lines_before = self.passed as u64;
        let shift = |n: u64| n.saturating_add(lines_before).saturating_add(first_line);
        self.line_numbers
            .extend(next.line_numbers.iter().map(|&n| shift(n)));
        self.errors.extend(
            next.errors
                .into_iter()
                .map(|(n, start, end, msg)| (shift(n), start + at, end + at, msg)),
        );
        self.lines += next.lines;
        self.stopped_at = next
            .stopped_at
            .map(|(index, start)| (index + self.passed, start + at));
        self.cells.extend(next.cells);
        self.any_int |= next.any_int;
        self.any_float |= next.any_float;
        self.scan_ns = self.scan_ns.saturating_add(next.scan_ns);
        self.passed += next.passed;
        self.stopped_at.is_none()
    }

    /// Nothing read yet: the start of a batch read in pieces.
    pub fn empty() -> Scanned {
        Scanned {
            line_numbers: Vec::new(),
            errors: Vec::new(),
            lines: 0,
            stopped_at: None,
            cells: Vec::new(),
            any_int: false,
            any_float: false,
            scan_ns: 0,
            passed: 0,
        }
    }
}

/// The text reader's pass over `data` (numbered from `first_line`) with
/// `plan`; `int_limit` is `sys.get_int_max_str_digits()`. Needs no GIL.
pub fn scan_batch(data: &[u8], first_line: u64, plan: &Plan, int_limit: usize) -> Scanned {
    let began = std::time::Instant::now();
    let mut filler = Filler::new(plan, int_limit);
    let mut cursor = LineCursor::new(data);
    let mut line_numbers = Vec::new();
    let mut errors = Vec::new();
    let mut lines = 0usize;
    let mut stopped_at = None;
    loop {
        let line = match cursor.next_line() {
            NextLine::Done => break,
            NextLine::NotUtf8(index, start, end, msg) => {
                lines += 1;
                errors.push((first_line.saturating_add(index as u64), start, end, msg));
                continue;
            }
            NextLine::Line(line) => line,
        };
        let line_no = first_line.saturating_add(line.index as u64);
        let (fill, stop) = filler.line(line.text, line.start);
        match fill {
            LineFill::Row => {
                lines += 1;
                cursor.end_line(stop);
                line_numbers.push(line_no);
            }
            LineFill::Error(err) => {
                lines += 1;
                let (raw_start, raw_end) = cursor.end_line(stop);
                let msg = err.message(&data[raw_start..raw_end], line.line_start);
                errors.push((line_no, raw_start, raw_end, msg));
            }
            LineFill::Bail => {
                stopped_at = Some((line.index, cursor.raw_start(&line)));
                break;
            }
        }
    }
    Scanned {
        line_numbers,
        errors,
        lines,
        stopped_at,
        cells: filler.cells,
        any_int: filler.any_int,
        any_float: filler.any_float,
        scan_ns: u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX),
        passed: cursor.lines_passed(),
    }
}

/// The array `numpy.array(rows)` makes of plain cells: float64 if any float,
/// else int64 if any int (bools count 0/1), else bool.
pub fn cells_to_array<'py>(
    py: Python<'py>,
    cells: &[Cell],
    rows: usize,
    columns: usize,
    any_int: bool,
    any_float: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if rows == 0 {
        // numpy.array([]) is one-dimensional.
        return Ok(PyArray1::<f64>::zeros(py, 0, false).into_any());
    }
    let shape = (rows, columns);
    let shape_err = |e: numpy::ndarray::ShapeError| value_error(e.to_string());
    Ok(if any_float || columns == 0 {
        let v: Vec<f64> = cells
            .iter()
            .map(|c| match *c {
                Cell::Float(f) => f,
                Cell::Int(i) => i as f64,
                Cell::Bool(b) => f64::from(u8::from(b)),
                Cell::Unset => f64::NAN,
            })
            .collect();
        Array2::from_shape_vec(shape, v)
            .map_err(shape_err)?
            .into_pyarray(py)
            .into_any()
    } else if any_int {
        let v: Vec<i64> = cells
            .iter()
            .map(|c| match *c {
                Cell::Int(i) => i,
                Cell::Bool(b) => i64::from(b),
                Cell::Float(_) | Cell::Unset => 0,
            })
            .collect();
        Array2::from_shape_vec(shape, v)
            .map_err(shape_err)?
            .into_pyarray(py)
            .into_any()
    } else {
        let v: Vec<bool> = cells
            .iter()
            .map(|c| matches!(c, Cell::Bool(true)))
            .collect();
        Array2::from_shape_vec(shape, v)
            .map_err(shape_err)?
            .into_pyarray(py)
            .into_any()
    })
}

/// A plain cell as the Python value `json.loads` gives for it.
fn cell_value<'py>(py: Python<'py>, cell: Cell) -> Bound<'py, PyAny> {
    match cell {
        Cell::Int(i) => PyInt::new(py, i).into_any(),
        Cell::Float(f) => PyFloat::new(py, f).into_any(),
        Cell::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Cell::Unset => py.None().into_bound(py),
    }
}

/// The lines of `data` as the numpy preprocessor's feature array (`text` and
/// `numpy` compiled from the same features). With `stop_at_suspect`, a line
/// whose cells are not all plain numbers ends the read instead of handing the
/// rest over to dicts: the rows before it keep their cells, it and the lines
/// after it are left unread (`ReadBatch.stopped_line`). `limit` is
/// `sys.get_int_max_str_digits()`, read once by the caller for the batch.
#[allow(clippy::too_many_arguments)]
pub fn read_array<'py>(
    py: Python<'py>,
    data: &[u8],
    first_line: u64,
    text: &Plan,
    numpy: &NumpyPlan,
    stop_at_suspect: bool,
    prepared: Option<Scanned>,
    limit: usize,
) -> PyResult<ReadBatch<'py>> {
    check_line_numbers(data, first_line)?;
    let scanned = match prepared {
        Some(scanned) => scanned,
        None => py.detach(|| scan_batch(data, first_line, text, limit)),
    };
    let errors = PyList::empty(py);
    for (line_no, start, end, msg) in &scanned.errors {
        errors.append(error_tuple(py, *line_no, &data[*start..*end], msg)?)?;
    }
    let line_numbers = PyList::new(py, &scanned.line_numbers)?;
    let columns = text.columns();
    let done = scanned.line_numbers.len();
    let Some(stopped_at) = scanned.stopped_at else {
        let array = cells_to_array(
            py,
            &scanned.cells,
            done,
            columns,
            scanned.any_int,
            scanned.any_float,
        )?;
        return Ok(ReadBatch {
            input: Ok(array),
            preprocessed: true,
            line_numbers,
            errors,
            lines: scanned.lines,
            cells: Some(RowCells {
                cells: scanned.cells,
                columns,
                line_numbers: scanned.line_numbers,
            }),
            handed_over_at: None,
            stopped_line: None,
        });
    };
    if stop_at_suspect {
        // The line stopped in may have left some of its cells behind.
        let mut cells = scanned.cells;
        cells.truncate(done * columns);
        return Ok(ReadBatch {
            input: Ok(py.None().into_bound(py)),
            preprocessed: true,
            line_numbers,
            errors,
            lines: scanned.lines,
            cells: Some(RowCells {
                cells,
                columns,
                line_numbers: scanned.line_numbers,
            }),
            handed_over_at: Some(done),
            stopped_line: Some(first_line.saturating_add(stopped_at.0 as u64)),
        });
    }
    // The rest of the batch as dicts, from the line the text reader stopped on.
    let records = PyList::empty(py);
    let (index, at) = stopped_at;
    let rest = parse_rest(
        py,
        data,
        &mut LineCursor::resume(data, at, index),
        first_line,
        &records,
        &line_numbers,
        &errors,
        limit,
    )?;
    // The rows read from the text as the values the dicts would have held;
    // a line the reader stopped in may have left some cells behind: not a row.
    let rows = PyList::empty(py);
    for r in 0..done {
        let row = &scanned.cells[r * columns..(r + 1) * columns];
        let values: Vec<Bound<'py, PyAny>> = row.iter().map(|c| cell_value(py, *c)).collect();
        rows.append(PyList::new(py, values)?)?;
    }
    let input = numpy
        .gather_rows(&records, done)
        .and_then(|more| {
            for row in more.iter() {
                rows.append(row)?;
            }
            rows_to_array(&rows)
        })
        .map_err(|e| as_preprocess_error(py, e));
    Ok(ReadBatch {
        input,
        preprocessed: true,
        line_numbers,
        errors,
        lines: scanned.lines + rest,
        cells: None,
        handed_over_at: Some(done),
        stopped_line: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a pass gives, without its timing.
    #[allow(clippy::type_complexity)]
    fn seen(
        s: &Scanned,
    ) -> (
        Vec<u64>,
        Vec<(u64, usize, usize, String)>,
        usize,
        Option<(usize, usize)>,
        Vec<Cell>,
        bool,
        bool,
    ) {
        let done = s.line_numbers.len() * 2;
        (
            s.line_numbers.clone(),
            s.errors.clone(),
            s.lines,
            s.stopped_at,
            // A stopped line may leave some of its cells behind: not a row.
            s.cells[..done.min(s.cells.len())].to_vec(),
            s.any_int,
            s.any_float,
        )
    }

    const LINES: [&[u8]; 10] = [
        b"{\"a\": 1, \"b\": {\"c\": 2.5}}",
        b"{\"b\": {\"c\": -3}, \"a\": 0.125}",
        b"",
        b"  \r",
        b"not json",
        b"{\"a\": 1, \"b\": {\"c\": 2}} x",
        b"\xff{}",
        b"\xef\xbb\xbf{\"a\": 7, \"b\": {\"c\": 8}}\r",
        b"{\"a\": true, \"b\": {\"c\": false}}",
        b"{\"a\": \"text\", \"b\": {\"c\": 1}}",
    ];

    /// Reading a batch in pieces cut at line ends and appending the passes
    /// gives the pass over the whole batch, wherever the cuts fall.
    #[test]
    fn pieces_append_to_the_whole() {
        let plan = Plan::new(&["a".to_string(), "b.c".to_string()], ".");
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..400 {
            let mut data = Vec::new();
            for _ in 0..(1 + next(40)) {
                // The string cell (a stop) is rare, so most batches read through.
                let k = next(if round % 4 == 0 { 10 } else { 9 }) as usize;
                data.extend_from_slice(LINES[k]);
                data.push(b'\n');
            }
            if next(2) == 0 {
                data.pop(); // a last line without a newline
            }
            let ends: Vec<usize> = data
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1)
                .filter(|&e| e < data.len())
                .collect();
            let mut cuts: Vec<usize> = ends.into_iter().filter(|_| next(3) == 0).collect();
            cuts.push(data.len());
            let first_line = 1 + next(1000);
            let whole = scan_batch(&data, first_line, &plan, 4300);
            let mut joined = Scanned::empty();
            let mut start = 0;
            for end in cuts {
                let piece = scan_batch(&data[start..end], 0, &plan, 4300);
                if !joined.append(piece, start, first_line) {
                    break;
                }
                start = end;
            }
            assert_eq!(
                seen(&joined),
                seen(&whole),
                "{:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }
}
