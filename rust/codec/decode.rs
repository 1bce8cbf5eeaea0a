//! Decoding: built-in events from parsed JSON values, with the constructors' checks
//! (declining instead of raising). Arity and keyword names come from each kind's schema
//! (`model::schema`).

use super::parse::{Parser, Val};
use crate::args::{shared_str, LABEL_MAX};
use crate::model::schema::{kwarg_index, Schema};
use crate::model::{
    DependencyEvent, Event, HealthEvent, ServiceStateEvent, SystemEvent, UserActionEvent,
};
use pyo3::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;
use tracebus_core::model::header::Header;
use tracebus_core::model::ids;
use tracebus_core::model::kinds::{self, types, Severity, State};

// ---------------------------------------------------------------------------------------
// Building events from parsed values (the constructors' checks, declining instead of
// raising)
// ---------------------------------------------------------------------------------------

/// `extract_text`'s rule: non-empty, not only whitespace, no NUL, at most `max` characters.
pub(crate) fn text(v: &Val<'_>, max: usize) -> Option<Arc<str>> {
    let Val::Str(s) = v else { return None };
    // (A text of at most `max` bytes has at most `max` characters: no need to count.)
    if s.trim().is_empty() || s.contains('\0') || (s.len() > max && s.chars().count() > max) {
        return None;
    }
    Some(shared_str(s))
}

/// `extract_opt_text`'s rule: null or a string without NUL; empty means none.
pub(crate) fn opt_text(v: Option<&Val<'_>>) -> Option<Option<Arc<str>>> {
    match v {
        None | Some(Val::Null) => Some(None),
        Some(Val::Str(s)) if !s.contains('\0') => Some(if s.is_empty() {
            None
        } else {
            Some(Arc::from(&**s))
        }),
        _ => None,
    }
}

pub(crate) fn boolean(v: &Val<'_>) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(*b),
        _ => None,
    }
}

/// An optional unsigned int: absent or null gives `default`.
pub(crate) fn uint_or(v: Option<&Val<'_>>, default: u64, max: u64) -> Option<u64> {
    match v {
        None | Some(Val::Null) => Some(default),
        Some(Val::Int(n)) if *n >= 0 && (*n as u64) <= max => Some(*n as u64),
        _ => None,
    }
}

/// An optional text argument whose absence or null means `default`.
pub(crate) fn text_or(v: Option<&Val<'_>>, default: &str) -> Option<Arc<str>> {
    match v {
        None | Some(Val::Null) => Some(Arc::from(default)),
        Some(v) => text(v, LABEL_MAX),
    }
}

/// The header fields every kind's kwargs carry. Correlation id, cause, timestamp and event
/// id must be explicit (otherwise the constructor would take them from the context or the
/// clock, which is for Python to do).
pub(crate) struct Common {
    correlation_id: Arc<str>,
    caused_by: Arc<str>,
    parent_id: Option<Arc<str>>,
    timestamp: f64,
    event_id: u64,
}

/// Splits `kwargs` into the common header fields and the kind's `extra` keys (each at most
/// once). An unknown or repeated key, or metadata other than null, declines.
pub(crate) fn kwargs<'v, 'a>(
    kw: &'v [(Cow<'a, str>, Val<'a>)],
    extra: &[&str],
    slots: &mut [Option<&'v Val<'a>>],
) -> Option<Common> {
    let mut corr = None;
    let mut cause = None;
    let mut parent: Option<&Val<'_>> = None;
    let mut ts = None;
    let mut eid = None;
    let mut meta = false;
    for (k, v) in kw {
        let slot = match &**k {
            "correlation_id" => &mut corr,
            "caused_by" => &mut cause,
            "parent_id" => &mut parent,
            "timestamp" => &mut ts,
            "event_id" => &mut eid,
            "metadata" => {
                if meta || *v != Val::Null {
                    return None;
                }
                meta = true;
                continue;
            }
            other => {
                let i = extra.iter().position(|e| *e == other)?;
                &mut slots[i]
            }
        };
        if slot.replace(v).is_some() {
            return None;
        }
    }
    let timestamp = match ts? {
        Val::Float(t) => *t,
        Val::Int(t) => *t as f64,
        _ => return None,
    };
    if !timestamp.is_finite() || timestamp < 0.0 {
        return None;
    }
    let Val::Str(eid) = eid? else { return None };
    Some(Common {
        correlation_id: text(corr?, 200)?,
        caused_by: text(cause?, 200)?,
        parent_id: match parent {
            None | Some(Val::Null) => None,
            Some(p) => Some(text(p, 200)?),
        },
        timestamp,
        event_id: ids::parse_event_id(eid)?,
    })
}

