//! The event bus: subscription index, dispatch, delivery modes, metrics and history.
//!
//! Publishing takes the index buckets that apply to the event (an `Arc` clone per bucket,
//! see `tracebus_core::routing::index`; the index sits in a `GilCell`, the module declares
//! `gil_used = true`), then calls handlers: handlers may publish, subscribe and unsubscribe
//! freely (a change copies only the buckets it touches that a publish holds). Sync
//! handlers run in the publisher's thread in subscription order;
//! thread-mode handlers get a Rust worker thread fed by a bounded channel; async handlers
//! are fed by a channel drained by one task on their loop (see `tracebus/_aio.py`).

use crate::args::{extract_timeout, seconds_arg, timeout_arg, type_err, value_err};
use crate::channel::{extract_capacity, extract_strategy, stats_dict, Channel};
use crate::correlation::DeliveryGuard;
use crate::errors::{BusClosedError, PublishDeadlockError, PublishDepthError, PublishTimeoutError};
use crate::filter::{eval, extract_filter, visit_preds, PyTree};
use crate::model::event::Event;
use parking_lot::Mutex;
use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::{PyTraverseError, PyVisit};
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tracebus_core::delivery::channel::{
    BufferAction, Channel as Core, SendError, Sent, WAIT_SLICE,
};
use tracebus_core::metrics::LatencyHistogram;
use tracebus_core::model::header::Header;
use tracebus_core::model::kinds::{self, MAX_EVENT_TYPES};
use tracebus_core::routing::index::{Index, Indexed};
use tracebus_core::routing::route::{Key, Route};

mod cells;
mod publish;
mod subscription;
mod worker;

use publish::Outcome;

pub use cells::{GilCell, GilCounter};
pub use subscription::{Mode, Subscription};

/// Handler calls between two latency samples (per thread).
/// Handler calls between two latency samples (per subscription), after the first
/// `SAMPLE_WARMUP` calls, which are all timed so that a quiet bus still has figures. Two clock
/// reads cost ~60 ns on this VM; one sample in 128 keeps that under 1 ns a call.
const SAMPLE_EVERY: u64 = 128;
const SAMPLE_WARMUP: u64 = 64;
const WORKER_BATCH: usize = 256;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Puts the thread's publish depth back to its value before a publish, even on unwind.
struct DepthRestore(u32);

impl Drop for DepthRestore {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(self.0));
    }
}

pub struct Sub {
    seq: u64,
    id: String,
    filter: PyTree,
    /// How the index routes `filter`; its residual is what dispatch still evaluates.
    route: Route<crate::filter::Pred>,
    mode: Mode,
    handler: Option<Py<PyAny>>,
    channel: Option<Arc<Core<Py<PyAny>>>>,
    active: AtomicBool,
    delivered: GilCounter,
    errors: AtomicU64,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The fork generation the subscription was made in (see `crate::fork`).
    generation: u64,
    /// The loop an async subscription's pump runs on (set when the pump first waits).
    event_loop: pyo3::sync::PyOnceLock<Py<PyAny>>,
}

impl Sub {
    /// Whether this is an async subscription whose loop is closed (nobody will drain it).
    fn loop_closed(&self, py: Python<'_>) -> bool {
        self.event_loop.get(py).is_some_and(|lp| {
            lp.bind(py)
                .call_method0("is_closed")
                .and_then(|r| r.is_truthy())
                .unwrap_or(false)
        })
    }
}

impl Indexed for Sub {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn keys(&self) -> Option<&[Key]> {
        self.route.keys.as_deref()
    }
}

pub struct BusInner {
    /// Only locked briefly, never across a Python call (nothing in it runs Python code when
    /// changed or dropped in place: removed subscriptions are returned to the caller).
    index: GilCell<Index<Sub>>,
    closed: AtomicBool,
    next_seq: AtomicU64,
    published: GilCounter,
    delivered: GilCounter,
    dropped: AtomicU64,
    evicted: AtomicU64,
    errors: AtomicU64,
    per_type: Box<[GilCounter]>,
    latency: LatencyHistogram,
    history: GilCell<VecDeque<Py<PyAny>>>,
    history_size: usize,
    on_error: Mutex<Option<Py<PyAny>>>,
    max_depth: u32,
    panic_next: AtomicBool,
    /// The fork generation the bus was made in (see `crate::fork`).
    generation: u64,
    /// Events buffered for a thread-mode handler that never reached it because the
    /// interpreter was exiting (see `_close_all_buses`).
    lost: AtomicU64,
    /// Thread-mode subscriptions a `close` has not yet seen stop.
    workers: Mutex<Vec<Arc<Sub>>>,
}

