//! One schema per built-in event kind: its class path, its positional constructor
//! arguments and its keyword arguments (after the header's), each with how to read its
//! value from the event. Each kind's is declared once, with the `schemas!` macro of this
//! file, in `model::event` beside the kinds' structs; from it come
//! `__getnewargs_ex__` (what pickling and the Python codec use, `model::event`) and the
//! native codec's encoder (`codec::encode`) and its parser's arity and keyword lists
//! (`codec::parse`), so the three cannot drift apart.
//!
//! Adding a keyword field `restarts: u32` to `ServiceStateEvent`: add the struct field,
//! one line `"restarts": UInt(u64::from(s.restarts)),` under its `kwargs` in
//! `model::event`'s `schemas!` table, and read it
//! where the constructor and the parser build the struct (`is_ready`'s neighbours); the
//! encoded text, pickling and the parser's accepted keys follow from this line.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use std::sync::Arc;
use tracebus_core::model::header::Header;

/// One constructor argument's value, as `__getnewargs_ex__` passes it and the codec writes
/// it.
pub enum Value<'a> {
    Str(&'a str),
    OptStr(Option<&'a str>),
    Bool(bool),
    UInt(u64),
    /// A list of strings (a JSON array, a Python list).
    StrList(&'a [Arc<str>]),
    /// An event type: its `EventType` member (or registered name) in Python, its name in JSON.
    EventType(u32),
}

impl Value<'_> {
    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match *self {
            Value::Str(s) => PyString::new(py, s).into_any(),
            Value::OptStr(s) => s.into_pyobject(py)?.into_any(),
            Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
            Value::UInt(n) => n.into_pyobject(py)?.into_any(),
            Value::StrList(l) => PyList::new(py, l.iter().map(|s| &**s))?.into_any(),
            Value::EventType(t) => crate::enums::event_type_obj(py, t).into_bound(py),
        })
    }
}

/// A built-in event kind's constructor schema (see the module docs).
pub trait Schema {
    /// `module:Class`, as the codec writes it.
    const CLASS: &'static str;
    /// Names of the positional constructor arguments, in order.
    const ARGS: &'static [&'static str];
    /// Names of the keyword arguments that follow the header's (`correlation_id`,
    /// `caused_by`, `parent_id`, `timestamp`, `event_id`), in order.
    const KWARGS: &'static [&'static str];
    /// Calls `f` with each positional argument's value, in order.
    fn args<'a>(&'a self, h: &'a Header, f: &mut impl FnMut(Value<'a>));
    /// Calls `f` with each keyword argument's name and value, in order.
    fn kwargs<'a>(&'a self, h: &'a Header, f: &mut impl FnMut(&'static str, Value<'a>));
}

/// `schemas! { Kind "module:Class" |s, h| { args { "name": Variant(expr), .. } kwargs { .. } } }`
/// implements `Schema` for each kind; in the expressions `s` is the kind's struct and `h`
/// the event's header.
macro_rules! schemas {
    ($(
        $kind:ident $class:literal |$s:ident, $h:ident| {
            args { $($a:literal: $av:ident($ae:expr)),* $(,)? }
            kwargs { $($k:literal: $kv:ident($ke:expr)),* $(,)? }
        }
    )*) => {$(
        impl Schema for $kind {
            const CLASS: &'static str = $class;
            const ARGS: &'static [&'static str] = &[$($a),*];
            const KWARGS: &'static [&'static str] = &[$($k),*];
            #[allow(unused_variables)]
            fn args<'a>(&'a self, $h: &'a Header, f: &mut impl FnMut(Value<'a>)) {
                let $s = self;
                $(f(Value::$av($ae));)*
            }
            #[allow(unused_variables)]
            fn kwargs<'a>(&'a self, $h: &'a Header, f: &mut impl FnMut(&'static str, Value<'a>)) {
                let $s = self;
                $(f($k, Value::$kv($ke));)*
            }
        }
    )*};
}
pub(crate) use schemas;

/// The position of `name` in `names` (for const use: a missing name fails to compile).
pub const fn kwarg_index(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        let (a, b) = (names[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("keyword not in the kind's schema");
}
