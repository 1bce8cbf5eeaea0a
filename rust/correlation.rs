//! Correlation propagation. Two sources feed a new event or update:
//! - the `correlation(...)` scope, a `ContextVar` holding a `CorrelationContext` (follows
//!   threads and asyncio tasks that copy the context);
//! - the event being delivered on this thread (a Rust thread-local stack, a few ns per
//!   handler call), so events published inside handlers join the cascade automatically.
//!
//! When both exist, the newer one wins: a scope opened inside a handler applies to what the
//! handler creates within it. Every context carries a generation from a global counter, and a
//! delivery records the counter's value when it starts.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tracebus_core::model::header::Header;
use tracebus_core::model::ids;
use tracebus_core::model::kinds;

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Reads the routing header of an object if it is an event: `f` applied to it, or None.
pub type EventHeaderReader = fn(&Bound<'_, PyAny>, fn(&Header) -> Inherited) -> Option<Inherited>;

/// Set once at module init (`lib.rs`) to `model::event::with_header`: the correlation room
/// sits below the model, so it learns how to read an `Event` instead of naming the class.
static EVENT_HEADER: OnceLock<EventHeaderReader> = OnceLock::new();

/// Registers how to read an event's header (see `EVENT_HEADER`); later calls are ignored.
pub fn set_event_header_reader(read: EventHeaderReader) {
    let _ = EVENT_HEADER.set(read);
}
static VAR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

struct Delivering {
    /// The header of the event being delivered. It outlives the guard: the dispatcher
    /// holds a reference to the event for the whole handler call.
    header: *const Header,
    generation: u64,
}

thread_local! {
    static CURRENT: RefCell<Vec<Delivering>> = const { RefCell::new(Vec::new()) };
}

/// Marks an event as being delivered on this thread until dropped.
pub struct DeliveryGuard<'a>(std::marker::PhantomData<&'a Header>);

impl<'a> DeliveryGuard<'a> {
    pub fn enter(header: &'a Header) -> Self {
        CURRENT.with(|c| {
            c.borrow_mut().push(Delivering {
                header,
                generation: GENERATION.load(Ordering::Relaxed),
            })
        });
        DeliveryGuard(std::marker::PhantomData)
    }
}

impl Drop for DeliveryGuard<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| {
            c.borrow_mut().pop();
        });
    }
}

/// True while a sync or thread-mode handler runs on this thread (used by the batcher: a
/// handler's thread must never wait for the batch thread, which may be waiting on it).
pub fn delivering() -> bool {
    CURRENT.with(|c| !c.borrow().is_empty())
}

/// True while an async handler runs in this context (the pump puts the event it delivers
/// in the correlation variable).
pub fn delivering_async(py: Python<'_>) -> PyResult<bool> {
    Ok(matches!(current_context(py)?, Some((0, _))))
}

/// The correlation scope: id shared by an operation's cascade, what caused it, and the
/// event id of its direct parent (if any).
#[pyclass(frozen, module = "tracebus", name = "CorrelationContext")]
pub struct CorrelationContext {
    pub correlation_id: Arc<str>,
    /// None when neither the scope nor what it joined named a cause: what is created
    /// inside then keeps its own default cause (`health_check`, `user_action`, ...).
    pub caused_by: Option<Arc<str>>,
    pub parent_id: Option<Arc<str>>,
    generation: u64,
    /// Cascade depth of events created in this scope.
    depth: u32,
}

