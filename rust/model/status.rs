//! The events made from service and cluster status: `ServiceStateEvent` (a lifecycle
//! change, also built from a state-store transition of a `ManagedServiceUpdate`) and
//! `HealthEvent` (a cluster health result, also from a `HealthStatusUpdate`).

use super::event::{base, extract_metadata, header, newargs, Event};
use crate::args::{
    extract_bool_opt, extract_opt_text, extract_text, extract_uint, type_err, value_err, LABEL_MAX,
};
use crate::enums::{extract_service_type, extract_state, service_type_obj, state_obj};
use crate::model::schema::{schemas, Schema, Value};
use crate::model::update::{HealthStatusUpdate, ManagedServiceUpdate};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::sync::Arc;
use tracebus_core::model::header::Header;
use tracebus_core::model::ids;
use tracebus_core::model::kinds::{types, Severity, State};

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
        copy_with_error(slf.as_super(), err, |e, o, positional| {
            o.set_item("error", e)?;
            if e.is_some() {
                // new_state is the 4th positional argument of `__getnewargs_ex__`.
                let failed = PyString::new(o.py(), State::Failed.as_str()).into_any();
                positional.push((3, failed));
                o.set_item("is_ready", false)?;
            }
            Ok(())
        })
    }

    fn __getnewargs_ex__<'py>(
        slf: PyRef<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        newargs(py, &*slf, slf.as_super())
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

/// Positional-argument replacements for `Event::rebuild_with`, by index.
type Positional<'py> = Vec<(usize, Bound<'py, PyAny>)>;

/// The `with_error` of a kind: a copy (new event id) rebuilt through its constructor, where
/// `apply` records the kind's overrides for the error text (None: no error).
fn copy_with_error<'py>(
    ev: &Bound<'py, Event>,
    err: &Bound<'py, PyAny>,
    apply: impl FnOnce(Option<&str>, &Bound<'py, PyDict>, &mut Positional<'py>) -> PyResult<()>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = ev.py();
    let e = extract_opt_text("err", Some(err))?;
    let o = PyDict::new(py);
    let mut positional = Vec::new();
    apply(e.as_deref(), &o, &mut positional)?;
    o.set_item("event_id", py.None())?;
    Event::rebuild_with(ev, &positional, &o)
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
    /// A copy carrying `err`: unhealthy, type `health.failure`, severity error (None: a copy
    /// without an error, health unchanged).
    fn with_error<'py>(
        slf: &Bound<'py, Self>,
        err: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        copy_with_error(slf.as_super(), err, |e, o, positional| {
            let py = o.py();
            // is_healthy and error are the 4th and 7th positional arguments of
            // `__getnewargs_ex__`.
            positional.push((6, e.into_pyobject(py)?.into_any()));
            if e.is_some() {
                positional.push((3, false.into_pyobject(py)?.to_owned().into_any()));
                o.set_item("recovered", false)?;
            }
            Ok(())
        })
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
        newargs(py, &*slf, slf.as_super())
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

// The constructor schemas (see `model::schema`).
schemas! {
    ServiceStateEvent "tracebus:ServiceStateEvent" |s, h| {
        args {
            "service_type": Str(&s.service_type),
            "source": Str(&h.source),
            "old_state": Str(s.old_state.as_str()),
            "new_state": Str(s.new_state.as_str()),
        }
        kwargs {
            "is_ready": Bool(s.is_ready),
            "error": OptStr(s.error.as_deref()),
            "proxy_port": UInt(u64::from(s.proxy_port)),
            "pid": UInt(u64::from(s.pid)),
        }
    }
    HealthEvent "tracebus:HealthEvent" |s, h| {
        args {
            "context_name": Str(&s.context_name),
            "cluster_short_name": Str(&s.cluster_short_name),
            "is_mc": Bool(s.is_mc),
            "is_healthy": Bool(s.is_healthy),
            "ready_nodes": UInt(u64::from(s.ready_nodes)),
            "total_nodes": UInt(u64::from(s.total_nodes)),
            "error": OptStr(s.error.as_deref()),
        }
        kwargs {
            "recovered": Bool(h.type_id == types::HEALTH_RECOVERY),
            "source": Str(&h.source),
        }
    }
}
