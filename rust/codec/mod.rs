//! Native fast path of `tracebus.codec` for the built-in event kinds (`Event`,
//! `ServiceStateEvent`, `HealthEvent`, `DependencyEvent`, `UserActionEvent`,
//! `SystemEvent`; their exact classes, not Python subclasses).
//!
//! Encoding writes exactly the text the Python codec writes (the `{"class", "args",
//! "kwargs"}` object of `__getnewargs_ex__`, compact separators, non-ASCII kept, floats as
//! Python's `repr`), so old and new rows are interchangeable. Decoding parses that text and
//! builds the Rust object directly, without Python dicts or argument parsing.
//!
//! The fast path never decides an error: whatever it does not handle exactly (metadata,
//! subclasses, a missing or unexpected field, a value the constructor would reject, invalid
//! JSON) is declined (`None`) and the Python codec handles it, raising its usual errors.
//!
//! Rooms: `encode` (writing, from each kind's schema), `parse` (the JSON parser),
//! `decode` (events from parsed values), `keys` (event-store keys); this file holds the
//! module's functions.

mod decode;
mod encode;
mod keys;
mod parse;
#[cfg(test)]
mod tests;

pub use keys::{_correlation_key, _event_id_of_key, _event_key};

use crate::model::event::Event;
use decode::decode_text;
use encode::encode_native;
use keys::{correlation_key, event_key};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use tracebus_core::model::kinds;

/// The JSON text of a built-in event (exact class, no metadata), or None when the Python
/// codec must encode it.
#[pyfunction]
pub fn _encode_event(event: &Bound<'_, PyAny>) -> Option<String> {
    let mut out = String::with_capacity(384);
    encode_native(event, &mut out).map(|_| out)
}

/// The event store's rows for `events`: `(event key (see `event_key`), stream, type,
/// severity, correlation (see `correlation_key`), timestamp, JSON text, source)`, `stream`
/// defaulting to each event's source. Built-in events are encoded here; any other event is
/// passed to `fallback`, which returns its row, or None to leave it out. A non-event raises
/// `TypeError` naming its position.
#[pyfunction]
pub fn _encode_rows<'py>(
    events: &Bound<'py, PyAny>,
    stream: Option<&Bound<'py, PyString>>,
    fallback: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let py = events.py();
    let rows = PyList::empty(py);
    let mut buf = String::with_capacity(512);
    for (i, item) in events.try_iter()?.enumerate() {
        let item = item?;
        let Ok(ev) = item.cast::<Event>() else {
            let tn = item.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "events[{i}] must be a tracebus Event, got {tn}"
            )));
        };
        buf.clear();
        if encode_native(&item, &mut buf).is_some() {
            let h = &ev.get().header;
            let source_obj = PyString::new(py, &h.source);
            let stream_obj = match stream {
                Some(s) => s.clone(),
                None => source_obj.clone(),
            };
            let row = PyTuple::new(
                py,
                [
                    event_key(h.event_id, true).into_pyobject(py)?.into_any(),
                    stream_obj.into_any(),
                    PyString::new(py, &kinds::event_type_name(h.type_id)).into_any(),
                    PyString::new(py, h.severity.as_str()).into_any(),
                    match correlation_key(&h.correlation_id) {
                        Some(k) => k.into_pyobject(py)?.into_any(),
                        None => PyString::new(py, &h.correlation_id).into_any(),
                    },
                    h.timestamp.into_pyobject(py)?.into_any(),
                    PyString::new(py, &buf).into_any(),
                    source_obj.into_any(),
                ],
            )?;
            rows.append(row)?;
        } else {
            let row = fallback.call1((&item,))?;
            if !row.is_none() {
                rows.append(row)?;
            }
        }
    }
    Ok(rows)
}

