//! The Python face of the subscription channel: buffer strategies and `Channel`.

use crate::args::{
    detach_interruptible, extract_timeout, optional_timeout, timeout_arg, type_err, value_err,
};
use crate::enums::{action_obj, extract_action, extract_event_type, extract_severity, state_obj};
use crate::errors::{ChannelClosed, PublishDeadlockError, PublishTimeoutError};
use crate::model::update::snapshot_obj;
use parking_lot::Mutex;
use pyo3::exceptions::{PyTimeoutError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracebus_core::delivery::channel::{
    BufferAction, Channel as Core, ChannelStats, RecvError, SelfBlock, SendError, Sent, Strategy,
    MAX_CAPACITY,
};
use tracebus_core::model::kinds::Severity;
use tracebus_core::state::store::StateChange;

/// `on_self_block` from a Python argument (None: drop).
fn extract_self_block(v: Option<&Bound<'_, PyAny>>) -> PyResult<SelfBlock> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(SelfBlock::Drop);
    };
    let s = v
        .cast::<pyo3::types::PyString>()
        .map_err(|_| type_err("on_self_block", "'drop', 'evict_oldest' or 'raise'", v))?;
    let s = s.to_str()?;
    SelfBlock::parse(s).ok_or_else(|| {
        value_err(
            "on_self_block",
            format!("must be one of {:?}, got {s:?}", SelfBlock::NAMES),
        )
    })
}

/// On overflow, apply one `BufferAction` to every item. Under BLOCK, `timeout` (seconds,
/// None = until there is room or the subscription is closed) bounds each wait: an item that
/// waits past it is dropped for that subscriber (counted in `dropped` and `timed_out`) and
/// the sender goes on. `on_self_block` says what a
/// block-action send does when it must not wait (the sender is the buffer's consumer, or
/// the consumer waits on the sender): "drop" (default), "evict_oldest" or "raise"
/// (`PublishDeadlockError`); counted in `stats()["overflowed"]`.
#[pyclass(frozen, module = "tracebus", name = "SimpleBufferStrategy")]
pub struct SimpleBufferStrategy {
    pub strategy: Strategy,
}

#[pymethods]
impl SimpleBufferStrategy {
    #[new]
    #[pyo3(signature = (action, *, timeout=None, on_self_block=None))]
    fn py_new(
        action: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
        on_self_block: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(SimpleBufferStrategy {
            strategy: Strategy::simple(extract_action("action", action)?)
                .with_timeout(optional_timeout("timeout", timeout)?)
                .with_on_self_block(extract_self_block(on_self_block)?),
        })
    }
    /// The longest wait of a BLOCK send in seconds (None = until room or close).
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.strategy.timeout.map(|t| t.as_secs_f64())
    }
    /// The action taken on overflow.
    #[getter]
    fn action(&self, py: Python<'_>) -> Py<PyAny> {
        action_obj(py, self.strategy.default_action)
    }
    /// What a block-action send that must not wait does: "drop", "evict_oldest" or "raise".
    #[getter]
    fn on_self_block(&self) -> &'static str {
        self.strategy.on_self_block.as_str()
    }
    fn __repr__(&self) -> String {
        format!(
            "SimpleBufferStrategy({:?}{}, on_self_block={:?})",
            self.strategy.default_action.as_str(),
            timeout_repr(&self.strategy),
            self.strategy.on_self_block.as_str()
        )
    }
}

/// Severity-aware overflow handling: evicts the least severe, oldest buffered item and never
/// an item more severe than the incoming one (the incoming one is dropped instead). `rules`
/// maps event types to actions that override `default_action` for items of that type.
/// `timeout` and `on_self_block` as for `SimpleBufferStrategy`.
#[pyclass(frozen, module = "tracebus", name = "PriorityBufferStrategy")]
pub struct PriorityBufferStrategy {
    pub strategy: Strategy,
}

