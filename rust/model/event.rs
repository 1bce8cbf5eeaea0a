//! Events: the `Event` base class (routing header in Rust) and the five kinds of the
//! design. Kinds are Rust subclasses, so creating one is a single native call; users
//! subclass `Event` in Python for their own kinds.

use crate::args::{extract_event_id, extract_text, extract_timestamp, type_err, LABEL_MAX};
use crate::correlation::resolve;
use crate::enums::{event_type_obj, extract_event_type, extract_severity, severity_obj};
use crate::model::schema::{schemas, Schema, Value};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::sync::Arc;
use tracebus_core::model::header::Header;
use tracebus_core::model::ids;
use tracebus_core::model::kinds::Severity;

/// Header fields shared by every constructor.
#[allow(clippy::too_many_arguments)]
pub(super) fn header(
    py: Python<'_>,
    type_id: u32,
    source: Arc<str>,
    severity: Severity,
    correlation_id: Option<&Bound<'_, PyAny>>,
    caused_by: Option<&Bound<'_, PyAny>>,
    parent_id: Option<&Bound<'_, PyAny>>,
    timestamp: Option<&Bound<'_, PyAny>>,
    event_id: Option<&Bound<'_, PyAny>>,
    default_cause: &str,
) -> PyResult<Header> {
    let r = resolve(py, correlation_id, caused_by, parent_id, default_cause)?;
    Ok(Header {
        type_id,
        source,
        severity,
        event_id: extract_event_id(event_id)?,
        correlation_id: r.correlation_id,
        caused_by: r.caused_by,
        parent_id: r.parent_id,
        timestamp: extract_timestamp(timestamp)?,
        depth: r.depth,
    })
}

pub(super) fn extract_metadata(
    py: Python<'_>,
    m: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Py<PyDict>>> {
    match m {
        Some(m) if !m.is_none() => {
            let src = m
                .cast::<pyo3::types::PyMapping>()
                .map_err(|_| type_err("metadata", "a mapping of str to values, or None", m))?;
            let d = PyDict::new(py);
            for item in src.items()?.iter() {
                let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
                if !k.is_instance_of::<PyString>() {
                    return Err(type_err("metadata key", "a str", &k));
                }
                check_json_value(&v, &k, 0)?;
                d.set_item(k, v)?;
            }
            Ok(if d.is_empty() { None } else { Some(d.unbind()) })
        }
        _ => Ok(None),
    }
}

/// Deepest nesting of lists and dicts in a metadata value (deeper, or self-referencing,
/// values are refused: the event could not be encoded).
const METADATA_MAX_DEPTH: u32 = 64;

/// Checks once, at construction, that a metadata value is a JSON value the codec can
/// encode (`tracebus.codec`'s payload rules): str, int, finite float, bool, None, lists or
/// tuples and dicts with str keys, at most `METADATA_MAX_DEPTH` deep. The `TypeError`
/// names the place (`metadata['k'][1]`) and the offending type.
fn check_json_value(v: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>, depth: u32) -> PyResult<()> {
    match json_problem(v, depth) {
        None => Ok(()),
        Some((path, what)) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "metadata[{}]{path}: {what} (metadata values must be JSON values: str, int, \
             float, bool, None, list or dict with str keys)",
            key.repr().map(|r| r.to_string()).unwrap_or_default()
        ))),
    }
}

/// Where below `v` (a path like `['k'][1]`) a value is not a JSON value, and why.
fn json_problem(v: &Bound<'_, PyAny>, depth: u32) -> Option<(String, String)> {
    use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};
    if v.is_none()
        || v.is_instance_of::<PyString>()
        || v.is_instance_of::<PyBool>()
        || v.is_instance_of::<PyInt>()
    {
        return None;
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        let x = f.value();
        return (!x.is_finite()).then(|| (String::new(), format!("{x} is not a finite number")));
    }
    if depth >= METADATA_MAX_DEPTH {
        let what = format!("nested deeper than {METADATA_MAX_DEPTH} levels (or refers to itself)");
        return Some((String::new(), what));
    }
    let within = |i: String, item: &Bound<'_, PyAny>| {
        json_problem(item, depth + 1).map(|(p, what)| (format!("[{i}]{p}"), what))
    };
    if let Ok(l) = v.cast::<PyList>() {
        return l
            .iter()
            .enumerate()
            .find_map(|(i, x)| within(i.to_string(), &x));
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return t
            .iter()
            .enumerate()
            .find_map(|(i, x)| within(i.to_string(), &x));
    }
    let repr = |o: &Bound<'_, PyAny>| o.repr().map(|r| r.to_string()).unwrap_or_default();
    let type_name = |o: &Bound<'_, PyAny>| {
        o.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    if let Ok(d) = v.cast::<PyDict>() {
        return d.iter().find_map(|(k, x)| {
            if !k.is_instance_of::<PyString>() {
                let what = format!("key {} is a {}, not a str", repr(&k), type_name(&k));
                return Some((String::new(), what));
            }
            within(repr(&k), &x)
        });
    }
    Some((
        String::new(),
        format!("{} is not a JSON value", type_name(v)),
    ))
}

