//! Filter analysis: how the dispatch index routes a filter.
//!
//! A filter's [`Route`] is a set of index keys (or the scan list) and a residual filter.
//! Soundness: every event the filter matches hits at least one key (an event of type `t`,
//! source `s`, correlation `c` and severity `v` hits `Type(t)`, `Source(s)`, `Pair(t, s)`,
//! `Correlation(c)` and every `Severity(m)` with `m <= v`). Exactness: an event that hits
//! a key matches the filter if and only if it passes the residual; no residual means no
//! evaluation at all.
//!
//! - leaves of type, source, correlation and minimum severity are keyed exactly;
//! - a disjunction is the union of its children's keys (of mixed kinds), exact when every
//!   child is; a child that must be scanned makes the whole disjunction scanned;
//! - a conjunction is keyed on its most selective keyed child (correlation > (type,
//!   source) > source > type > severity), or on the (type, source) cross product of a type
//!   child and a source child when it has at most [`PAIR_MAX`] keys; the children the keys
//!   imply drop out of the residual;
//! - `~x`, predicates and match-all alone are scanned.

use crate::model::kinds::Severity;
use crate::routing::filter::Filter;
use std::sync::Arc;

/// The largest (type, source) cross product a conjunction is keyed on.
pub const PAIR_MAX: usize = 16;

/// One key of the dispatch index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Correlation(Arc<str>),
    Pair(u32, Arc<str>),
    Source(Arc<str>),
    Type(u32),
    /// Events at least this severe.
    Severity(Severity),
}

impl Key {
    /// Selectivity rank of the key's kind (higher is more selective).
    fn rank(&self) -> u8 {
        match self {
            Key::Correlation(_) => 5,
            Key::Pair(..) => 4,
            Key::Source(_) => 3,
            Key::Type(_) => 2,
            Key::Severity(_) => 1,
        }
    }
}

/// How a filter is routed: `keys` (`None`: the scan list, every event is a candidate;
/// empty: no event ever is) and the residual evaluated on candidates (`None`: none, a
/// candidate is a match).
#[derive(Clone, Debug)]
pub struct Route<C> {
    pub keys: Option<Vec<Key>>,
    pub residual: Option<Filter<C>>,
}

/// A key set and whether hitting one of its keys implies the filter.
type Keyed = (Vec<Key>, bool);

fn rank(keys: &[Key]) -> u8 {
    keys.iter().map(Key::rank).min().unwrap_or(u8::MAX)
}

fn normalized(mut keys: Vec<Key>) -> Vec<Key> {
    keys.sort_unstable();
    keys.dedup();
    keys
}

impl<C: Clone> Filter<C> {
    /// How the dispatch index routes this filter (see the module documentation).
    pub fn route(&self) -> Route<C> {
        match self {
            Filter::All => Route {
                keys: None,
                residual: None,
            },
            Filter::And(fs) => match and_keys(fs) {
                Some((keys, implied)) => {
                    let mut rest: Vec<Filter<C>> = fs
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !implied.contains(i))
                        .map(|(_, f)| f.clone())
                        .collect();
                    let residual = match rest.len() {
                        0 => None,
                        1 => rest.pop(),
                        _ => Some(Filter::And(rest)),
                    };
                    Route {
                        keys: Some(keys),
                        residual,
                    }
                }
                None => Route {
                    keys: None,
                    residual: Some(self.clone()),
                },
            },
            other => match other.keyed() {
                Some((keys, exact)) => Route {
                    keys: Some(keys),
                    residual: (!exact).then(|| other.clone()),
                },
                None => Route {
                    keys: None,
                    residual: Some(other.clone()),
                },
            },
        }
    }

    fn keyed(&self) -> Option<Keyed> {
        match self {
            Filter::All | Filter::Not(_) | Filter::Custom(_) => None,
            Filter::Nothing => Some((Vec::new(), true)),
            Filter::Types(t) => Some((normalized(t.iter().map(|t| Key::Type(*t)).collect()), true)),
            Filter::Sources(s) => Some((
                normalized(s.iter().map(|s| Key::Source(s.clone())).collect()),
                true,
            )),
            Filter::MinSeverity(m) => Some((vec![Key::Severity(*m)], true)),
            Filter::Correlation(c) => Some((vec![Key::Correlation(c.clone())], true)),
            Filter::Or(fs) => {
                let mut keys = Vec::new();
                let mut exact = true;
                for f in fs {
                    let (k, e) = f.keyed()?;
                    keys.extend(k);
                    exact &= e;
                }
                Some((normalized(keys), exact))
            }
            Filter::And(fs) => {
                let (keys, implied) = and_keys(fs)?;
                Some((keys, implied.len() == fs.len()))
            }
        }
    }
}

