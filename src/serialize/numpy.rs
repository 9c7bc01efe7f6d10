//! numpy values without a Python call per value: scalar types are recognised by
//! their type object, arrays of bool/int/uint/float dtypes are read through
//! their buffer (any strides, either byte order, aligned or not).

use ::numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyType};
use pyo3::{ffi, intern};

use super::number::f16_to_f64;
use super::writer::{Emit, RUN};
use super::{value, Fault, NonFinite, SerError};
use crate::errors::{PathSegment, MAX_DEPTH};

/// The element types read natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    F32,
    F64,
}

impl Elem {
    /// About how many bytes one element takes as JSON, to size the output.
    fn json_width(self) -> usize {
        match self {
            Elem::Bool => 5,
            Elem::I8 | Elem::U8 => 3,
            Elem::I16 | Elem::U16 => 5,
            Elem::I32 | Elem::U32 => 10,
            Elem::I64 | Elem::U64 | Elem::F32 | Elem::F64 => 19,
            Elem::F16 => 10,
        }
    }

    fn from_dtype(kind: u8, itemsize: usize) -> Option<Self> {
        Some(match (kind, itemsize) {
            (b'b', 1) => Elem::Bool,
            (b'i', 1) => Elem::I8,
            (b'i', 2) => Elem::I16,
            (b'i', 4) => Elem::I32,
            (b'i', 8) => Elem::I64,
            (b'u', 1) => Elem::U8,
            (b'u', 2) => Elem::U16,
            (b'u', 4) => Elem::U32,
            (b'u', 8) => Elem::U64,
            (b'f', 2) => Elem::F16,
            (b'f', 4) => Elem::F32,
            (b'f', 8) => Elem::F64,
            _ => return None,
        })
    }
}

/// One element's value, widened to what `.tolist()` would give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
}

impl Num {
    /// The Python object `.tolist()` would produce for this element.
    pub fn to_py(self, py: Python<'_>) -> Bound<'_, PyAny> {
        match self {
            Num::Bool(b) => pyo3::types::PyBool::new(py, b).to_owned().into_any(),
            Num::Int(v) => v
                .into_pyobject(py)
                .unwrap_or_else(|e| match e {})
                .into_any(),
            Num::UInt(v) => v
                .into_pyobject(py)
                .unwrap_or_else(|e| match e {})
                .into_any(),
            Num::Float(v) => PyFloat::new(py, v).into_any(),
        }
    }
}

/// numpy's type objects, loaded once numpy is in use.
pub struct NumpyTypes {
    ndarray: Py<PyType>,
    generic: Py<PyType>,
    scalars: Vec<(Py<PyType>, Elem)>,
}

static NUMPY_TYPES: PyOnceLock<NumpyTypes> = PyOnceLock::new();

/// Every scalar type name that can map to a natively read element type
/// (aliases resolve to the same type objects and are deduplicated).
const SCALAR_NAMES: &[&str] = &[
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "byte",
    "short",
    "intc",
    "int_",
    "long",
    "longlong",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "ubyte",
    "ushort",
    "uintc",
    "uint",
    "ulong",
    "ulonglong",
    "float16",
    "float32",
    "float64",
];

fn load_types(py: Python<'_>) -> PyResult<NumpyTypes> {
    let np = py.import("numpy")?;
    let dtype = np.getattr("dtype")?;
    let mut scalars: Vec<(Py<PyType>, Elem)> = Vec::new();
    for name in SCALAR_NAMES {
        let Some(ty) = np.getattr_opt(*name)? else {
            continue;
        };
        let Ok(ty) = ty.cast_into::<PyType>() else {
            continue;
        };
        if scalars.iter().any(|(t, _)| t.is(&ty)) {
            continue;
        }
        let descr = dtype.call1((&ty,))?;
        let kind: String = descr.getattr("kind")?.extract()?;
        let itemsize: usize = descr.getattr("itemsize")?.extract()?;
        if let Some(elem) = Elem::from_dtype(kind.as_bytes()[0], itemsize) {
            scalars.push((ty.unbind(), elem));
        }
    }
    Ok(NumpyTypes {
        ndarray: np.getattr("ndarray")?.cast_into::<PyType>()?.unbind(),
        generic: np.getattr("generic")?.cast_into::<PyType>()?.unbind(),
        scalars,
    })
}

/// numpy's types if the application has imported numpy (no numpy object can
/// exist otherwise, and importing it here would cost every user its load time).
fn numpy_types(py: Python<'_>) -> PyResult<Option<&NumpyTypes>> {
    if let Some(types) = NUMPY_TYPES.get(py) {
        return Ok(Some(types));
    }
    let modules = py
        .import(intern!(py, "sys"))?
        .getattr(intern!(py, "modules"))?;
    let modules = modules.cast_into::<PyDict>()?;
    if !modules.contains(intern!(py, "numpy"))? {
        return Ok(None);
    }
    NUMPY_TYPES.get_or_try_init(py, || load_types(py)).map(Some)
}

/// What a non-native object is, numpy-wise.
pub enum NumpyObj<'py> {
    /// A scalar whose value is read natively.
    Scalar(Elem),
    /// An exact `numpy.ndarray`.
    Array(Bound<'py, PyUntypedArray>),
    /// An ndarray subclass (matrix, masked array, memmap): its `.tolist()` is
    /// the faithful view (a masked array's buffer ignores the mask).
    ArraySubclass,
    /// Another numpy scalar (complex, datetime64, str_, void, longdouble).
    OtherScalar,
}

/// Classifies an object that is none of the native JSON types; `None` if it is
/// no numpy value.
pub fn classify<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<NumpyObj<'py>>> {
    let py = obj.py();
    let Some(types) = numpy_types(py)? else {
        return Ok(None);
    };
    let ty = obj.get_type();
    if ty.is(types.ndarray.bind(py)) {
        return Ok(Some(match obj.cast::<PyUntypedArray>() {
            Ok(arr) => NumpyObj::Array(arr.clone()),
            Err(_) => NumpyObj::ArraySubclass,
        }));
    }
    if let Some((_, elem)) = types.scalars.iter().find(|(t, _)| ty.is(t.bind(py))) {
        return Ok(Some(NumpyObj::Scalar(*elem)));
    }
    if ty.is_subclass(types.ndarray.bind(py))? {
        return Ok(Some(NumpyObj::ArraySubclass));
    }
    if ty.is_subclass(types.generic.bind(py))? {
        return Ok(Some(NumpyObj::OtherScalar));
    }
    Ok(None)
}

