//! `ManagedServiceUpdate`, `HealthStatusUpdate` and `ServiceStateSnapshot`.

use crate::args::{
    extract_bool, extract_event_id, extract_opt_text, extract_text, extract_timestamp,
    extract_uint, type_err, value_err, LABEL_MAX,
};
use crate::correlation::resolve;
use crate::enums::{extract_service_type, extract_state};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat};
use std::sync::Arc;
use tracebus_core::model::ids;
use tracebus_core::model::kinds::State;
use tracebus_core::model::update::{HealthData, UpdateData};

/// One state report of a managed service (port-forward, MCP server, process, ...).
///
/// Immutable; every update gets a unique `event_id`. Created inside a `correlation(...)`
/// scope or a handler, it joins that correlation automatically.
#[pyclass(frozen, module = "tracebus", name = "ManagedServiceUpdate")]
pub struct ManagedServiceUpdate {
    pub data: Arc<UpdateData>,
}

impl ManagedServiceUpdate {
    fn with(&self, f: impl FnOnce(&mut UpdateData)) -> Self {
        let mut d = (*self.data).clone();
        d.event_id = ids::next_id();
        f(&mut d);
        ManagedServiceUpdate { data: Arc::new(d) }
    }
}

service_pymethods!(ManagedServiceUpdate, timestamp, {
    #[new]
    #[pyo3(signature = (source_type, source_label, state, *, is_ready=None, error_detail=None, proxy_port=None, pid=None, correlation_id=None, caused_by=None, parent_id=None, timestamp=None, event_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        source_type: &Bound<'_, PyAny>,
        source_label: &Bound<'_, PyAny>,
        state: &Bound<'_, PyAny>,
        is_ready: Option<&Bound<'_, PyAny>>,
        error_detail: Option<&Bound<'_, PyAny>>,
        proxy_port: Option<&Bound<'_, PyAny>>,
        pid: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        caused_by: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        event_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let source_type = extract_service_type("source_type", source_type)?;
        let label = extract_text("source_label", source_label, LABEL_MAX)?;
        let state = extract_state("state", state)?;
        let is_ready = match is_ready {
            Some(v) if !v.is_none() => extract_bool("is_ready", v)?,
            _ => state == State::Running,
        };
        let error_detail = extract_opt_text("error_detail", error_detail)?;
        let proxy_port = match proxy_port {
            Some(v) if !v.is_none() => extract_uint("proxy_port", v, 65535)? as u16,
            _ => 0,
        };
        let pid = match pid {
            Some(v) if !v.is_none() => extract_uint("pid", v, u64::from(u32::MAX))? as u32,
            _ => 0,
        };
        let timestamp = extract_timestamp(timestamp)?;
        let event_id = extract_event_id(event_id)?;
        let crate::correlation::Resolved {
            correlation_id,
            caused_by,
            parent_id,
            ..
        } = resolve(py, correlation_id, caused_by, parent_id, "unknown")?;
        Ok(ManagedServiceUpdate {
            data: Arc::new(UpdateData {
                timestamp,
                source_type,
                label,
                state,
                is_ready,
                error_detail,
                proxy_port,
                pid,
                event_id,
                correlation_id,
                caused_by,
                parent_id,
            }),
        })
    }

    /// The service's label (its name).
    #[getter]
    fn source_label(&self) -> &str {
        &self.data.label
    }

    /// A copy with a new cause (and parent id).
    #[pyo3(signature = (cause, parent_id=None))]
    fn with_cause(
        &self,
        cause: &Bound<'_, PyAny>,
        parent_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let cause = extract_text("cause", cause, 200)?;
        let parent = match parent_id {
            Some(p) if !p.is_none() => Some(extract_text("parent_id", p, 200)?),
            _ => self.data.parent_id.clone(),
        };
        Ok(self.with(|d| {
            d.caused_by = cause;
            d.parent_id = parent;
        }))
    }

    /// A copy joined to another correlation.
    #[pyo3(signature = (correlation_id, caused_by, parent_id=None))]
    fn with_correlation(
        &self,
        correlation_id: &Bound<'_, PyAny>,
        caused_by: &Bound<'_, PyAny>,
        parent_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let corr = extract_text("correlation_id", correlation_id, 200)?;
        let cause = extract_text("caused_by", caused_by, 200)?;
        let parent = match parent_id {
            Some(p) if !p.is_none() => {
                let s = p.str()?;
                let s = s.to_str()?;
                if s.is_empty() {
                    None
                } else {
                    Some(extract_text("parent_id", p, 200)?)
                }
            }
            _ => None,
        };
        Ok(self.with(|d| {
            d.correlation_id = corr;
            d.caused_by = cause;
            d.parent_id = parent;
        }))
    }

    /// A copy carrying an error: a non-empty error forces state FAILED and not ready.
    fn with_error(&self, err: &Bound<'_, PyAny>) -> PyResult<Self> {
        let e = extract_opt_text("err", Some(err))?;
        Ok(self.with(|d| {
            if e.is_some() {
                d.state = State::Failed;
                d.is_ready = false;
            }
            d.error_detail = e;
        }))
    }

    /// A copy with port and pid set.
    fn with_service_data(&self, port: &Bound<'_, PyAny>, pid: &Bound<'_, PyAny>) -> PyResult<Self> {
        let port = extract_uint("port", port, 65535)? as u16;
        let pid = extract_uint("pid", pid, u64::from(u32::MAX))? as u32;
        Ok(self.with(|d| {
            d.proxy_port = port;
            d.pid = pid;
        }))
    }

    /// Every field as a plain dict (JSON-friendly).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        update_dict(py, &self.data)
    }

    fn __str__(&self) -> String {
        self.data.describe()
    }

    fn __repr__(&self) -> String {
        format!(
            "ManagedServiceUpdate({:?}, {:?}, {:?}, event_id={:?}, correlation_id={:?})",
            &*self.data.source_type,
            &*self.data.label,
            self.data.state.as_str(),
            ids::format_event_id(self.data.event_id),
            &*self.data.correlation_id
        )
    }
});

