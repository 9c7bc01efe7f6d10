//! Rows already read into the numpy preprocessor's cells (plain numbers and
//! bools, row-major): what a door that receives tensors (the Open Inference
//! Protocol's numeric inputs) hands the engine instead of JSON Lines, so the
//! numbers are read once, into the feature array, with no text in between.
//! The server's batcher cuts and joins them by rows as it does lines.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList};

use crate::errors::value_error;
use crate::jsonl::Cell;
use crate::serialize::writer::JsonWriter;
use crate::v2::write_float;

/// Rows of feature cells (see `_core.pyi`).
#[pyclass(module = "packflow._core", frozen)]
pub struct FeatureRows {
    pub(crate) cells: Vec<Cell>,
    pub(crate) columns: usize,
}

impl FeatureRows {
    /// `cells`: `rows * columns` of them, row-major (`columns` > 0).
    pub fn new(cells: Vec<Cell>, columns: usize) -> FeatureRows {
        debug_assert!(columns > 0 && cells.len() % columns == 0);
        FeatureRows { cells, columns }
    }

    pub fn rows(&self) -> usize {
        self.cells.len() / self.columns
    }
}

#[pymethods]
impl FeatureRows {
    /// Rows given as lists of `bool`, `int` (within int64) or `float`, all of
    /// one length (at least 1): for tests and for doors that hold values in
    /// Python. A value of any other type (a subclass included) is a
    /// `TypeError`, an int past int64 a `ValueError`, each naming its row and
    /// column.
    #[staticmethod]
    fn from_rows(rows: &Bound<'_, PyList>) -> PyResult<FeatureRows> {
        let mut columns = None;
        let mut cells = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            let row = row.cast_into::<PyList>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!("row {r} is not a list"))
            })?;
            let k = *columns.get_or_insert(row.len());
            if row.len() != k || k == 0 {
                return Err(value_error(format!(
                    "row {r} has {} values; the rows before it have {k} (and a row needs at least one)",
                    row.len()
                )));
            }
            for (c, value) in row.iter().enumerate() {
                cells.push(cell_of(&value).map_err(|why| why.at(r, c))?);
            }
        }
        let Some(columns) = columns else {
            return Err(value_error(
                "no rows: a batch of feature rows has at least one",
            ));
        };
        Ok(FeatureRows::new(cells, columns))
    }

    /// The same rows given column by column: `columns[j][i]` is row i's
    /// value j (every column of one length, at least one of at least one
    /// value). Errors as `from_rows`, naming the row and column.
    #[staticmethod]
    fn from_columns(columns: &Bound<'_, PyList>) -> PyResult<FeatureRows> {
        let columns = columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                c.cast_into::<PyList>().map_err(|_| {
                    pyo3::exceptions::PyTypeError::new_err(format!("column {j} is not a list"))
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let Some(first) = columns.first() else {
            return Err(value_error("no columns: a row needs at least one value"));
        };
        let n = first.len();
        if n == 0 {
            return Err(value_error(
                "no rows: a batch of feature rows has at least one",
            ));
        }
        if let Some((j, c)) = columns.iter().enumerate().find(|(_, c)| c.len() != n) {
            return Err(value_error(format!(
                "column {j} has {} values; column 0 has {n}",
                c.len()
            )));
        }
        let k = columns.len();
        let mut cells = vec![Cell::Unset; n * k];
        for (j, column) in columns.iter().enumerate() {
            for (i, value) in column.iter().enumerate() {
                cells[i * k + j] = cell_of(&value).map_err(|why| why.at(i, j))?;
            }
        }
        Ok(FeatureRows::new(cells, k))
    }

    /// How many rows.
    #[getter(rows)]
    fn rows_py(&self) -> usize {
        self.rows()
    }

    /// Values per row (the model's features).
    #[getter]
    fn columns(&self) -> usize {
        self.columns
    }

    fn __len__(&self) -> usize {
        self.rows()
    }

    /// Rows `start..stop` (a copy).
    fn slice(&self, start: usize, stop: usize) -> PyResult<FeatureRows> {
        if start >= stop || stop > self.rows() {
            return Err(value_error(format!(
                "rows {start}..{stop} are not a non-empty run of these {} rows",
                self.rows()
            )));
        }
        let k = self.columns;
        Ok(FeatureRows::new(
            self.cells[start * k..stop * k].to_vec(),
            k,
        ))
    }

    /// Several runs of rows, one after the other (all of one width).
    #[staticmethod]
    fn join(parts: Vec<PyRef<'_, FeatureRows>>) -> PyResult<FeatureRows> {
        let Some(first) = parts.first() else {
            return Err(value_error("nothing to join"));
        };
        let k = first.columns;
        if let Some(other) = parts.iter().find(|p| p.columns != k) {
            return Err(value_error(format!(
                "rows of {} and of {k} values cannot be joined",
                other.columns
            )));
        }
        let mut cells = Vec::with_capacity(parts.iter().map(|p| p.cells.len()).sum());
        for part in &parts {
            cells.extend_from_slice(&part.cells);
        }
        Ok(FeatureRows::new(cells, k))
    }

    /// Row `index` as a JSON array (`[1.5,2,true]`): the text an error row
    /// carries for it.
    fn row_json<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyBytes>> {
        if index >= self.rows() {
            return Err(value_error(format!(
                "row {index} is not one of these {} rows",
                self.rows()
            )));
        }
        let k = self.columns;
        let mut w = JsonWriter::new(false, 16 * k + 2);
        w.push(b'[');
        for (i, cell) in self.cells[index * k..(index + 1) * k].iter().enumerate() {
            if i > 0 {
                w.push(b',');
            }
            match *cell {
                Cell::Int(v) => w.put_i64(v),
                Cell::Float(v) => write_float(&mut w, v),
                Cell::Bool(true) => w.put(b"true"),
                Cell::Bool(false) => w.put(b"false"),
                Cell::Unset => w.put(b"null"),
            }
        }
        w.push(b']');
        Ok(PyBytes::new(py, w.bytes()))
    }

    /// The rows as lists of Python values (as `from_rows` takes them).
    fn to_rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for row in self.cells.chunks(self.columns) {
            let values: Vec<Bound<'py, PyAny>> = row
                .iter()
                .map(|cell| match *cell {
                    Cell::Int(v) => PyInt::new(py, v).into_any(),
                    Cell::Float(v) => PyFloat::new(py, v).into_any(),
                    Cell::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
                    Cell::Unset => py.None().into_bound(py),
                })
                .collect();
            out.append(PyList::new(py, values)?)?;
        }
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!(
            "FeatureRows(rows={}, columns={})",
            self.rows(),
            self.columns
        )
    }
}

