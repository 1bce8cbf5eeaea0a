//! Event-store keys: event ids and generated correlation ids as the neighbouring ints the
//! store indexes.

use pyo3::prelude::*;
use pyo3::types::PyString;
use tracebus_core::model::ids;

/// The multiplicative inverse of an odd number modulo 2^64 (Newton's iteration).
pub(crate) const fn inverse(a: u64) -> u64 {
    let mut x = a; // correct to 3 bits for odd `a`; each step doubles the correct bits
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

pub(crate) const M1: u64 = 0xbf58_476d_1ce4_e5b9;
pub(crate) const M2: u64 = 0x94d0_49bb_1331_11eb;

/// `ids`' event-id mixer (splitmix64's finaliser), repeated here with its inverse.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(M1);
    z = (z ^ (z >> 27)).wrapping_mul(M2);
    z ^ (z >> 31)
}

/// The inverse of `mix`: an event id back to the counter value it was made from, so ids
/// made one after another get consecutive keys.
pub(crate) fn unmix(mut z: u64) -> u64 {
    z ^= (z >> 31) ^ (z >> 62);
    z = z.wrapping_mul(inverse(M2));
    z ^= (z >> 27) ^ (z >> 54);
    z = z.wrapping_mul(inverse(M1));
    z ^ (z >> 30) ^ (z >> 60)
}

/// The event store's key of an event id: the id's 64 bits as a signed int (`counter`
/// False, schema 1) or the counter value behind it (`counter` True, schema 2: ids made in
/// sequence get neighbouring keys, so the unique index grows at its end instead of at
/// random pages).
pub(crate) fn event_key(id: u64, counter: bool) -> i64 {
    (if counter { unmix(id) } else { id }) as i64
}

/// The event store's correlation column value (schema 3) for a generated correlation id
/// (`corr_` + 16 lower-case hex digits): the counter value behind it, like `event_key`, so
/// a cascade's events and the cascades after it get neighbouring keys and the correlation
/// index grows at its end instead of at random pages. Other ids are stored as their text.
pub(crate) fn correlation_key(correlation_id: &str) -> Option<i64> {
    ids::parse_correlation_id(correlation_id).map(|id| event_key(id, true))
}

/// The correlation column value of `correlation_id`: an int key for a generated id, else
/// the string itself (see `correlation_key`).
#[pyfunction]
pub fn _correlation_key<'py>(correlation_id: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
    let py = correlation_id.py();
    Ok(match correlation_key(correlation_id.to_str()?) {
        Some(k) => k.into_pyobject(py)?.into_any(),
        None => correlation_id.clone().into_any(),
    })
}

/// The event store's key of `event_id` (see `event_key`). A malformed id raises ValueError.
#[pyfunction]
pub fn _event_key(event_id: &str, counter: bool) -> PyResult<i64> {
    ids::parse_event_id(event_id)
        .map(|id| event_key(id, counter))
        .ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "event_id must look like 'evt_' + 16 hex characters, got {event_id:?}"
            ))
        })
}

/// The event id whose key is `key` (the inverse of `_event_key`).
#[pyfunction]
pub fn _event_id_of_key(key: i64, counter: bool) -> String {
    let k = key as u64;
    ids::format_event_id(if counter { mix(k) } else { k })
}
