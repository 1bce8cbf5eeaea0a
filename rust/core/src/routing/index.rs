//! The dispatch index: subscriptions grouped by the keys of their routes (event type,
//! source, (type, source), correlation, minimum severity; see `routing::route`), so
//! dispatch cost grows with matching subscribers, not the total.
//!
//! A key's only subscription is kept inline in its map entry ([`Subs::One`]); two or more
//! share a bucket, sorted by subscription order, behind its own `Arc`. A publish takes the
//! (at most six) buckets that apply ([`Index::candidates`], one `Arc` clone per non-empty
//! bucket, no allocation) and merges them in subscription order while it calls handlers;
//! subscribing or unsubscribing meanwhile copies only the buckets it changes that a publish
//! holds (per-key copy-on-write), so churn costs O(log n) plus the size of the touched
//! buckets, never a copy of the index, and a key with one subscription allocates nothing.

use crate::model::header::Header;
use crate::model::kinds::Severity;
use crate::routing::route::Key;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

pub trait Indexed {
    fn seq(&self) -> u64;
    /// The subscription's route keys; `None`: the scan list (see `Filter::route`).
    fn keys(&self) -> Option<&[Key]>;
}

/// FxHash (rustc's) with a folded-multiply finish: keys are event type ids, service labels
/// and correlation ids of the program itself, so a fast non-keyed hash is enough.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
/// The finishing multiplier (the digits of pi, as in foldhash).
const FOLD: u64 = 0x24_3f_6a_88_85_a3_08_d3;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    /// Whole words, the last one overlapping the one before (no byte-by-byte tail: a
    /// variable-length copy is a `memcpy` call, which cost more than the hash of a short
    /// label or id itself).
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let half = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&bytes[at..at + 4]);
            u64::from(u32::from_le_bytes(w))
        };
        self.add(n as u64);
        if n >= 8 {
            let mut at = 0;
            while at + 8 < n {
                self.add(word(at));
                at += 8;
            }
            self.add(word(n - 8));
        } else if n >= 4 {
            self.add(half(0) | (half(n - 4) << 32));
        } else if n > 0 {
            let b = |i: usize| u64::from(bytes[i]);
            self.add(b(0) | (b(n / 2) << 8) | (b(n - 1) << 16));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    /// A folded multiply: each bit of the result depends on every bit of the state. The
    /// state's low bits depend only on the low bits of the words written (a multiply
    /// carries upward only), and the map picks a bucket by the hash's low bits: without
    /// this, keys that differ only after their first bytes (`pf-00001`, `pf-00002`, ...;
    /// `corr_...` ids) all got the same 32 bucket positions, so a lookup in a map of 10,000
    /// such keys walked long probe chains.
    #[inline]
    fn finish(&self) -> u64 {
        let m = u128::from(self.0) * u128::from(FOLD);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

pub struct Slot<S> {
    seq: u64,
    /// `None`: removed (compacted once removed slots outnumber live ones).
    sub: Option<Arc<S>>,
}

/// The subscriptions of one key, in subscription order (two or more; see [`Subs`]).
pub struct Bucket<S> {
    slots: Vec<Slot<S>>,
    live: usize,
}

// Manual impls: they copy `Arc`s, they need no `S: Clone`.
impl<S> Clone for Bucket<S> {
    fn clone(&self) -> Self {
        Bucket {
            slots: self
                .slots
                .iter()
                .filter(|s| s.sub.is_some())
                .map(|s| Slot {
                    seq: s.seq,
                    sub: s.sub.clone(),
                })
                .collect(),
            live: self.live,
        }
    }
}

impl<S> Bucket<S> {
    const fn new() -> Self {
        Bucket {
            slots: Vec::new(),
            live: 0,
        }
    }

    /// Adds `s`, returning the subscription it replaces (same `seq`) if any. Seqs are taken
    /// in increasing order, so this is a push; a subscriber that raced another lands a few
    /// slots from the end.
    fn insert(&mut self, seq: u64, s: Arc<S>) -> Option<Arc<S>> {
        let slot = Slot { seq, sub: Some(s) };
        let mut old = None;
        match self.slots.last() {
            Some(last) if last.seq >= seq => {
                // Out of order (concurrent subscribers): keep the bucket sorted.
                let at = self.slots.partition_point(|x| x.seq < seq);
                match self.slots.get_mut(at) {
                    Some(x) if x.seq == seq => {
                        old = std::mem::replace(x, slot).sub;
                        self.live -= old.is_some() as usize;
                    }
                    _ => self.slots.insert(at, slot),
                }
            }
            _ => self.slots.push(slot),
        }
        self.live += 1;
        old
    }

    /// Removes `seq`, returning its subscription. Removed slots are compacted once they
    /// outnumber live ones (amortized O(1)).
    fn remove(&mut self, seq: u64) -> Option<Arc<S>> {
        let at = self.slots.binary_search_by_key(&seq, |x| x.seq).ok()?;
        let s = self.slots[at].sub.take();
        self.live -= s.is_some() as usize;
        if self.live == 0 {
            // Else the removed slots left would make the next inserts out of order.
            self.slots.clear();
        } else if self.slots.len() > 8 && self.slots.len() > 2 * self.live {
            self.slots.retain(|x| x.sub.is_some());
        }
        s
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<S>> {
        self.slots.iter().filter_map(|s| s.sub.as_ref())
    }
}

/// What the index keeps under one key: most keys (a service's source, a waiter's
/// correlation id, a (type, source) pair) have one subscription, kept inline so that
/// subscribing and unsubscribing it allocates nothing; a second one moves them into a
/// shared [`Bucket`] (per-key copy-on-write while a publish holds it). 16 bytes, so a map
/// entry (key and this) is 32 and never straddles two cache lines.
pub enum Subs<S> {
    One { seq: u64, sub: Arc<S> },
    Many(Arc<Bucket<S>>),
}

impl<S> Subs<S> {
    /// As a publish holds it ([`Candidates`]).
    #[inline]
    fn held(&self) -> Held<S> {
        match self {
            Subs::One { sub, .. } => Held::One(sub.clone()),
            Subs::Many(b) => Held::Many(b.clone()),
        }
    }

    fn insert(&mut self, seq: u64, s: &Arc<S>) {
        match self {
            Subs::One { seq: old, sub } if *old == seq => *sub = s.clone(),
            Subs::One { seq: old, sub } => {
                let mut b = Bucket {
                    slots: Vec::with_capacity(4),
                    live: 0,
                };
                b.insert(*old, sub.clone());
                b.insert(seq, s.clone());
                *self = Subs::Many(Arc::new(b));
            }
            // Copies the bucket only if a publish holds it. (A replaced subscription was
            // removed from its keys first, see `Index::insert`.)
            Subs::Many(b) => {
                Arc::make_mut(b).insert(seq, s.clone());
            }
        }
    }

    /// Removes `seq`; true: nothing is left (drop the key; its last subscription was
    /// returned to the caller by [`Index::remove`], so this runs no user code).
    fn remove(&mut self, seq: u64) -> bool {
        match self {
            Subs::One { seq: s, .. } => *s == seq,
            Subs::Many(b) => {
                let b = Arc::make_mut(b);
                b.remove(seq);
                b.live == 0
            }
        }
    }
}

/// A key's subscriptions as a publish holds them: 16 bytes, so the candidates of one event
/// stay small (they are returned by value on every publish).
pub enum Held<S> {
    One(Arc<S>),
    Many(Arc<Bucket<S>>),
}

/// Buckets that can apply to one event: type, source, pair, correlation, severity, scan.
const MAX_BUCKETS: usize = 6;

pub struct Index<S> {
    by_type: FxMap<u32, Subs<S>>,
    by_source: FxMap<Arc<str>, Subs<S>>,
    /// (type, source): by type, then by source (looked up without building a key). An
    /// emptied inner map is kept, like the capacity of every map here, so that churn on a
    /// type does not free and regrow its table.
    by_pair: FxMap<u32, FxMap<Arc<str>, Subs<S>>>,
    by_corr: FxMap<Arc<str>, Subs<S>>,
    /// `by_severity[v]`: the subscriptions whose minimum severity is at most `v` (each is
    /// in the bucket of every level it takes), so an event takes one severity bucket.
    by_severity: [Option<Subs<S>>; Severity::ALL.len()],
    /// Bit `v` set: `by_severity[v]` is not empty.
    severity_mask: u8,
    scan: Option<Subs<S>>,
    /// Every subscription, by seq: a sorted vector rather than a tree (subscribers take
    /// increasing seqs, so inserting is a push and removing a binary search in one block).
    all: Bucket<S>,
}

impl<S> Default for Index<S> {
    fn default() -> Self {
        Index {
            by_type: FxMap::default(),
            by_source: FxMap::default(),
            by_pair: FxMap::default(),
            by_corr: FxMap::default(),
            by_severity: Default::default(),
            severity_mask: 0,
            scan: None,
            all: Bucket::new(),
        }
    }
}

/// One change to the keys of a subscription.
enum Op<'a, S> {
    Insert(u64, &'a Arc<S>),
    Remove(u64),
}

// Manual impls: a shared reference is `Copy` whatever `S` is.
impl<S> Clone for Op<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Op<'_, S> {}

fn change<K: Hash + Eq + Clone, S>(map: &mut FxMap<K, Subs<S>>, k: &K, op: Op<'_, S>) {
    match op {
        Op::Insert(seq, s) => match map.entry(k.clone()) {
            Entry::Occupied(mut e) => e.get_mut().insert(seq, s),
            Entry::Vacant(v) => {
                v.insert(Subs::One {
                    seq,
                    sub: s.clone(),
                });
            }
        },
        // One lookup for a key's only subscription (the common case); a bucket that keeps
        // others goes back under its own key.
        Op::Remove(seq) => {
            if let Some((k, mut b)) = map.remove_entry(k) {
                if !b.remove(seq) {
                    map.insert(k, b);
                }
            }
        }
    }
}

fn change_slot<S>(slot: &mut Option<Subs<S>>, op: Op<'_, S>) {
    match (slot.as_mut(), op) {
        (Some(b), Op::Insert(seq, s)) => b.insert(seq, s),
        (None, Op::Insert(seq, s)) => {
            *slot = Some(Subs::One {
                seq,
                sub: s.clone(),
            })
        }
        (Some(b), Op::Remove(seq)) => {
            if b.remove(seq) {
                *slot = None;
            }
        }
        (None, Op::Remove(_)) => {}
    }
}

impl<S: Indexed> Index<S> {
    pub fn build(subs: Vec<Arc<S>>) -> Self {
        let mut ix = Index::default();
        for s in subs {
            ix.insert(s);
        }
        ix
    }

    fn each_bucket(&mut self, s: &Arc<S>, op: Op<'_, S>) {
        let Some(keys) = s.keys() else {
            return change_slot(&mut self.scan, op);
        };
        for k in keys {
            match k {
                Key::Type(t) => change(&mut self.by_type, t, op),
                Key::Source(src) => change(&mut self.by_source, src, op),
                Key::Correlation(c) => change(&mut self.by_corr, c, op),
                Key::Severity(m) => {
                    for v in *m as usize..Severity::ALL.len() {
                        let slot = &mut self.by_severity[v];
                        change_slot(slot, op);
                        let bit = 1u8 << v;
                        self.severity_mask =
                            (self.severity_mask & !bit) | (bit * slot.is_some() as u8);
                    }
                }
                Key::Pair(t, src) => match op {
                    Op::Insert(..) => change(self.by_pair.entry(*t).or_default(), src, op),
                    Op::Remove(_) => {
                        if let Some(inner) = self.by_pair.get_mut(t) {
                            change(inner, src, op);
                        }
                    }
                },
            }
        }
    }

    /// Adds a subscription (a subscription with the same `seq` is replaced).
    pub fn insert(&mut self, s: Arc<S>) {
        let seq = s.seq();
        if let Some(old) = self.all.insert(seq, s.clone()) {
            self.each_bucket(&old, Op::Remove(seq));
        }
        self.each_bucket(&s, Op::Insert(seq, &s));
    }

    /// Removes the subscription with `seq`, returning it. O(log n) plus the buckets of its
    /// keys (each copied if a publish holds it; a key's only subscription is inline).
    pub fn remove(&mut self, seq: u64) -> Option<Arc<S>> {
        let s = self.all.remove(seq)?;
        self.each_bucket(&s, Op::Remove(seq));
        Some(s)
    }

    /// Every subscription, in subscription order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<S>> {
        self.all.iter()
    }

    pub fn len(&self) -> usize {
        self.all.live
    }

    pub fn is_empty(&self) -> bool {
        self.all.live == 0
    }

    /// The buckets that apply to `h` (their union holds every subscription whose filter
    /// can match it). Iterate them with [`Candidates::iter`]. Always inlined: the result
    /// is built in the caller's frame, not copied out (a `memcpy` call per publish).
    #[inline(always)]
    pub fn candidates(&self, h: &Header) -> Candidates<S> {
        let mut c = Candidates::One(None);
        if !self.by_type.is_empty() {
            c.take(self.by_type.get(&h.type_id));
        }
        if !self.by_source.is_empty() {
            c.take(self.by_source.get(&h.source));
        }
        if !self.by_pair.is_empty() {
            c.take(self.by_pair.get(&h.type_id).and_then(|m| m.get(&h.source)));
        }
        if !self.by_corr.is_empty() {
            c.take(self.by_corr.get(&h.correlation_id));
        }
        if self.severity_mask & (1u8 << h.severity as u8) != 0 {
            c.take(self.by_severity[h.severity as usize].as_ref());
        }
        c.take(self.scan.as_ref());
        c
    }
}

/// The buckets one event takes, owned (a later subscribe/unsubscribe does not change
/// them; removed subscriptions are skipped by their own flag in the caller). Most events
/// take at most one bucket: that form is a single `Option<Held>`, so making and dropping it
/// costs one reference count; the array form is only for events several keys reach.
// Both forms live on the caller's stack for one publish: boxing would allocate per publish.
#[allow(clippy::large_enum_variant)]
pub enum Candidates<S> {
    One(Option<Held<S>>),
    /// Two buckets (a catch-all beside a keyed subscriber, say): a two-way merge, no array.
    Two(Held<S>, Held<S>),
    Many {
        buckets: [Option<Held<S>>; MAX_BUCKETS],
        n: usize,
    },
}

impl<S> Candidates<S> {
    #[inline(always)]
    fn take(&mut self, b: Option<&Subs<S>>) {
        let Some(b) = b else { return };
        let new = b.held();
        match self {
            Candidates::One(slot @ None) => *slot = Some(new),
            Candidates::Many { buckets, n } => {
                buckets[*n] = Some(new);
                *n += 1;
            }
            _ => {
                *self = match std::mem::replace(self, Candidates::One(None)) {
                    Candidates::One(Some(first)) => Candidates::Two(first, new),
                    Candidates::Two(first, second) => {
                        let mut buckets: [Option<Held<S>>; MAX_BUCKETS] = Default::default();
                        buckets[0] = Some(first);
                        buckets[1] = Some(second);
                        buckets[2] = Some(new);
                        Candidates::Many { buckets, n: 3 }
                    }
                    other => other, // the arms above took the other forms
                }
            }
        }
    }
}

impl<S: Indexed> Candidates<S> {
    /// The candidates in subscription order, each once (a subscription reached by two keys
    /// is yielded once). No allocation; one bucket (the common case) is iterated directly.
    #[inline(always)]
    pub fn iter(&self) -> CandidateIter<'_, S> {
        match self {
            Candidates::One(None) => CandidateIter::Single(None),
            Candidates::One(Some(Held::One(s))) => CandidateIter::Single(Some(s)),
            Candidates::One(Some(Held::Many(b))) => CandidateIter::Slots(b.slots.iter()),
            Candidates::Two(a, b) => {
                let (mut a, mut b) = (HeldIter::new(a), HeldIter::new(b));
                CandidateIter::Two {
                    next_a: a.next(),
                    next_b: b.next(),
                    a,
                    b,
                }
            }
            Candidates::Many { buckets, n } => CandidateIter::Merge(Merge {
                buckets: &buckets[..*n],
                pos: [0; MAX_BUCKETS],
            }),
        }
    }
}

pub enum CandidateIter<'a, S> {
    Single(Option<&'a Arc<S>>),
    Slots(std::slice::Iter<'a, Slot<S>>),
    /// Two buckets and the next (seq, subscription) of each.
    Two {
        a: HeldIter<'a, S>,
        b: HeldIter<'a, S>,
        next_a: Option<(u64, &'a Arc<S>)>,
        next_b: Option<(u64, &'a Arc<S>)>,
    },
    Merge(Merge<'a, S>),
}

/// The live subscriptions of one held bucket, with their seqs.
pub enum HeldIter<'a, S> {
    One(Option<&'a Arc<S>>),
    Slots(std::slice::Iter<'a, Slot<S>>),
}

impl<'a, S> HeldIter<'a, S> {
    fn new(h: &'a Held<S>) -> Self {
        match h {
            Held::One(s) => HeldIter::One(Some(s)),
            Held::Many(b) => HeldIter::Slots(b.slots.iter()),
        }
    }
}

impl<'a, S: Indexed> Iterator for HeldIter<'a, S> {
    type Item = (u64, &'a Arc<S>);

    #[inline]
    fn next(&mut self) -> Option<(u64, &'a Arc<S>)> {
        match self {
            HeldIter::One(s) => s.take().map(|s| (s.seq(), s)),
            HeldIter::Slots(it) => it.find_map(|x| x.sub.as_ref().map(|s| (x.seq, s))),
        }
    }
}

impl<'a, S: Indexed> Iterator for CandidateIter<'a, S> {
    type Item = &'a Arc<S>;

    #[inline]
    fn next(&mut self) -> Option<&'a Arc<S>> {
        match self {
            CandidateIter::Single(s) => s.take(),
            CandidateIter::Slots(it) => it.find_map(|s| s.sub.as_ref()),
            CandidateIter::Two {
                a,
                b,
                next_a,
                next_b,
            } => {
                let (x, y) = (*next_a, *next_b);
                match (x, y) {
                    (Some(x), Some(y)) if y.0 < x.0 => {
                        *next_b = b.next();
                        Some(y.1)
                    }
                    (Some(x), y) => {
                        // Equal seqs: one subscription under both keys, yielded once.
                        if y.is_some_and(|y| y.0 == x.0) {
                            *next_b = b.next();
                        }
                        *next_a = a.next();
                        Some(x.1)
                    }
                    (None, Some(y)) => {
                        *next_b = b.next();
                        Some(y.1)
                    }
                    (None, None) => None,
                }
            }
            CandidateIter::Merge(m) => m.next(),
        }
    }
}

/// A k-way merge of sorted buckets by seq; equal heads (one subscription under two keys)
/// advance together. `pos[i]`: how far bucket `i` is consumed (an inline subscription is
/// a bucket of one, read by its own `seq`).
pub struct Merge<'a, S> {
    buckets: &'a [Option<Held<S>>],
    pos: [usize; MAX_BUCKETS],
}

impl<'a, S: Indexed> Merge<'a, S> {
    /// Bucket `i`'s next live subscription (skipping removed slots).
    #[inline]
    fn head(&mut self, i: usize) -> Option<(u64, &'a Arc<S>)> {
        match self.buckets[i].as_ref()? {
            Held::One(s) => (self.pos[i] == 0).then(|| (s.seq(), s)),
            Held::Many(b) => {
                while let Some(slot) = b.slots.get(self.pos[i]) {
                    match &slot.sub {
                        None => self.pos[i] += 1,
                        Some(s) => return Some((slot.seq, s)),
                    }
                }
                None
            }
        }
    }

    fn next(&mut self) -> Option<&'a Arc<S>> {
        let mut best: Option<(u64, &'a Arc<S>)> = None;
        for i in 0..self.buckets.len() {
            if let Some((seq, s)) = self.head(i) {
                if best.is_none_or(|(b, _)| seq < b) {
                    best = Some((seq, s));
                }
            }
        }
        let (seq, s) = best?;
        for i in 0..self.buckets.len() {
            if self.head(i).is_some_and(|(x, _)| x == seq) {
                self.pos[i] += 1;
            }
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::filter::Filter;

    struct S(u64, Option<Vec<Key>>);
    impl Indexed for S {
        fn seq(&self) -> u64 {
            self.0
        }
        fn keys(&self) -> Option<&[Key]> {
            self.1.as_deref()
        }
    }

    fn sub(seq: u64, f: Filter<()>) -> Arc<S> {
        Arc::new(S(seq, f.route().keys))
    }

    fn h(ty: u32, src: &str) -> Header {
        hs(ty, src, Severity::Info, "c")
    }

    fn hs(ty: u32, src: &str, severity: Severity, corr: &str) -> Header {
        Header {
            type_id: ty,
            source: Arc::from(src),
            severity,
            event_id: 1,
            correlation_id: Arc::from(corr),
            caused_by: Arc::from("x"),
            parent_id: None,
            timestamp: 0.0,
            depth: 0,
        }
    }

    fn ids(ix: &Index<S>, h: &Header) -> Vec<u64> {
        ix.candidates(h).iter().map(|s| s.0).collect()
    }

    #[test]
    fn candidates_are_indexed_and_ordered() {
        let ix = Index::build(vec![
            sub(0, Filter::Types([1].into())),
            sub(1, Filter::All),
            sub(2, Filter::Sources([Arc::from("a")].into())),
            sub(3, Filter::Types([2].into())),
            sub(4, Filter::Types([1].into())),
        ]);
        assert_eq!(ids(&ix, &h(1, "a")), vec![0, 1, 2, 4]);
        assert_eq!(ids(&ix, &h(3, "b")), vec![1]);
    }

    #[test]
    fn every_key_kind_and_each_subscription_once() {
        let src = |s: &str| Filter::Sources([Arc::from(s)].into());
        let ix = Index::build(vec![
            sub(
                0,
                Filter::Or(vec![Filter::Types([1].into()), src("a"), src("b")]),
            ),
            sub(1, Filter::And(vec![Filter::Types([1].into()), src("a")])),
            sub(2, Filter::Correlation("c9".into())),
            sub(3, Filter::MinSeverity(Severity::Error)),
            sub(4, Filter::MinSeverity(Severity::Info)),
            sub(5, Filter::Nothing),
        ]);
        assert_eq!(
            ids(&ix, &hs(1, "a", Severity::Error, "c9")),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(ids(&ix, &hs(2, "a", Severity::Warn, "c")), vec![0, 4]);
        assert_eq!(
            ids(&ix, &hs(2, "z", Severity::Debug, "c")),
            Vec::<u64>::new()
        );
        let mut ix = ix;
        ix.remove(4);
        assert_eq!(ids(&ix, &hs(2, "z", Severity::Fatal, "c")), vec![3]);
        ix.remove(3);
        assert_eq!(ix.severity_mask, 0);
        assert!(ids(&ix, &hs(2, "z", Severity::Fatal, "c")).is_empty());
    }

    #[test]
    fn keys_differing_in_late_bytes_spread_over_the_table() {
        // A map picks a bucket by the hash's low bits: labels and correlation ids that
        // differ only after their first bytes must still spread (they once got 32 slots).
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<FxHasher>::default();
        for key in [
            |i: usize| format!("pf-{i:05}"),
            |i: usize| format!("corr_{i:016x}"),
        ] {
            let slots: std::collections::HashSet<u64> = (0..10_000)
                .map(|i| build.hash_one(key(i).as_str()) & 0x3fff)
                .collect();
            assert!(slots.len() > 5_000, "{} of 16,384 slots", slots.len());
        }
    }

    #[test]
    fn two_buckets_merge_in_order_and_yield_a_shared_subscription_once() {
        let src = |s: &str| Filter::Sources([Arc::from(s)].into());
        let ix = Index::build(vec![
            sub(0, Filter::Types([1].into())),
            sub(1, src("a")),
            sub(2, Filter::Or(vec![Filter::Types([1].into()), src("a")])),
            sub(3, Filter::Types([1].into())),
            sub(4, src("a")),
        ]);
        assert!(matches!(ix.candidates(&h(1, "a")), Candidates::Two(..)));
        assert_eq!(ids(&ix, &h(1, "a")), vec![0, 1, 2, 3, 4]);
        assert_eq!(ids(&ix, &h(1, "b")), vec![0, 2, 3]);
        let catch_all = Index::build(vec![sub(0, Filter::All), sub(1, Filter::Types([1].into()))]);
        assert_eq!(ids(&catch_all, &h(1, "a")), vec![0, 1]);
    }

    #[test]
    fn insert_and_remove_keep_buckets_consistent() {
        let mut ix: Index<S> = Index::default();
        ix.insert(sub(0, Filter::Types([1].into())));
        ix.insert(sub(1, Filter::All));
        ix.insert(sub(2, Filter::Types([1, 2].into())));
        ix.insert(sub(3, Filter::Sources([Arc::from("a")].into())));
        assert_eq!(ids(&ix, &h(1, "a")), vec![0, 1, 2, 3]);
        assert_eq!(ix.remove(2).map(|s| s.0), Some(2));
        assert_eq!(ix.remove(2).map(|s| s.0), None);
        assert_eq!(ids(&ix, &h(2, "b")), vec![1]);
        assert_eq!(ix.remove(1).map(|s| s.0), Some(1));
        assert_eq!(ix.remove(3).map(|s| s.0), Some(3));
        assert_eq!(ids(&ix, &h(1, "a")), vec![0]);
        assert_eq!(ix.len(), 1);
        assert!(ix.by_source.is_empty() && ix.scan.is_none());
    }

    #[test]
    fn a_held_snapshot_does_not_change() {
        let mut ix = Index::build((0..4).map(|i| sub(i, Filter::Types([1].into()))).collect());
        let snap = ix.candidates(&h(1, "a"));
        ix.remove(1);
        ix.insert(sub(9, Filter::Types([1].into())));
        assert_eq!(
            snap.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(ids(&ix, &h(1, "a")), vec![0, 2, 3, 9]);
    }

    #[test]
    fn removal_compacts_and_out_of_order_inserts_stay_sorted() {
        let mut ix = Index::build(
            (0..100)
                .map(|i| sub(i * 2, Filter::Types([1].into())))
                .collect(),
        );
        for i in 0..90 {
            ix.remove(i * 2);
        }
        ix.insert(sub(181, Filter::Types([1].into())));
        assert_eq!(
            ids(&ix, &h(1, "a")),
            vec![180, 181, 182, 184, 186, 188, 190, 192, 194, 196, 198]
        );
        let Subs::Many(b) = &ix.by_type[&1] else {
            panic!("eleven subscriptions are not inline")
        };
        assert!(b.slots.len() <= 2 * b.live.max(8));
    }

    #[test]
    fn a_subscription_on_two_severities_is_one_candidate_and_removed_from_both() {
        let either = Filter::Or(vec![
            Filter::MinSeverity(Severity::Warn),
            Filter::MinSeverity(Severity::Error),
        ]);
        let mut ix = Index::build(vec![
            sub(0, Filter::MinSeverity(Severity::Error)),
            sub(1, either),
            sub(2, Filter::MinSeverity(Severity::Debug)),
        ]);
        let at = |ix: &Index<S>, v| ids(ix, &hs(9, "z", v, "c"));
        assert_eq!(at(&ix, Severity::Fatal), vec![0, 1, 2]);
        assert_eq!(at(&ix, Severity::Warn), vec![1, 2]);
        assert_eq!(at(&ix, Severity::Info), vec![2]);
        ix.remove(1);
        assert_eq!(at(&ix, Severity::Error), vec![0, 2]);
        assert_eq!(at(&ix, Severity::Warn), vec![2]);
        ix.remove(2);
        assert_eq!(ix.severity_mask, 0b11_0000);
        ix.remove(0);
        assert_eq!(ix.severity_mask, 0);
    }

    #[test]
    fn a_map_entry_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Subs<S>>(), 16);
        assert_eq!(std::mem::size_of::<Option<Held<S>>>(), 16);
        assert_eq!(std::mem::size_of::<(Arc<str>, Subs<S>)>(), 32);
    }

    #[test]
    fn many_nonmatching_subscribers_are_not_scanned() {
        let ix = Index::build(
            (0..10_000)
                .map(|i| sub(i, Filter::Types([i as u32 + 100].into())))
                .collect(),
        );
        assert_eq!(ix.candidates(&h(105, "x")).iter().count(), 1);
    }
}