/// `f` applied to `obj`'s header if `obj` is an `Event` (the correlation room's hook, see
/// `correlation::set_event_header_reader`).
pub fn with_header(
    obj: &Bound<'_, PyAny>,
    f: fn(&Header) -> crate::correlation::Inherited,
) -> Option<crate::correlation::Inherited> {
    obj.cast::<Event>().ok().map(|e| f(&e.get().header))
}

static PROXY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Base class of every event: type, source, severity, ids, timestamp and read-only metadata.
///
/// Subclass it for your own events; register custom types with `register_event_type`.
/// Stored and sent events are rebuilt as `cls(*args, **kwargs)` from `__getnewargs_ex__`
/// (the instance `__dict__` is restored after), so a subclass adding attributes needs
/// nothing more. A subclass defining its own `__new__` must also define
/// `__getnewargs_ex__` returning `(args, kwargs)` its `__new__` accepts, else it is refused
/// (TypeError) when the class is defined.
#[pyclass(frozen, subclass, module = "tracebus", name = "Event")]
pub struct Event {
    pub header: Header,
    pub metadata: Option<Py<PyDict>>,
}

impl Event {
    pub(super) fn header_kwargs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let h = &self.header;
        let d = PyDict::new(py);
        d.set_item("correlation_id", &*h.correlation_id)?;
        d.set_item("caused_by", &*h.caused_by)?;
        d.set_item("parent_id", h.parent_id.as_deref())?;
        d.set_item("timestamp", h.timestamp)?;
        d.set_item("event_id", ids::format_event_id(h.event_id))?;
        if let Some(m) = &self.metadata {
            d.set_item("metadata", m.bind(py).copy()?)?;
        }
        Ok(d)
    }

    /// A copy of `slf` (any subclass) built through its own `__new__`, with keyword overrides.
    pub(super) fn rebuild<'py>(
        slf: &Bound<'py, Self>,
        overrides: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::rebuild_with(slf, &[], overrides)
    }

    /// Like `rebuild`, also replacing positional constructor arguments by index (keyword
    /// overrides cannot name a parameter that `__getnewargs_ex__` passes positionally).
    pub(super) fn rebuild_with<'py>(
        slf: &Bound<'py, Self>,
        positional: &[(usize, Bound<'py, PyAny>)],
        overrides: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let newargs = slf.call_method0("__getnewargs_ex__")?;
        let (args, kwargs): (Bound<'py, PyTuple>, Bound<'py, PyDict>) = newargs.extract()?;
        kwargs.update(overrides.as_mapping())?;
        let cls = slf.get_type();
        let mut all = vec![cls.clone().into_any()];
        all.extend(args.iter());
        for (i, v) in positional {
            if let Some(slot) = all.get_mut(i + 1) {
                *slot = v.clone();
            }
        }
        let obj = cls
            .getattr("__new__")?
            .call(PyTuple::new(py, all)?, Some(&kwargs))?;
        if let Ok(d) = slf.getattr("__dict__") {
            if let Ok(nd) = obj.getattr("__dict__") {
                nd.call_method1("update", (d,))?;
            }
        }
        Ok(obj)
    }

    pub fn describe(&self) -> String {
        format!(
            "[{}] {}",
            tracebus_core::model::kinds::event_type_name(self.header.type_id),
            self.header.source
        )
    }
}