/// Every bus created, so that `_close_all_buses` (registered with `atexit` by
/// `tracebus.bus`) can stop their handler threads before the interpreter finalizes.
static LIVE: Mutex<Vec<Weak<BusInner>>> = Mutex::new(Vec::new());

/// Set by `_close_all_buses` once its delivery budget ran out: handler threads then stop
/// after the handler call in progress and count what they still hold as lost.
static EXITING: AtomicBool = AtomicBool::new(false);

impl BusInner {
    /// Closes the bus (if not yet closed): the index empties, channels close (buffered
    /// events stay deliverable), blocked publishers wake. Then waits, GIL released and
    /// interruptibly (Ctrl-C), until `deadline` (None: no limit) for the handler threads to
    /// finish; returns whether they all did. Threads still running keep their handles (a
    /// later call waits for them again).
    fn close_and_join(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<bool> {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let old = self.index.with(py, std::mem::take);
            let subs: Vec<Arc<Sub>> = old.all().cloned().collect();
            drop(old);
            for s in &subs {
                s.active.store(false, Ordering::Release);
                if let Some(ch) = &s.channel {
                    ch.close();
                }
            }
            self.workers
                .lock()
                .extend(subs.into_iter().filter(|s| s.mode == Mode::Thread));
        }
        let subs: Vec<Arc<Sub>> = self.workers.lock().clone();
        let me = std::thread::current().id();
        let done = crate::args::detach_interruptible(py, move |interrupted| {
            let mut all = true;
            let mut asked = Instant::now();
            for s in &subs {
                let running = |w: &Option<std::thread::JoinHandle<()>>| {
                    w.as_ref().is_some_and(|h| !h.is_finished())
                };
                let mut w = s.worker.lock();
                if w.as_ref().is_some_and(|h| h.thread().id() == me) {
                    continue; // closed from its own handler: it ends after returning
                }
                while running(&w) && deadline.is_none_or(|d| Instant::now() < d) {
                    let stop = parking_lot::MutexGuard::unlocked(&mut w, || {
                        std::thread::sleep(Duration::from_millis(1));
                        asked.elapsed() >= WAIT_SLICE && {
                            asked = Instant::now();
                            interrupted()
                        }
                    });
                    if stop {
                        return false;
                    }
                }
                match w.take() {
                    Some(h) if h.is_finished() => {
                        let _ = h.join();
                    }
                    Some(h) => {
                        *w = Some(h);
                        all = false;
                    }
                    None => {}
                }
            }
            all
        })?;
        if done {
            self.workers.lock().clear();
        }
        Ok(done)
    }
}

/// Closes every live bus and waits for their handler threads: first for up to `timeout`
/// seconds while they deliver what is buffered, then (the budget spent) tells them to stop
/// after the handler call in progress, counting what they still hold in `events_lost`, and
/// waits up to one more second. Registered with `atexit` by `tracebus.bus`: the threads
/// must be gone before the interpreter finalizes (a thread that touches Python after that
/// aborts the process). Returns whether every thread stopped.
#[pyfunction]
#[pyo3(signature = (timeout=2.0))]
pub fn _close_all_buses(
    py: Python<'_>,
    #[pyo3(from_py_with = seconds_arg)] timeout: f64,
) -> PyResult<bool> {
    let buses: Vec<Arc<BusInner>> = LIVE.lock().iter().filter_map(Weak::upgrade).collect();
    let deadline = extract_timeout(Some(timeout))?.and_then(|t| Instant::now().checked_add(t));
    let mut all = true;
    for b in &buses {
        all &= b.close_and_join(py, deadline)?;
    }
    if !all {
        EXITING.store(true, Ordering::Release);
        let deadline = Instant::now().checked_add(Duration::from_secs(1));
        all = true;
        for b in &buses {
            all &= b.close_and_join(py, deadline)?;
        }
    }
    Ok(all)
}

