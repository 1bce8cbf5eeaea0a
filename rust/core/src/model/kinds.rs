//! The reference's enumerations: service states, severities and the event-type registry.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Service lifecycle state (reference values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    Unknown = 0,
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
    Retrying,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Unknown,
        State::Starting,
        State::Running,
        State::Stopping,
        State::Stopped,
        State::Failed,
        State::Retrying,
    ];
    pub const NAMES: [&'static str; 7] = [
        "Unknown", "Starting", "Running", "Stopping", "Stopped", "Failed", "Retrying",
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(s: &str) -> Option<State> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
    }

    /// Severity of a transition into this state (reference rules).
    pub fn severity(self) -> Severity {
        match self {
            State::Failed => Severity::Error,
            State::Retrying => Severity::Warn,
            State::Running | State::Stopped | State::Unknown => Severity::Info,
            State::Starting | State::Stopping => Severity::Debug,
        }
    }

    /// Event type of a transition into this state. `Unknown` (a cleared service) maps to
    /// `service.stopped`.
    pub fn event_type(self) -> u32 {
        match self {
            State::Starting => types::SERVICE_STARTING,
            State::Running => types::SERVICE_RUNNING,
            State::Stopping => types::SERVICE_STOPPING,
            State::Stopped | State::Unknown => types::SERVICE_STOPPED,
            State::Failed => types::SERVICE_FAILED,
            State::Retrying => types::SERVICE_RETRYING,
        }
    }
}

/// Event severity, ordered `trace < debug < info < warn < error < fatal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Severity {
    Trace = 0,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Trace,
        Severity::Debug,
        Severity::Info,
        Severity::Warn,
        Severity::Error,
        Severity::Fatal,
    ];
    pub const NAMES: [&'static str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
    }

    pub fn from_index(i: u8) -> Severity {
        Self::ALL[(i as usize).min(5)]
    }
}

/// Built-in service types (user-defined ones are accepted as plain strings).
pub const SERVICE_TYPES: [&str; 5] = [
    "PortForward",
    "MCPServer",
    "System",
    "KubeOperation",
    "ExternalCmd",
];

/// Built-in event type ids; their order is the registry's initial order.
pub mod types {
    pub const SERVICE_STARTING: u32 = 0;
    pub const SERVICE_RUNNING: u32 = 1;
    pub const SERVICE_STOPPING: u32 = 2;
    pub const SERVICE_STOPPED: u32 = 3;
    pub const SERVICE_FAILED: u32 = 4;
    pub const SERVICE_RETRYING: u32 = 5;
    pub const HEALTH_CHECK: u32 = 6;
    pub const HEALTH_RECOVERY: u32 = 7;
    pub const HEALTH_FAILURE: u32 = 8;
    pub const DEPENDENCY_START: u32 = 9;
    pub const DEPENDENCY_STOP: u32 = 10;
    pub const CASCADE_STOP: u32 = 11;
    pub const CASCADE_START: u32 = 12;
    pub const USER_ACTION: u32 = 13;
    pub const SYSTEM_STARTUP: u32 = 14;
    pub const SYSTEM_SHUTDOWN: u32 = 15;
    pub const CONFIG_CHANGE: u32 = 16;
    pub const SYSTEM_ERROR: u32 = 17;
}

/// Names of the built-in event types, indexed by id. `system.error` is tracebus's addition
/// (the reference gave system errors no type of their own).
pub const BUILTIN_EVENT_TYPES: [&str; 18] = [
    "service.starting",
    "service.running",
    "service.stopping",
    "service.stopped",
    "service.failed",
    "service.retrying",
    "health.check",
    "health.recovery",
    "health.failure",
    "dependency.start",
    "dependency.stop",
    "cascade.stop",
    "cascade.start",
    "user.action",
    "system.startup",
    "system.shutdown",
    "config.change",
    "system.error",
];

/// Upper bound on registered event types (per-type counters are preallocated).
pub const MAX_EVENT_TYPES: usize = 1024;

struct Registry {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

fn registry() -> &'static RwLock<Registry> {
    static REG: OnceLock<RwLock<Registry>> = OnceLock::new();
    REG.get_or_init(|| {
        let names: Vec<Arc<str>> = BUILTIN_EVENT_TYPES.iter().map(|s| Arc::from(*s)).collect();
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        RwLock::new(Registry { names, ids })
    })
}

/// Why an event-type name was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TypeNameError {
    Empty,
    TooLong,
    BadCharacter,
    RegistryFull,
}

impl std::fmt::Display for TypeNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeNameError::Empty => write!(f, "must be a non-empty string"),
            TypeNameError::TooLong => write!(f, "must be at most 200 characters"),
            TypeNameError::BadCharacter => {
                write!(
                    f,
                    "may contain only printable characters without spaces or NUL"
                )
            }
            TypeNameError::RegistryFull => {
                write!(
                    f,
                    "cannot be registered: at most {MAX_EVENT_TYPES} event types"
                )
            }
        }
    }
}

/// Id of a registered event type.
pub fn event_type_id(name: &str) -> Option<u32> {
    registry().read().ids.get(name).copied()
}

/// Name of a registered event type.
pub fn event_type_name(id: u32) -> Arc<str> {
    registry().read().names[id as usize].clone()
}

/// Number of registered event types.
pub fn event_type_count() -> usize {
    registry().read().names.len()
}

/// Registers `name` (idempotent) and returns its id.
pub fn register_event_type(name: &str) -> Result<u32, TypeNameError> {
    if name.is_empty() {
        return Err(TypeNameError::Empty);
    }
    if name.chars().count() > 200 {
        return Err(TypeNameError::TooLong);
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TypeNameError::BadCharacter);
    }
    let mut reg = registry().write();
    if let Some(id) = reg.ids.get(name) {
        return Ok(*id);
    }
    if reg.names.len() >= MAX_EVENT_TYPES {
        return Err(TypeNameError::RegistryFull);
    }
    let id = reg.names.len() as u32;
    let name: Arc<str> = Arc::from(name);
    reg.names.push(name.clone());
    reg.ids.insert(name, id);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_rules() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("running"), None);
        assert_eq!(State::Failed.severity(), Severity::Error);
        assert_eq!(State::Retrying.severity(), Severity::Warn);
        assert_eq!(State::Unknown.severity(), Severity::Info);
        assert_eq!(State::Running.event_type(), types::SERVICE_RUNNING);
    }

    #[test]
    fn severity_is_ordered() {
        assert!(Severity::Trace < Severity::Debug && Severity::Error < Severity::Fatal);
        assert_eq!(Severity::parse("warn"), Some(Severity::Warn));
    }

    #[test]
    fn builtin_ids_match_names() {
        assert_eq!(
            event_type_id("health.recovery"),
            Some(types::HEALTH_RECOVERY)
        );
        assert_eq!(&*event_type_name(types::CONFIG_CHANGE), "config.change");
    }

    #[test]
    fn registration_is_idempotent_and_validated() {
        let a = register_event_type("deploy.finished").unwrap();
        assert_eq!(register_event_type("deploy.finished").unwrap(), a);
        assert_eq!(event_type_id("deploy.finished"), Some(a));
        assert_eq!(register_event_type(""), Err(TypeNameError::Empty));
        assert_eq!(register_event_type("a b"), Err(TypeNameError::BadCharacter));
        assert_eq!(
            register_event_type("a\0b"),
            Err(TypeNameError::BadCharacter)
        );
    }
}