/// The event store's INSERT parameters for `rows` (from `_encode_rows`), for multi-row
/// INSERT statements of up to `rows_per_statement` rows: one flat list of parameters per
/// statement, 10 per row: `seq, event_id, stream, version, prev_seq, type, severity,
/// correlation, timestamp, data`, with `seq` counting from `first_seq`, each stream's
/// version one past its last one and `prev_seq` the sequence number of the stream's
/// previous event (None for its first). `heads` maps streams to `(version, last seq)` and
/// is updated; a stream not in it is looked up with `current(stream)`, which returns the
/// same pair. Returns the parameter lists, the total length of the JSON texts and the
/// runs: for each `run_rows` rows, `(first seq, types, sources)` where `types` and
/// `sources` are JSON objects mapping each type (source) of the run's rows to their
/// offsets from its first seq, e.g. `{"user.action":[0,2],"system.error":[1]}`.
#[pyfunction]
pub fn _number_rows<'py>(
    rows: &Bound<'py, PyList>,
    first_seq: i64,
    heads: &Bound<'py, PyDict>,
    current: &Bound<'py, PyAny>,
    rows_per_statement: usize,
    run_rows: usize,
) -> PyResult<(Bound<'py, PyList>, usize, Bound<'py, PyList>)> {
    let py = rows.py();
    let out = PyList::empty(py);
    let runs = PyList::empty(py);
    let mut params = PyList::empty(py);
    let mut chars = 0usize;
    let per = rows_per_statement.max(1);
    let per_run = run_rows.clamp(1, 1 << 16); // (offsets are u16)
    let mut run_types: Vec<Bound<'py, PyString>> = Vec::with_capacity(per_run.min(rows.len()));
    let mut run_sources: Vec<Bound<'py, PyString>> = Vec::with_capacity(per_run.min(rows.len()));
    let mut run_first = first_seq;
    for (i, (seq, row)) in (first_seq..).zip(rows.iter()).enumerate() {
        if i > 0 && i % per == 0 {
            out.append(std::mem::replace(&mut params, PyList::empty(py)))?;
        }
        if i > 0 && i % per_run == 0 {
            runs.append((
                run_first,
                group_json(&run_types)?,
                group_json(&run_sources)?,
            ))?;
            run_types.clear();
            run_sources.clear();
            run_first = seq;
        }
        let row = row.cast_into::<PyTuple>()?;
        if row.len() != 8 {
            return Err(PyTypeError::new_err("an event store row has 8 fields"));
        }
        run_types.push(row.get_item(2)?.cast_into::<PyString>()?);
        run_sources.push(row.get_item(7)?.cast_into::<PyString>()?);
        let stream = row.get_item(1)?;
        let (last, prev): (i64, Option<i64>) = match heads.get_item(&stream)? {
            Some(h) => h.extract()?,
            None => current.call1((&stream,))?.extract()?,
        };
        let version = (last + 1).into_pyobject(py)?;
        let seq = seq.into_pyobject(py)?;
        heads.set_item(&stream, (&version, &seq))?;
        let data = row.get_item(6)?;
        chars += data.len().unwrap_or(0);
        for value in [
            seq.into_any(),
            row.get_item(0)?,
            stream,
            version.into_any(),
            prev.into_pyobject(py)?,
            row.get_item(2)?,
            row.get_item(3)?,
            row.get_item(4)?,
            row.get_item(5)?,
            data,
        ] {
            params.append(value)?;
        }
    }
    if !params.is_empty() {
        out.append(params)?;
    }
    if !run_types.is_empty() {
        runs.append((
            run_first,
            group_json(&run_types)?,
            group_json(&run_sources)?,
        ))?;
    }
    Ok((out, chars, runs))
}

/// `{"key":[offsets],...}`: each distinct key of `keys` (in order of first appearance)
/// with the positions it holds. (FNV-1a hashing: the default SipHash took about half of
/// the time for a few dozen distinct short keys.)
fn group_json(keys: &[Bound<'_, PyString>]) -> PyResult<String> {
    let mut order: Vec<(&str, Vec<u16>)> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize, Fnv> =
        std::collections::HashMap::with_capacity_and_hasher(64, Fnv::default());
    for (i, k) in keys.iter().enumerate() {
        let k = k.to_str()?;
        let offset = u16::try_from(i).unwrap_or(u16::MAX);
        match at.get(k) {
            Some(&n) => order[n].1.push(offset),
            None => {
                at.insert(k, order.len());
                order.push((k, vec![offset]));
            }
        }
    }
    let mut out = String::with_capacity(keys.len() * 4 + order.len() * 24 + 2);
    out.push('{');
    for (n, (k, offsets)) in order.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        encode::push_str(&mut out, k);
        out.push_str(":[");
        for (j, &o) in offsets.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_u16(&mut out, o);
        }
        out.push(']');
    }
    out.push('}');
    Ok(out)
}

/// `n` in decimal (`write!` took a third of `group_json`'s time).
fn push_u16(out: &mut String, mut n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// FNV-1a, for `group_json`'s short keys.
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

impl std::hash::BuildHasher for Fnv {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0)
    }
}

/// The built-in event encoded in `text`, or None when the Python codec must decode it
/// (another class, metadata, anything unusual or invalid).
#[pyfunction]
pub fn _decode_event(text: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
    let Ok(s) = text.cast::<PyString>() else {
        return Ok(None);
    };
    match s.to_str() {
        Ok(t) => decode_text(text.py(), t),
        Err(_) => Ok(None),
    }
}

/// Events of `rows` (a list of sequences whose item `column` is the JSON text), in order:
/// built-in events decoded here, any other row passed to `fallback`, which returns its event
/// (or raises).
#[pyfunction]
pub fn _decode_rows<'py>(
    rows: &Bound<'py, PyList>,
    column: usize,
    fallback: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let py = rows.py();
    let out = PyList::empty(py);
    for row in rows.iter() {
        let data = row.get_item(column)?;
        let native = match data.cast::<PyString>() {
            Ok(s) => match s.to_str() {
                Ok(t) => decode_text(py, t)?,
                Err(_) => None,
            },
            Err(_) => None,
        };
        match native {
            Some(ev) => out.append(ev)?,
            None => out.append(fallback.call1((&row,))?)?,
        }
    }
    Ok(out)
}
