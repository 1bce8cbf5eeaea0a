//! The Python face of the batching core (`batch.rs`): `EventBatchProcessor`.
//!
//! The flush thread is a Rust thread that waits without the GIL and attaches to the
//! interpreter once per wake-up (never more than once per batch) to call
//! `bus.publish_many(list)` for each due batch, up to `MAX_BATCHES_PER_WAKE` of them (a
//! Python method call, so any bus subclass works). Producers that find the queue full wait
//! with the GIL released.

use crate::args::{
    detach_interruptible, extract_positive_int, extract_timeout, timeout_arg, type_err, value_err,
};
use crate::model::event::Event;
use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::{intern, PyTraverseError, PyVisit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracebus_core::delivery::batch::{Batcher, More, Push, StartError};

type Core = Batcher<Py<PyAny>>;

/// Every started batcher, so that `_stop_all_batch_processors` (registered with `atexit`
/// by `tracebus.performance`) can flush them before the interpreter shuts down.
static STARTED: Mutex<Vec<(Weak<Core>, u64)>> = Mutex::new(Vec::new());

/// The flush thread's reference to the bus, released with the interpreter attached when the
/// thread ends (instead of a deferred decref that waits for the next attach).
struct BusRef(Option<Py<PyAny>>);

impl Drop for BusRef {
    fn drop(&mut self) {
        if let Some(bus) = self.0.take() {
            let _ = Python::try_attach(move |_| drop(bus));
        }
    }
}

/// What the flush thread's sink counts.
#[derive(Default)]
struct SinkStats {
    published: AtomicU64,
    failed: AtomicU64,
    failed_batches: AtomicU64,
    lost_at_shutdown: AtomicU64,
}

/// Collects events into batches and publishes each batch with one `bus.publish_many(list)`
/// call from a background thread, which acquires the interpreter once per wake-up and then
/// publishes every batch already due (up to 16).
///
/// A batch goes out when `batch_size` events are queued, when the batch has been filling
/// for `flush_interval` seconds, on `flush()` and on `stop()`. Events of one thread are
/// published in the order they were queued. While not started, `queue_event` publishes
/// directly (also through `publish_many`). Sync handlers of the bus run in the batch thread.
///
/// The queue holds at most `max_queued` events (default: 10,000 or 4 batches, whichever is
/// more). A producer that finds it full waits, GIL released, until the batch thread has
/// brought it down to half: nothing is dropped, publishers are slowed to the bus's pace,
/// and the waits are counted in `stats()["waits"]`.
///
/// Exceptions, so that waiting never deadlocks (all counted in `stats()["overflowed"]`
/// except the first):
/// - a handler queueing an event while its own batch is delivered (in the batch thread)
///   publishes it directly, like a nested publish;
/// - any other bus handler (thread mode, async, or sync on another thread) never waits:
///   its event is queued over the bound, as the batch thread may be waiting on that
///   handler's full buffer;
/// - a producer that sees the batch thread make no progress at all for 0.1 s (it may be
///   blocked on that producer in a way nobody can know) queues over the bound.
///
/// Errors raised by `publish_many` (handler errors are isolated by the bus itself; this is
/// e.g. a closed bus) are logged to the ``tracebus`` logger and counted in `stats()`.
///
/// >>> with EventBatchProcessor(bus, batch_size=100) as batcher:
/// ...     for e in events:
/// ...         batcher.queue_event(e)
#[pyclass(frozen, module = "tracebus", name = "EventBatchProcessor")]
pub struct EventBatchProcessor {
    core: Arc<Core>,
    bus: Py<PyAny>,
    stats: Arc<SinkStats>,
    /// The fork generation of the last `start()` (see `crate::fork`).
    generation: AtomicU64,
}

impl EventBatchProcessor {
    /// An error in a forked child while the batch thread (left in the parent) is "running".
    fn check_fork(&self) -> PyResult<()> {
        if self.generation.load(Ordering::Relaxed) != crate::fork::generation()
            && self.core.is_running()
        {
            return Err(crate::fork::forked_error("this EventBatchProcessor"));
        }
        Ok(())
    }
}

fn extract_interval(param: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    if v.is_instance_of::<pyo3::types::PyBool>()
        || !(v.is_instance_of::<pyo3::types::PyFloat>() || v.is_instance_of::<pyo3::types::PyInt>())
    {
        return Err(type_err(param, "a number of seconds", v));
    }
    let s: f64 = v.extract()?;
    let max = tracebus_core::delivery::batch::MAX_FLUSH_INTERVAL.as_secs_f64();
    if !(s > 0.0 && s <= max) {
        return Err(value_err(
            param,
            format!("must be more than 0 and at most {max} seconds, got {s}"),
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

fn log_failure(py: Python<'_>, n: usize, err: PyErr) {
    let logged = (|| -> PyResult<()> {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("tracebus",))?;
        let kw = PyDict::new(py);
        kw.set_item("exc_info", err.value(py))?;
        logger.call_method(
            "error",
            (
                "EventBatchProcessor: a batch of %d events could not be published",
                n,
            ),
            Some(&kw),
        )?;
        Ok(())
    })();
    if logged.is_err() {
        err.write_unraisable(py, None);
    }
}

/// Whether a bus handler is running on this thread (sync or thread mode) or in this context
/// (async).
fn in_handler(py: Python<'_>) -> PyResult<bool> {
    Ok(crate::correlation::delivering() || crate::correlation::delivering_async(py)?)
}

/// One batch, one `bus.publish_many(list)` call; failures are counted and logged.
fn publish_batch(py: Python<'_>, bus: &Py<PyAny>, items: Vec<Py<PyAny>>, stats: &SinkStats) {
    let n = items.len() as u64;
    let r = PyList::new(py, items).and_then(|list| {
        bus.bind(py)
            .call_method1(intern!(py, "publish_many"), (list,))
            .map(|_| ())
    });
    match r {
        Ok(()) => {
            stats.published.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            stats.failed.fetch_add(n, Ordering::Relaxed);
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            log_failure(py, n as usize, e);
        }
    }
}

impl EventBatchProcessor {
    /// Publishes `events` now, in this thread, through `bus.publish_many`.
    fn publish_now(&self, py: Python<'_>, events: Vec<Py<PyAny>>) -> PyResult<()> {
        let list = PyList::new(py, events)?;
        self.bus
            .bind(py)
            .call_method1(intern!(py, "publish_many"), (list,))?;
        Ok(())
    }
}

#[pymethods]
impl EventBatchProcessor {
    /// A stopped batch processor for `bus` (anything with `publish_many(list)`): call
    /// `start()` or use it as a context manager. `batch_size` ≥ 1 events, `flush_interval` >
    /// 0 seconds, `max_queued` ≥ `batch_size` events.
    #[new]
    #[pyo3(signature = (bus, batch_size=None, flush_interval=None, *, max_queued=None))]
    fn py_new(
        bus: &Bound<'_, PyAny>,
        batch_size: Option<&Bound<'_, PyAny>>,
        flush_interval: Option<&Bound<'_, PyAny>>,
        max_queued: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let callable = |name: &str| bus.getattr(name).map(|m| m.is_callable()).unwrap_or(false);
        if !callable("publish_many") {
            return Err(type_err(
                "bus",
                "an event bus with a publish_many(events) method",
                bus,
            ));
        }
        let batch_size = match batch_size {
            Some(v) if !v.is_none() => extract_positive_int("batch_size", v, 1_000_000)?,
            _ => 50,
        };
        let interval = match flush_interval {
            Some(v) if !v.is_none() => extract_interval("flush_interval", v)?,
            _ => Duration::from_millis(10),
        };
        let default_cap = (batch_size.saturating_mul(4)).max(10_000);
        let cap = match max_queued {
            Some(v) if !v.is_none() => extract_positive_int("max_queued", v, 100_000_000)?,
            _ => default_cap,
        };
        let core =
            Batcher::new(batch_size, interval, cap).map_err(|e| value_err(e.param, e.message))?;
        Ok(EventBatchProcessor {
            core: Arc::new(core),
            bus: bus.clone().unbind(),
            stats: Arc::new(SinkStats::default()),
            generation: AtomicU64::new(crate::fork::generation()),
        })
    }

    /// Starts the batch thread (does nothing if it is running).
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        self.check_fork()?;
        let bus = BusRef(Some(self.bus.clone_ref(py)));
        let stats = self.stats.clone();
        // One interpreter acquisition per wake-up: the first batch, then whatever further
        // batches are already due (up to MAX_BATCHES_PER_WAKE), one publish_many each.
        let sink = move |first: Vec<Py<PyAny>>, more: &mut More<'_, Py<PyAny>>| {
            let n = first.len();
            let done = Python::try_attach(|py| {
                let Some(bus) = bus.0.as_ref() else { return };
                let mut batch = Some(first);
                while let Some(items) = batch.take().or_else(&mut *more) {
                    publish_batch(py, bus, items, &stats);
                }
            });
            if done.is_none() {
                // The interpreter is shutting down: nothing can be published any more.
                stats
                    .lost_at_shutdown
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        };
        let core = self.core.clone();
        let started = py.detach(move || core.start(sink));
        match started {
            Ok(true) => {
                let generation = crate::fork::generation();
                self.generation.store(generation, Ordering::Relaxed);
                let mut reg = STARTED.lock();
                reg.retain(|(w, _)| w.strong_count() > 0);
                if !reg.iter().any(|(w, _)| w.as_ptr() == Arc::as_ptr(&self.core)) {
                    reg.push((Arc::downgrade(&self.core), generation));
                }
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(StartError::OwnThread) => Err(PyRuntimeError::new_err(
                "EventBatchProcessor.start() was called from its own batch thread while it is stopping; start it from another thread",
            )),
            Err(StartError::Spawn(e)) => Err(PyRuntimeError::new_err(format!(
                "could not start the batch thread: {e}"
            ))),
        }
    }

    /// Queues `event` for the next batch (if `max_queued` events are already queued, waits
    /// with the GIL released until the queue is down to half). When the processor is not started, publishes it directly.
    fn queue_event(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        if event.cast::<Event>().is_err() {
            return Err(type_err("event", "a tracebus Event", event));
        }
        self.check_fork()?;
        let item = event.clone().unbind();
        let r = match self.core.push(item, false) {
            // Inside a handler, this thread (or event loop) may be what the batch thread is
            // waiting on (a full thread/async handler buffer): never wait here.
            Push::Full(item) if in_handler(py)? => self.core.push_overflow(item),
            Push::Full(item) => {
                let core = self.core.clone();
                py.detach(move || core.push(item, true))
            }
            r => r,
        };
        match r {
            Push::Queued => Ok(()),
            Push::Direct(item) => self.publish_now(py, vec![item]),
            Push::Full(_) => unreachable!("a blocking push never reports Full"),
        }
    }

    /// Publishes everything queued so far and returns when it has been published (True),
    /// or after `timeout` seconds (None: no limit) with False. From a handler running in
    /// the batch thread it returns True at once (the thread cannot wait for itself; what is
    /// queued goes out, in order, right after the current batch). Ctrl-C interrupts the
    /// wait.
    #[pyo3(signature = (timeout=None))]
    fn flush(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = timeout_arg)] timeout: Option<f64>,
    ) -> PyResult<bool> {
        let t = extract_timeout(timeout)?;
        if self.core.on_flush_thread() {
            return Ok(true); // without releasing the GIL: this is on every batch's path
        }
        self.check_fork()?;
        let core = self.core.clone();
        detach_interruptible(py, move |i| core.flush_interruptible(t, i))
    }

    /// Publishes what is queued and stops the batch thread (waiting for it, GIL released;
    /// Ctrl-C interrupts the wait, the thread then finishes in the background). Later
    /// `queue_event` calls publish directly until `start()` is called again.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.check_fork()?;
        let core = self.core.clone();
        detach_interruptible(py, move |i| {
            core.stop_interruptible(i);
        })
    }

    /// Whether the batch thread is running.
    #[getter]
    fn running(&self) -> bool {
        self.core.is_running()
    }

    /// The bus batches are published to.
    #[getter]
    fn bus(&self, py: Python<'_>) -> Py<PyAny> {
        self.bus.clone_ref(py)
    }

    /// Events per batch.
    #[getter]
    fn batch_size(&self) -> usize {
        self.core.batch_size()
    }

    /// Seconds a batch may fill before it is published anyway.
    #[getter]
    fn flush_interval(&self) -> f64 {
        self.core.flush_interval().as_secs_f64()
    }

    /// The queue's bound (producers wait beyond it).
    #[getter]
    fn max_queued(&self) -> usize {
        self.core.capacity()
    }

    /// Counters: `queued` (now), `enqueued`, `flushed` (handed to `publish_many`),
    /// `published` / `failed` (events whose `publish_many` call returned / raised),
    /// `failed_batches`, `lost_at_shutdown` (batches the interpreter could no longer take),
    /// `batches`, `max_batch`, `direct` (published directly: not started, or queued from a
    /// handler in the batch thread), `waits` (producers that waited for room), `overflowed`
    /// (queued over the bound: from another processor's batch thread, or after the batch
    /// thread made no progress for 0.1 s, which may mean it waits on the producer), `starts`,
    /// `running`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.stats();
        let d = PyDict::new(py);
        d.set_item("queued", s.queued)?;
        d.set_item("enqueued", s.enqueued)?;
        d.set_item("flushed", s.flushed)?;
        d.set_item("published", self.stats.published.load(Ordering::Relaxed))?;
        d.set_item("failed", self.stats.failed.load(Ordering::Relaxed))?;
        d.set_item(
            "failed_batches",
            self.stats.failed_batches.load(Ordering::Relaxed),
        )?;
        d.set_item(
            "lost_at_shutdown",
            self.stats.lost_at_shutdown.load(Ordering::Relaxed),
        )?;
        d.set_item("batches", s.batches)?;
        d.set_item("max_batch", s.max_batch)?;
        d.set_item("direct", s.direct)?;
        d.set_item("waits", s.waits)?;
        d.set_item("overflowed", s.overflowed)?;
        d.set_item("starts", s.starts)?;
        d.set_item("running", s.running)?;
        Ok(d)
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _a: &Bound<'_, PyAny>,
        _b: &Bound<'_, PyAny>,
        _c: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.bus)
    }

    fn __repr__(&self) -> String {
        let s = self.core.stats();
        format!(
            "EventBatchProcessor(batch_size={}, flush_interval={}, running={}, queued={})",
            self.core.batch_size(),
            self.core.flush_interval().as_secs_f64(),
            if s.running { "True" } else { "False" },
            s.queued
        )
    }
}

impl Drop for EventBatchProcessor {
    fn drop(&mut self) {
        // Never join here (the GIL may be held): the thread flushes what is queued and exits.
        self.core.request_stop();
    }
}

/// Stops every running `EventBatchProcessor`, publishing what they queued. Registered with
/// `atexit` by `tracebus.performance`, so queued events are not lost at interpreter exit.
#[pyfunction]
pub fn _stop_all_batch_processors(py: Python<'_>) {
    // Those started in this process only: in a forked child the parent's batch threads do
    // not exist (stopping them would wait for ever).
    let now = crate::fork::generation();
    let cores: Vec<Arc<Core>> = STARTED
        .lock()
        .drain(..)
        .filter(|(_, generation)| *generation == now)
        .filter_map(|(w, _)| w.upgrade())
        .collect();
    py.detach(move || {
        for c in cores {
            c.stop();
        }
    });
}
