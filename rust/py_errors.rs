//! tracebus's exception classes and the one place Rust errors become Python exceptions.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    tracebus,
    TracebusError,
    PyException,
    "Base class of tracebus's errors."
);
create_exception!(
    tracebus,
    BusClosedError,
    TracebusError,
    "The event bus (or channel) is closed: publish and subscribe are refused."
);
create_exception!(
    tracebus,
    ChannelClosed,
    TracebusError,
    "The channel is closed and holds no more items."
);
create_exception!(
    tracebus,
    PublishTimeoutError,
    TracebusError,
    "A block-strategy subscriber stayed full past the publish timeout; the event was counted as dropped for it."
);
create_exception!(
    tracebus,
    PublishDepthError,
    TracebusError,
    "Handlers published events nested deeper than the bus's max_depth."
);

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
