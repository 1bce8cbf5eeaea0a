//! Events: the `Event` base class (routing header in Rust) and the five kinds of the
//! design. Kinds are Rust subclasses, so creating one is a single native call; users
//! subclass `Event` in Python for their own kinds.

use crate::args::{
    extract_bool_opt, extract_event_id, extract_opt_text, extract_text, extract_timestamp,
    extract_uint, type_err, value_err, LABEL_MAX,
};
use crate::correlation::resolve;
use crate::enums::{
    event_type_obj, extract_event_type, extract_service_type, extract_severity, extract_state,
    service_type_obj, severity_obj, state_obj,
};
use crate::model::update::{HealthStatusUpdate, ManagedServiceUpdate};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use std::sync::Arc;
use tracebus_core::model::header::Header;
use tracebus_core::model::ids;
use tracebus_core::model::kinds::{types, Severity, State};

/// Header fields shared by every constructor.
#[allow(clippy::too_many_arguments)]
fn header(
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

fn extract_metadata(py: Python<'_>, m: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyDict>>> {
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
                d.set_item(k, v)?;
            }
            Ok(if d.is_empty() { None } else { Some(d.unbind()) })
        }
        _ => Ok(None),
    }
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
#[pyclass(frozen, subclass, module = "tracebus", name = "Event")]
pub struct Event {
    pub header: Header,
    pub metadata: Option<Py<PyDict>>,
}

impl Event {
    fn header_kwargs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
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
    fn rebuild<'py>(
        slf: &Bound<'py, Self>,
        overrides: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::rebuild_with(slf, &[], overrides)
    }

    /// Like `rebuild`, also replacing positional constructor arguments by index (keyword
    /// overrides cannot name a parameter that `__getnewargs_ex__` passes positionally).
    fn rebuild_with<'py>(
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

#[pymethods]
impl Event {
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
    /// Seconds since the epoch.
    #[getter]
    fn timestamp(&self) -> f64 {
        self.header.timestamp
    }
    /// The severity.
    #[getter]
    fn severity(&self, py: Python<'_>) -> Py<PyAny> {
        severity_obj(py, self.header.severity)
    }
    /// Unique id of this event: `evt_` + 16 hex.
    #[getter]
    fn event_id(&self) -> String {
        ids::format_event_id(self.header.event_id)
    }
    /// Correlation id shared by the whole cascade.
    #[getter]
    fn correlation_id(&self) -> &str {
        &self.header.correlation_id
    }
    /// What caused this event.
    #[getter]
    fn caused_by(&self) -> &str {
        &self.header.caused_by
    }
    /// Event id of the direct parent, if any.
    #[getter]
    fn parent_id(&self) -> Option<&str> {
        self.header.parent_id.as_deref()
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
        let kw = self.header_kwargs(py)?;
        kw.set_item("severity", self.header.severity.as_str())?;
        let args = PyTuple::new(
            py,
            [
                event_type_obj(py, self.header.type_id),
                PyString::new(py, &self.header.source).into_any().unbind(),
            ],
        )?;
        Ok((args, kw))
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

    /// Reports the metadata dict to the GC, so cycles through metadata are collected.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Some(m) = &self.metadata {
            visit.call(m)?;
        }
        Ok(())
    }
}

fn base(header: Header, metadata: Option<Py<PyDict>>) -> Event {
    Event { header, metadata }
}

/// A service's lifecycle change. Type and severity follow the new state
/// (Failed→error, Retrying→warn, Running/Stopped→info, Starting/Stopping→debug).
#[pyclass(frozen, subclass, extends = Event, module = "tracebus", name = "ServiceStateEvent")]
pub struct ServiceStateEvent {
    pub service_type: Arc<str>,
    pub old_state: State,
    pub new_state: State,
    pub is_ready: bool,
    pub error: Option<Arc<str>>,
    pub proxy_port: u16,
    pub pid: u32,
}