#[pymethods]
impl PriorityBufferStrategy {
    #[new]
    #[pyo3(signature = (default_action=None, rules=None, *, timeout=None, on_self_block=None))]
    fn py_new(
        default_action: Option<&Bound<'_, PyAny>>,
        rules: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        on_self_block: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let default = match default_action {
            Some(a) if !a.is_none() => extract_action("default_action", a)?,
            _ => BufferAction::EvictOldest,
        };
        let mut map = HashMap::new();
        if let Some(r) = rules {
            if !r.is_none() {
                let d = r
                    .cast::<PyDict>()
                    .map_err(|_| type_err("rules", "a dict of event type -> BufferAction", r))?;
                for (k, v) in d.iter() {
                    map.insert(
                        extract_event_type("rules key", &k)?,
                        extract_action("rules value", &v)?,
                    );
                }
            }
        }
        Ok(PriorityBufferStrategy {
            strategy: Strategy::priority(default, map)
                .with_timeout(optional_timeout("timeout", timeout)?)
                .with_on_self_block(extract_self_block(on_self_block)?),
        })
    }
    /// The longest wait of a BLOCK send in seconds (None = until room or close).
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.strategy.timeout.map(|t| t.as_secs_f64())
    }
    /// The action taken on overflow when no rule applies.
    #[getter]
    fn default_action(&self, py: Python<'_>) -> Py<PyAny> {
        action_obj(py, self.strategy.default_action)
    }
    /// Per-event-type overrides.
    #[getter]
    fn rules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.strategy.rules {
            d.set_item(crate::enums::event_type_obj(py, *k), action_obj(py, *v))?;
        }
        Ok(d)
    }
    /// What a block-action send that must not wait does: "drop", "evict_oldest" or "raise".
    #[getter]
    fn on_self_block(&self) -> &'static str {
        self.strategy.on_self_block.as_str()
    }
    fn __repr__(&self) -> String {
        format!(
            "PriorityBufferStrategy({:?}, rules={}{}, on_self_block={:?})",
            self.strategy.default_action.as_str(),
            self.strategy.rules.len(),
            timeout_repr(&self.strategy),
            self.strategy.on_self_block.as_str()
        )
    }
}

fn timeout_repr(s: &Strategy) -> String {
    s.timeout
        .map(|t| format!(", timeout={}", t.as_secs_f64()))
        .unwrap_or_default()
}

/// Strategy from a Python argument; `None` gives `default`.
pub fn extract_strategy(v: Option<&Bound<'_, PyAny>>, default: BufferAction) -> PyResult<Strategy> {
    match v {
        None => Ok(Strategy::simple(default)),
        Some(v) if v.is_none() => Ok(Strategy::simple(default)),
        Some(v) => {
            if let Ok(s) = v.cast::<SimpleBufferStrategy>() {
                Ok(s.get().strategy.clone())
            } else if let Ok(s) = v.cast::<PriorityBufferStrategy>() {
                Ok(s.get().strategy.clone())
            } else if v.is_instance_of::<pyo3::types::PyString>() {
                Ok(Strategy::simple(extract_action("strategy", v)?))
            } else {
                Err(type_err(
                    "strategy",
                    "a SimpleBufferStrategy, a PriorityBufferStrategy, a BufferAction or None",
                    v,
                ))
            }
        }
    }
}

pub fn extract_capacity(
    param: &str,
    v: Option<&Bound<'_, PyAny>>,
    default: usize,
) -> PyResult<usize> {
    match v {
        Some(v) if !v.is_none() => {
            let n = crate::args::extract_uint(param, v, u64::MAX).map_err(|e| {
                if e.is_instance_of::<pyo3::exceptions::PyValueError>(v.py()) {
                    value_err(param, format!("must be between 1 and {MAX_CAPACITY}"))
                } else {
                    e
                }
            })?;
            if n == 0 || n > MAX_CAPACITY as u64 {
                return Err(value_err(
                    param,
                    format!("must be between 1 and {MAX_CAPACITY}, got {n}"),
                ));
            }
            Ok(n as usize)
        }
        _ => Ok(default),
    }
}

/// One change of the state store, as seen by a store subscriber.
#[pyclass(frozen, module = "tracebus", name = "StateChangeEvent")]
pub struct StateChangeEvent {
    change: StateChange,
    sequence: u64,
}

#[pymethods]
impl StateChangeEvent {
    /// The service's label.
    #[getter]
    fn label(&self) -> &str {
        &self.change.label
    }
    /// State before the change (`UNKNOWN` for a new service).
    #[getter]
    fn old_state(&self, py: Python<'_>) -> Py<PyAny> {
        state_obj(py, self.change.old_state)
    }
    /// State after the change (`UNKNOWN` when the service was cleared).
    #[getter]
    fn new_state(&self, py: Python<'_>) -> Py<PyAny> {
        state_obj(py, self.change.new_state)
    }
    /// The new snapshot, or None when the service was cleared.
    #[getter]
    fn snapshot(
        &self,
        py: Python<'_>,
    ) -> PyResult<Option<Py<crate::model::update::ServiceStateSnapshot>>> {
        self.change
            .snapshot
            .clone()
            .map(|s| snapshot_obj(py, s))
            .transpose()
    }
    /// True when this change is the service being cleared from the store.
    #[getter]
    fn cleared(&self) -> bool {
        self.change.snapshot.is_none()
    }
    /// Per-subscription sequence number (0, 1, 2, ...); a gap means changes were dropped or
    /// evicted from this subscription's buffer.
    #[getter]
    fn sequence(&self) -> u64 {
        self.sequence
    }
    fn __repr__(&self) -> String {
        format!(
            "StateChangeEvent(label={:?}, old_state={:?}, new_state={:?}, sequence={})",
            &*self.change.label,
            self.change.old_state.as_str(),
            self.change.new_state.as_str(),
            self.sequence
        )
    }
}

