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

use crate::args::{shared_str, LABEL_MAX};
use crate::model::event::{
    DependencyEvent, Event, HealthEvent, ServiceStateEvent, SystemEvent, UserActionEvent,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use tracebus_core::model::header::Header;
use tracebus_core::model::ids;
use tracebus_core::model::kinds::{self, types, Severity, State};

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// A JSON string as Python's `json` writes it with `ensure_ascii=False`: `"` and `\`
/// escaped, `\b \f \n \r \t` by name, other control characters as `\u00xx`; everything else
/// (including non-ASCII and DEL) as is.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Only ASCII bytes end a run, so `start..i` is on character boundaries.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn push_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.push_str("null"),
    }
}

/// A finite float as Python's `repr` writes it: the shortest text that reads back to the
/// same value, `.0` on integral values, exponent form below 1e-4 and from 1e16 with a sign
/// and at least two exponent digits (`1e-05`, `1e+16`). Rust's `{:?}` picks the same digits
/// and the same switch points; only the exponent is spelled differently.
fn push_f64(out: &mut String, x: f64) {
    let start = out.len();
    let _ = write!(out, "{x:?}");
    if let Some(e) = out[start..].find('e') {
        let at = start + e;
        let exp: i32 = out[at + 1..].parse().unwrap_or(0);
        out.truncate(at);
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    }
}

fn push_bool(out: &mut String, b: bool) {
    out.push_str(if b { "true" } else { "false" });
}

