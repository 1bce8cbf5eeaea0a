//! Filters: Python handles over a Rust filter tree; `&`, `|`, `~` build bigger trees.

use crate::args::{extract_text, type_err, value_err, LABEL_MAX};
use crate::enums::{extract_event_type, extract_severity};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::collections::HashSet;
use std::sync::Arc;
use tracebus_core::routing::filter::Filter as Tree;
use tracebus_core::routing::route::Key;

/// A Python predicate leaf.
pub type Pred = Arc<Py<PyAny>>;
pub type PyTree = Tree<Pred>;

/// An event filter, evaluated in Rust (except `filter_by` predicates). Combine with `&`
/// (AND), `|` (OR) and `~` (NOT).
#[pyclass(frozen, module = "tracebus", name = "Filter")]
pub struct Filter {
    pub tree: PyTree,
}

pub fn extract_filter(param: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<PyTree> {
    match v {
        None => Ok(Tree::All),
        Some(v) if v.is_none() => Ok(Tree::All),
        Some(v) => v
            .cast::<Filter>()
            .map(|f| f.get().tree.clone())
            .map_err(|_| {
                type_err(
                    param,
                    "a tracebus Filter (from filter_by_type, filter_by_source, ...) or None",
                    v,
                )
            }),
    }
}

fn describe(t: &PyTree) -> String {
    match t {
        Tree::All => "all".into(),
        Tree::Nothing => "nothing".into(),
        Tree::Types(s) => {
            let mut v: Vec<_> = s
                .iter()
                .map(|i| tracebus_core::model::kinds::event_type_name(*i).to_string())
                .collect();
            v.sort();
            format!("type in {v:?}")
        }
        Tree::Sources(s) => {
            let mut v: Vec<_> = s.iter().map(|x| x.to_string()).collect();
            v.sort();
            format!("source in {v:?}")
        }
        Tree::MinSeverity(s) => format!("severity >= {}", s.as_str()),
        Tree::Correlation(c) => format!("correlation == {c:?}"),
        Tree::And(fs) => format!(
            "({})",
            fs.iter().map(describe).collect::<Vec<_>>().join(" & ")
        ),
        Tree::Or(fs) => format!(
            "({})",
            fs.iter().map(describe).collect::<Vec<_>>().join(" | ")
        ),
        Tree::Not(f) => format!("~{}", describe(f)),
        Tree::Custom(_) => "predicate".into(),
    }
}

fn describe_key(k: &Key) -> String {
    let ty = |t: &u32| tracebus_core::model::kinds::event_type_name(*t).to_string();
    match k {
        Key::Type(t) => format!("type {}", ty(t)),
        Key::Source(s) => format!("source {s}"),
        Key::Pair(t, s) => format!("({}, {s})", ty(t)),
        Key::Correlation(c) => format!("correlation {c}"),
        Key::Severity(m) => format!("severity >= {}", m.as_str()),
    }
}

fn and(parts: Vec<PyTree>) -> PyTree {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Tree::All => {}
            Tree::And(fs) => out.extend(fs),
            other => out.push(other),
        }
    }
    if out.len() == 1 {
        out.pop().unwrap_or(Tree::All)
    } else if out.is_empty() {
        Tree::All
    } else {
        Tree::And(out)
    }
}

fn or(parts: Vec<PyTree>) -> PyTree {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Tree::Nothing => {}
            Tree::Or(fs) => out.extend(fs),
            other => out.push(other),
        }
    }
    if out.len() == 1 {
        out.pop().unwrap_or(Tree::Nothing)
    } else if out.is_empty() {
        Tree::Nothing
    } else {
        Tree::Or(out)
    }
}

fn collect_filters(param: &str, filters: &Bound<'_, PyTuple>) -> PyResult<Vec<PyTree>> {
    filters
        .iter()
        .map(|f| extract_filter(param, Some(&f)))
        .collect()
}

