//! Service updates: the data behind `ManagedServiceUpdate` and `ServiceStateSnapshot`.

use crate::model::kinds::{Severity, State};
use std::sync::Arc;

/// One service update; snapshots share it (a snapshot is the last update of its label).
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateData {
    pub timestamp: f64,
    pub source_type: Arc<str>,
    pub label: Arc<str>,
    pub state: State,
    pub is_ready: bool,
    pub error_detail: Option<Arc<str>>,
    pub proxy_port: u16,
    pub pid: u32,
    pub event_id: u64,
    pub correlation_id: Arc<str>,
    pub caused_by: Arc<str>,
    pub parent_id: Option<Arc<str>>,
}

impl UpdateData {
    /// Severity of this update for priority buffering: its state's severity.
    pub fn severity(&self) -> Severity {
        self.state.severity()
    }

    /// True when two updates of one label differ in what subscribers care about (state,
    /// readiness, error, port, pid). The reference notified only on state changes.
    pub fn differs_from(&self, other: &UpdateData) -> bool {
        self.state != other.state
            || self.is_ready != other.is_ready
            || self.error_detail != other.error_detail
            || self.proxy_port != other.proxy_port
            || self.pid != other.pid
            || self.source_type != other.source_type
    }

    /// The reference's one-line form: `label (Type) State [ready] [port N] [pid N] (error: e)`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} ({}) {}",
            self.label,
            self.source_type,
            self.state.as_str()
        );
        if self.is_ready {
            s.push_str(" ready");
        }
        if self.proxy_port != 0 {
            s.push_str(&format!(" port={}", self.proxy_port));
        }
        if self.pid != 0 {
            s.push_str(&format!(" pid={}", self.pid));
        }
        if let Some(e) = &self.error_detail {
            s.push_str(&format!(" (error: {e})"));
        }
        s.push_str(&format!(" [{} by {}]", self.correlation_id, self.caused_by));
        s
    }
}

/// Health of one cluster, as reported by a health checker.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthData {
    pub timestamp: f64,
    pub context_name: Arc<str>,
    pub cluster_short_name: Arc<str>,
    pub is_mc: bool,
    pub is_healthy: bool,
    pub ready_nodes: u32,
    pub total_nodes: u32,
    pub error: Option<Arc<str>>,
    pub event_id: u64,
    pub correlation_id: Arc<str>,
    pub caused_by: Arc<str>,
    pub parent_id: Option<Arc<str>>,
}

/// Current time as seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