/// The two payloads a channel carries: Python objects (events, updates) or store changes.
pub enum Feed {
    Objects(Arc<Core<Py<PyAny>>>),
    Changes(Arc<Core<StateChange>>),
}

macro_rules! on_feed {
    ($feed:expr, $ch:ident => $body:expr) => {
        match $feed {
            Feed::Objects($ch) => $body,
            Feed::Changes($ch) => $body,
        }
    };
}

type CloseHook = Box<dyn FnOnce() + Send>;

/// A bounded subscription channel. Iterate it (blocking, GIL released), `recv`, `try_recv`,
/// `drain` many items in one call, or `async for` it. `close()` ends the subscription that
/// feeds it; buffered items remain receivable.
///
/// Created directly, it is a plain bounded queue you `send` to (e.g. as a reporter's
/// consumer).
#[pyclass(frozen, weakref, module = "tracebus", name = "Channel")]
pub struct Channel {
    pub feed: Feed,
    on_close: Mutex<Option<CloseHook>>,
}

impl Channel {
    pub fn objects(ch: Arc<Core<Py<PyAny>>>, on_close: Option<CloseHook>) -> Self {
        Channel {
            feed: Feed::Objects(ch),
            on_close: Mutex::new(on_close),
        }
    }
    pub fn changes(ch: Arc<Core<StateChange>>, on_close: Option<CloseHook>) -> Self {
        Channel {
            feed: Feed::Changes(ch),
            on_close: Mutex::new(on_close),
        }
    }

    fn convert(&self, py: Python<'_>, seq: u64, item: Item) -> PyResult<Py<PyAny>> {
        match item {
            Item::Obj(o) => Ok(o),
            Item::Change(c) => Ok(Py::new(
                py,
                StateChangeEvent {
                    change: c,
                    sequence: seq,
                },
            )?
            .into_any()),
        }
    }

    fn stats_core(&self) -> ChannelStats {
        on_feed!(&self.feed, ch => ch.stats())
    }

    /// Receives (waiting with the GIL released, interruptibly, unless `timeout` is zero).
    /// The outer error is an interrupt (KeyboardInterrupt).
    fn recv_core(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
    ) -> PyResult<Result<(u64, Item), RecvError>> {
        fn take<T: Send>(
            py: Python<'_>,
            ch: &Arc<Core<T>>,
            timeout: Option<Duration>,
        ) -> PyResult<Result<(u64, T), RecvError>> {
            match ch.try_recv() {
                Err(RecvError::Empty) if timeout != Some(Duration::ZERO) => {
                    let ch = ch.clone();
                    detach_interruptible(py, move |i| ch.recv_interruptible(timeout, i))
                }
                Err(RecvError::Empty) => Ok(Err(RecvError::Timeout)),
                r => Ok(r),
            }
        }
        Ok(match &self.feed {
            Feed::Objects(ch) => take(py, ch, timeout)?.map(|(s, o)| (s, Item::Obj(o))),
            Feed::Changes(ch) => take(py, ch, timeout)?.map(|(s, c)| (s, Item::Change(c))),
        })
    }

    pub fn close_core(&self) -> bool {
        let closed = on_feed!(&self.feed, ch => ch.close());
        // The hook unsubscribes, which may drop Python objects (a filter's predicate) and
        // so run Python: taken out first, run with no lock held.
        let hook = self.on_close.lock().take();
        if let Some(hook) = hook {
            hook();
        }
        closed
    }

    pub fn closed_core(&self) -> bool {
        on_feed!(&self.feed, ch => ch.is_closed())
    }

    pub fn set_on_close(&self, hook: CloseHook) {
        let old = self.on_close.lock().replace(hook);
        drop(old); // after the lock
    }
}

/// A subscription channel nobody holds any more closes and ends its subscription (else it
/// would keep receiving, count drops and, under the block action, stall every publish).
/// The hooks capture only `Weak` references; this runs with the GIL held (deallocation)
/// and no lock held while the hook runs.
impl Drop for Channel {
    fn drop(&mut self) {
        if let Some(hook) = self.on_close.get_mut().take() {
            on_feed!(&self.feed, ch => ch.close());
            hook();
        }
    }
}

