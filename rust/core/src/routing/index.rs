//! The dispatch index: subscriptions grouped by the event types (or sources) their
//! filters require, so dispatch cost grows with matching subscribers, not the total.
//! Immutable once built; the bus swaps in a new one on subscribe/unsubscribe
//! (copy-on-write), so publishers never hold a lock while calling handlers.

use crate::model::header::Header;
use crate::routing::filter::Filter;
use std::collections::HashMap;
use std::sync::Arc;

pub trait Indexed {
    type Custom;
    fn seq(&self) -> u64;
    fn filter(&self) -> &Filter<Self::Custom>;
}

pub struct Index<S> {
    by_type: HashMap<u32, Vec<Arc<S>>>,
    by_source: HashMap<Arc<str>, Vec<Arc<S>>>,
    scan: Vec<Arc<S>>,
    all: Vec<Arc<S>>,
}

// Manual impl: cloning the index clones `Arc`s, it needs no `S: Clone`.
impl<S> Clone for Index<S> {
    fn clone(&self) -> Self {
        Index {
            by_type: self.by_type.clone(),
            by_source: self.by_source.clone(),
            scan: self.scan.clone(),
            all: self.all.clone(),
        }
    }
}

impl<S> Default for Index<S> {
    fn default() -> Self {
        Index {
            by_type: HashMap::new(),
            by_source: HashMap::new(),
            scan: Vec::new(),
            all: Vec::new(),
        }
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

    /// Adds a subscription; its `seq` must be larger than every indexed one (subscription
    /// order is kept by appending).
    pub fn insert(&mut self, s: Arc<S>) {
        if let Some(types) = s.filter().required_types() {
            for t in types {
                self.by_type.entry(t).or_default().push(s.clone());
            }
        } else if let Some(srcs) = s.filter().required_sources() {
            for src in srcs {
                self.by_source.entry(src).or_default().push(s.clone());
            }
        } else {
            self.scan.push(s.clone());
        }
        self.all.push(s);
    }

    /// Removes the subscription with `seq`, returning it.
    pub fn remove(&mut self, seq: u64) -> Option<Arc<S>> {
        let pos = self.all.iter().position(|s| s.seq() == seq)?;
        let s = self.all.remove(pos);
        let drop_from = |v: &mut Vec<Arc<S>>| v.retain(|x| x.seq() != seq);
        if let Some(types) = s.filter().required_types() {
            for t in types {
                if let Some(v) = self.by_type.get_mut(&t) {
                    drop_from(v);
                    if v.is_empty() {
                        self.by_type.remove(&t);
                    }
                }
            }
        } else if let Some(srcs) = s.filter().required_sources() {
            for src in srcs {
                if let Some(v) = self.by_source.get_mut(&src) {
                    drop_from(v);
                    if v.is_empty() {
                        self.by_source.remove(&src);
                    }
                }
            }
        } else {
            drop_from(&mut self.scan);
        }
        Some(s)
    }

    pub fn all(&self) -> &[Arc<S>] {
        &self.all
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Subscriptions that may match `h`, in subscription order (their filters still have
    /// to be evaluated). The common case (one non-empty group) borrows the index's own
    /// slice; only a mix of groups is collected and sorted into `scratch`.
    pub fn candidates<'a>(&'a self, h: &Header, scratch: &'a mut Vec<Arc<S>>) -> &'a [Arc<S>] {
        let by_type = self
            .by_type
            .get(&h.type_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let by_src = if self.by_source.is_empty() {
            &[][..]
        } else {
            self.by_source
                .get(&h.source)
                .map(Vec::as_slice)
                .unwrap_or(&[])
        };
        let scan = self.scan.as_slice();
        match (by_type.is_empty(), by_src.is_empty(), scan.is_empty()) {
            (_, true, true) => by_type,
            (true, _, true) => by_src,
            (true, true, _) => scan,
            _ => {
                scratch.clear();
                scratch.extend(by_type.iter().chain(by_src).chain(scan).cloned());
                scratch.sort_unstable_by_key(|s| s.seq());
                scratch
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kinds::Severity;

    struct S(u64, Filter<()>);
    impl Indexed for S {
        type Custom = ();
        fn seq(&self) -> u64 {
            self.0
        }
        fn filter(&self) -> &Filter<()> {
            &self.1
        }
    }

    fn h(ty: u32, src: &str) -> Header {
        Header {
            type_id: ty,
            source: Arc::from(src),
            severity: Severity::Info,
            event_id: 1,
            correlation_id: Arc::from("c"),
            caused_by: Arc::from("x"),
            parent_id: None,
            timestamp: 0.0,
            depth: 0,
        }
    }

    #[test]
    fn candidates_are_indexed_and_ordered() {
        let subs: Vec<Arc<S>> = vec![
            Arc::new(S(0, Filter::Types([1].into()))),
            Arc::new(S(1, Filter::All)),
            Arc::new(S(2, Filter::Sources([Arc::from("a")].into()))),
            Arc::new(S(3, Filter::Types([2].into()))),
            Arc::new(S(4, Filter::Types([1].into()))),
        ];
        let ix = Index::build(subs);
        let mut scratch = Vec::new();
        let out = ix.candidates(&h(1, "a"), &mut scratch);
        assert_eq!(
            out.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 4]
        );
        let out = ix.candidates(&h(3, "b"), &mut scratch);
        assert_eq!(out.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn insert_and_remove_keep_buckets_consistent() {
        let mut ix: Index<S> = Index::default();
        ix.insert(Arc::new(S(0, Filter::Types([1].into()))));
        ix.insert(Arc::new(S(1, Filter::All)));
        ix.insert(Arc::new(S(2, Filter::Types([1, 2].into()))));
        ix.insert(Arc::new(S(3, Filter::Sources([Arc::from("a")].into()))));
        let mut scratch = Vec::new();
        let ids = |ix: &Index<S>, h: &Header, sc: &mut Vec<Arc<S>>| {
            ix.candidates(h, sc).iter().map(|s| s.0).collect::<Vec<_>>()
        };
        assert_eq!(ids(&ix, &h(1, "a"), &mut scratch), vec![0, 1, 2, 3]);
        assert_eq!(ix.remove(2).map(|s| s.0), Some(2));
        assert_eq!(ix.remove(2).map(|s| s.0), None);
        assert_eq!(ids(&ix, &h(2, "b"), &mut scratch), vec![1]);
        assert_eq!(ix.remove(1).map(|s| s.0), Some(1));
        assert_eq!(ix.remove(3).map(|s| s.0), Some(3));
        assert_eq!(ids(&ix, &h(1, "a"), &mut scratch), vec![0]);
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn many_nonmatching_subscribers_are_not_scanned() {
        let subs: Vec<Arc<S>> = (0..10_000)
            .map(|i| Arc::new(S(i, Filter::Types([i as u32 + 100].into()))))
            .collect();
        let ix = Index::build(subs);
        let mut scratch = Vec::new();
        assert_eq!(ix.candidates(&h(105, "x"), &mut scratch).len(), 1);
    }
}