#[pymethods]
impl ServiceStateEvent {
    #[new]
    #[pyo3(signature = (service_type, source, old_state, new_state, *, is_ready=None, error=None, proxy_port=None, pid=None, metadata=None, correlation_id=None, caused_by=None, parent_id=None, timestamp=None, event_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        service_type: &Bound<'_, PyAny>,
        source: &Bound<'_, PyAny>,
        old_state: &Bound<'_, PyAny>,
        new_state: &Bound<'_, PyAny>,
        is_ready: Option<&Bound<'_, PyAny>>,
        error: Option<&Bound<'_, PyAny>>,
        proxy_port: Option<&Bound<'_, PyAny>>,
        pid: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        caused_by: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        event_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let service_type = extract_service_type("service_type", service_type)?;
        let source = extract_text("source", source, LABEL_MAX)?;
        let old_state = extract_state("old_state", old_state)?;
        let new_state = extract_state("new_state", new_state)?;
        let is_ready =
            extract_bool_opt("is_ready", is_ready)?.unwrap_or(new_state == State::Running);
        let error = extract_opt_text("error", error)?;
        let proxy_port = match proxy_port {
            Some(v) if !v.is_none() => extract_uint("proxy_port", v, 65535)? as u16,
            _ => 0,
        };
        let pid = match pid {
            Some(v) if !v.is_none() => extract_uint("pid", v, u64::from(u32::MAX))? as u32,
            _ => 0,
        };
        let h = header(
            py,
            new_state.event_type(),
            source,
            new_state.severity(),
            correlation_id,
            caused_by,
            parent_id,
            timestamp,
            event_id,
            "unknown",
        )?;
        Ok(
            PyClassInitializer::from(base(h, extract_metadata(py, metadata)?)).add_subclass(
                ServiceStateEvent {
                    service_type,
                    old_state,
                    new_state,
                    is_ready,
                    error,
                    proxy_port,
                    pid,
                },
            ),
        )
    }

    /// The event for a state-store transition of `update`: the update's timestamp, event id,
    /// correlation id, cause and parent id are carried over.
    #[classmethod]
    fn from_update<'py>(
        cls: &Bound<'py, pyo3::types::PyType>,
        update: &Bound<'py, PyAny>,
        old_state: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let u = update
            .cast::<ManagedServiceUpdate>()
            .map_err(|_| type_err("update", "a ManagedServiceUpdate", update))?
            .get();
        let old = extract_state("old_state", old_state)?;
        let ev = service_event_from_update(py, &u.data, old)?;
        if cls.is(py.get_type::<ServiceStateEvent>()) {
            return Ok(ev.into_bound(py).into_any());
        }
        let o = PyDict::new(py);
        Event::rebuild(ev.bind(py).cast::<Event>()?, &o)
    }

    /// Service type.
    #[getter]
    fn service_type(&self, py: Python<'_>) -> Py<PyAny> {
        service_type_obj(py, &self.service_type)
    }
    /// State before.
    #[getter]
    fn old_state(&self, py: Python<'_>) -> Py<PyAny> {
        state_obj(py, self.old_state)
    }
    /// State after.
    #[getter]
    fn new_state(&self, py: Python<'_>) -> Py<PyAny> {
        state_obj(py, self.new_state)
    }
    /// Whether the service is ready.
    #[getter]
    fn is_ready(&self) -> bool {
        self.is_ready
    }
    /// Error text, if any.
    #[getter]
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    /// Proxy port (0 = none).
    #[getter]
    fn proxy_port(&self) -> u16 {
        self.proxy_port
    }
    /// Process id (0 = none).
    #[getter]
    fn pid(&self) -> u32 {
        self.pid
    }

    /// A copy carrying `err`: new state FAILED, not ready, type `service.failed`, severity
    /// error (the reference left a stale type).
    fn with_error<'py>(
        slf: &Bound<'py, Self>,
        err: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let e = extract_opt_text("err", Some(err))?;
        let o = PyDict::new(py);
        o.set_item("error", e.as_deref())?;
        let mut positional = Vec::new();
        if e.is_some() {
            // new_state is the 4th positional argument of `__getnewargs_ex__`.
            positional.push((3, PyString::new(py, State::Failed.as_str()).into_any()));
            o.set_item("is_ready", false)?;
        }
        o.set_item("event_id", py.None())?;
        Event::rebuild_with(slf.as_super(), &positional, &o)
    }

    fn __getnewargs_ex__<'py>(
        slf: PyRef<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        let kw = slf.as_super().header_kwargs(py)?;
        kw.set_item("is_ready", slf.is_ready)?;
        kw.set_item("error", slf.error.as_deref())?;
        kw.set_item("proxy_port", slf.proxy_port)?;
        kw.set_item("pid", slf.pid)?;
        let args = PyTuple::new(
            py,
            [
                PyString::new(py, &slf.service_type).into_any(),
                PyString::new(py, &slf.as_super().header.source).into_any(),
                PyString::new(py, slf.old_state.as_str()).into_any(),
                PyString::new(py, slf.new_state.as_str()).into_any(),
            ],
        )?;
        Ok((args, kw))
    }

    fn __str__(slf: PyRef<'_, Self>) -> String {
        let mut s = format!(
            "{} ({}) {} → {}",
            slf.as_super().header.source,
            slf.service_type,
            slf.old_state.as_str(),
            slf.new_state.as_str()
        );
        if let Some(e) = &slf.error {
            s.push_str(&format!(" (error: {e})"));
        }
        s
    }

    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str, &'static str) {
        ("service_type", "source", "old_state", "new_state")
    }
}