/// The keys of a conjunction and the indices of the children they imply (match-all
/// children are always implied); `None` when no child is keyed.
fn and_keys<C: Clone>(fs: &[Filter<C>]) -> Option<(Vec<Key>, Vec<usize>)> {
    let keyed: Vec<(usize, Keyed)> = fs
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.keyed().map(|k| (i, k)))
        .collect();
    let mut best: Option<(Vec<Key>, Vec<usize>)> = None;
    let mut consider = |keys: Vec<Key>, implied: Vec<usize>| {
        let better = match &best {
            None => true,
            Some((b, _)) => {
                (rank(&keys), std::cmp::Reverse(keys.len())) > (rank(b), std::cmp::Reverse(b.len()))
            }
        };
        if better {
            best = Some((keys, implied));
        }
    };
    for (i, (keys, exact)) in &keyed {
        consider(keys.clone(), if *exact { vec![*i] } else { Vec::new() });
    }
    // (type, source) cross product of an exact type-only child and an exact source-only one.
    let only = |want: fn(&Key) -> bool| {
        keyed
            .iter()
            .filter(|(_, (k, exact))| *exact && !k.is_empty() && k.iter().all(want))
            .min_by_key(|(_, (k, _))| k.len())
    };
    if let (Some((ti, (tk, _))), Some((si, (sk, _)))) = (
        only(|k| matches!(k, Key::Type(_))),
        only(|k| matches!(k, Key::Source(_))),
    ) {
        if tk.len() * sk.len() <= PAIR_MAX {
            let mut pairs = Vec::with_capacity(tk.len() * sk.len());
            for t in tk {
                for s in sk {
                    if let (Key::Type(t), Key::Source(s)) = (t, s) {
                        pairs.push(Key::Pair(*t, s.clone()));
                    }
                }
            }
            consider(normalized(pairs), vec![*ti, *si]);
        }
    }
    let (keys, mut implied) = best?;
    implied.extend(
        fs.iter()
            .enumerate()
            .filter(|(_, f)| matches!(f, Filter::All))
            .map(|(i, _)| i),
    );
    Some((normalized(keys), implied))
}

#[cfg(test)]
mod tests {
    use super::*;

    type F = Filter<u8>;

    fn ty(t: &[u32]) -> F {
        Filter::Types(t.iter().copied().collect())
    }
    fn src(s: &[&str]) -> F {
        Filter::Sources(s.iter().map(|s| Arc::from(*s)).collect())
    }
    fn keys(f: &F) -> Option<Vec<Key>> {
        f.route().keys
    }
    fn residual(f: &F) -> Option<usize> {
        f.route().residual.map(|r| r.size())
    }

    #[test]
    fn leaves_are_keyed_exactly() {
        assert_eq!(keys(&ty(&[2, 1])), Some(vec![Key::Type(1), Key::Type(2)]));
        assert_eq!(residual(&ty(&[1])), None);
        assert_eq!(keys(&src(&["a"])), Some(vec![Key::Source("a".into())]));
        let sev = Filter::MinSeverity(Severity::Error);
        assert_eq!(keys(&sev), Some(vec![Key::Severity(Severity::Error)]));
        let c = Filter::Correlation("c".into());
        assert_eq!(keys(&c), Some(vec![Key::Correlation("c".into())]));
        assert_eq!(keys(&Filter::Nothing), Some(vec![]));
    }

    #[test]
    fn scanned_alone() {
        for f in [
            F::All,
            F::Custom(1),
            F::Not(Box::new(ty(&[1]))),
            F::Or(vec![ty(&[1]), F::Custom(1)]),
        ] {
            assert_eq!(keys(&f), None, "{f:?}");
        }
        assert_eq!(residual(&F::All), None);
        assert_eq!(residual(&F::Custom(1)), Some(1));
    }

    #[test]
    fn conjunction_takes_the_most_selective_term() {
        let f = F::And(vec![
            F::Not(Box::new(src(&["x"]))),
            ty(&[1]),
            F::MinSeverity(Severity::Warn),
        ]);
        assert_eq!(keys(&f), Some(vec![Key::Type(1)]));
        assert_eq!(residual(&f), Some(4)); // (~source) & severity
        let f = F::And(vec![ty(&[1]), Filter::Correlation("c".into()), src(&["a"])]);
        assert_eq!(keys(&f), Some(vec![Key::Correlation("c".into())]));
        let f = F::And(vec![src(&["a", "b"]), ty(&[1])]);
        assert_eq!(
            keys(&f),
            Some(vec![Key::Pair(1, "a".into()), Key::Pair(1, "b".into())])
        );
        assert_eq!(residual(&f), None);
        let many: Vec<u32> = (0..17).collect();
        let f = F::And(vec![src(&["a"]), ty(&many)]);
        assert_eq!(keys(&f), Some(vec![Key::Source("a".into())]));
        let f = F::And(vec![F::Custom(1), F::Not(Box::new(ty(&[1])))]);
        assert_eq!(keys(&f), None);
        assert_eq!(residual(&f), Some(4));
    }

    #[test]
    fn disjunction_unions_mixed_keys() {
        let f = F::Or(vec![
            ty(&[1]),
            src(&["x"]),
            F::And(vec![ty(&[2]), src(&["y"])]),
        ]);
        assert_eq!(
            keys(&f),
            Some(vec![
                Key::Pair(2, "y".into()),
                Key::Source("x".into()),
                Key::Type(1)
            ])
        );
        assert_eq!(residual(&f), None);
        let f = F::Or(vec![ty(&[1]), F::And(vec![ty(&[2]), F::Custom(0)])]);
        assert_eq!(keys(&f), Some(vec![Key::Type(1), Key::Type(2)]));
        assert_eq!(residual(&f), Some(f.size()));
    }
}
