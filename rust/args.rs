//! Argument helpers shared by every class: the errors that name a parameter, and the
//! checks of ints, bools, timestamps, timeouts, ids and text arguments (one copy each).
//! The lowest room of the face: it uses nothing else of the crate.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::sync::Arc;
use std::time::Duration;
use tracebus_core::delivery::channel::Interrupt;
use tracebus_core::model::ids;
use tracebus_core::model::update::now;

/// The most characters of a label (service label, event source, cluster name, ...).
pub fn type_err(param: &str, expected: &str, got: &Bound<'_, PyAny>) -> PyErr {
    let tn = got
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("{param} must be {expected}, got {tn}"))
}

pub fn value_err(param: &str, msg: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{param} {msg}"))
}

pub const LABEL_MAX: usize = 1000;

pub fn extract_timestamp(v: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
    match v {
        None => Ok(now()),
        Some(v) if v.is_none() => Ok(now()),
        Some(v) => {
            if v.is_instance_of::<pyo3::types::PyBool>() {
                return Err(type_err(
                    "timestamp",
                    "a float (seconds since the epoch) or None",
                    v,
                ));
            }
            let t: f64 = v.extract().map_err(|_| {
                type_err("timestamp", "a float (seconds since the epoch) or None", v)
            })?;
            if !t.is_finite() || t < 0.0 {
                return Err(value_err(
                    "timestamp",
                    "must be a finite, non-negative number",
                ));
            }
            Ok(t)
        }
    }
}

/// An int (not a bool) between `min` and `max`.
pub fn extract_int_in(param: &str, v: &Bound<'_, PyAny>, min: u64, max: u64) -> PyResult<u64> {
    if v.is_instance_of::<pyo3::types::PyBool>() || !v.is_instance_of::<pyo3::types::PyInt>() {
        return Err(type_err(param, "an int", v));
    }
    let n: i128 = v.extract()?;
    if n < i128::from(min) || n > i128::from(max) {
        return Err(value_err(
            param,
            format!("must be between {min} and {max}, got {n}"),
        ));
    }
    Ok(n as u64)
}

/// An int between 0 and `max`.
pub fn extract_uint(param: &str, v: &Bound<'_, PyAny>, max: u64) -> PyResult<u64> {
    extract_int_in(param, v, 0, max)
}

/// An optional unsigned int argument: None gives `default`.
pub fn uint_or(param: &str, v: Option<&Bound<'_, PyAny>>, default: u64, max: u64) -> PyResult<u64> {
    match v {
        Some(v) if !v.is_none() => extract_uint(param, v, max),
        _ => Ok(default),
    }
}

pub fn extract_bool(param: &str, v: &Bound<'_, PyAny>) -> PyResult<bool> {
    if !v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(type_err(param, "a bool", v));
    }
    v.extract()
}

pub fn extract_event_id(v: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    match v {
        Some(v) if !v.is_none() => {
            let s: &str = v
                .cast::<pyo3::types::PyString>()
                .map_err(|_| type_err("event_id", "a str like 'evt_<16 hex>'", v))?
                .to_str()
                .map_err(|_| value_err("event_id", "must be valid Unicode text"))?;
            ids::parse_event_id(s).ok_or_else(|| {
                value_err(
                    "event_id",
                    format!("must look like 'evt_' + 16 hex characters, got {s:?}"),
                )
            })
        }
        _ => Ok(ids::next_id()),
    }
}

/// An optional bool argument (None = not given).
pub fn extract_bool_opt(param: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<bool>> {
    match v {
        Some(v) if !v.is_none() => Ok(Some(extract_bool(param, v)?)),
        _ => Ok(None),
    }
}

pub fn as_str<'a>(
    param: &str,
    expected: &str,
    v: &'a Bound<'_, PyAny>,
) -> PyResult<&'a Bound<'a, PyString>> {
    v.cast::<PyString>()
        .map_err(|_| type_err(param, expected, v))
}

/// The text of a Python str. A lone surrogate cannot be UTF-8: a ValueError naming the
/// parameter instead of a bare UnicodeEncodeError.
pub fn utf8<'a>(param: &str, s: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    s.to_str()
        .map_err(|_| value_err(param, "must be valid Unicode text (no lone surrogates)"))
}