pub fn service_event_from_update(
    py: Python<'_>,
    u: &tracebus_core::model::update::UpdateData,
    old: State,
) -> PyResult<Py<ServiceStateEvent>> {
    let h = Header {
        type_id: u.state.event_type(),
        source: u.label.clone(),
        severity: u.state.severity(),
        event_id: u.event_id,
        correlation_id: u.correlation_id.clone(),
        caused_by: u.caused_by.clone(),
        parent_id: u.parent_id.clone(),
        timestamp: u.timestamp,
        depth: crate::correlation::current_depth(py)?,
    };
    Py::new(
        py,
        PyClassInitializer::from(base(h, None)).add_subclass(ServiceStateEvent {
            service_type: u.source_type.clone(),
            old_state: old,
            new_state: u.state,
            is_ready: u.is_ready,
            error: u.error_detail.clone(),
            proxy_port: u.proxy_port,
            pid: u.pid,
        }),
    )
}

/// A cluster health result. Source `health-monitor`, cause `health_check`; healthy →
/// `health.check`/info (or `health.recovery`/info when `recovered`), unhealthy →
/// `health.failure`/error.
#[pyclass(frozen, subclass, extends = Event, module = "tracebus", name = "HealthEvent")]
pub struct HealthEvent {
    pub context_name: Arc<str>,
    pub cluster_short_name: Arc<str>,
    pub is_mc: bool,
    pub is_healthy: bool,
    pub ready_nodes: u32,
    pub total_nodes: u32,
    pub error: Option<Arc<str>>,
}