/// The value of a numpy scalar of a natively read type.
pub fn scalar_value(obj: &Bound<'_, PyAny>, elem: Elem) -> PyResult<Num> {
    Ok(match elem {
        Elem::Bool => Num::Bool(obj.is_truthy()?),
        Elem::I8 | Elem::I16 | Elem::I32 | Elem::I64 => Num::Int(obj.extract()?),
        Elem::U8 | Elem::U16 | Elem::U32 | Elem::U64 => Num::UInt(obj.extract()?),
        // float(np.float32(x)): the exact value, widened.
        Elem::F16 | Elem::F32 | Elem::F64 => Num::Float(obj.extract()?),
    })
}

/// How an array's elements are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Items {
    Num(Elem),
    Object,
    Other,
}

/// A borrowed view of an array's buffer layout.
pub struct ArrayData<'a> {
    ptr: *const u8,
    pub shape: &'a [usize],
    strides: &'a [isize],
    swap: bool,
    pub items: Items,
}

impl<'a> ArrayData<'a> {
    pub fn new(arr: &'a Bound<'_, PyUntypedArray>) -> Self {
        let descr = arr.dtype();
        let items = match descr.kind() {
            b'O' => Items::Object,
            kind => match Elem::from_dtype(kind, descr.itemsize()) {
                Some(elem) if !descr.has_fields() && !descr.has_subarray() => Items::Num(elem),
                _ => Items::Other,
            },
        };
        ArrayData {
            ptr: crate::ffi::ndarray_data(arr),
            shape: arr.shape(),
            strides: arr.strides(),
            swap: descr.is_native_byteorder() == Some(false),
            items,
        }
    }

    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The position of element `i` along `axis`, from the position `base`.
    #[inline]
    pub fn step(&self, base: Position, axis: usize, i: usize) -> Position {
        Position(base.0.wrapping_offset(self.strides[axis] * i as isize))
    }

    /// The position of the first element (index 0 on every axis).
    pub fn origin(&self) -> Position {
        Position(self.ptr)
    }