/// A non-empty label-like string without NUL, at most `max` characters.
pub fn extract_text(param: &str, v: &Bound<'_, PyAny>, max: usize) -> PyResult<Arc<str>> {
    let s = utf8(param, as_str(param, "a str", v)?)?;
    if s.is_empty() || s.trim().is_empty() {
        return Err(value_err(param, "must be a non-empty string"));
    }
    if s.contains('\0') {
        return Err(value_err(param, "must not contain NUL characters"));
    }
    // Bytes bound characters from above: count characters only for long strings.
    if s.len() > max && s.chars().count() > max {
        return Err(value_err(
            param,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(shared_str(s))
}

/// An optional free-text string (may be empty), without NUL.
pub fn extract_opt_text(param: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Arc<str>>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => {
            let s = if let Ok(s) = v.cast::<PyString>() {
                utf8(param, s)?.to_owned()
            } else if v.is_instance(&py_exception_type(v.py()))? {
                v.str()?.to_str()?.to_owned()
            } else {
                return Err(type_err(param, "a str, an exception or None", v));
            };
            if s.contains('\0') {
                return Err(value_err(param, "must not contain NUL characters"));
            }
            Ok(if s.is_empty() {
                None
            } else {
                Some(Arc::from(s))
            })
        }
    }
}

fn py_exception_type(py: Python<'_>) -> Bound<'_, PyAny> {
    py.get_type::<pyo3::exceptions::PyBaseException>()
        .into_any()
}

const SHARED_SLOTS: usize = 256;

const SHARED_MAX_LEN: usize = 64;

thread_local! {
    /// Short strings extracted or decoded recently on this thread, in a direct-mapped cache: sources,
    /// service types, causes and correlation ids repeat from event to event, and a
    /// replayed event then shares the earlier one's allocation instead of making its own
    /// (fewer allocations and less memory for what a replay keeps).
    static SHARED: std::cell::RefCell<Vec<Option<Arc<str>>>> =
        std::cell::RefCell::new(vec![None; SHARED_SLOTS]);
}

/// `s` as an `Arc<str>`, shared with the last equal string made on this thread if it is
/// still cached (labels, types and ids repeat from event to event: one allocation each
/// instead of one per event).
pub fn shared_str(s: &str) -> Arc<str> {
    if s.len() > SHARED_MAX_LEN {
        return Arc::from(s);
    }
    // FNV-1a over the bytes: cheap, and spreads short labels that differ in one character.
    let mut h: u32 = 0x811c_9dc5;
    for &b in s.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let slot = (h as usize) % SHARED_SLOTS;
    SHARED.with(|cache| {
        let mut cache = cache.borrow_mut();
        match &cache[slot] {
            Some(a) if **a == *s => a.clone(),
            _ => {
                let a: Arc<str> = Arc::from(s);
                cache[slot] = Some(a.clone());
                a
            }
        }
    })
}

/// `from_py_with` extractor of `timeout` arguments (seconds or None), so that a wrong type
/// raises a TypeError naming the parameter (PyO3's own message does not name it).
pub fn timeout_arg(v: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
    if v.is_none() {
        return Ok(None);
    }
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(type_err("timeout", "a number of seconds or None", v));
    }
    match v.extract::<f64>() {
        Ok(t) => Ok(Some(t)),
        // An int beyond a float's range: as infinite as it is large.
        Err(_) if v.is_instance_of::<pyo3::types::PyInt>() => Ok(Some(if v.gt(0)? {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        })),
        Err(_) => Err(type_err("timeout", "a number of seconds or None", v)),
    }
}

/// Like `timeout_arg` for a `timeout` that must be a number.
pub fn seconds_arg(v: &Bound<'_, PyAny>) -> PyResult<f64> {
    match timeout_arg(v) {
        Ok(Some(t)) => Ok(t),
        _ => Err(type_err("timeout", "a number of seconds", v)),
    }
}

/// Timeouts longer than this (about 31 years) mean "no timeout": `sys.maxsize`, `1e20` and
/// `inf` are what callers pass for "wait forever", and no `Instant` arithmetic may overflow.
const MAX_TIMEOUT_SECS: f64 = 1e9;

/// The one conversion of every timeout argument: None, or a value too large for a
/// deadline (`sys.maxsize`, `1e20`, `inf`), is no timeout; NaN and negatives raise a
/// ValueError naming `param`.
pub fn timeout_secs(param: &str, v: Option<f64>) -> PyResult<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(value_err(
            param,
            format!("must be a non-negative number of seconds or None, got {t}"),
        )),
        Some(t) if t > MAX_TIMEOUT_SECS => Ok(None),
        Some(t) => Ok(Some(Duration::from_secs_f64(t))),
    }
}

/// `timeout_secs` for a parameter named `timeout`.
pub fn extract_timeout(v: Option<f64>) -> PyResult<Option<Duration>> {
    timeout_secs("timeout", v)
}

/// Runs a blocking `wait` with the GIL released, handing it an `Interrupt` that attaches
/// between slices of the wait and checks for signals: Ctrl-C ends the wait (the core gives
/// up and hands back what it was doing) and raises `KeyboardInterrupt` here, within about a
/// slice (`WAIT_SLICE`). What `wait` returned is dropped, GIL held, when it was interrupted.
pub fn detach_interruptible<T, F>(py: Python<'_>, wait: F) -> PyResult<T>
where
    T: Send,
    F: for<'a> FnOnce(Interrupt<'a>) -> T + Send,
{
    let (out, err) = py.detach(move || {
        let err: std::cell::Cell<Option<PyErr>> = std::cell::Cell::new(None);
        let interrupt = || {
            Python::attach(|py| match py.check_signals() {
                Ok(()) => false,
                Err(e) => {
                    err.set(Some(e));
                    true
                }
            })
        };
        let out = wait(&interrupt);
        (out, err.into_inner())
    });
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// An optional `param` of seconds given as a Python object (a strategy's `timeout=`):
/// `timeout_arg` then `timeout_secs`.
pub fn optional_timeout(param: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(v) => timeout_secs(param, timeout_arg(v)?),
    }
}

/// An int between 1 and `max`.
pub fn extract_positive_int(param: &str, v: &Bound<'_, PyAny>, max: u64) -> PyResult<usize> {
    Ok(extract_int_in(param, v, 1, max)? as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_shared_while_cached() {
        let a = shared_str("pf-golem-grafana");
        let b = shared_str("pf-golem-grafana");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*shared_str("pf-golem-loki"), "pf-golem-loki");
        let long = "x".repeat(SHARED_MAX_LEN + 1);
        assert!(!Arc::ptr_eq(&shared_str(&long), &shared_str(&long)));
        // Whatever displaces what, every string comes back equal to what was asked.
        let labels: Vec<String> = (0..3 * SHARED_SLOTS).map(|i| format!("svc-{i}")).collect();
        for round in 0..2 {
            for l in &labels {
                assert_eq!(&*shared_str(l), l.as_str(), "round {round}");
            }
        }
    }
}