pub fn update_dict<'py>(py: Python<'py>, d: &UpdateData) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("source_type", &*d.source_type)?;
    out.set_item("source_label", &*d.label)?;
    out.set_item("state", d.state.as_str())?;
    out.set_item("is_ready", d.is_ready)?;
    out.set_item("error_detail", d.error_detail.as_deref())?;
    out.set_item("proxy_port", d.proxy_port)?;
    out.set_item("pid", d.pid)?;
    out.set_item("event_id", ids::format_event_id(d.event_id))?;
    out.set_item("correlation_id", &*d.correlation_id)?;
    out.set_item("caused_by", &*d.caused_by)?;
    out.set_item("parent_id", d.parent_id.as_deref())?;
    out.set_item("timestamp", PyFloat::new(py, d.timestamp))?;
    Ok(out)
}

/// The stored state of one service: the last update reported for its label. Immutable.
#[pyclass(frozen, module = "tracebus", name = "ServiceStateSnapshot")]
pub struct ServiceStateSnapshot {
    pub data: Arc<UpdateData>,
}

service_pymethods!(ServiceStateSnapshot, last_updated, {
    /// The service's label.
    #[getter]
    fn label(&self) -> &str {
        &self.data.label
    }
    /// Every field as a plain dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = update_dict(py, &self.data)?;
        d.set_item("label", &*self.data.label)?;
        d.set_item("last_updated", self.data.timestamp)?;
        Ok(d)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<ServiceStateSnapshot>()
            .map(|o| *o.get().data == *self.data)
            .unwrap_or(false)
    }
    fn __hash__(&self) -> u64 {
        self.data.event_id
    }
    fn __str__(&self) -> String {
        self.data.describe()
    }
    fn __repr__(&self) -> String {
        format!(
            "ServiceStateSnapshot(label={:?}, state={:?}, is_ready={})",
            &*self.data.label,
            self.data.state.as_str(),
            if self.data.is_ready { "True" } else { "False" }
        )
    }
});