#[pymethods]
impl CorrelationContext {
    /// A context; without `correlation_id` it joins the current one (enclosing scope or the
    /// event being handled) or starts a new one.
    #[new]
    #[pyo3(signature = (caused_by = None, correlation_id = None, parent_id = None))]
    fn py_new(
        py: Python<'_>,
        caused_by: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        parent_id: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let caused_by = match caused_by {
            Some(c) if !c.is_none() => Some(crate::args::extract_text("caused_by", c, 200)?),
            _ => None,
        };
        let explicit_corr = match correlation_id {
            Some(c) if !c.is_none() => Some(crate::args::extract_text("correlation_id", c, 200)?),
            _ => None,
        };
        let explicit_parent = match parent_id {
            Some(c) if !c.is_none() => Some(crate::args::extract_text("parent_id", c, 200)?),
            _ => None,
        };
        let inh = inherit(py)?;
        let (corr, parent) = match explicit_corr {
            Some(c) => (c, explicit_parent),
            None => (inh.correlation_id, explicit_parent.or(inh.parent_id)),
        };
        Ok(CorrelationContext {
            correlation_id: corr,
            caused_by: caused_by.or(inh.caused_by),
            parent_id: parent,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed) + 1,
            depth: inh.depth,
        })
    }

    /// The correlation id shared by the whole cascade.
    #[getter]
    fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// What started this operation.
    #[getter]
    fn caused_by(&self) -> &str {
        self.caused_by.as_deref().unwrap_or("unknown")
    }

    /// Event id of the direct parent, if any.
    #[getter]
    fn parent_id(&self) -> Option<&str> {
        self.parent_id.as_deref()
    }

    fn __repr__(&self) -> String {
        format!(
            "CorrelationContext(correlation_id={:?}, caused_by={:?}, parent_id={})",
            &*self.correlation_id,
            self.caused_by(),
            self.parent_id
                .as_deref()
                .map_or_else(|| "None".to_string(), |p| format!("{p:?}"))
        )
    }
}

/// What a new event or update inherits.
pub struct Inherited {
    pub correlation_id: Arc<str>,
    pub parent_id: Option<Arc<str>>,
    pub caused_by: Option<Arc<str>>,
    pub depth: u32,
}

fn var(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    VAR.get_or_try_init(py, || {
        let cv = py.import("contextvars")?.getattr("ContextVar")?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("default", py.None())?;
        Ok::<_, PyErr>(cv.call(("tracebus_correlation",), Some(&kwargs))?.unbind())
    })
}

/// The ContextVar behind `correlation(...)`.
#[pyfunction]
pub fn _correlation_var(py: Python<'_>) -> PyResult<Py<PyAny>> {
    Ok(var(py)?.clone_ref(py))
}

fn from_header(h: &Header) -> Inherited {
    Inherited {
        correlation_id: h.correlation_id.clone(),
        parent_id: Some(Arc::from(ids::format_event_id(h.event_id))),
        caused_by: Some(kinds::event_type_name(h.type_id)),
        depth: h.depth.saturating_add(1),
    }
}

/// The context variable's value as (generation, inherited fields). The variable holds a
/// `CorrelationContext` (a `correlation(...)` scope) or, during async delivery, the `Event`
/// being handled (generation 0: any delivery started on this thread since is newer).
fn current_context(py: Python<'_>) -> PyResult<Option<(u64, Inherited)>> {
    let v = var(py)?.bind(py);
    let mut out: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
    // SAFETY: `v` is a ContextVar (created above); PyContextVar_Get returns a new reference
    // (or NULL with the default NULL when unset) in `out`.
    let rc = unsafe { pyo3::ffi::PyContextVar_Get(v.as_ptr(), std::ptr::null_mut(), &mut out) };
    if rc < 0 {
        return Err(PyErr::fetch(py));
    }
    if out.is_null() {
        return Ok(None);
    }
    // SAFETY: `out` is a new, non-null reference.
    let obj = unsafe { Bound::from_owned_ptr(py, out) };
    if let Ok(c) = obj.cast::<CorrelationContext>() {
        let c = c.get();
        return Ok(Some((
            c.generation,
            Inherited {
                correlation_id: c.correlation_id.clone(),
                parent_id: c.parent_id.clone(),
                caused_by: c.caused_by.clone(),
                depth: c.depth,
            },
        )));
    }
    // Not a scope: maybe the `Event` the async pump is delivering (read through the hook
    // `model::event` registers, so this room does not depend on the event classes).
    Ok(EVENT_HEADER
        .get()
        .and_then(|read| read(&obj, from_header))
        .map(|i| (0, i)))
}