pub(crate) fn make_header(c: Common, type_id: u32, source: Arc<str>, severity: Severity) -> Header {
    Header {
        type_id,
        source,
        severity,
        event_id: c.event_id,
        correlation_id: c.correlation_id,
        caused_by: c.caused_by,
        parent_id: c.parent_id,
        timestamp: c.timestamp,
        // Stored events are roots when they come back (replay starts no cascade).
        depth: 0,
    }
}

pub(crate) fn base(header: Header) -> PyClassInitializer<Event> {
    PyClassInitializer::from(Event {
        header,
        metadata: None,
    })
}

pub(crate) fn state(v: &Val<'_>) -> Option<State> {
    match v {
        Val::Str(s) => State::parse(s),
        _ => None,
    }
}

/// The event a parsed document describes, or None to leave it to Python.
pub(crate) fn build(py: Python<'_>, doc: Val<'_>) -> PyResult<Option<Py<PyAny>>> {
    let Val::Obj(top) = doc else { return Ok(None) };
    let (mut class, mut args, mut kw) = (None, None, None);
    for (k, v) in &top {
        let slot = match &**k {
            "class" => &mut class,
            "args" => &mut args,
            "kwargs" => &mut kw,
            _ => return Ok(None), // "state" (a subclass) or anything else
        };
        if slot.replace(v).is_some() {
            return Ok(None);
        }
    }
    let (Some(Val::Str(class)), Some(Val::Arr(args)), Some(Val::Obj(kw))) = (class, args, kw)
    else {
        return Ok(None);
    };
    dispatch(py, class, args, kw)
}

/// The event of class path `class` from its parsed arguments, or None.
pub(crate) fn dispatch(
    py: Python<'_>,
    class: &str,
    args: &[Val<'_>],
    kw: &[(Cow<'_, str>, Val<'_>)],
) -> PyResult<Option<Py<PyAny>>> {
    let built = match class {
        "tracebus:ServiceStateEvent" => build_service(py, args, kw),
        "tracebus:Event" => build_base(py, args, kw),
        "tracebus:HealthEvent" => build_health(py, args, kw),
        "tracebus:DependencyEvent" => build_dependency(py, args, kw),
        "tracebus:UserActionEvent" => build_user(py, args, kw),
        "tracebus:SystemEvent" => build_system(py, args, kw),
        _ => return Ok(None),
    };
    built.transpose()
}

/// The usual layout, `{"class": ..., "args": [...], "kwargs": {...}}` in that order with at
/// most 7 arguments and 12 keyword arguments (the most a built-in kind has), parsed into
/// arrays on the stack: no tree, no allocation (decoding ~10% faster than through
/// `Parser::document`). None when the text has another shape (then the general parser
/// decides).
pub(crate) fn decode_usual(py: Python<'_>, text: &str) -> Option<PyResult<Option<Py<PyAny>>>> {
    let mut p = Parser::new(text);
    p.eat(b'{')?;
    p.key("class")?;
    p.ws();
    if p.b.get(p.i) != Some(&b'"') {
        return None;
    }
    let class = p.string()?;
    p.eat(b',')?;
    p.key("args")?;
    let mut args: [Val<'_>; 7] = std::array::from_fn(|_| Val::Null);
    let na = p.array_into(&mut args)?;
    p.eat(b',')?;
    p.key("kwargs")?;
    let mut kw: [(Cow<'_, str>, Val<'_>); 12] =
        std::array::from_fn(|_| (Cow::Borrowed(""), Val::Null));
    let nk = p.object_into(&mut kw)?;
    p.eat(b'}')?;
    p.ws();
    if p.i != p.b.len() {
        return None;
    }
    Some(dispatch(py, &class, &args[..na], &kw[..nk]))
}

pub(crate) type Built = Option<PyResult<Py<PyAny>>>;

/// `args` as an array of the kind's arity (`Kind::ARGS.len()`), or None: a builder's
/// pattern of another length does not compile.
fn arity<'v, 'a, const N: usize>(args: &'v [Val<'a>]) -> Option<&'v [Val<'a>; N]> {
    args.try_into().ok()
}

