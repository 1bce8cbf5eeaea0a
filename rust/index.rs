//! The dispatch index: subscriptions grouped by the event types (or sources) their
//! filters require, so dispatch cost grows with matching subscribers, not the total.
//! Immutable once built; the bus swaps in a new one on subscribe/unsubscribe
//! (copy-on-write), so publishers never hold a lock while calling handlers.

use crate::event::Header;
use crate::filter::Filter;
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
        let mut ix = Index {
            all: subs,
            ..Default::default()
        };
        for s in &ix.all {
            if let Some(types) = s.filter().required_types() {
                for t in types {
                    ix.by_type.entry(t).or_default().push(s.clone());
                }
            } else if let Some(srcs) = s.filter().required_sources() {
                for src in srcs {
                    ix.by_source.entry(src).or_default().push(s.clone());
                }
            } else {
                ix.scan.push(s.clone());
            }
        }
        ix
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
    use crate::kinds::Severity;

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
    fn many_nonmatching_subscribers_are_not_scanned() {
        let subs: Vec<Arc<S>> = (0..10_000)
            .map(|i| Arc::new(S(i, Filter::Types([i as u32 + 100].into()))))
            .collect();
        let ix = Index::build(subs);
        let mut scratch = Vec::new();
        assert_eq!(ix.candidates(&h(105, "x"), &mut scratch).len(), 1);
    }
}