/// Health of one cluster: management cluster (`is_mc`) or workload cluster.
#[pyclass(frozen, module = "tracebus", name = "HealthStatusUpdate")]
pub struct HealthStatusUpdate {
    pub data: Arc<HealthData>,
}

correlated_pymethods!(HealthStatusUpdate, data, timestamp, {}, {
    #[new]
    #[pyo3(signature = (context_name, cluster_short_name, is_mc, is_healthy, *, ready_nodes=None, total_nodes=None, error=None, correlation_id=None, caused_by=None, parent_id=None, timestamp=None))]
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
        correlation_id: Option<&Bound<'_, PyAny>>,
        caused_by: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let context_name = extract_text("context_name", context_name, LABEL_MAX)?;
        let cluster_short_name = extract_text("cluster_short_name", cluster_short_name, LABEL_MAX)?;
        let is_mc = extract_bool("is_mc", is_mc)?;
        let is_healthy = extract_bool("is_healthy", is_healthy)?;
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
        let error = extract_opt_text("error", error)?;
        let timestamp = extract_timestamp(timestamp)?;
        let crate::correlation::Resolved {
            correlation_id,
            caused_by,
            parent_id,
            ..
        } = resolve(py, correlation_id, caused_by, parent_id, "health_check")?;
        Ok(HealthStatusUpdate {
            data: Arc::new(HealthData {
                timestamp,
                context_name,
                cluster_short_name,
                is_mc,
                is_healthy,
                ready_nodes,
                total_nodes,
                error,
                event_id: ids::next_id(),
                correlation_id,
                caused_by,
                parent_id,
            }),
        })
    }
    /// Kubernetes context name.
    #[getter]
    fn context_name(&self) -> &str {
        &self.data.context_name
    }
    /// Short cluster name.
    #[getter]
    fn cluster_short_name(&self) -> &str {
        &self.data.cluster_short_name
    }
    /// True for the management cluster, False for a workload cluster.
    #[getter]
    fn is_mc(&self) -> bool {
        self.data.is_mc
    }
    /// Whether the cluster is healthy.
    #[getter]
    fn is_healthy(&self) -> bool {
        self.data.is_healthy
    }
    /// Ready nodes.
    #[getter]
    fn ready_nodes(&self) -> u32 {
        self.data.ready_nodes
    }
    /// Total nodes.
    #[getter]
    fn total_nodes(&self) -> u32 {
        self.data.total_nodes
    }
    /// Error text, if any.
    #[getter]
    fn error(&self) -> Option<&str> {
        self.data.error.as_deref()
    }
    fn __repr__(&self) -> String {
        format!(
            "HealthStatusUpdate({:?}, {:?}, is_mc={}, is_healthy={}, {}/{} nodes)",
            &*self.data.context_name,
            &*self.data.cluster_short_name,
            if self.data.is_mc { "True" } else { "False" },
            if self.data.is_healthy {
                "True"
            } else {
                "False"
            },
            self.data.ready_nodes,
            self.data.total_nodes
        )
    }
});

pub fn extract_update<'a>(v: &'a Bound<'_, PyAny>) -> PyResult<&'a ManagedServiceUpdate> {
    v.cast::<ManagedServiceUpdate>()
        .map(|b| b.get())
        .map_err(|_| type_err("update", "a ManagedServiceUpdate", v))
}

pub fn snapshot_obj(py: Python<'_>, d: Arc<UpdateData>) -> PyResult<Py<ServiceStateSnapshot>> {
    Py::new(py, ServiceStateSnapshot { data: d })
}