enum Item {
    Obj(Py<PyAny>),
    Change(StateChange),
}

static ANEXT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn item_severity(
    item: &Bound<'_, PyAny>,
    severity: Option<&Bound<'_, PyAny>>,
) -> PyResult<(u8, u32)> {
    if let Some(s) = severity {
        if !s.is_none() {
            return Ok((extract_severity("severity", s)? as u8, u32::MAX));
        }
    }
    if let Ok(e) = item.cast::<crate::model::event::Event>() {
        let h = &e.get().header;
        return Ok((h.severity as u8, h.type_id));
    }
    if let Ok(u) = item.cast::<crate::model::update::ManagedServiceUpdate>() {
        let d = &u.get().data;
        return Ok((d.severity() as u8, d.state.event_type()));
    }
    Ok((Severity::Info as u8, u32::MAX))
}

#[pymethods]
impl Channel {
    /// A standalone channel of `capacity` items with `strategy` (default: drop).
    #[new]
    #[pyo3(signature = (capacity=None, strategy=None))]
    fn py_new(
        capacity: Option<&Bound<'_, PyAny>>,
        strategy: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let cap = extract_capacity("capacity", capacity, 1000)?;
        let strategy = extract_strategy(strategy, BufferAction::Drop)?;
        Ok(Channel::objects(Arc::new(Core::new(cap, strategy)), None))
    }

