//! The routing header every event carries, kept in Rust so dispatch never asks Python.

use crate::model::kinds::Severity;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub type_id: u32,
    pub source: Arc<str>,
    pub severity: Severity,
    pub event_id: u64,
    pub correlation_id: Arc<str>,
    pub caused_by: Arc<str>,
    pub parent_id: Option<Arc<str>>,
    pub timestamp: f64,
    /// Cascade depth: 0 for a root event, the parent's + 1 for an event created while its
    /// parent is being handled (on any thread or task).
    pub depth: u32,
}