/// `f` applied to the event being delivered on this thread, with its generation.
fn delivering_with<T>(f: impl FnOnce(&Header) -> T) -> Option<(u64, T)> {
    CURRENT.with(|c| {
        c.borrow().last().map(|d| {
            // SAFETY: the guard that pushed this entry borrows the header and pops the entry
            // before the borrow ends, so the pointer is live while it is on the stack.
            (d.generation, f(unsafe { &*d.header }))
        })
    })
}

/// The newer of the context value and the delivery slot (see the module docs).
fn newer<T>(ctx: Option<(u64, T)>, delivery: Option<(u64, T)>) -> Option<T> {
    match (ctx, delivery) {
        (Some((g, c)), Some((dg, _))) if g > dg => Some(c),
        (_, Some((_, d))) => Some(d),
        (c, None) => c.map(|(_, c)| c),
    }
}

/// Correlation inherited by something created now on this thread.
pub fn inherit(py: Python<'_>) -> PyResult<Inherited> {
    let ctx = current_context(py)?;
    Ok(
        newer(ctx, delivering_with(from_header)).unwrap_or_else(|| Inherited {
            correlation_id: ids::new_correlation_arc(),
            parent_id: None,
            caused_by: None,
            depth: 0,
        }),
    )
}

/// Cascade depth of something created now on this thread (as `inherit(py)?.depth`,
/// without building ids).
pub fn current_depth(py: Python<'_>) -> PyResult<u32> {
    let ctx = current_context(py)?.map(|(g, i)| (g, i.depth));
    Ok(newer(ctx, delivering_with(|h| h.depth.saturating_add(1))).unwrap_or(0))
}

/// Resolved correlation fields of a new event or update.
pub struct Resolved {
    pub correlation_id: Arc<str>,
    pub caused_by: Arc<str>,
    pub parent_id: Option<Arc<str>>,
    /// Cascade depth, always from the context (explicit ids do not reset it).
    pub depth: u32,
}

/// Resolves the correlation fields of a new event/update: explicit arguments win, then the
/// inherited ones, then `default_cause`.
pub fn resolve(
    py: Python<'_>,
    correlation_id: Option<&Bound<'_, PyAny>>,
    caused_by: Option<&Bound<'_, PyAny>>,
    parent_id: Option<&Bound<'_, PyAny>>,
    default_cause: &str,
) -> PyResult<Resolved> {
    let opt = |name: &str, v: Option<&Bound<'_, PyAny>>| -> PyResult<Option<Arc<str>>> {
        match v {
            Some(v) if !v.is_none() => Ok(Some(crate::args::extract_text(name, v, 200)?)),
            _ => Ok(None),
        }
    };
    let corr = opt("correlation_id", correlation_id)?;
    let cause = opt("caused_by", caused_by)?;
    let parent = opt("parent_id", parent_id)?;
    let inh = inherit(py)?;
    let explicit_corr = corr.is_some();
    let corr = corr.unwrap_or(inh.correlation_id);
    let parent = if explicit_corr {
        parent
    } else {
        parent.or(inh.parent_id)
    };
    let cause = cause
        .or(inh.caused_by)
        .unwrap_or_else(|| crate::args::shared_str(default_cause));
    Ok(Resolved {
        correlation_id: corr,
        caused_by: cause,
        parent_id: parent,
        depth: inh.depth,
    })
}

/// A new correlation id: `corr_` + 16 hex characters.
#[pyfunction]
pub fn new_correlation_id() -> String {
    ids::new_correlation_id()
}

/// A new event id: `evt_` + 16 hex characters.
#[pyfunction]
pub fn new_event_id() -> String {
    ids::format_event_id(ids::next_id())
}
