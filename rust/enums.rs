//! Conversions between Python values and the core enumerations. The Python enums
//! (`ServiceState`, `Severity`, `EventType`, `ServiceType`) are defined in Python and bound
//! here once at import, so getters return enum members without a Python call.

use crate::args::{as_str, extract_text, utf8, value_err};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;
use std::sync::Arc;
use tracebus_core::delivery::channel::BufferAction;
use tracebus_core::model::kinds::{self, Severity, State};

struct Enums {
    states: Vec<Py<PyAny>>,
    severities: Vec<Py<PyAny>>,
    service_types: Vec<(String, Py<PyAny>)>,
    actions: Vec<Py<PyAny>>,
}

static ENUMS: PyOnceLock<Enums> = PyOnceLock::new();
/// Python objects for event types, by id (EventType members, then plain strings).
static EVENT_TYPES: Mutex<Vec<Py<PyAny>>> = Mutex::new(Vec::new());

/// Binds the Python enum classes (called once by `tracebus._enums`).
#[pyfunction]
pub fn _bind_enums(
    py: Python<'_>,
    service_state: &Bound<'_, PyAny>,
    severity: &Bound<'_, PyAny>,
    event_type: &Bound<'_, PyAny>,
    service_type: &Bound<'_, PyAny>,
    buffer_action: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let states = State::NAMES
        .iter()
        .map(|n| service_state.call1((*n,)).map(Bound::unbind))
        .collect::<PyResult<_>>()?;
    let severities = Severity::NAMES
        .iter()
        .map(|n| severity.call1((*n,)).map(Bound::unbind))
        .collect::<PyResult<_>>()?;
    let service_types = kinds::SERVICE_TYPES
        .iter()
        .map(|n| Ok((n.to_string(), service_type.call1((*n,))?.unbind())))
        .collect::<PyResult<_>>()?;
    let actions = BufferAction::NAMES
        .iter()
        .map(|n| buffer_action.call1((*n,)).map(Bound::unbind))
        .collect::<PyResult<_>>()?;
    // The constructors run Python: called before the registry's lock is taken, and the
    // objects replaced are dropped after it is released.
    let members = kinds::BUILTIN_EVENT_TYPES
        .iter()
        .map(|n| event_type.call1((*n,)).map(Bound::unbind))
        .collect::<PyResult<Vec<_>>>()?;
    let mut replaced = Vec::with_capacity(members.len());
    let mut et = EVENT_TYPES.lock();
    for (i, member) in members.into_iter().enumerate() {
        if i < et.len() {
            replaced.push(std::mem::replace(&mut et[i], member));
        } else {
            et.push(member);
        }
    }
    drop(et);
    drop(replaced);
    let _ = ENUMS.set(
        py,
        Enums {
            states,
            severities,
            service_types,
            actions,
        },
    );
    Ok(())
}

pub fn extract_state(param: &str, v: &Bound<'_, PyAny>) -> PyResult<State> {
    let s = as_str(param, "a ServiceState or one of its string values", v)?;
    let s = utf8(param, s)?;
    State::parse(s).ok_or_else(|| {
        value_err(
            param,
            format!("must be one of {:?}, got {s:?}", State::NAMES),
        )
    })
}

pub fn extract_severity(param: &str, v: &Bound<'_, PyAny>) -> PyResult<Severity> {
    let s = as_str(param, "a Severity or one of its string values", v)?;
    let s = utf8(param, s)?;
    Severity::parse(s).ok_or_else(|| {
        value_err(
            param,
            format!(
                "must be one of {:?} (any case; \"warning\" is \"warn\"), got {s:?}",
                Severity::NAMES
            ),
        )
    })
}