    /// The element at `pos`, which must come from `origin`/`step` with in-range
    /// indices on every axis.
    #[inline]
    pub fn read_num(&self, pos: Position, elem: Elem) -> Num {
        // SAFETY: numpy guarantees that data + sum(index * stride) for in-range
        // indices addresses a whole element of the array's dtype inside the
        // buffer, which the array keeps alive while we hold a reference to it.
        // `read_unaligned` makes no alignment assumption and the byte order is
        // fixed by `swap`. (Only `ndarray.resize(refcheck=False)` from a
        // finalizer could free the buffer under us; numpy documents that call
        // as unsafe in itself.)
        unsafe { read_elem(pos.0, elem, self.swap) }
    }

    /// The object at `pos` of an object array (a null slot reads as None).
    #[inline]
    pub fn read_object<'py>(&self, py: Python<'py>, pos: Position) -> Bound<'py, PyAny> {
        // SAFETY: as in `read_num`; an object array's element is a PyObject*
        // owned by the array, and `from_borrowed_ptr` takes a new reference
        // before any Python code can run.
        unsafe {
            let raw = std::ptr::read_unaligned(pos.0 as *const *mut ffi::PyObject);
            if raw.is_null() {
                py.None().into_bound(py)
            } else {
                Bound::from_borrowed_ptr(py, raw)
            }
        }
    }
}

/// A pointer into an array's buffer, only made by [`ArrayData`].
#[derive(Clone, Copy)]
pub struct Position(*const u8);

/// # Safety
/// `p` must address a readable element of type `elem` (see `ArrayData::read_num`).
#[inline(always)]
unsafe fn read_elem(p: *const u8, elem: Elem, swap: bool) -> Num {
    macro_rules! load {
        ($t:ty) => {{
            let v = unsafe { std::ptr::read_unaligned(p as *const $t) };
            if swap {
                v.swap_bytes()
            } else {
                v
            }
        }};
    }
    match elem {
        Elem::Bool => Num::Bool(unsafe { *p } != 0),
        Elem::I8 => Num::Int(i64::from(load!(i8))),
        Elem::I16 => Num::Int(i64::from(load!(i16))),
        Elem::I32 => Num::Int(i64::from(load!(i32))),
        Elem::I64 => Num::Int(load!(i64)),
        Elem::U8 => Num::UInt(u64::from(load!(u8))),
        Elem::U16 => Num::UInt(u64::from(load!(u16))),
        Elem::U32 => Num::UInt(u64::from(load!(u32))),
        Elem::U64 => Num::UInt(load!(u64)),
        Elem::F16 => Num::Float(f16_to_f64(load!(u16))),
        Elem::F32 => Num::Float(f64::from(f32::from_bits(load!(u32)))),
        Elem::F64 => Num::Float(f64::from_bits(load!(u64))),
    }
}

