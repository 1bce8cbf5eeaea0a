//! Subscriptions: the delivery mode and the `Subscription` class a handler's
//! subscription is returned as.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Sync,
    Thread,
    Async,
    Channel,
}

impl Mode {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Thread => "thread",
            Mode::Async => "async",
            Mode::Channel => "channel",
        }
    }
}

/// A handler subscription. `close()` (or `bus.unsubscribe(sub)`) ends it; usable as a
/// context manager.
#[pyclass(frozen, module = "tracebus", name = "Subscription")]
pub struct Subscription {
    pub(super) sub: Arc<Sub>,
    pub(super) bus: Weak<BusInner>,
    /// Only the object returned by `subscribe` reports the handler to the GC (the bus does
    /// while the subscription is active); temporary objects given to error hooks never do.
    pub(super) owner: bool,
}

#[pymethods]
impl Subscription {
    /// The subscription id (`<16 hex>_sub`).
    #[getter]
    pub(super) fn id(&self) -> &str {
        &self.sub.id
    }
    /// `sync`, `thread` or `async`.
    #[getter]
    pub(super) fn mode(&self) -> &'static str {
        self.sub.mode.as_str()
    }
    /// Whether still subscribed.
    #[getter]
    pub(super) fn active(&self) -> bool {
        self.sub.active.load(Ordering::Acquire)
    }
    /// The handler.
    #[getter]
    pub(super) fn handler(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.sub.handler.as_ref().map(|h| h.clone_ref(py))
    }
    /// Events its handler returned from.
    #[getter]
    pub(super) fn delivered(&self) -> u64 {
        self.sub.delivered.get()
    }
    /// Errors raised by its handler (or its filter predicate).
    #[getter]
    pub(super) fn errors(&self) -> u64 {
        self.sub.errors.load(Ordering::Relaxed)
    }
    /// Counters: delivered, errors, and for thread/async modes the buffer's counters.
    pub(super) fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = match &self.sub.channel {
            Some(ch) => stats_dict(py, &ch.stats())?,
            None => PyDict::new(py),
        };
        d.set_item("handler_returned", self.delivered())?;
        d.set_item("errors", self.errors())?;
        Ok(d)
    }
    /// Unsubscribes. Returns False if it was not active.
    pub(super) fn close(&self) -> bool {
        match self.bus.upgrade() {
            Some(b) => Python::attach(|py| b.remove(py, self.sub.seq)).is_some(),
            None => false,
        }
    }
    /// Used by the async pump: the next batch of buffered events (waits for none).
    pub(super) fn _drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        match &self.sub.channel {
            Some(ch) => PyList::new(py, ch.drain(WORKER_BATCH).into_iter().map(|(_, e)| e)),
            None => Ok(PyList::empty(py)),
        }
    }
    /// Used by the async pump: arms a wake-up (see `Channel._arm_wakeup`); False if events
    /// are buffered or the subscription ended.
    /// If the loop turns out to be closed when the wake-up comes (it was stopped and closed
    /// outside `asyncio.run`), the subscription ends and what it buffers is counted in
    /// `events_lost`; publishers then never wait on it.
    pub(super) fn _arm_wakeup(
        &self,
        event_loop: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
    ) -> bool {
        let Some(ch) = &self.sub.channel else {
            return false;
        };
        let py = event_loop.py();
        self.sub
            .event_loop
            .get_or_init(py, || event_loop.clone().unbind());
        let lp = event_loop.clone().unbind();
        let cb = callback.clone().unbind();
        let sub = Arc::downgrade(&self.sub);
        let bus = self.bus.clone();
        ch.arm_waker(Box::new(move || {
            Python::attach(|py| {
                let woke = lp
                    .bind(py)
                    .call_method1("call_soon_threadsafe", (cb.bind(py),));
                if woke.is_err() {
                    if let (Some(s), Some(b)) = (sub.upgrade(), bus.upgrade()) {
                        if s.loop_closed(py) {
                            b.abandon(py, &s, 0);
                        }
                    }
                }
            });
        }))
    }
    /// Used by the async pump when its handler raised a `BaseException` (the subscription
    /// ends): unsubscribes and counts `undelivered` (the rest of its batch) and what is
    /// still buffered in `events_lost`.
    pub(super) fn _abandon(&self, py: Python<'_>, undelivered: u64) {
        if let Some(b) = self.bus.upgrade() {
            b.abandon(py, &self.sub, undelivered);
        }
    }
    /// Used by the async pump: whether the feeding channel is closed and empty.
    #[getter]
    pub(super) fn _finished(&self) -> bool {
        self.sub
            .channel
            .as_ref()
            .is_none_or(|c| c.is_closed() && c.is_empty())
    }
    /// Used by the async pump: records `count` handler returns and, optionally, one sampled
    /// handler duration in ns.
    #[pyo3(signature = (count, elapsed_ns=None))]
    pub(super) fn _record_delivery(&self, py: Python<'_>, count: u64, elapsed_ns: Option<u64>) {
        self.sub.delivered.add(py, count);
        if let Some(b) = self.bus.upgrade() {
            b.delivered.add(py, count);
            if let Some(ns) = elapsed_ns {
                b.latency.record(ns);
            }
        }
    }
    /// Used by the async pump: records a handler error and passes it to the bus's hook.
    pub(super) fn _record_error(
        &self,
        py: Python<'_>,
        exc: &Bound<'_, PyAny>,
        event: &Bound<'_, PyAny>,
    ) {
        if let Some(b) = self.bus.upgrade() {
            b.report_error(py, PyErr::from_value(exc.clone()), event, &self.sub);
        } else {
            self.sub.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(super) fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    pub(super) fn __exit__(
        &self,
        _a: &Bound<'_, PyAny>,
        _b: &Bound<'_, PyAny>,
        _c: &Bound<'_, PyAny>,
    ) -> bool {
        self.close();
        false
    }
    pub(super) fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // While active, the bus reports the handler; afterwards this object does.
        if self.owner && !self.sub.active.load(Ordering::Acquire) {
            if let Some(h) = &self.sub.handler {
                visit.call(h)?;
            }
        }
        Ok(())
    }
    pub(super) fn __repr__(&self) -> String {
        format!(
            "Subscription(id={:?}, mode={:?}, active={}, delivered={}, errors={})",
            self.sub.id,
            self.sub.mode.as_str(),
            if self.active() { "True" } else { "False" },
            self.delivered(),
            self.errors()
        )
    }
}