#[pymethods]
impl Filter {
    fn __and__(&self, other: &Bound<'_, PyAny>) -> PyResult<Filter> {
        Ok(Filter {
            tree: and(vec![
                self.tree.clone(),
                extract_filter("other", Some(other))?,
            ]),
        })
    }
    fn __or__(&self, other: &Bound<'_, PyAny>) -> PyResult<Filter> {
        Ok(Filter {
            tree: or(vec![
                self.tree.clone(),
                extract_filter("other", Some(other))?,
            ]),
        })
    }
    fn __invert__(&self) -> Filter {
        Filter {
            tree: match &self.tree {
                Tree::Not(inner) => (**inner).clone(),
                t => Tree::Not(Box::new(t.clone())),
            },
        }
    }
    /// Whether `event` passes (predicates are called; their errors propagate).
    fn matches(&self, event: &Bound<'_, PyAny>) -> PyResult<bool> {
        let e = event
            .cast::<crate::model::event::Event>()
            .map_err(|_| type_err("event", "a tracebus Event", event))?;
        eval(&self.tree, event, &e.get().header)
    }
    /// True when the bus finds the filter's subscribers through its index (by event type,
    /// source, (type, source), correlation or minimum severity); False when they are on the
    /// scan list every event visits (`~x`, `filter_by(...)` or match-all alone). See
    /// `route`.
    #[getter]
    fn indexed(&self) -> bool {
        self.tree.route().keys.is_some()
    }
    /// How the bus routes the filter: its index keys (or `scan`) and the residual filter
    /// evaluated on the candidates the keys reach (`none`: no evaluation, a candidate is a
    /// match), e.g. `"key: (service.running, pf-0); residual: none"`.
    #[getter]
    fn route(&self) -> String {
        let r = self.tree.route();
        let keys = match &r.keys {
            None => "scan".to_string(),
            Some(k) if k.is_empty() => "keys: none (matches nothing)".to_string(),
            Some(k) => format!(
                "{}: {}",
                if k.len() == 1 { "key" } else { "keys" },
                k.iter().map(describe_key).collect::<Vec<_>>().join(", ")
            ),
        };
        let residual = r.residual.as_ref().map_or("none".into(), describe);
        format!("{keys}; residual: {residual}")
    }
    fn __repr__(&self) -> String {
        format!("Filter({})", describe(&self.tree))
    }
    /// The parts every passing event must have, for a query to choose rows by: a dict with
    /// `types` (names), `sources`, `min_severity` and `correlation_id`, each only when the
    /// filter requires it, and `exact`: True when those parts are the whole filter (an
    /// event having them passes, so a query choosing rows by all of them needs no check
    /// by the filter), False when the filter stays the exact check.
    #[getter]
    fn _pushdown<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let mut need = Pushdown {
            exact: true,
            ..Pushdown::default()
        };
        need.collect(&self.tree);
        let d = pyo3::types::PyDict::new(py);
        if let Some(types) = need.types {
            let mut names: Vec<String> = types
                .iter()
                .map(|i| tracebus_core::model::kinds::event_type_name(*i).to_string())
                .collect();
            names.sort();
            d.set_item("types", names)?;
        }
        if let Some(sources) = need.sources {
            let mut names: Vec<String> = sources.iter().map(|x| x.to_string()).collect();
            names.sort();
            d.set_item("sources", names)?;
        }
        if let Some(s) = need.min_severity {
            d.set_item("min_severity", s.as_str())?;
        }
        if let Some(c) = need.correlation {
            d.set_item("correlation_id", c)?;
        }
        d.set_item("exact", need.exact)?;
        Ok(d)
    }
}

/// What a filter requires of every event it passes (the conjuncts at its top), and
/// whether that is all it requires (`exact`: no other conjunct).
#[derive(Default)]
struct Pushdown {
    types: Option<HashSet<u32>>,
    sources: Option<HashSet<Arc<str>>>,
    min_severity: Option<tracebus_core::model::kinds::Severity>,
    correlation: Option<String>,
    exact: bool,
}

impl Pushdown {
    fn collect(&mut self, t: &PyTree) {
        match t {
            Tree::All => {}
            Tree::Types(s) => {
                let s: HashSet<u32> = s.iter().copied().collect();
                self.types = Some(match self.types.take() {
                    Some(have) => have.intersection(&s).copied().collect(),
                    None => s,
                });
            }
            Tree::Sources(s) => {
                self.sources = Some(match self.sources.take() {
                    Some(have) => have.intersection(s).cloned().collect(),
                    None => s.clone(),
                });
            }
            Tree::MinSeverity(s) => {
                self.min_severity = Some(self.min_severity.map_or(*s, |have| have.max(*s)));
            }
            Tree::Correlation(c) => match &self.correlation {
                None => self.correlation = Some(c.to_string()),
                // A second, different correlation: nothing passes, which the parts
                // cannot say; the filter stays the check.
                Some(have) if **have != **c => self.exact = false,
                Some(_) => {}
            },
            Tree::And(fs) => fs.iter().for_each(|f| self.collect(f)),
            _ => self.exact = false,
        }
    }
}

