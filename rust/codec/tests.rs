//! The codec's own tests (encoder spelling, parser, key mixing).

use super::encode::{push_f64, push_str};
use super::keys::{event_key, inverse, mix, unmix, M1, M2};
use super::parse::{Parser, Val};
use std::borrow::Cow;
use tracebus_core::model::ids;

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
    // A tie between two shortest texts (the value is ...312.25): Python's even digit.
    assert_eq!(enc_f(562949953421312.2), "562949953421312.2");
    assert_eq!(enc_f(0.25), "0.25");
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

#[test]
fn run_offsets_are_written_in_decimal() {
    for n in [0u16, 7, 10, 99, 511, 1000, 65535] {
        let mut o = String::from("[");
        super::push_u16(&mut o, n);
        assert_eq!(o, format!("[{n}"));
    }
}