impl Drop for BusInner {
    fn drop(&mut self) {
        for s in self.index.get_mut().all() {
            // Ended: a surviving Subscription now reports its handler to the GC, so a
            // handler that holds its own Subscription is collectable.
            s.active.store(false, Ordering::Release);
            if let Some(ch) = &s.channel {
                ch.close();
            }
        }
    }
}

#[pyclass(frozen, subclass, module = "tracebus", name = "EventBus")]
pub struct EventBus {
    pub inner: Arc<BusInner>,
}

impl EventBus {
    /// Active subscriptions and the events buffered in their channels.
    fn buffered(&self, py: Python<'_>) -> (usize, usize) {
        self.inner.index.with(py, |ix| {
            let buffered = ix
                .all()
                .filter_map(|s| s.channel.as_ref())
                .map(|c| c.len())
                .sum();
            (ix.len(), buffered)
        })
    }

    /// Makes the next publish panic inside Rust (the test hook `_testing.inject_panic`).
    pub fn arm_panic(&self) {
        self.inner.panic_next.store(true, Ordering::Relaxed);
    }
}

/// `from_py_with` extractors for `history`, so wrong types name the parameter.
fn correlation_arg(v: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if v.is_none() {
        return Ok(None);
    }
    v.cast::<pyo3::types::PyString>()
        .map_err(|_| type_err("correlation_id", "a str or None", v))
        .and_then(|s| {
            s.to_str()
                .map(|s| Some(s.to_owned()))
                .map_err(|_| value_err("correlation_id", "must be valid Unicode text"))
        })
}

fn limit_arg(v: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    if v.is_none() {
        return Ok(None);
    }
    Ok(Some(
        crate::args::extract_uint("limit", v, u64::MAX)? as usize
    ))
}