correlated_pymethods!(Event, header, timestamp, {}, {
    #[new]
    #[pyo3(signature = (r#type, source, *, severity=None, metadata=None, correlation_id=None, caused_by=None, parent_id=None, timestamp=None, event_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        r#type: &Bound<'_, PyAny>,
        source: &Bound<'_, PyAny>,
        severity: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        caused_by: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        event_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let type_id = extract_event_type("type", r#type)?;
        let source = extract_text("source", source, LABEL_MAX)?;
        let severity = match severity {
            Some(s) if !s.is_none() => extract_severity("severity", s)?,
            _ => Severity::Info,
        };
        Ok(Event {
            header: header(
                py,
                type_id,
                source,
                severity,
                correlation_id,
                caused_by,
                parent_id,
                timestamp,
                event_id,
                "unknown",
            )?,
            metadata: extract_metadata(py, metadata)?,
        })
    }

    /// The event type (an `EventType` member or a registered custom type).
    #[getter]
    fn r#type(&self, py: Python<'_>) -> Py<PyAny> {
        event_type_obj(py, self.header.type_id)
    }
    /// Where the event comes from (a service label, `health-monitor`, `user`, ...).
    #[getter]
    fn source(&self) -> &str {
        &self.header.source
    }
    /// The severity.
    #[getter]
    fn severity(&self, py: Python<'_>) -> Py<PyAny> {
        severity_obj(py, self.header.severity)
    }
    /// Cascade depth: 0 for a root event, the parent's + 1 for an event created while its
    /// parent was being handled. Publishing refuses events at `max_depth` or deeper.
    #[getter]
    fn depth(&self) -> u32 {
        self.header.depth
    }
    /// Read-only metadata mapping.
    #[getter]
    fn metadata(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let proxy = PROXY.get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("types")?.getattr("MappingProxyType")?.unbind())
        })?;
        let d = match &self.metadata {
            Some(m) => m.clone_ref(py),
            None => PyDict::new(py).unbind(),
        };
        Ok(proxy.bind(py).call1((d,))?.unbind())
    }

    /// A copy (with a new event id) joined to another correlation.
    #[pyo3(signature = (correlation_id, caused_by, parent_id=None))]
    fn with_correlation<'py>(
        slf: &Bound<'py, Self>,
        correlation_id: &Bound<'py, PyAny>,
        caused_by: &Bound<'py, PyAny>,
        parent_id: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        extract_text("correlation_id", correlation_id, 200)?;
        extract_text("caused_by", caused_by, 200)?;
        let o = PyDict::new(py);
        o.set_item("correlation_id", correlation_id)?;
        o.set_item("caused_by", caused_by)?;
        o.set_item("parent_id", parent_id.filter(|p| !p.is_none()).cloned())?;
        o.set_item("event_id", py.None())?;
        Self::rebuild(slf, &o)
    }

    /// A copy (with a new event id) with one more metadata entry.
    fn with_metadata<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if !key.is_instance_of::<PyString>() {
            return Err(type_err("key", "a str", key));
        }
        let m = match &slf.get().metadata {
            Some(m) => m.bind(py).copy()?,
            None => PyDict::new(py),
        };
        m.set_item(key, value)?;
        let o = PyDict::new(py);
        o.set_item("metadata", m)?;
        o.set_item("event_id", py.None())?;
        Self::rebuild(slf, &o)
    }

    fn __getnewargs_ex__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        newargs(py, self, self)
    }

    /// Header fields as a plain dict.
    fn header_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = self.header_kwargs(py)?;
        d.set_item(
            "type",
            &*tracebus_core::model::kinds::event_type_name(self.header.type_id),
        )?;
        d.set_item("source", &*self.header.source)?;
        d.set_item("severity", self.header.severity.as_str())?;
        Ok(d)
    }

    /// Every field as a plain dict: the header's (type, source and severity as names), the
    /// kind's constructor fields and, if any, `metadata` (a copy).
    fn to_dict<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let ev = slf.get();
        let d = ev.header_dict(py)?;
        let h = &ev.header;
        let any = slf.as_any();
        if let Ok(k) = any.cast::<super::ServiceStateEvent>() {
            kind_fields(py, k.get(), h, &d)?;
        } else if let Ok(k) = any.cast::<super::HealthEvent>() {
            kind_fields(py, k.get(), h, &d)?;
        } else if let Ok(k) = any.cast::<super::DependencyEvent>() {
            kind_fields(py, k.get(), h, &d)?;
        } else if let Ok(k) = any.cast::<super::UserActionEvent>() {
            kind_fields(py, k.get(), h, &d)?;
        } else if let Ok(k) = any.cast::<super::SystemEvent>() {
            kind_fields(py, k.get(), h, &d)?;
        }
        Ok(d)
    }

    fn __str__(slf: &Bound<'_, Self>) -> String {
        slf.get().describe()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let name = slf.get_type().qualname()?;
        let h = &slf.get().header;
        Ok(format!(
            "{name}(type={:?}, source={:?}, severity={:?}, event_id={:?}, correlation_id={:?})",
            &*tracebus_core::model::kinds::event_type_name(h.type_id),
            &*h.source,
            h.severity.as_str(),
            ids::format_event_id(h.event_id),
            &*h.correlation_id
        ))
    }

    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("type", "source")
    }

    /// Checks a subclass when it is defined: decoding (and copying) rebuilds an event as
    /// `cls(*args, **kwargs)` from `__getnewargs_ex__`, so a subclass that defines its own
    /// `__new__` must also define `__getnewargs_ex__` returning what that `__new__` takes;
    /// one that does not is refused here (TypeError), before anything is written.
    #[classmethod]
    #[pyo3(signature = (**kwargs))]
    fn __init_subclass__(
        cls: &Bound<'_, pyo3::types::PyType>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        if kwargs.is_some_and(|k| !k.is_empty()) {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "{}.__init_subclass__() takes no keyword arguments",
                cls.qualname()?
            )));
        }
        check_rebuildable(cls)
    }

    /// Reports the metadata dict to the GC, so cycles through metadata are collected.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Some(m) = &self.metadata {
            visit.call(m)?;
        }
        Ok(())
    }
});