    /// `Channel[T]` in annotations (the item type is for type checkers only): a
    /// `types.GenericAlias`, as for built-in generic classes.
    #[classmethod]
    fn __class_getitem__<'py>(
        cls: &Bound<'py, pyo3::types::PyType>,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let alias = cls.py().import("types")?.getattr("GenericAlias")?;
        alias.call1((cls, item))
    }

    /// Sends an item. Its severity (for priority strategies) is the event's or update's own,
    /// or `severity`. Returns True if buffered, False if it (or nothing else) was dropped;
    /// an eviction still returns True. Under the block action it waits (GIL released) up to
    /// `timeout` seconds and raises `PublishTimeoutError` after; a closed channel raises
    /// `ChannelClosed`.
    #[pyo3(signature = (item, *, severity=None, timeout=None))]
    fn send(
        &self,
        py: Python<'_>,
        item: &Bound<'_, PyAny>,
        severity: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = timeout_arg)] timeout: Option<f64>,
    ) -> PyResult<bool> {
        let Feed::Objects(ch) = &self.feed else {
            return Err(PyTypeError::new_err(
                "this channel is fed by a StateStore; it cannot be sent to",
            ));
        };
        if item.is_none() {
            return Err(PyTypeError::new_err("item must not be None"));
        }
        let timeout = extract_timeout(timeout)?;
        let (sev, ty) = item_severity(item, severity)?;
        let obj = item.clone().unbind();
        let res = match ch.try_send(obj, sev, ty) {
            Err(SendError::WouldBlock(obj)) => {
                let ch = ch.clone();
                detach_interruptible(py, move |i| ch.send_interruptible(obj, sev, ty, timeout, i))?
            }
            r => r,
        };
        match res {
            Ok(s) => Ok(!matches!(s, Sent::Dropped(_))),
            Err(SendError::Timeout(_)) => Err(PublishTimeoutError::new_err(
                "channel stayed full for the whole timeout; the item was counted as dropped",
            )),
            Err(SendError::WouldDeadlock(_)) => Err(PublishDeadlockError::new_err(
                "channel is full and waiting for room would deadlock (this thread is its consumer, or its consumer waits on this thread); the item was counted as dropped",
            )),
            Err(_) => Err(ChannelClosed::new_err(
                "channel is closed; the item was counted as dropped",
            )),
        }
    }

    /// Waits for the next item (GIL released) for at most `timeout` seconds (None = forever).
    /// Raises `TimeoutError` on timeout and `ChannelClosed` once closed and empty.
    #[pyo3(signature = (timeout=None))]
    fn recv(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = timeout_arg)] timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let t = extract_timeout(timeout)?;
        match self.recv_core(py, t)? {
            Ok((s, i)) => self.convert(py, s, i),
            Err(RecvError::Closed) => Err(ChannelClosed::new_err("channel is closed and empty")),
            Err(_) => Err(PyTimeoutError::new_err(
                "no item arrived within the timeout",
            )),
        }
    }

    /// The next item if one is buffered, else None.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.recv_core(py, Some(Duration::ZERO))? {
            Ok((s, i)) => Ok(Some(self.convert(py, s, i)?)),
            Err(_) => Ok(None),
        }
    }

    /// Up to `max_items` buffered items (all if None) in one call; never waits.
    #[pyo3(signature = (max_items=None))]
    fn drain<'py>(
        &self,
        py: Python<'py>,
        max_items: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let max = match max_items {
            Some(m) if !m.is_none() => {
                crate::args::extract_uint("max_items", m, u64::MAX)? as usize
            }
            _ => usize::MAX,
        };
        match &self.feed {
            Feed::Objects(ch) => {
                let items = ch.drain(max);
                PyList::new(py, items.into_iter().map(|(_, o)| o))
            }
            Feed::Changes(ch) => {
                let items = ch.drain(max);
                let objs = items
                    .into_iter()
                    .map(|(s, c)| {
                        Py::new(
                            py,
                            StateChangeEvent {
                                change: c,
                                sequence: s,
                            },
                        )
                    })
                    .collect::<PyResult<Vec<_>>>()?;
                PyList::new(py, objs)
            }
        }
    }

    /// Closes the channel and ends the subscription feeding it. Idempotent.
    fn close(&self) {
        self.close_core();
    }

    /// Whether the channel is closed.
    #[getter]
    fn closed(&self) -> bool {
        on_feed!(&self.feed, ch => ch.is_closed())
    }

    /// Maximum number of buffered items.
    #[getter]
    fn capacity(&self) -> usize {
        on_feed!(&self.feed, ch => ch.capacity())
    }

    /// Counters: sent, delivered (taken by the consumer), dropped, evicted, blocked (sends
    /// that had to wait), overflowed (block-action sends that could not wait because the
    /// sender is the consumer or the consumer waits on the sender; each took the strategy's
    /// `on_self_block` action and is also counted as dropped or evicted), timed_out (block
    /// sends dropped after waiting past the strategy's `timeout`; also in dropped), buffered,
    /// capacity. Always `sent == delivered + dropped + evicted + buffered` and
    /// `buffered <= capacity`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.stats_core())
    }

    fn __len__(&self) -> usize {
        on_feed!(&self.feed, ch => ch.len())
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.recv_core(py, None)? {
            Ok((s, i)) => Ok(Some(self.convert(py, s, i)?)),
            Err(_) => Ok(None),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _a: &Bound<'_, PyAny>,
        _b: &Bound<'_, PyAny>,
        _c: &Bound<'_, PyAny>,
    ) -> bool {
        self.close_core();
        false
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let f = ANEXT.get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("tracebus._aio")?
                    .getattr("channel_anext")?
                    .unbind(),
            )
        })?;
        Ok(f.bind(py).call1((slf,))?.unbind())
    }

    /// Arms a one-shot wake-up: unless items are buffered (or the channel is closed), the
    /// next send calls `loop.call_soon_threadsafe(callback)`. Returns False when there is
    /// no need to wait. Used by the async iterator; not needed in normal use.
    fn _arm_wakeup(&self, event_loop: &Bound<'_, PyAny>, callback: &Bound<'_, PyAny>) -> bool {
        let lp = event_loop.clone().unbind();
        let cb = callback.clone().unbind();
        let waker: Box<dyn FnOnce() + Send> = Box::new(move || {
            Python::attach(|py| {
                // The loop may be closed already; nothing to wake then.
                let _ = lp
                    .bind(py)
                    .call_method1("call_soon_threadsafe", (cb.bind(py),));
            });
        });
        on_feed!(&self.feed, ch => ch.arm_waker(waker))
    }

    /// Reports buffered items to the GC, so an item referring back to its channel is
    /// collectable. Only this object reports them (the bus does not), so no reference is
    /// visited twice.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        match &self.feed {
            Feed::Objects(ch) => ch.try_for_each(|o| visit.call(o)),
            Feed::Changes(_) => Ok(()),
        }
    }

    fn __repr__(&self) -> String {
        let s = self.stats_core();
        format!(
            "Channel(capacity={}, buffered={}, closed={})",
            s.capacity,
            s.buffered,
            if s.closed { "True" } else { "False" }
        )
    }
}

pub fn stats_dict<'py>(py: Python<'py>, s: &ChannelStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("sent", s.sent)?;
    d.set_item("delivered", s.delivered)?;
    d.set_item("dropped", s.dropped)?;
    d.set_item("evicted", s.evicted)?;
    d.set_item("blocked", s.blocked)?;
    d.set_item("overflowed", s.overflowed)?;
    d.set_item("timed_out", s.timed_out)?;
    d.set_item("buffered", s.buffered)?;
    d.set_item("capacity", s.capacity)?;
    d.set_item("closed", s.closed)?;
    Ok(d)
}
