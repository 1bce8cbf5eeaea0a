//! Parsing: a strict RFC 8259 JSON parser whose strings borrow from the input.

use std::borrow::Cow;

/// A parsed JSON value (strings borrowed from the input unless they had escapes).
#[derive(Debug, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Val<'a>>),
    Obj(Vec<(Cow<'a, str>, Val<'a>)>),
}

pub(crate) const MAX_DEPTH: u32 = 64;

/// A strict RFC 8259 parser. Anything it does not accept (including what Python's json
/// accepts beyond the RFC: NaN, Infinity, integers beyond 64 bits) is None; the caller
/// then leaves the text to Python.
pub(crate) struct Parser<'a> {
    pub(crate) s: &'a str,
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Parser {
            s,
            b: s.as_bytes(),
            i: 0,
        }
    }

    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    pub(crate) fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    pub(crate) fn document(mut self) -> Option<Val<'a>> {
        let v = self.value(0)?;
        self.ws();
        (self.i == self.b.len()).then_some(v)
    }

    pub(crate) fn value(&mut self, depth: u32) -> Option<Val<'a>> {
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

    pub(crate) fn literal(&mut self, word: &str, v: Val<'a>) -> Option<Val<'a>> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Some(v)
        } else {
            None
        }
    }

    pub(crate) fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        self.i - start
    }

    pub(crate) fn number(&mut self) -> Option<Val<'a>> {
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

    pub(crate) fn hex4(&mut self) -> Option<u32> {
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
    pub(crate) fn skip_plain(&mut self) {
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
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
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
    pub(crate) fn key(&mut self, k: &str) -> Option<()> {
        self.ws();
        if self.b.get(self.i) != Some(&b'"') || self.string()? != k {
            return None;
        }
        self.eat(b':')
    }

    /// An array of at most `out.len()` items into `out`; returns how many.
    pub(crate) fn array_into(&mut self, out: &mut [Val<'a>]) -> Option<usize> {
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
    pub(crate) fn object_into(&mut self, out: &mut [(Cow<'a, str>, Val<'a>)]) -> Option<usize> {
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

    pub(crate) fn array(&mut self, depth: u32) -> Option<Val<'a>> {
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

    pub(crate) fn object(&mut self, depth: u32) -> Option<Val<'a>> {
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