#[pymethods]
impl EventBus {
    /// An event bus. `history_size` events are kept for `trace`/`history` (0 disables);
    /// `max_depth` bounds handlers publishing from handlers: both the nesting of publish
    /// calls on one thread and the cascade depth of events (`Event.depth`, carried across
    /// handler threads and async handlers); `on_error(exc, event,
    /// subscription)` receives handler errors (the Python `EventBus` logs them by default).
    #[new]
    #[pyo3(signature = (*, history_size=None, max_depth=None, on_error=None))]
    fn py_new(
        history_size: Option<&Bound<'_, PyAny>>,
        max_depth: Option<&Bound<'_, PyAny>>,
        on_error: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let history_size =
            crate::args::uint_or("history_size", history_size, 10_000, 10_000_000)? as usize;
        let max_depth = crate::args::uint_or("max_depth", max_depth, 64, 10_000)? as u32;
        if max_depth == 0 {
            return Err(value_err("max_depth", "must be at least 1"));
        }
        let on_error = match on_error {
            Some(h) if !h.is_none() => {
                if !h.is_callable() {
                    return Err(type_err(
                        "on_error",
                        "a callable (exc, event, subscription) or None",
                        h,
                    ));
                }
                Some(h.clone().unbind())
            }
            _ => None,
        };
        let bus = EventBus {
            inner: Arc::new(BusInner {
                index: GilCell::new(Index::default()),
                closed: AtomicBool::new(false),
                next_seq: AtomicU64::new(0),
                published: GilCounter::default(),
                delivered: GilCounter::default(),
                dropped: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                per_type: (0..MAX_EVENT_TYPES)
                    .map(|_| GilCounter::default())
                    .collect(),
                latency: LatencyHistogram::new(),
                history: GilCell::new(VecDeque::new()),
                history_size,
                on_error: Mutex::new(on_error),
                max_depth,
                panic_next: AtomicBool::new(false),
                generation: crate::fork::generation(),
                lost: AtomicU64::new(0),
                workers: Mutex::new(Vec::new()),
            }),
        };
        let mut live = LIVE.lock();
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&bus.inner));
        drop(live);
        Ok(bus)
    }

    /// Publishes one event to every matching subscription. Returns the number of
    /// subscriptions it was delivered to synchronously (handler returned, or buffered in a
    /// channel subscription). Under block strategies it waits (GIL released) for at most
    /// `timeout` seconds per full subscriber and then raises `PublishTimeoutError` (after
    /// delivering to everyone else).
    #[pyo3(signature = (event, *, timeout=None))]
    fn publish(
        &self,
        py: Python<'_>,
        event: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = timeout_arg)] timeout: Option<f64>,
    ) -> PyResult<u64> {
        let t = extract_timeout(timeout)?;
        let o = self.publish_checked(py, event, t)?;
        match o.error("the event was") {
            Some(e) => Err(e),
            None => Ok(o.deliveries),
        }
    }

    /// Publishes events in order (all are checked to be events first). Returns the total
    /// number of deliveries.
    #[pyo3(signature = (events, *, timeout=None))]
    fn publish_many(
        &self,
        py: Python<'_>,
        events: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = timeout_arg)] timeout: Option<f64>,
    ) -> PyResult<u64> {
        let t = extract_timeout(timeout)?;
        let items: Vec<Bound<'_, PyAny>> = match events.cast::<PyList>() {
            Ok(l) => l.iter().collect(),
            Err(_) => events
                .try_iter()
                .map_err(|_| type_err("events", "an iterable of events", events))?
                .collect::<PyResult<_>>()?,
        };
        for (i, e) in items.iter().enumerate() {
            if e.cast::<Event>().is_err() {
                return Err(type_err(&format!("events[{i}]"), "a tracebus Event", e));
            }
        }
        let mut all = Outcome {
            deliveries: 0,
            timed_out: false,
            deadlocked: false,
        };
        for e in &items {
            let o = self.publish_checked(py, e, t)?;
            all.deliveries += o.deliveries;
            all.timed_out |= o.timed_out;
            all.deadlocked |= o.deadlocked;
        }
        match all.error("events were") {
            Some(e) => Err(e),
            None => Ok(all.deliveries),
        }
    }

    /// Low-level subscribe used by the Python `EventBus.subscribe`: `mode` is `sync`,
    /// `thread` or `async` (the caller runs the async pump). The bus holds the handler
    /// strongly until the subscription is removed (kept `Subscription` or not).
    #[pyo3(signature = (filter, handler, mode, buffer_size=None, strategy=None))]
    fn _subscribe(
        &self,
        filter: Option<&Bound<'_, PyAny>>,
        handler: &Bound<'_, PyAny>,
        mode: &str,
        buffer_size: Option<&Bound<'_, PyAny>>,
        strategy: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Subscription> {
        let tree = extract_filter("filter", filter)?;
        if !handler.is_callable() {
            return Err(type_err("handler", "a callable taking one event", handler));
        }
        let mode = match mode {
            "sync" => Mode::Sync,
            "thread" => Mode::Thread,
            "async" => Mode::Async,
            other => {
                return Err(value_err(
                    "mode",
                    format!("must be 'sync', 'thread' or 'async', got {other:?}"),
                ))
            }
        };
        let channel = if mode == Mode::Sync {
            if buffer_size.is_some_and(|b| !b.is_none()) || strategy.is_some_and(|s| !s.is_none()) {
                return Err(value_err(
                    "buffer_size",
                    "and strategy apply only to mode='thread' or async handlers",
                ));
            }
            None
        } else {
            let cap = extract_capacity("buffer_size", buffer_size, 1000)?;
            Some(Arc::new(Core::new(
                cap,
                extract_strategy(strategy, BufferAction::Block)?,
            )))
        };
        let sub = self.add(tree, mode, Some(handler.clone().unbind()), channel)?;
        if let (Mode::Async, Some(ch)) = (mode, &sub.channel) {
            // The pump drains on the subscribing thread's loop: publishing from that thread
            // must never wait for room (see `Channel::register_consumer`).
            ch.register_consumer();
        }
        if mode == Mode::Thread {
            if let Err(e) = self.spawn_worker(&sub) {
                Python::attach(|py| self.inner.remove(py, sub.seq));
                return Err(e);
            }
        }
        Ok(Subscription {
            sub,
            bus: Arc::downgrade(&self.inner),
            owner: true,
        })
    }

    /// Subscribes a bounded channel: iterate it, `recv`, `drain`, or `async for`. Closing
    /// the channel, or dropping its last reference, unsubscribes it. Default strategy: drop
    /// (counted).
    #[pyo3(signature = (filter=None, buffer_size=None, strategy=None))]
    fn subscribe_channel(
        &self,
        filter: Option<&Bound<'_, PyAny>>,
        buffer_size: Option<&Bound<'_, PyAny>>,
        strategy: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Channel> {
        let tree = extract_filter("filter", filter)?;
        let cap = extract_capacity("buffer_size", buffer_size, 1000)?;
        let ch = Arc::new(Core::new(
            cap,
            extract_strategy(strategy, BufferAction::Drop)?,
        ));
        let sub = self.add(tree, Mode::Channel, None, Some(ch.clone()))?;
        let bus = Arc::downgrade(&self.inner);
        let seq = sub.seq;
        Ok(Channel::objects(
            ch,
            Some(Box::new(move || {
                if let Some(b) = bus.upgrade() {
                    // Under the GIL: dropping the subscription may drop Python objects.
                    Python::attach(|py| b.remove(py, seq));
                }
            })),
        ))
    }

    /// Removes a subscription (a `Subscription` or a channel from `subscribe_channel`).
    /// Returns False if it was not active. Buffered events of thread/async handlers are
    /// still delivered.
    fn unsubscribe(&self, subscription: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Ok(s) = subscription.cast::<Subscription>() {
            // Sequence numbers are per bus: another bus's subscription must not remove ours.
            if !std::ptr::eq(s.get().bus.as_ptr(), Arc::as_ptr(&self.inner)) {
                return Ok(false);
            }
            return Ok(Python::attach(|py| self.inner.remove(py, s.get().sub.seq)).is_some());
        }
        if let Ok(c) = subscription.cast::<Channel>() {
            let was_open = !c.get().closed_core();
            c.get().close_core();
            return Ok(was_open);
        }
        Err(type_err(
            "subscription",
            "a Subscription or a Channel returned by this bus",
            subscription,
        ))
    }

    /// Closes the bus: later publish/subscribe raise `BusClosedError`, blocked publishers
    /// wake, channel subscriptions close (their buffered events stay receivable), and
    /// handler threads deliver what is buffered and stop (waited for up to `timeout` s).
    #[pyo3(signature = (timeout=5.0))]
    fn close(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = seconds_arg)] timeout: f64,
    ) -> PyResult<()> {
        let t = extract_timeout(Some(timeout))?;
        let deadline = t.and_then(|t| Instant::now().checked_add(t));
        self.inner.close_and_join(py, deadline)?;
        Ok(())
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Replaces the handler-error hook (None restores the default).
    fn set_error_handler(&self, hook: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let h = match hook {
            Some(h) if !h.is_none() => {
                if !h.is_callable() {
                    return Err(type_err(
                        "hook",
                        "a callable (exc, event, subscription) or None",
                        h,
                    ));
                }
                Some(h.clone().unbind())
            }
            _ => None,
        };
        let old = std::mem::replace(&mut *self.inner.on_error.lock(), h);
        drop(old); // after the lock: dropping the old hook may run Python code
        Ok(())
    }

    /// Number of active subscriptions.
    #[getter]
    fn subscription_count(&self, py: Python<'_>) -> usize {
        self.inner.index.with(py, |ix| ix.len())
    }

    /// The maximum nesting of publishes from handlers.
    #[getter]
    fn max_depth(&self) -> u32 {
        self.inner.max_depth
    }

    /// Events kept in history (0 = history disabled).
    #[getter]
    fn history_size(&self) -> usize {
        self.inner.history_size
    }

    /// Recent events, oldest first; only those of `correlation_id` if given, at most the
    /// last `limit`.
    #[pyo3(signature = (correlation_id=None, limit=None))]
    fn history<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = correlation_arg)] correlation_id: Option<String>,
        #[pyo3(from_py_with = limit_arg)] limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<Py<PyAny>> = self
            .inner
            .history
            .with(py, |h| h.iter().map(|e| e.clone_ref(py)).collect());
        let mut out: Vec<Py<PyAny>> = match correlation_id {
            Some(c) => items
                .into_iter()
                .filter(|e| {
                    e.bind(py)
                        .cast::<Event>()
                        .map(|x| *x.get().header.correlation_id == *c)
                        .unwrap_or(false)
                })
                .collect(),
            None => items,
        };
        if let Some(l) = limit {
            let n = out.len().saturating_sub(l);
            out.drain(..n);
        }
        PyList::new(py, out)
    }

    /// Counters. `events_delivered` counts handler returns (all modes) and events buffered
    /// into channel subscriptions; `events_dropped`/`events_evicted` count buffer losses;
    /// latency figures are of real handler time: each subscription's first 64 calls, then
    /// every 128th.
    fn get_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let i = &self.inner;
        let d = PyDict::new(py);
        d.set_item("events_published", i.published.get())?;
        d.set_item("events_delivered", i.delivered.get())?;
        d.set_item("events_dropped", i.dropped.load(Ordering::Relaxed))?;
        d.set_item("events_evicted", i.evicted.load(Ordering::Relaxed))?;
        d.set_item("handler_errors", i.errors.load(Ordering::Relaxed))?;
        d.set_item("events_lost", i.lost.load(Ordering::Relaxed))?;
        let (active, buffered) = self.buffered(py);
        d.set_item("active_subscriptions", active)?;
        d.set_item("events_buffered", buffered)?;
        let bt = PyDict::new(py);
        for (t, c) in i
            .per_type
            .iter()
            .enumerate()
            .take(kinds::event_type_count())
        {
            let n = c.get();
            if n > 0 {
                bt.set_item(crate::enums::event_type_obj(py, t as u32), n)?;
            }
        }
        d.set_item("events_by_type", bt)?;
        let l = i.latency.summary();
        d.set_item("latency_samples", l.count)?;
        d.set_item("average_latency_ms", l.avg_ns / 1e6)?;
        d.set_item("p50_latency_ms", l.p50_ns as f64 / 1e6)?;
        d.set_item("p99_latency_ms", l.p99_ns as f64 / 1e6)?;
        d.set_item("max_latency_ms", l.max_ns as f64 / 1e6)?;
        let hist = i.history.with(py, |h| h.len());
        d.set_item("history_events", hist)?;
        d.set_item("memory_bytes", self.memory_bytes(py))?;
        Ok(d)
    }

    /// Approximate bytes held by the bus: history and channel buffers (8 bytes a slot plus
    /// the events themselves, ~200 bytes each), and subscriptions.
    fn memory_bytes(&self, py: Python<'_>) -> u64 {
        const EVENT: u64 = 200;
        let (subs, buffered) = self.buffered(py);
        let hist = self.inner.history.with(py, |h| h.len()) as u64;
        hist * (EVENT + 8) + buffered as u64 * (EVENT + 24) + subs as u64 * 256
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(h) = self.inner.on_error.try_lock() {
            if let Some(h) = h.as_ref() {
                visit.call(h)?;
            }
        }
        {
            // SAFETY: the GC runs traversal with the GIL held, never inside `GilCell::with`
            // (whose closures run no Python code); the reference is not kept.
            let ix = unsafe { &*self.inner.index.0.get() };
            for s in ix.all() {
                if let Some(h) = &s.handler {
                    visit.call(h)?;
                }
                let mut res = Ok(());
                visit_preds(&s.filter, &mut |p| {
                    if res.is_ok() {
                        res = visit.call(p);
                    }
                });
                res?;
                // Events buffered for thread/async handlers belong to the bus alone
                // (a channel subscription's `Channel` object reports its own items).
                if let (Mode::Thread | Mode::Async, Some(ch)) = (s.mode, &s.channel) {
                    ch.try_for_each(|e| visit.call(e))?;
                }
            }
        }
        // SAFETY: as above.
        for e in unsafe { &*self.inner.history.0.get() }.iter() {
            visit.call(e)?;
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "EventBus(subscriptions={}, closed={})",
            Python::attach(|py| self.inner.index.with(py, |ix| ix.len())),
            if self.inner.closed.load(Ordering::Relaxed) {
                "True"
            } else {
                "False"
            }
        )
    }
}