#[pymethods]
impl HealthEvent {
    #[new]
    #[pyo3(signature = (context_name, cluster_short_name, is_mc, is_healthy, ready_nodes=None, total_nodes=None, error=None, *, recovered=false, source=None, metadata=None, correlation_id=None, caused_by=None, parent_id=None, timestamp=None, event_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        context_name: &Bound<'_, PyAny>,
        cluster_short_name: &Bound<'_, PyAny>,
        is_mc: &Bound<'_, PyAny>,
        is_healthy: &Bound<'_, PyAny>,
        ready_nodes: Option<&Bound<'_, PyAny>>,
        total_nodes: Option<&Bound<'_, PyAny>>,
        error: Option<&Bound<'_, PyAny>>,
        recovered: bool,
        source: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        caused_by: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        event_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let context_name = extract_text("context_name", context_name, LABEL_MAX)?;
        let cluster_short_name = extract_text("cluster_short_name", cluster_short_name, LABEL_MAX)?;
        let is_mc = crate::args::extract_bool("is_mc", is_mc)?;
        let is_healthy = crate::args::extract_bool("is_healthy", is_healthy)?;
        let ready_nodes =
            crate::args::uint_or("ready_nodes", ready_nodes, 0, u64::from(u32::MAX))? as u32;
        let total_nodes =
            crate::args::uint_or("total_nodes", total_nodes, 0, u64::from(u32::MAX))? as u32;
        if ready_nodes > total_nodes {
            return Err(value_err(
                "ready_nodes",
                format!("must not exceed total_nodes ({ready_nodes} > {total_nodes})"),
            ));
        }
        if recovered && !is_healthy {
            return Err(value_err(
                "recovered",
                "can only be True for a healthy cluster",
            ));
        }
        let error = extract_opt_text("error", error)?;
        let source = match source {
            Some(s) if !s.is_none() => extract_text("source", s, LABEL_MAX)?,
            _ => Arc::from("health-monitor"),
        };
        let (ty, sev) = match (is_healthy, recovered) {
            (true, false) => (types::HEALTH_CHECK, Severity::Info),
            (true, true) => (types::HEALTH_RECOVERY, Severity::Info),
            (false, _) => (types::HEALTH_FAILURE, Severity::Error),
        };
        let h = header(
            py,
            ty,
            source,
            sev,
            correlation_id,
            caused_by,
            parent_id,
            timestamp,
            event_id,
            "health_check",
        )?;
        Ok(
            PyClassInitializer::from(base(h, extract_metadata(py, metadata)?)).add_subclass(
                HealthEvent {
                    context_name,
                    cluster_short_name,
                    is_mc,
                    is_healthy,
                    ready_nodes,
                    total_nodes,
                    error,
                },
            ),
        )
    }

    /// The event for a `HealthStatusUpdate` (its timestamp and correlation carried over).
    #[classmethod]
    #[pyo3(signature = (update, *, recovered=false))]
    fn from_update<'py>(
        cls: &Bound<'py, pyo3::types::PyType>,
        update: &Bound<'py, PyAny>,
        recovered: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let u = &update
            .cast::<HealthStatusUpdate>()
            .map_err(|_| type_err("update", "a HealthStatusUpdate", update))?
            .get()
            .data;
        let kw = PyDict::new(py);
        kw.set_item("recovered", recovered && u.is_healthy)?;
        kw.set_item("correlation_id", &*u.correlation_id)?;
        kw.set_item("caused_by", &*u.caused_by)?;
        kw.set_item("parent_id", u.parent_id.as_deref())?;
        kw.set_item("timestamp", u.timestamp)?;
        kw.set_item("event_id", ids::format_event_id(u.event_id))?;
        cls.call(
            (
                &*u.context_name,
                &*u.cluster_short_name,
                u.is_mc,
                u.is_healthy,
                u.ready_nodes,
                u.total_nodes,
                u.error.as_deref(),
            ),
            Some(&kw),
        )
    }

    /// Kubernetes context name.
    #[getter]
    fn context_name(&self) -> &str {
        &self.context_name
    }
    /// Short cluster name.
    #[getter]
    fn cluster_short_name(&self) -> &str {
        &self.cluster_short_name
    }
    /// Management cluster (True) or workload cluster.
    #[getter]
    fn is_mc(&self) -> bool {
        self.is_mc
    }
    /// Whether healthy.
    #[getter]
    fn is_healthy(&self) -> bool {
        self.is_healthy
    }
    /// Ready nodes.
    #[getter]
    fn ready_nodes(&self) -> u32 {
        self.ready_nodes
    }
    /// Total nodes.
    #[getter]
    fn total_nodes(&self) -> u32 {
        self.total_nodes
    }
    /// Error text, if any.
    #[getter]
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    /// True for a `health.recovery` event.
    #[getter]
    fn recovered(slf: PyRef<'_, Self>) -> bool {
        slf.as_super().header.type_id == types::HEALTH_RECOVERY
    }

    fn __getnewargs_ex__<'py>(
        slf: PyRef<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        let kw = slf.as_super().header_kwargs(py)?;
        kw.set_item(
            "recovered",
            slf.as_super().header.type_id == types::HEALTH_RECOVERY,
        )?;
        kw.set_item("source", &*slf.as_super().header.source)?;
        let args = (
            &*slf.context_name,
            &*slf.cluster_short_name,
            slf.is_mc,
            slf.is_healthy,
            slf.ready_nodes,
            slf.total_nodes,
            slf.error.as_deref(),
        )
            .into_pyobject(py)?;
        Ok((args, kw))
    }

    fn __str__(slf: PyRef<'_, Self>) -> String {
        let kind = if slf.is_mc { "MC" } else { "WC" };
        let word = if !slf.is_healthy {
            "unhealthy"
        } else if slf.as_super().header.type_id == types::HEALTH_RECOVERY {
            "recovered"
        } else {
            "healthy"
        };
        let mut s = format!(
            "{kind} {} {word} ({}/{} nodes)",
            slf.cluster_short_name, slf.ready_nodes, slf.total_nodes
        );
        if let Some(e) = &slf.error {
            s.push_str(&format!(" (error: {e})"));
        }
        s
    }

    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str, &'static str) {
        ("context_name", "cluster_short_name", "is_mc", "is_healthy")
    }
}

/// A dependency change: with `cascade=True` (default) a cascade start/stop across
/// `affected` services (`cascade.start` / `cascade.stop`), else a single dependency coming
/// up or going down (`dependency.start` / `dependency.stop`). Cause `dependency_change`, info.
#[pyclass(frozen, subclass, extends = Event, module = "tracebus", name = "DependencyEvent")]
pub struct DependencyEvent {
    pub dependency_type: Arc<str>,
    pub affected: Vec<Arc<str>>,
    pub action: &'static str,
    pub cascade: bool,
}