/// Evaluates a tree for a Python event; predicates are called with the event.
pub fn eval(
    tree: &PyTree,
    event: &Bound<'_, PyAny>,
    h: &tracebus_core::model::header::Header,
) -> PyResult<bool> {
    tree.matches(h, &mut |p: &Pred| {
        p.bind(event.py()).call1((event,))?.is_truthy()
    })
}

/// Events whose type is one of `types` (EventType members or registered names).
#[pyfunction]
#[pyo3(signature = (*types))]
pub fn filter_by_type(types: &Bound<'_, PyTuple>) -> PyResult<Filter> {
    if types.is_empty() {
        return Err(value_err(
            "types",
            "needs at least one event type (EventType member or registered name); \
             for a filter matching nothing use any_filter()",
        ));
    }
    let mut set = HashSet::new();
    for t in types.iter() {
        set.insert(extract_event_type("types", &t)?);
    }
    Ok(Filter {
        tree: Tree::Types(set),
    })
}

/// Events whose source is one of `sources`.
#[pyfunction]
#[pyo3(signature = (*sources))]
pub fn filter_by_source(sources: &Bound<'_, PyTuple>) -> PyResult<Filter> {
    if sources.is_empty() {
        return Err(value_err(
            "sources",
            "needs at least one source label; for a filter matching nothing use any_filter()",
        ));
    }
    let mut set = HashSet::new();
    for s in sources.iter() {
        set.insert(extract_text("sources", &s, LABEL_MAX)?);
    }
    Ok(Filter {
        tree: Tree::Sources(set),
    })
}

/// Events at least as severe as `minimum`.
#[pyfunction]
pub fn filter_by_severity(minimum: &Bound<'_, PyAny>) -> PyResult<Filter> {
    Ok(Filter {
        tree: Tree::MinSeverity(extract_severity("minimum", minimum)?),
    })
}

/// Events of one correlation (one operation's whole cascade).
#[pyfunction]
pub fn filter_by_correlation(correlation_id: &Bound<'_, PyAny>) -> PyResult<Filter> {
    Ok(Filter {
        tree: Tree::Correlation(extract_text("correlation_id", correlation_id, 200)?),
    })
}

/// Events for which `predicate(event)` is truthy. Slow path: a Python call per event and
/// no indexing; prefer the built-in filters, and combine (`filter_by_type(...) &
/// filter_by(p)`) so the predicate only sees indexed candidates. A predicate that raises
/// counts as a handler error of the subscription and the event is not delivered to it.
#[pyfunction]
pub fn filter_by(predicate: &Bound<'_, PyAny>) -> PyResult<Filter> {
    if !predicate.is_callable() {
        return Err(type_err(
            "predicate",
            "a callable taking an event and returning a bool",
            predicate,
        ));
    }
    Ok(Filter {
        tree: Tree::Custom(Arc::new(predicate.clone().unbind())),
    })
}

/// AND of the filters; with none, matches everything.
#[pyfunction]
#[pyo3(signature = (*filters))]
pub fn combine_filters(filters: &Bound<'_, PyTuple>) -> PyResult<Filter> {
    Ok(Filter {
        tree: and(collect_filters("filters", filters)?),
    })
}

/// OR of the filters; with none, matches nothing.
#[pyfunction]
#[pyo3(signature = (*filters))]
pub fn any_filter(filters: &Bound<'_, PyTuple>) -> PyResult<Filter> {
    Ok(Filter {
        tree: or(collect_filters("filters", filters)?),
    })
}

/// NOT of a filter.
#[pyfunction]
pub fn not_filter(filter: &Bound<'_, PyAny>) -> PyResult<Filter> {
    let t = extract_filter("filter", Some(filter))?;
    if filter.is_none() {
        return Err(value_err("filter", "must be a Filter, not None"));
    }
    Ok(Filter {
        tree: Tree::Not(Box::new(t)),
    })
}

/// Visits the predicates of a tree (for GC traversal).
pub fn visit_preds(t: &PyTree, f: &mut dyn FnMut(&Py<PyAny>)) {
    match t {
        Tree::And(fs) | Tree::Or(fs) => fs.iter().for_each(|x| visit_preds(x, f)),
        Tree::Not(x) => visit_preds(x, f),
        Tree::Custom(p) => f(p),
        _ => {}
    }
}