/// A kind's constructor fields (its schema's names) into `d`; event types as their names.
fn kind_fields<K: Schema>(
    py: Python<'_>,
    kind: &K,
    h: &Header,
    d: &Bound<'_, PyDict>,
) -> PyResult<()> {
    let mut res = Ok(());
    let mut put = |name: &str, v: Value<'_>| {
        if res.is_ok() {
            res = match v {
                Value::EventType(t) => {
                    d.set_item(name, &*tracebus_core::model::kinds::event_type_name(t))
                }
                v => v.to_py(py).and_then(|o| d.set_item(name, o)),
            };
        }
    };
    let mut names = K::ARGS.iter();
    kind.args(h, &mut |v| {
        if let Some(n) = names.next() {
            put(n, v);
        }
    });
    kind.kwargs(h, &mut |k, v| put(k, v));
    res
}

pub(super) fn base(header: Header, metadata: Option<Py<PyDict>>) -> Event {
    Event { header, metadata }
}

/// `__getnewargs_ex__` of a kind: its positional arguments, and the header's keyword
/// arguments (with metadata, if any) followed by the kind's.
pub fn newargs<'py, K: Schema>(
    py: Python<'py>,
    kind: &K,
    ev: &Event,
) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
    let h = &ev.header;
    let kw = ev.header_kwargs(py)?;
    let mut args = Vec::with_capacity(K::ARGS.len());
    let mut err = None;
    kind.args(h, &mut |v| match v.to_py(py) {
        Ok(o) => args.push(o),
        Err(e) => err = Some(e),
    });
    kind.kwargs(h, &mut |k, v| {
        if let Err(e) = v.to_py(py).and_then(|o| kw.set_item(k, o)) {
            err = Some(e);
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    Ok((PyTuple::new(py, args)?, kw))
}

// The base class's constructor schema (see `model::schema`; the kinds' are beside them).
schemas! {
    Event "tracebus:Event" |s, h| {
        args { "type": EventType(h.type_id), "source": Str(&h.source) }
        kwargs { "severity": Str(h.severity.as_str()) }
    }
}

/// Whether the nearest definition of `name` in `cls`'s MRO is written in Python (a
/// function, or a staticmethod wrapping one), not one of the native kinds' methods.
fn defined_in_python(cls: &Bound<'_, pyo3::types::PyType>, name: &str) -> PyResult<bool> {
    for k in cls.getattr("__mro__")?.cast_into::<PyTuple>()?.iter() {
        if let Ok(v) = k.getattr("__dict__")?.get_item(name) {
            return Ok(v.hasattr("__code__")? || v.hasattr("__func__")?);
        }
    }
    Ok(false)
}

/// Refuses (TypeError, saying what to change) an `Event` subclass with its own `__new__`
/// but the native `__getnewargs_ex__`: its events could be written but not read back.
fn check_rebuildable(cls: &Bound<'_, pyo3::types::PyType>) -> PyResult<()> {
    if defined_in_python(cls, "__new__")? && !defined_in_python(cls, "__getnewargs_ex__")? {
        let name = cls.qualname()?;
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{name} defines its own __new__, so its events could be stored but not rebuilt: \
             decoding calls {name}(*args, **kwargs) with what __getnewargs_ex__ returns, and \
             the inherited one returns Event's (type, source, header keywords). Either drop \
             __new__ (set your fields in __init__ or as attributes), or also define \
             __getnewargs_ex__(self) returning (args, kwargs) that your __new__ accepts"
        )));
    }
    Ok(())
}