#[pymethods]
impl DependencyEvent {
    #[new]
    #[pyo3(signature = (source, dependency_type, affected, action, *, cascade=true, metadata=None, correlation_id=None, caused_by=None, parent_id=None, timestamp=None, event_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        dependency_type: &Bound<'_, PyAny>,
        affected: &Bound<'_, PyAny>,
        action: &Bound<'_, PyAny>,
        cascade: bool,
        metadata: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        caused_by: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        event_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let source = extract_text("source", source, LABEL_MAX)?;
        let dependency_type = extract_service_type("dependency_type", dependency_type)?;
        if affected.is_instance_of::<PyString>() {
            return Err(type_err("affected", "a list of service labels", affected));
        }
        let affected: Vec<Arc<str>> = affected
            .try_iter()
            .map_err(|_| type_err("affected", "a list of service labels", affected))?
            .map(|x| extract_text("affected item", &x?, LABEL_MAX))
            .collect::<PyResult<_>>()?;
        let a = extract_text("action", action, 20)?;
        let action: &'static str = match &*a {
            "start" => "start",
            "stop" => "stop",
            other => {
                return Err(value_err(
                    "action",
                    format!("must be 'start' or 'stop', got {other:?}"),
                ))
            }
        };
        let ty = match (cascade, action) {
            (true, "start") => types::CASCADE_START,
            (true, _) => types::CASCADE_STOP,
            (false, "start") => types::DEPENDENCY_START,
            (false, _) => types::DEPENDENCY_STOP,
        };
        let h = header(
            py,
            ty,
            source,
            Severity::Info,
            correlation_id,
            caused_by,
            parent_id,
            timestamp,
            event_id,
            "dependency_change",
        )?;
        Ok(
            PyClassInitializer::from(base(h, extract_metadata(py, metadata)?)).add_subclass(
                DependencyEvent {
                    dependency_type,
                    affected,
                    action,
                    cascade,
                },
            ),
        )
    }
    /// Type of the dependency (e.g. `KubeOperation` for a cluster connection).
    #[getter]
    fn dependency_type(&self, py: Python<'_>) -> Py<PyAny> {
        service_type_obj(py, &self.dependency_type)
    }
    /// Labels of the affected services.
    #[getter]
    fn affected<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.affected.iter().map(|s| &**s))
    }
    /// `start` or `stop`.
    #[getter]
    fn action(&self) -> &'static str {
        self.action
    }
    /// True for a cascade, False for a single dependency change.
    #[getter]
    fn cascade(&self) -> bool {
        self.cascade
    }
    fn __getnewargs_ex__<'py>(
        slf: PyRef<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        let kw = slf.as_super().header_kwargs(py)?;
        kw.set_item("cascade", slf.cascade)?;
        let affected = PyList::new(py, slf.affected.iter().map(|s| &**s))?;
        let args = (
            &*slf.as_super().header.source,
            &*slf.dependency_type,
            affected,
            slf.action,
        )
            .into_pyobject(py)?;
        Ok((args, kw))
    }
    fn __str__(slf: PyRef<'_, Self>) -> String {
        let what = if slf.cascade { "cascade" } else { "dependency" };
        let n = slf.affected.len();
        format!(
            "{} {what} from {} affecting {n} service{}",
            slf.action,
            slf.as_super().header.source,
            if n == 1 { "" } else { "s" }
        )
    }
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str, &'static str) {
        ("source", "dependency_type", "affected", "action")
    }
}

/// Something a user did (restart, stop, ...). Source `user`, cause `user_action`,
/// `user.action`, info.
#[pyclass(frozen, subclass, extends = Event, module = "tracebus", name = "UserActionEvent")]
pub struct UserActionEvent {
    pub action: Arc<str>,
    pub target_type: Arc<str>,
    pub target_name: Arc<str>,
}