/// Why a value is not a cell; placed at its row and column by `at`.
enum NotACell {
    Type(String),
    Range,
}

impl NotACell {
    fn at(self, row: usize, column: usize) -> PyErr {
        match self {
            NotACell::Type(name) => pyo3::exceptions::PyTypeError::new_err(format!(
                "row {row}, column {column}: a {name}, where a bool, int or float goes"
            )),
            NotACell::Range => value_error(format!(
                "row {row}, column {column}: an int outside int64, or a float that is not finite"
            )),
        }
    }
}

/// A cell of exactly a bool, an int or a float (the types `json.loads`
/// gives numbers and bools).
fn cell_of(value: &Bound<'_, PyAny>) -> Result<Cell, NotACell> {
    if value.is_exact_instance_of::<PyBool>() {
        return Ok(Cell::Bool(value.is_truthy().unwrap_or(false)));
    }
    if value.is_exact_instance_of::<PyFloat>() {
        let v = value.extract::<f64>().map_err(|_| NotACell::Range)?;
        // JSON holds no NaN or infinity: no row read from text has one.
        return if v.is_finite() {
            Ok(Cell::Float(v))
        } else {
            Err(NotACell::Range)
        };
    }
    if value.is_exact_instance_of::<PyInt>() {
        return value
            .extract::<i64>()
            .map(Cell::Int)
            .map_err(|_| NotACell::Range);
    }
    Err(NotACell::Type(
        value
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "value".to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cut_by_width() {
        let rows = FeatureRows::new(
            vec![
                Cell::Int(1),
                Cell::Float(2.5),
                Cell::Bool(true),
                Cell::Int(4),
            ],
            2,
        );
        assert_eq!(rows.rows(), 2);
        assert_eq!(rows.columns, 2);
    }
}
