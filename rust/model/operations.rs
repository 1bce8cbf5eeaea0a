//! The events of operations: `DependencyEvent` (a dependency change or cascade),
//! `UserActionEvent` (something a user did) and `SystemEvent` (a system-level operation).

use super::event::{base, extract_metadata, header, newargs, Event};
use crate::args::{extract_opt_text, extract_text, type_err, value_err, LABEL_MAX};
use crate::enums::{extract_service_type, service_type_obj};
use crate::model::schema::{schemas, Schema, Value};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::sync::Arc;
use tracebus_core::model::header::Header;
use tracebus_core::model::kinds::{types, Severity};

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
        newargs(py, &*slf, slf.as_super())
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
        newargs(py, &*slf, slf.as_super())
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
/// `config.change`/info, `error` → `system.error`/error, `anomaly` → `system.anomaly`/warn
/// (a measured metric left its baseline, see `PerformanceMonitor(anomalies=True)`). Cause
/// `system_operation`.
#[pyclass(frozen, subclass, extends = Event, module = "tracebus", name = "SystemEvent")]
pub struct SystemEvent {
    pub component: Arc<str>,
    pub action: &'static str,
    pub details: Option<Arc<str>>,
}

pub const SYSTEM_ACTIONS: [&str; 5] = ["startup", "shutdown", "config_change", "error", "anomaly"];

/// The type id of `system.anomaly` (registered on first use: the built-in ids are fixed).
fn anomaly_type() -> PyResult<u32> {
    static ID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(id) = ID.get() {
        return Ok(*id);
    }
    let id = tracebus_core::model::kinds::register_event_type("system.anomaly")
        .map_err(|e| value_err("action", format!("'anomaly': system.anomaly {e}")))?;
    Ok(*ID.get_or_init(|| id))
}

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
            "anomaly" => ("anomaly", anomaly_type()?, Severity::Warn),
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
    /// `startup`, `shutdown`, `config_change`, `error` or `anomaly`.
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
        newargs(py, &*slf, slf.as_super())
    }
    /// The reference's text form: `"tui startup: UI initialized"` (component, action and
    /// the details after a colon), `"orchestrator shutdown"` without details.
    fn __str__(&self) -> String {
        match &self.details {
            Some(d) => format!("{} {}: {d}", self.component, self.action),
            None => format!("{} {}", self.component, self.action),
        }
    }
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str) {
        ("component", "action", "details")
    }
}

// The constructor schemas (see `model::schema`).
schemas! {
    DependencyEvent "tracebus:DependencyEvent" |s, h| {
        args {
            "source": Str(&h.source),
            "dependency_type": Str(&s.dependency_type),
            "affected": StrList(&s.affected),
            "action": Str(s.action),
        }
        kwargs { "cascade": Bool(s.cascade) }
    }
    UserActionEvent "tracebus:UserActionEvent" |s, h| {
        args {
            "action": Str(&s.action),
            "target_type": Str(&s.target_type),
            "target_name": Str(&s.target_name),
        }
        kwargs { "source": Str(&h.source) }
    }
    SystemEvent "tracebus:SystemEvent" |s, h| {
        args {
            "component": Str(&s.component),
            "action": Str(s.action),
            "details": OptStr(s.details.as_deref()),
        }
        kwargs {}
    }
}