/// The canonical name (`"warn"`, ...) of a severity spelling (any case; `warning` is
/// `warn`); ValueError naming `param` otherwise. `Severity("WARN")` comes here.
#[pyfunction]
#[pyo3(signature = (value, param = "severity"))]
pub fn _parse_severity(value: &Bound<'_, PyAny>, param: &str) -> PyResult<&'static str> {
    extract_severity(param, value).map(Severity::as_str)
}

pub fn extract_action(param: &str, v: &Bound<'_, PyAny>) -> PyResult<BufferAction> {
    let s = as_str(param, "a BufferAction or one of its string values", v)?;
    let s = utf8(param, s)?;
    BufferAction::parse(s).ok_or_else(|| {
        value_err(
            param,
            format!("must be one of {:?}, got {s:?}", BufferAction::NAMES),
        )
    })
}

/// A registered event type's id; unknown names are refused (register them first).
pub fn extract_event_type(param: &str, v: &Bound<'_, PyAny>) -> PyResult<u32> {
    let s = as_str(param, "an EventType or a registered event-type string", v)?;
    let s = utf8(param, s)?;
    kinds::event_type_id(s).ok_or_else(|| {
        value_err(
            param,
            format!("{s:?} is not a registered event type (built-ins are EventType members; register custom ones with register_event_type)"),
        )
    })
}

pub fn state_obj(py: Python<'_>, s: State) -> Py<PyAny> {
    match ENUMS.get(py) {
        Some(e) => e.states[s as usize].clone_ref(py),
        None => PyString::new(py, s.as_str()).into_any().unbind(),
    }
}

pub fn severity_obj(py: Python<'_>, s: Severity) -> Py<PyAny> {
    match ENUMS.get(py) {
        Some(e) => e.severities[s as usize].clone_ref(py),
        None => PyString::new(py, s.as_str()).into_any().unbind(),
    }
}

pub fn action_obj(py: Python<'_>, a: BufferAction) -> Py<PyAny> {
    let i = BufferAction::NAMES
        .iter()
        .position(|n| *n == a.as_str())
        .unwrap_or(0);
    match ENUMS.get(py) {
        Some(e) => e.actions[i].clone_ref(py),
        None => PyString::new(py, a.as_str()).into_any().unbind(),
    }
}

pub fn service_type_obj(py: Python<'_>, t: &str) -> Py<PyAny> {
    if let Some(e) = ENUMS.get(py) {
        if let Some((_, m)) = e.service_types.iter().find(|(n, _)| n == t) {
            return m.clone_ref(py);
        }
    }
    PyString::new(py, t).into_any().unbind()
}

pub fn event_type_obj(py: Python<'_>, id: u32) -> Py<PyAny> {
    let known = {
        let et = EVENT_TYPES.lock();
        if let Some(o) = et.get(id as usize) {
            return o.clone_ref(py); // an incref only
        }
        et.len()
    };
    // New names become Python strings with no lock held; another thread may have added
    // them meanwhile (then ours are dropped, after the lock).
    let names: Vec<Py<PyAny>> = (known as u32..=id)
        .map(|i| {
            PyString::new(py, &kinds::event_type_name(i))
                .into_any()
                .unbind()
        })
        .collect();
    let mut et = EVENT_TYPES.lock();
    let mut spare = Vec::new();
    for (i, name) in (known..).zip(names) {
        if i == et.len() {
            et.push(name);
        } else {
            spare.push(name);
        }
    }
    let o = et.get(id as usize).map(|o| o.clone_ref(py));
    drop(et);
    drop(spare);
    o.unwrap_or_else(|| {
        PyString::new(py, &kinds::event_type_name(id))
            .into_any()
            .unbind()
    })
}

/// Registers a custom event type (idempotent) so that events of that type route like
/// built-ins. Returns the name.
#[pyfunction]
pub fn register_event_type(name: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let s = utf8("name", as_str("name", "a str", name)?)?;
    let id = kinds::register_event_type(s).map_err(|e| value_err("name", e))?;
    Ok(event_type_obj(name.py(), id))
}

/// Names of every registered event type, built-ins first.
#[pyfunction]
pub fn registered_event_types(py: Python<'_>) -> Vec<Py<PyAny>> {
    (0..kinds::event_type_count() as u32)
        .map(|i| event_type_obj(py, i))
        .collect()
}

/// Service type: a built-in `ServiceType` value or any custom non-empty name.
pub fn extract_service_type(param: &str, v: &Bound<'_, PyAny>) -> PyResult<Arc<str>> {
    extract_text(param, v, 200)
}