/// The dtype's name for messages (`complex128`, `<U3`, `datetime64[s]`).
pub fn dtype_name(arr: &Bound<'_, PyUntypedArray>) -> String {
    arr.dtype()
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// Writes one element value.
#[inline(always)]
pub fn emit_num<E: Emit>(e: &mut E, n: Num) -> Result<(), NonFinite> {
    match n {
        Num::Bool(b) => e.raw(if b { b"true" } else { b"false" }),
        Num::Int(v) => e.i64(v),
        Num::UInt(v) => e.u64(v),
        Num::Float(v) => e.f64(v)?,
    }
    Ok(())
}

/// Writes an exact ndarray as nested JSON arrays (a 0-d array as its element).
pub fn write_array<E: Emit>(
    e: &mut E,
    arr: &Bound<'_, PyUntypedArray>,
    depth: usize,
) -> Result<(), SerError> {
    let data = ArrayData::new(arr);
    if depth + data.ndim() > MAX_DEPTH {
        return Err(Fault::TooDeep.into());
    }
    match data.items {
        // The checker accepts any numeric array without reading it.
        Items::Num(_) if !E::WRITES => Ok(()),
        Items::Num(elem) => {
            let count: usize = data.shape.iter().product();
            // A hint only: capped, a huge array grows the buffer as it goes.
            e.expect(count.saturating_mul(elem.json_width() + 1).min(1 << 26));
            write_nums(e, &data, elem, 0, data.origin())
        }
        Items::Object => write_objects(e, arr.py(), &data, depth + data.ndim(), 0, data.origin()),
        Items::Other => Err(Fault::Dtype(dtype_name(arr)).into()),
    }
}

fn write_nums<E: Emit>(
    e: &mut E,
    a: &ArrayData<'_>,
    elem: Elem,
    axis: usize,
    pos: Position,
) -> Result<(), SerError> {
    if axis == a.ndim() {
        return Ok(emit_num(e, a.read_num(pos, elem))?);
    }
    if axis + 1 == a.ndim() {
        return write_row_of(e, a, elem, axis, pos);
    }
    e.byte(b'[');
    for i in 0..a.shape[axis] {
        if i > 0 {
            e.byte(b',');
        }
        write_nums(e, a, elem, axis + 1, a.step(pos, axis, i))
            .map_err(|err| err.at(PathSegment::Index(i)))?;
    }
    e.byte(b']');
    Ok(())
}

/// The innermost axis, with the element type fixed at compile time so the
/// per-element read and write carry no dispatch.
fn write_row_of<E: Emit>(
    e: &mut E,
    a: &ArrayData<'_>,
    elem: Elem,
    axis: usize,
    pos: Position,
) -> Result<(), SerError> {
    macro_rules! dispatch {
        ($($variant:ident),*) => {
            match elem {
                $(Elem::$variant => {
                    struct K;
                    impl Kind for K {
                        const ELEM: Elem = Elem::$variant;
                    }
                    write_row::<E, K>(e, a, axis, pos)
                })*
            }
        };
    }
    dispatch!(Bool, I8, I16, I32, I64, U8, U16, U32, U64, F16, F32, F64)
}

trait Kind {
    const ELEM: Elem;
}

#[inline(always)]
fn write_row<E: Emit, K: Kind>(
    e: &mut E,
    a: &ArrayData<'_>,
    axis: usize,
    pos: Position,
) -> Result<(), SerError> {
    let n = a.shape[axis];
    let at = |i: usize| a.read_num(a.step(pos, axis, i), K::ELEM);
    let float = |i: usize| match at(i) {
        Num::Float(v) => v,
        _ => f64::NAN,
    };
    e.byte(b'[');
    let mut i = 0;
    if matches!(K::ELEM, Elem::F16 | Elem::F32 | Elem::F64) {
        // Several at a time (see `Emit::f64_run`); a failing run writes
        // nothing and is redone one by one to name the element at fault.
        while i + 1 < n {
            if i > 0 {
                e.byte(b',');
            }
            let k = (n - i).min(RUN);
            let mut run = [0.0; RUN];
            for (j, slot) in run[..k].iter_mut().enumerate() {
                *slot = float(i + j);
            }
            if e.f64_run(&run[..k]).is_err() {
                return write_one_by_one(e, a, K::ELEM, axis, pos, i);
            }
            i += k;
        }
    }
    while i < n {
        if i > 0 {
            e.byte(b',');
        }
        if let Err(bad) = emit_num(e, at(i)) {
            return Err(SerError::from(bad).at(PathSegment::Index(i)));
        }
        i += 1;
    }
    e.byte(b']');
    Ok(())
}

/// The error of the first element from `from` on that cannot be written.
#[cold]
fn write_one_by_one<E: Emit>(
    e: &mut E,
    a: &ArrayData<'_>,
    elem: Elem,
    axis: usize,
    pos: Position,
    from: usize,
) -> Result<(), SerError> {
    for i in from..a.shape[axis] {
        if let Err(bad) = emit_num(e, a.read_num(a.step(pos, axis, i), elem)) {
            return Err(SerError::from(bad).at(PathSegment::Index(i)));
        }
    }
    Err(Fault::Changed.into())
}

fn write_objects<E: Emit>(
    e: &mut E,
    py: Python<'_>,
    a: &ArrayData<'_>,
    item_depth: usize,
    axis: usize,
    pos: Position,
) -> Result<(), SerError> {
    if axis == a.ndim() {
        return value(e, &a.read_object(py, pos), item_depth);
    }
    e.byte(b'[');
    for i in 0..a.shape[axis] {
        if i > 0 {
            e.byte(b',');
        }
        write_objects(e, py, a, item_depth, axis + 1, a.step(pos, axis, i))
            .map_err(|err| err.at(PathSegment::Index(i)))?;
    }
    e.byte(b']');
    Ok(())
}
