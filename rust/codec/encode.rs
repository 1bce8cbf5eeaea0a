//! Writing: the JSON text of a built-in event, from its kind's schema
//! (`model::schema`), exactly as the Python codec writes it.

use crate::model::schema::{Schema, Value};
use crate::model::{
    DependencyEvent, Event, HealthEvent, ServiceStateEvent, SystemEvent, UserActionEvent,
};
use pyo3::prelude::*;
use std::fmt::Write as _;
use tracebus_core::model::header::Header;
use tracebus_core::model::kinds;

/// A JSON string as Python's `json` writes it with `ensure_ascii=False`: `"` and `\`
/// escaped, `\b \f \n \r \t` by name, other control characters as `\u00xx`; everything else
/// (including non-ASCII and DEL) as is.
pub(crate) fn push_str(out: &mut String, s: &str) {
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

pub(crate) fn push_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.push_str("null"),
    }
}

/// A finite float as Python's `repr` writes it: the shortest text that reads back to the
/// same value, `.0` on integral values, exponent form below 1e-4 and from 1e16 with a sign
/// and at least two exponent digits (`1e-05`, `1e+16`). Rust's `{:?}` picks the same digits
/// and the same switch points, but for ties: when two shortest texts are equally near `x`
/// (562949953421312.25: `.2` and `.3`), Python takes the even last digit and Rust may not.
/// Rounding `x` exactly at the same last digit (Rust rounds that half to even) gives
/// Python's choice whenever it reads back to `x`. The exponent is spelled differently too.
pub(crate) fn push_f64(out: &mut String, x: f64) {
    let start = out.len();
    let _ = write!(out, "{x:?}");
    let shortest = &out[start..];
    let (mantissa, sci) = match shortest.find('e') {
        Some(e) => (&shortest[..e], true),
        None => (shortest, false),
    };
    let digits = mantissa.find('.').map_or(0, |d| mantissa.len() - d - 1);
    if !sci && !may_tie(x, digits) {
        return;
    }
    let mid = out.len();
    let _ = if sci {
        write!(out, "{x:.digits$e}")
    } else {
        write!(out, "{x:.digits$}")
    };
    let (first, exact) = out[start..].split_at(mid - start);
    if first == exact || exact.parse::<f64>() != Ok(x) {
        out.truncate(mid);
    } else {
        out.drain(start..mid);
    }
    if let Some(e) = out[start..].find('e') {
        let at = start + e;
        let exp: i32 = out[at + 1..].parse().unwrap_or(0);
        out.truncate(at);
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    }
}

/// Whether two texts with `digits` fraction digits can be equally near `x`: then `x` is
/// exactly halfway between them, so its exact decimal value ends one digit later (in a 5).
/// `x = m * 2^e` with `m` odd and `e < 0` ends exactly at fraction digit `-e`; an integer
/// ends before the point. (Most timestamps fail this at once, so they skip the exact
/// rounding.)
fn may_tie(x: f64, digits: usize) -> bool {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    if m == 0 {
        return false;
    }
    let e = e + m.trailing_zeros() as i32;
    e < 0 && e.unsigned_abs() as usize == digits + 1
}

pub(crate) fn push_bool(out: &mut String, b: bool) {
    out.push_str(if b { "true" } else { "false" });
}

pub(crate) fn push_key(out: &mut String, key: &str) {
    // Keys are fixed ASCII identifiers: no escaping needed.
    out.push(',');
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

/// One schema value as JSON (see `model::schema::Value`).
fn push_value(out: &mut String, v: Value<'_>) {
    match v {
        Value::Str(s) => push_str(out, s),
        Value::OptStr(s) => push_opt_str(out, s),
        Value::Bool(b) => push_bool(out, b),
        Value::UInt(n) => {
            let _ = write!(out, "{n}");
        }
        Value::StrList(l) => {
            out.push('[');
            for (i, a) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, a);
            }
            out.push(']');
        }
        Value::EventType(t) => push_str(out, &kinds::event_type_name(t)),
    }
}

/// `{"class": .., "args": [..], "kwargs": {..}}` of one kind, from its schema: the text
/// the Python codec writes from `__getnewargs_ex__`.
fn encode_kind<K: Schema>(kind: &K, h: &Header, out: &mut String) {
    // Class paths and keys are fixed ASCII identifiers: no escaping needed.
    out.push_str("{\"class\":\"");
    out.push_str(K::CLASS);
    out.push_str("\",\"args\":[");
    let mut first = true;
    kind.args(h, &mut |v| {
        if !first {
            out.push(',');
        }
        first = false;
        push_value(out, v);
    });
    // Header keyword arguments, in `Event.header_kwargs` order, then the kind's.
    out.push_str("],\"kwargs\":{\"correlation_id\":");
    push_str(out, &h.correlation_id);
    push_key(out, "caused_by");
    push_str(out, &h.caused_by);
    push_key(out, "parent_id");
    push_opt_str(out, h.parent_id.as_deref());
    push_key(out, "timestamp");
    push_f64(out, h.timestamp);
    let _ = write!(out, ",\"event_id\":\"evt_{:016x}\"", h.event_id);
    kind.kwargs(h, &mut |k, v| {
        push_key(out, k);
        push_value(out, v);
    });
    out.push_str("}}");
}

/// The JSON text of an exact built-in event without metadata and with a finite timestamp,
/// or None (metadata, subclass, other object).
pub(crate) fn encode_native(obj: &Bound<'_, PyAny>, out: &mut String) -> Option<()> {
    // ServiceStateEvent first: the most common kind in the event store.
    if let Ok(b) = obj.cast_exact::<ServiceStateEvent>() {
        return encode_checked(b.get(), b.as_super().get(), out);
    }
    if let Ok(b) = obj.cast_exact::<Event>() {
        let ev = b.get();
        return encode_checked(ev, ev, out);
    }
    if let Ok(b) = obj.cast_exact::<HealthEvent>() {
        return encode_checked(b.get(), b.as_super().get(), out);
    }
    if let Ok(b) = obj.cast_exact::<DependencyEvent>() {
        return encode_checked(b.get(), b.as_super().get(), out);
    }
    if let Ok(b) = obj.cast_exact::<UserActionEvent>() {
        return encode_checked(b.get(), b.as_super().get(), out);
    }
    if let Ok(b) = obj.cast_exact::<SystemEvent>() {
        return encode_checked(b.get(), b.as_super().get(), out);
    }
    None
}

fn encode_checked<K: Schema>(kind: &K, ev: &Event, out: &mut String) -> Option<()> {
    if ev.metadata.is_some() || !ev.header.timestamp.is_finite() {
        return None;
    }
    encode_kind(kind, &ev.header, out);
    Some(())
}