#[pymethods]
impl UserActionEvent {
    #[new]
    #[pyo3(signature = (action, target_type, target_name, *, source=None, metadata=None, correlation_id=None, caused_by=None, parent_id=None, timestamp=None, event_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        action: &Bound<'_, PyAny>,
        target_type: &Bound<'_, PyAny>,
        target_name: &Bound<'_, PyAny>,
        source: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        caused_by: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        event_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let action = extract_text("action", action, 200)?;
        let target_type = extract_service_type("target_type", target_type)?;
        let target_name = extract_text("target_name", target_name, LABEL_MAX)?;
        let source = match source {
            Some(s) if !s.is_none() => extract_text("source", s, LABEL_MAX)?,
            _ => Arc::from("user"),
        };
        let h = header(
            py,
            types::USER_ACTION,
            source,
            Severity::Info,
            correlation_id,
            caused_by,
            parent_id,
            timestamp,
            event_id,
            "user_action",
        )?;
        Ok(
            PyClassInitializer::from(base(h, extract_metadata(py, metadata)?)).add_subclass(
                UserActionEvent {
                    action,
                    target_type,
                    target_name,
                },
            ),
        )
    }
    /// The action (e.g. `restart`).
    #[getter]
    fn action(&self) -> &str {
        &self.action
    }
    /// Type of the target service.
    #[getter]
    fn target_type(&self, py: Python<'_>) -> Py<PyAny> {
        service_type_obj(py, &self.target_type)
    }
    /// Label of the target service.
    #[getter]
    fn target_name(&self) -> &str {
        &self.target_name
    }
    fn __getnewargs_ex__<'py>(
        slf: PyRef<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        let kw = slf.as_super().header_kwargs(py)?;
        kw.set_item("source", &*slf.as_super().header.source)?;
        let args = (&*slf.action, &*slf.target_type, &*slf.target_name).into_pyobject(py)?;
        Ok((args, kw))
    }
    fn __str__(&self) -> String {
        format!(
            "User {} {} {}",
            self.action, self.target_type, self.target_name
        )
    }
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str) {
        ("action", "target_type", "target_name")
    }
}

/// A system-level operation of `component`. `action` selects the type: `startup` →
/// `system.startup`/info, `shutdown` → `system.shutdown`/warn, `config_change` →
/// `config.change`/info, `error` → `system.error`/error. Cause `system_operation`.
#[pyclass(frozen, subclass, extends = Event, module = "tracebus", name = "SystemEvent")]
pub struct SystemEvent {
    pub component: Arc<str>,
    pub action: &'static str,
    pub details: Option<Arc<str>>,
}

pub const SYSTEM_ACTIONS: [&str; 4] = ["startup", "shutdown", "config_change", "error"];

#[pymethods]
impl SystemEvent {
    #[new]
    #[pyo3(signature = (component, action, details=None, *, metadata=None, correlation_id=None, caused_by=None, parent_id=None, timestamp=None, event_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        component: &Bound<'_, PyAny>,
        action: &Bound<'_, PyAny>,
        details: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        caused_by: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        event_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let component = extract_text("component", component, LABEL_MAX)?;
        let a = extract_text("action", action, 40)?;
        let (action, ty, sev) = match &*a {
            "startup" => ("startup", types::SYSTEM_STARTUP, Severity::Info),
            "shutdown" => ("shutdown", types::SYSTEM_SHUTDOWN, Severity::Warn),
            "config_change" | "config.change" => {
                ("config_change", types::CONFIG_CHANGE, Severity::Info)
            }
            "error" => ("error", types::SYSTEM_ERROR, Severity::Error),
            other => {
                return Err(value_err(
                    "action",
                    format!("must be one of {SYSTEM_ACTIONS:?}, got {other:?}"),
                ))
            }
        };
        let details = extract_opt_text("details", details)?;
        let h = header(
            py,
            ty,
            component.clone(),
            sev,
            correlation_id,
            caused_by,
            parent_id,
            timestamp,
            event_id,
            "system_operation",
        )?;
        Ok(
            PyClassInitializer::from(base(h, extract_metadata(py, metadata)?)).add_subclass(
                SystemEvent {
                    component,
                    action,
                    details,
                },
            ),
        )
    }
    /// The component.
    #[getter]
    fn component(&self) -> &str {
        &self.component
    }
    /// `startup`, `shutdown`, `config_change` or `error`.
    #[getter]
    fn action(&self) -> &'static str {
        self.action
    }
    /// Free-text details.
    #[getter]
    fn details(&self) -> Option<&str> {
        self.details.as_deref()
    }
    fn __getnewargs_ex__<'py>(
        slf: PyRef<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        let kw = slf.as_super().header_kwargs(py)?;
        let args = (&*slf.component, slf.action, slf.details.as_deref()).into_pyobject(py)?;
        Ok((args, kw))
    }
    fn __str__(&self) -> String {
        let mut s = format!(
            "system {}: {}",
            self.action.replace('_', " "),
            self.component
        );
        if let Some(d) = &self.details {
            s.push_str(&format!(" ({d})"));
        }
        s
    }
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str) {
        ("component", "action", "details")
    }
}