/// The slot of keyword `name` in a kind's `kwargs` slots (index found at compile time: a
/// name not in the kind's schema does not compile).
macro_rules! kw {
    ($slots:ident, $kind:ty, $name:literal) => {
        $slots[const { kwarg_index(<$kind as Schema>::KWARGS, $name) }]
    };
}

pub(crate) fn build_base(
    py: Python<'_>,
    args: &[Val<'_>],
    kw: &[(Cow<'_, str>, Val<'_>)],
) -> Built {
    let [Val::Str(ty), source] = arity::<{ Event::ARGS.len() }>(args)? else {
        return None;
    };
    let type_id = kinds::event_type_id(ty)?;
    let source = text(source, LABEL_MAX)?;
    let mut slots = [None; Event::KWARGS.len()];
    let c = kwargs(kw, Event::KWARGS, &mut slots)?;
    let severity = match kw!(slots, Event, "severity") {
        None | Some(Val::Null) => Severity::Info,
        Some(Val::Str(s)) => Severity::parse(s)?,
        Some(_) => return None,
    };
    let h = make_header(c, type_id, source, severity);
    Some(Py::new(py, base(h)).map(Py::into_any))
}

pub(crate) fn build_service(
    py: Python<'_>,
    args: &[Val<'_>],
    kw: &[(Cow<'_, str>, Val<'_>)],
) -> Built {
    let [service_type, source, old, new] = arity::<{ ServiceStateEvent::ARGS.len() }>(args)?;
    let service_type = text(service_type, 200)?;
    let source = text(source, LABEL_MAX)?;
    let old_state = state(old)?;
    let new_state = state(new)?;
    let mut s = [None; ServiceStateEvent::KWARGS.len()];
    let c = kwargs(kw, ServiceStateEvent::KWARGS, &mut s)?;
    let is_ready = match kw!(s, ServiceStateEvent, "is_ready") {
        None | Some(Val::Null) => new_state == State::Running,
        Some(v) => boolean(v)?,
    };
    let error = opt_text(kw!(s, ServiceStateEvent, "error"))?;
    let proxy_port = uint_or(kw!(s, ServiceStateEvent, "proxy_port"), 0, 65535)? as u16;
    let pid = uint_or(kw!(s, ServiceStateEvent, "pid"), 0, u64::from(u32::MAX))? as u32;
    let h = make_header(c, new_state.event_type(), source, new_state.severity());
    let init = base(h).add_subclass(ServiceStateEvent {
        service_type,
        old_state,
        new_state,
        is_ready,
        error,
        proxy_port,
        pid,
    });
    Some(Py::new(py, init).map(Py::into_any))
}

pub(crate) fn build_health(
    py: Python<'_>,
    args: &[Val<'_>],
    kw: &[(Cow<'_, str>, Val<'_>)],
) -> Built {
    let [context, cluster, is_mc, is_healthy, ready, total, error] =
        arity::<{ HealthEvent::ARGS.len() }>(args)?;
    let context_name = text(context, LABEL_MAX)?;
    let cluster_short_name = text(cluster, LABEL_MAX)?;
    let is_mc = boolean(is_mc)?;
    let is_healthy = boolean(is_healthy)?;
    let ready_nodes = uint_or(Some(ready), 0, u64::from(u32::MAX))? as u32;
    let total_nodes = uint_or(Some(total), 0, u64::from(u32::MAX))? as u32;
    let error = opt_text(Some(error))?;
    let mut s = [None; HealthEvent::KWARGS.len()];
    let c = kwargs(kw, HealthEvent::KWARGS, &mut s)?;
    let recovered = match kw!(s, HealthEvent, "recovered") {
        None => false,
        Some(v) => boolean(v)?,
    };
    let source = text_or(kw!(s, HealthEvent, "source"), "health-monitor")?;
    if ready_nodes > total_nodes || (recovered && !is_healthy) {
        return None;
    }
    let (ty, sev) = match (is_healthy, recovered) {
        (true, false) => (types::HEALTH_CHECK, Severity::Info),
        (true, true) => (types::HEALTH_RECOVERY, Severity::Info),
        (false, _) => (types::HEALTH_FAILURE, Severity::Error),
    };
    let init = base(make_header(c, ty, source, sev)).add_subclass(HealthEvent {
        context_name,
        cluster_short_name,
        is_mc,
        is_healthy,
        ready_nodes,
        total_nodes,
        error,
    });
    Some(Py::new(py, init).map(Py::into_any))
}

pub(crate) fn build_dependency(
    py: Python<'_>,
    args: &[Val<'_>],
    kw: &[(Cow<'_, str>, Val<'_>)],
) -> Built {
    let [source, dep_type, Val::Arr(affected), action] =
        arity::<{ DependencyEvent::ARGS.len() }>(args)?
    else {
        return None;
    };
    let source = text(source, LABEL_MAX)?;
    let dependency_type = text(dep_type, 200)?;
    let affected = affected
        .iter()
        .map(|a| text(a, LABEL_MAX))
        .collect::<Option<Vec<_>>>()?;
    let action: &'static str = match action {
        Val::Str(a) if a == "start" => "start",
        Val::Str(a) if a == "stop" => "stop",
        _ => return None,
    };
    let mut s = [None; DependencyEvent::KWARGS.len()];
    let c = kwargs(kw, DependencyEvent::KWARGS, &mut s)?;
    let cascade = match kw!(s, DependencyEvent, "cascade") {
        None => true,
        Some(v) => boolean(v)?,
    };
    let ty = match (cascade, action) {
        (true, "start") => types::CASCADE_START,
        (true, _) => types::CASCADE_STOP,
        (false, "start") => types::DEPENDENCY_START,
        (false, _) => types::DEPENDENCY_STOP,
    };
    let init = base(make_header(c, ty, source, Severity::Info)).add_subclass(DependencyEvent {
        dependency_type,
        affected,
        action,
        cascade,
    });
    Some(Py::new(py, init).map(Py::into_any))
}

pub(crate) fn build_user(
    py: Python<'_>,
    args: &[Val<'_>],
    kw: &[(Cow<'_, str>, Val<'_>)],
) -> Built {
    let [action, target_type, target_name] = arity::<{ UserActionEvent::ARGS.len() }>(args)?;
    let action = text(action, 200)?;
    let target_type = text(target_type, 200)?;
    let target_name = text(target_name, LABEL_MAX)?;
    let mut s = [None; UserActionEvent::KWARGS.len()];
    let c = kwargs(kw, UserActionEvent::KWARGS, &mut s)?;
    let source = text_or(kw!(s, UserActionEvent, "source"), "user")?;
    let h = make_header(c, types::USER_ACTION, source, Severity::Info);
    let init = base(h).add_subclass(UserActionEvent {
        action,
        target_type,
        target_name,
    });
    Some(Py::new(py, init).map(Py::into_any))
}

pub(crate) fn build_system(
    py: Python<'_>,
    args: &[Val<'_>],
    kw: &[(Cow<'_, str>, Val<'_>)],
) -> Built {
    let [component, Val::Str(action), details] = arity::<{ SystemEvent::ARGS.len() }>(args)? else {
        return None;
    };
    let component = text(component, LABEL_MAX)?;
    if action.trim().is_empty() || action.contains('\0') || action.chars().count() > 40 {
        return None;
    }
    let (action, ty, sev) = match &**action {
        "startup" => ("startup", types::SYSTEM_STARTUP, Severity::Info),
        "shutdown" => ("shutdown", types::SYSTEM_SHUTDOWN, Severity::Warn),
        "config_change" | "config.change" => {
            ("config_change", types::CONFIG_CHANGE, Severity::Info)
        }
        "error" => ("error", types::SYSTEM_ERROR, Severity::Error),
        _ => return None,
    };
    let details = opt_text(Some(details))?;
    let c = kwargs(
        kw,
        SystemEvent::KWARGS,
        &mut [None; SystemEvent::KWARGS.len()],
    )?;
    let init = base(make_header(c, ty, component.clone(), sev)).add_subclass(SystemEvent {
        component,
        action,
        details,
    });
    Some(Py::new(py, init).map(Py::into_any))
}

pub(crate) fn decode_text(py: Python<'_>, text: &str) -> PyResult<Option<Py<PyAny>>> {
    if let Some(done) = decode_usual(py, text) {
        return done;
    }
    match Parser::new(text).document() {
        Some(doc) => build(py, doc),
        None => Ok(None),
    }
}