fn push_key(out: &mut String, key: &str) {
    // Keys are fixed ASCII identifiers: no escaping needed.
    out.push(',');
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

/// The event's kind when the fast path can encode it: an exact built-in class without
/// metadata and with a finite timestamp.
enum Kind<'a> {
    Base,
    Service(&'a ServiceStateEvent),
    Health(&'a HealthEvent),
    Dependency(&'a DependencyEvent),
    User(&'a UserActionEvent),
    System(&'a SystemEvent),
}

/// `(kind, base)` of an exact built-in event, or None.
fn classify<'a>(obj: &'a Bound<'_, PyAny>) -> Option<(Kind<'a>, &'a Event)> {
    if let Ok(b) = obj.cast_exact::<ServiceStateEvent>() {
        return Some((Kind::Service(b.get()), b.as_super().get()));
    }
    if let Ok(b) = obj.cast_exact::<Event>() {
        return Some((Kind::Base, b.get()));
    }
    if let Ok(b) = obj.cast_exact::<HealthEvent>() {
        return Some((Kind::Health(b.get()), b.as_super().get()));
    }
    if let Ok(b) = obj.cast_exact::<DependencyEvent>() {
        return Some((Kind::Dependency(b.get()), b.as_super().get()));
    }
    if let Ok(b) = obj.cast_exact::<UserActionEvent>() {
        return Some((Kind::User(b.get()), b.as_super().get()));
    }
    if let Ok(b) = obj.cast_exact::<SystemEvent>() {
        return Some((Kind::System(b.get()), b.as_super().get()));
    }
    None
}

/// The JSON text of an exact built-in event, or None (metadata, subclass, other object).
fn encode_native(obj: &Bound<'_, PyAny>, out: &mut String) -> Option<()> {
    let (kind, ev) = classify(obj)?;
    let h = &ev.header;
    if ev.metadata.is_some() || !h.timestamp.is_finite() {
        return None;
    }
    out.push_str("{\"class\":");
    match &kind {
        Kind::Base => {
            out.push_str("\"tracebus:Event\",\"args\":[");
            push_str(out, &kinds::event_type_name(h.type_id));
            out.push(',');
            push_str(out, &h.source);
        }
        Kind::Service(s) => {
            out.push_str("\"tracebus:ServiceStateEvent\",\"args\":[");
            push_str(out, &s.service_type);
            out.push(',');
            push_str(out, &h.source);
            out.push(',');
            push_str(out, s.old_state.as_str());
            out.push(',');
            push_str(out, s.new_state.as_str());
        }
        Kind::Health(x) => {
            out.push_str("\"tracebus:HealthEvent\",\"args\":[");
            push_str(out, &x.context_name);
            out.push(',');
            push_str(out, &x.cluster_short_name);
            out.push(',');
            push_bool(out, x.is_mc);
            out.push(',');
            push_bool(out, x.is_healthy);
            let _ = write!(out, ",{},{},", x.ready_nodes, x.total_nodes);
            push_opt_str(out, x.error.as_deref());
        }
        Kind::Dependency(x) => {
            out.push_str("\"tracebus:DependencyEvent\",\"args\":[");
            push_str(out, &h.source);
            out.push(',');
            push_str(out, &x.dependency_type);
            out.push_str(",[");
            for (i, a) in x.affected.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, a);
            }
            out.push_str("],");
            push_str(out, x.action);
        }
        Kind::User(x) => {
            out.push_str("\"tracebus:UserActionEvent\",\"args\":[");
            push_str(out, &x.action);
            out.push(',');
            push_str(out, &x.target_type);
            out.push(',');
            push_str(out, &x.target_name);
        }
        Kind::System(x) => {
            out.push_str("\"tracebus:SystemEvent\",\"args\":[");
            push_str(out, &x.component);
            out.push(',');
            push_str(out, x.action);
            out.push(',');
            push_opt_str(out, x.details.as_deref());
        }
    }
    // Header keyword arguments, in `Event.header_kwargs` order.
    out.push_str("],\"kwargs\":{\"correlation_id\":");
    push_str(out, &h.correlation_id);
    push_key(out, "caused_by");
    push_str(out, &h.caused_by);
    push_key(out, "parent_id");
    push_opt_str(out, h.parent_id.as_deref());
    push_key(out, "timestamp");
    push_f64(out, h.timestamp);
    let _ = write!(out, ",\"event_id\":\"evt_{:016x}\"", h.event_id);
    match &kind {
        Kind::Base => {
            push_key(out, "severity");
            push_str(out, h.severity.as_str());
        }
        Kind::Service(s) => {
            push_key(out, "is_ready");
            push_bool(out, s.is_ready);
            push_key(out, "error");
            push_opt_str(out, s.error.as_deref());
            let _ = write!(out, ",\"proxy_port\":{},\"pid\":{}", s.proxy_port, s.pid);
        }
        Kind::Health(_) => {
            push_key(out, "recovered");
            push_bool(out, h.type_id == types::HEALTH_RECOVERY);
            push_key(out, "source");
            push_str(out, &h.source);
        }
        Kind::Dependency(x) => {
            push_key(out, "cascade");
            push_bool(out, x.cascade);
        }
        Kind::User(_) => {
            push_key(out, "source");
            push_str(out, &h.source);
        }
        Kind::System(_) => {}
    }
    out.push_str("}}");
    Some(())
}

/// The JSON text of a built-in event (exact class, no metadata), or None when the Python
/// codec must encode it.
#[pyfunction]
pub fn _encode_event(event: &Bound<'_, PyAny>) -> Option<String> {
    let mut out = String::with_capacity(384);
    encode_native(event, &mut out).map(|_| out)
}

// ---------------------------------------------------------------------------------------
// Event-store keys
// ---------------------------------------------------------------------------------------

/// The multiplicative inverse of an odd number modulo 2^64 (Newton's iteration).
const fn inverse(a: u64) -> u64 {
    let mut x = a; // correct to 3 bits for odd `a`; each step doubles the correct bits
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

const M1: u64 = 0xbf58_476d_1ce4_e5b9;
const M2: u64 = 0x94d0_49bb_1331_11eb;

/// `ids`' event-id mixer (splitmix64's finaliser), repeated here with its inverse.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(M1);
    z = (z ^ (z >> 27)).wrapping_mul(M2);
    z ^ (z >> 31)
}

/// The inverse of `mix`: an event id back to the counter value it was made from, so ids
/// made one after another get consecutive keys.
fn unmix(mut z: u64) -> u64 {
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
fn event_key(id: u64, counter: bool) -> i64 {
    (if counter { unmix(id) } else { id }) as i64
}

/// The event store's correlation column value (schema 3) for a generated correlation id
/// (`corr_` + 16 lower-case hex digits): the counter value behind it, like `event_key`, so
/// a cascade's events and the cascades after it get neighbouring keys and the correlation
/// index grows at its end instead of at random pages. Other ids are stored as their text.
fn correlation_key(correlation_id: &str) -> Option<i64> {
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

/// The event store's rows for `events`: `(event key (see `event_key`), stream, type,
/// severity, correlation (see `correlation_key`), timestamp, JSON text)`, `stream`
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
            let stream_obj = match stream {
                Some(s) => s.clone(),
                None => PyString::new(py, &h.source),
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
/// same pair. Returns the parameter lists and the total length of the JSON texts.
#[pyfunction]
pub fn _number_rows<'py>(
    rows: &Bound<'py, PyList>,
    first_seq: i64,
    heads: &Bound<'py, PyDict>,
    current: &Bound<'py, PyAny>,
    rows_per_statement: usize,
) -> PyResult<(Bound<'py, PyList>, usize)> {
    let py = rows.py();
    let out = PyList::empty(py);
    let mut params = PyList::empty(py);
    let mut chars = 0usize;
    let per = rows_per_statement.max(1);
    for (i, (seq, row)) in (first_seq..).zip(rows.iter()).enumerate() {
        if i > 0 && i % per == 0 {
            out.append(std::mem::replace(&mut params, PyList::empty(py)))?;
        }
        let row = row.cast_into::<PyTuple>()?;
        if row.len() != 7 {
            return Err(PyTypeError::new_err("an event store row has 7 fields"));
        }
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
    Ok((out, chars))
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// A parsed JSON value (strings borrowed from the input unless they had escapes).
#[derive(Debug, PartialEq)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Val<'a>>),
    Obj(Vec<(Cow<'a, str>, Val<'a>)>),
}

const MAX_DEPTH: u32 = 64;

/// A strict RFC 8259 parser. Anything it does not accept (including what Python's json
/// accepts beyond the RFC: NaN, Infinity, integers beyond 64 bits) is None; the caller
/// then leaves the text to Python.
struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s,
            b: s.as_bytes(),
            i: 0,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn document(mut self) -> Option<Val<'a>> {
        let v = self.value(0)?;
        self.ws();
        (self.i == self.b.len()).then_some(v)
    }

    fn value(&mut self, depth: u32) -> Option<Val<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match *self.b.get(self.i)? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string().map(Val::Str),
            b't' => self.literal("true", Val::Bool(true)),
            b'f' => self.literal("false", Val::Bool(false)),
            b'n' => self.literal("null", Val::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, v: Val<'a>) -> Option<Val<'a>> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Some(v)
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<Val<'a>> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let mut float = false;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            float = true;
        }
        let text = &self.s[start..self.i];
        if float {
            text.parse().ok().map(Val::Float)
        } else {
            text.parse().ok().map(Val::Int)
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }

    /// Moves `self.i` to the next byte that is `"`, `\\` or a control character (or the
    /// end), eight bytes at a time.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            let quote = x ^ (ONES * u64::from(b'"'));
            let slash = x ^ (ONES * u64::from(b'\\'));
            // A byte of the mask is set for a zero byte of `quote`/`slash` or a byte below
            // 0x20 of `x` (the lowest such byte is exact; that is the one we need).
            let mask = (quote.wrapping_sub(ONES) & !quote
                | slash.wrapping_sub(ONES) & !slash
                | x.wrapping_sub(ONES * 0x20) & !x)
                & HIGH;
            if mask != 0 {
                self.i += (mask.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
        while let Some(&c) = self.b.get(self.i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                return;
            }
            self.i += 1;
        }
    }

    /// A string; `self.i` is at its opening quote.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.i += 1;
        let start = self.i;
        self.skip_plain();
        match *self.b.get(self.i)? {
            b'"' => {
                let s = &self.s[start..self.i];
                self.i += 1;
                return Some(Cow::Borrowed(s));
            }
            b'\\' => {}
            _ => return None,
        }
        let mut out = String::from(&self.s[start..self.i]);
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    self.i += 1;
                    let c = *self.b.get(self.i)?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = match hi {
                                0xD800..=0xDBFF => {
                                    // Only a surrogate pair makes a character; a lone
                                    // surrogate is not text Rust (or an event) can hold.
                                    if self.b.get(self.i..self.i + 2)? != b"\\u" {
                                        return None;
                                    }
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => hi,
                            };
                            out.push(char::from_u32(cp)?);
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {
                    let run = self.i;
                    self.skip_plain();
                    out.push_str(&self.s[run..self.i]);
                }
            }
        }
    }

    /// `"k"` then `:`.
    fn key(&mut self, k: &str) -> Option<()> {
        self.ws();
        if self.b.get(self.i) != Some(&b'"') || self.string()? != k {
            return None;
        }
        self.eat(b':')
    }

    /// An array of at most `out.len()` items into `out`; returns how many.
    fn array_into(&mut self, out: &mut [Val<'a>]) -> Option<usize> {
        self.eat(b'[')?;
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(0);
        }
        let mut n = 0;
        loop {
            *out.get_mut(n)? = self.value(2)?;
            n += 1;
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(n);
                }
                _ => return None,
            }
        }
    }

    /// An object of at most `out.len()` members into `out`; returns how many.
    fn object_into(&mut self, out: &mut [(Cow<'a, str>, Val<'a>)]) -> Option<usize> {
        self.eat(b'{')?;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(0);
        }
        let mut n = 0;
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let k = self.string()?;
            self.eat(b':')?;
            let v = self.value(2)?;
            *out.get_mut(n)? = (k, v);
            n += 1;
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(n);
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: u32) -> Option<Val<'a>> {
        self.i += 1;
        let mut items = Vec::with_capacity(8);
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(Val::Arr(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(Val::Arr(items));
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self, depth: u32) -> Option<Val<'a>> {
        self.i += 1;
        let mut items = Vec::with_capacity(12);
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(Val::Obj(items));
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let k = self.string()?;
            self.eat(b':')?;
            let v = self.value(depth + 1)?;
            items.push((k, v));
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(Val::Obj(items));
                }
                _ => return None,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Building events from parsed values (the constructors' checks, declining instead of
// raising)
// ---------------------------------------------------------------------------------------

/// `extract_text`'s rule: non-empty, not only whitespace, no NUL, at most `max` characters.
fn text(v: &Val<'_>, max: usize) -> Option<Arc<str>> {
    let Val::Str(s) = v else { return None };
    // (A text of at most `max` bytes has at most `max` characters: no need to count.)
    if s.trim().is_empty() || s.contains('\0') || (s.len() > max && s.chars().count() > max) {
        return None;
    }
    Some(shared_str(s))
}

/// `extract_opt_text`'s rule: null or a string without NUL; empty means none.
fn opt_text(v: Option<&Val<'_>>) -> Option<Option<Arc<str>>> {
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

fn boolean(v: &Val<'_>) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(*b),
        _ => None,
    }
}

/// An optional unsigned int: absent or null gives `default`.
fn uint_or(v: Option<&Val<'_>>, default: u64, max: u64) -> Option<u64> {
    match v {
        None | Some(Val::Null) => Some(default),
        Some(Val::Int(n)) if *n >= 0 && (*n as u64) <= max => Some(*n as u64),
        _ => None,
    }
}

/// An optional text argument whose absence or null means `default`.
fn text_or(v: Option<&Val<'_>>, default: &str) -> Option<Arc<str>> {
    match v {
        None | Some(Val::Null) => Some(Arc::from(default)),
        Some(v) => text(v, LABEL_MAX),
    }
}

/// The header fields every kind's kwargs carry. Correlation id, cause, timestamp and event
/// id must be explicit (otherwise the constructor would take them from the context or the
/// clock, which is for Python to do).
struct Common {
    correlation_id: Arc<str>,
    caused_by: Arc<str>,
    parent_id: Option<Arc<str>>,
    timestamp: f64,
    event_id: u64,
}

/// Splits `kwargs` into the common header fields and the kind's `extra` keys (each at most
/// once). An unknown or repeated key, or metadata other than null, declines.
fn kwargs<'v, 'a>(
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

fn make_header(c: Common, type_id: u32, source: Arc<str>, severity: Severity) -> Header {
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

fn base(header: Header) -> PyClassInitializer<Event> {
    PyClassInitializer::from(Event {
        header,
        metadata: None,
    })
}

fn state(v: &Val<'_>) -> Option<State> {
    match v {
        Val::Str(s) => State::parse(s),
        _ => None,
    }
}

/// The event a parsed document describes, or None to leave it to Python.
fn build(py: Python<'_>, doc: Val<'_>) -> PyResult<Option<Py<PyAny>>> {
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
fn dispatch(
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
fn decode_usual(py: Python<'_>, text: &str) -> Option<PyResult<Option<Py<PyAny>>>> {
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

type Built = Option<PyResult<Py<PyAny>>>;

fn build_base(py: Python<'_>, args: &[Val<'_>], kw: &[(Cow<'_, str>, Val<'_>)]) -> Built {
    let [Val::Str(ty), source] = args else {
        return None;
    };
    let type_id = kinds::event_type_id(ty)?;
    let source = text(source, LABEL_MAX)?;
    let mut slots = [None];
    let c = kwargs(kw, &["severity"], &mut slots)?;
    let severity = match slots[0] {
        None | Some(Val::Null) => Severity::Info,
        Some(Val::Str(s)) => Severity::parse(s)?,
        Some(_) => return None,
    };
    let h = make_header(c, type_id, source, severity);
    Some(Py::new(py, base(h)).map(Py::into_any))
}

fn build_service(py: Python<'_>, args: &[Val<'_>], kw: &[(Cow<'_, str>, Val<'_>)]) -> Built {
    let [service_type, source, old, new] = args else {
        return None;
    };
    let service_type = text(service_type, 200)?;
    let source = text(source, LABEL_MAX)?;
    let old_state = state(old)?;
    let new_state = state(new)?;
    let mut s = [None; 4];
    let c = kwargs(kw, &["is_ready", "error", "proxy_port", "pid"], &mut s)?;
    let is_ready = match s[0] {
        None | Some(Val::Null) => new_state == State::Running,
        Some(v) => boolean(v)?,
    };
    let error = opt_text(s[1])?;
    let proxy_port = uint_or(s[2], 0, 65535)? as u16;
    let pid = uint_or(s[3], 0, u64::from(u32::MAX))? as u32;
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

fn build_health(py: Python<'_>, args: &[Val<'_>], kw: &[(Cow<'_, str>, Val<'_>)]) -> Built {
    let [context, cluster, is_mc, is_healthy, ready, total, error] = args else {
        return None;
    };
    let context_name = text(context, LABEL_MAX)?;
    let cluster_short_name = text(cluster, LABEL_MAX)?;
    let is_mc = boolean(is_mc)?;
    let is_healthy = boolean(is_healthy)?;
    let ready_nodes = uint_or(Some(ready), 0, u64::from(u32::MAX))? as u32;
    let total_nodes = uint_or(Some(total), 0, u64::from(u32::MAX))? as u32;
    let error = opt_text(Some(error))?;
    let mut s = [None; 2];
    let c = kwargs(kw, &["recovered", "source"], &mut s)?;
    let recovered = match s[0] {
        None => false,
        Some(v) => boolean(v)?,
    };
    let source = text_or(s[1], "health-monitor")?;
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

fn build_dependency(py: Python<'_>, args: &[Val<'_>], kw: &[(Cow<'_, str>, Val<'_>)]) -> Built {
    let [source, dep_type, Val::Arr(affected), action] = args else {
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
    let mut s = [None];
    let c = kwargs(kw, &["cascade"], &mut s)?;
    let cascade = match s[0] {
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

fn build_user(py: Python<'_>, args: &[Val<'_>], kw: &[(Cow<'_, str>, Val<'_>)]) -> Built {
    let [action, target_type, target_name] = args else {
        return None;
    };
    let action = text(action, 200)?;
    let target_type = text(target_type, 200)?;
    let target_name = text(target_name, LABEL_MAX)?;
    let mut s = [None];
    let c = kwargs(kw, &["source"], &mut s)?;
    let source = text_or(s[0], "user")?;
    let h = make_header(c, types::USER_ACTION, source, Severity::Info);
    let init = base(h).add_subclass(UserActionEvent {
        action,
        target_type,
        target_name,
    });
    Some(Py::new(py, init).map(Py::into_any))
}

fn build_system(py: Python<'_>, args: &[Val<'_>], kw: &[(Cow<'_, str>, Val<'_>)]) -> Built {
    let [component, Val::Str(action), details] = args else {
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
    let c = kwargs(kw, &[], &mut [])?;
    let init = base(make_header(c, ty, component.clone(), sev)).add_subclass(SystemEvent {
        component,
        action,
        details,
    });
    Some(Py::new(py, init).map(Py::into_any))
}

fn decode_text(py: Python<'_>, text: &str) -> PyResult<Option<Py<PyAny>>> {
    if let Some(done) = decode_usual(py, text) {
        return done;
    }
    match Parser::new(text).document() {
        Some(doc) => build(py, doc),
        None => Ok(None),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_str(s: &str) -> String {
        let mut o = String::new();
        push_str(&mut o, s);
        o
    }

    fn enc_f(x: f64) -> String {
        let mut o = String::new();
        push_f64(&mut o, x);
        o
    }

    #[test]
    fn keys_invert_the_id_mixer() {
        assert_eq!(inverse(M1).wrapping_mul(M1), 1);
        assert_eq!(inverse(M2).wrapping_mul(M2), 1);
        for z in [
            0u64,
            1,
            2,
            0x8000_0000_0000_0000,
            u64::MAX,
            0x1234_5678_9abc_def0,
        ] {
            assert_eq!(unmix(mix(z)), z);
            assert_eq!(mix(unmix(z)), z);
        }
        // Ids made one after another get increasing, neighbouring keys (other tests may
        // take ids in between).
        let (a, b) = (ids::next_id(), ids::next_id());
        assert!((1..1_000_000).contains(&unmix(b).wrapping_sub(unmix(a))));
        assert_eq!(event_key(a, false), a as i64);
    }

    #[test]
    fn strings_escape_like_python_json() {
        assert_eq!(enc_str("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(enc_str("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(enc_str("\u{1}\u{1f}\u{7f}"), "\"\\u0001\\u001f\u{7f}\"");
        assert_eq!(enc_str("é ✓ 😀"), "\"é ✓ 😀\"");
    }

    #[test]
    fn floats_spell_like_python_repr() {
        assert_eq!(enc_f(1795750588.0243843), "1795750588.0243843");
        assert_eq!(enc_f(1795750588.0), "1795750588.0");
        assert_eq!(enc_f(0.0), "0.0");
        assert_eq!(enc_f(0.0001), "0.0001");
        assert_eq!(enc_f(0.00001), "1e-05");
        assert_eq!(enc_f(1.5e-7), "1.5e-07");
        assert_eq!(enc_f(1e16), "1e+16");
        assert_eq!(enc_f(9999999999999998.0), "9999999999999998.0");
        assert_eq!(enc_f(1.2345e300), "1.2345e+300");
    }

    #[test]
    fn parser_round_trips_strings_and_numbers() {
        for s in [
            "",
            "plain",
            "a\"b\\c",
            "\n\r\t\u{8}\u{c}\u{1}",
            "é ✓ 😀 \u{7f}",
        ] {
            let text = enc_str(s);
            assert_eq!(
                Parser::new(&text).document(),
                Some(Val::Str(Cow::Borrowed(s)))
            );
        }
        fn p(t: &str) -> Option<Val<'_>> {
            Parser::new(t).document()
        }
        // The eight-bytes-at-a-time scan finds a special byte at every position.
        for n in 0..20 {
            for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}", "é", "\u{7f}"] {
                let s = "x".repeat(n) + special + &"y".repeat(20 - n);
                let text = enc_str(&s);
                assert_eq!(p(&text), Some(Val::Str(Cow::Borrowed(s.as_str()))), "{s:?}");
                let raw = format!("\"{s}\"");
                let ok = matches!(special, "é" | "\u{7f}");
                assert_eq!(p(&raw).is_some(), ok, "{raw:?}");
            }
        }
        assert_eq!(p(r#""\ud83d\ude00\/""#), Some(Val::Str("😀/".into())));
        assert_eq!(p(r#""\ud83d""#), None); // lone surrogate
        assert_eq!(p(r#""\ude00x""#), None);
        assert_eq!(p("\"a\u{1}\""), None); // raw control character
        assert_eq!(p(" -0 "), Some(Val::Int(0)));
        assert_eq!(p("12.5e-1"), Some(Val::Float(1.25)));
        assert_eq!(
            p("1795750588.0243843"),
            Some(Val::Float(1795750588.0243843))
        );
        for bad in [
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "NaN",
            "Infinity",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "[1 2]",
            "tru",
            "",
            "1 2",
            "99999999999999999999",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        assert_eq!(
            p(r#"{"a":[1,true,null,{"b":"c"}]}"#),
            Some(Val::Obj(vec![(
                "a".into(),
                Val::Arr(vec![
                    Val::Int(1),
                    Val::Bool(true),
                    Val::Null,
                    Val::Obj(vec![("b".into(), Val::Str("c".into()))])
                ])
            )]))
        );
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(p(&deep), None);
    }
}
