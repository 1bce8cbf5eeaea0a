//! Event filters as a tree evaluated in Rust. `Custom` leaves (Python predicates in the
//! PyO3 face) are the only nodes that need the caller's help to evaluate.

use crate::model::header::Header;
use crate::model::kinds::Severity;
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Filter<C> {
    /// Matches everything (AND of nothing).
    All,
    /// Matches nothing (OR of nothing).
    Nothing,
    Types(HashSet<u32>),
    Sources(HashSet<Arc<str>>),
    MinSeverity(Severity),
    Correlation(Arc<str>),
    And(Vec<Filter<C>>),
    Or(Vec<Filter<C>>),
    Not(Box<Filter<C>>),
    Custom(C),
}

impl<C> Filter<C> {
    /// Evaluates the tree; `custom` decides `Custom` leaves and may fail (the error stops
    /// evaluation and is returned).
    pub fn matches<E>(
        &self,
        h: &Header,
        custom: &mut dyn FnMut(&C) -> Result<bool, E>,
    ) -> Result<bool, E> {
        Ok(match self {
            Filter::All => true,
            Filter::Nothing => false,
            Filter::Types(t) => t.contains(&h.type_id),
            Filter::Sources(s) => s.contains(&h.source),
            Filter::MinSeverity(m) => h.severity >= *m,
            Filter::Correlation(c) => h.correlation_id == *c,
            Filter::And(fs) => {
                for f in fs {
                    if !f.matches(h, custom)? {
                        return Ok(false);
                    }
                }
                true
            }
            Filter::Or(fs) => {
                for f in fs {
                    if f.matches(h, custom)? {
                        return Ok(true);
                    }
                }
                false
            }
            Filter::Not(f) => !f.matches(h, custom)?,
            Filter::Custom(c) => custom(c)?,
        })
    }

    /// Number of nodes (for reprs and limits).
    pub fn size(&self) -> usize {
        match self {
            Filter::And(fs) | Filter::Or(fs) => 1 + fs.iter().map(Filter::size).sum::<usize>(),
            Filter::Not(f) => 1 + f.size(),
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(ty: u32, src: &str, sev: Severity, corr: &str) -> Header {
        Header {
            type_id: ty,
            source: Arc::from(src),
            severity: sev,
            event_id: 1,
            correlation_id: Arc::from(corr),
            caused_by: Arc::from("x"),
            parent_id: None,
            timestamp: 0.0,
            depth: 0,
        }
    }

    fn m(f: &Filter<()>, e: &Header) -> bool {
        f.matches::<()>(e, &mut |_| Ok(true)).unwrap()
    }

    #[test]
    fn leaves_and_combinators() {
        let e = h(1, "pf", Severity::Error, "c1");
        let ty: Filter<()> = Filter::Types([1, 2].into());
        let src: Filter<()> = Filter::Sources([Arc::from("other")].into());
        assert!(m(&ty, &e));
        assert!(!m(&src, &e));
        assert!(m(&Filter::MinSeverity(Severity::Warn), &e));
        assert!(!m(&Filter::MinSeverity(Severity::Fatal), &e));
        assert!(m(&Filter::Correlation(Arc::from("c1")), &e));
        assert!(!m(&Filter::And(vec![ty.clone(), src.clone()]), &e));
        assert!(m(&Filter::Or(vec![ty.clone(), src.clone()]), &e));
        assert!(m(&Filter::Not(Box::new(src)), &e));
        assert!(m(&Filter::And(vec![]), &e));
        assert!(!m(&Filter::Or(vec![]), &e));
    }

    #[test]
    fn custom_errors_propagate() {
        let f: Filter<u8> = Filter::And(vec![Filter::All, Filter::Custom(7)]);
        let e = h(1, "pf", Severity::Info, "c");
        assert_eq!(
            f.matches(&e, &mut |c| if *c == 7 { Err("boom") } else { Ok(true) }),
            Err("boom")
        );
    }
}
