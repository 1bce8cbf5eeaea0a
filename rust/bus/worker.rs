//! Subscribing and the thread-mode worker: adding a subscription to the index and the
//! Rust thread that drains a thread-mode subscription's channel.

use super::*;

impl EventBus {
    pub(super) fn add(
        &self,
        filter: PyTree,
        mode: Mode,
        handler: Option<Py<PyAny>>,
        channel: Option<Arc<Core<Py<PyAny>>>>,
    ) -> PyResult<Arc<Sub>> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BusClosedError::new_err("the event bus is closed"));
        }
        let sub = Arc::new(Sub {
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            id: tracebus_core::model::ids::new_subscription_id(),
            route: filter.route(),
            filter,
            mode,
            handler,
            channel,
            active: AtomicBool::new(true),
            delivered: GilCounter::default(),
            errors: AtomicU64::new(0),
            worker: Mutex::new(None),
            generation: crate::fork::generation(),
            event_loop: pyo3::sync::PyOnceLock::new(),
        });
        Python::attach(|py| self.inner.index.with(py, |ix| ix.insert(sub.clone())));
        Ok(sub)
    }

    pub(super) fn spawn_worker(&self, sub: &Arc<Sub>) -> PyResult<()> {
        let s = sub.clone();
        let bus = Arc::downgrade(&self.inner);
        let handle = std::thread::Builder::new()
            .name(format!(
                "tracebus-{}",
                Python::attach(|py| handler_name(py, &s))
            ))
            .spawn(move || worker_loop(s, bus))
            .map_err(|e| {
                PyRuntimeError::new_err(format!("could not start the handler thread: {e}"))
            })?;
        *sub.worker.lock() = Some(handle);
        Ok(())
    }
}

/// The handler's `__name__` (else `__qualname__`, else the subscription id): names the
/// worker thread `tracebus-<handler name>`.
fn handler_name(py: Python<'_>, sub: &Sub) -> String {
    let h = sub.handler.as_ref().map(|h| h.bind(py));
    ["__name__", "__qualname__"]
        .iter()
        .find_map(|a| h.and_then(|h| h.getattr(*a).ok()?.extract::<String>().ok()))
        .unwrap_or_else(|| sub.id.clone())
}

pub(super) fn worker_loop(sub: Arc<Sub>, bus: Weak<BusInner>) {
    let (Some(ch), Some(handler)) = (sub.channel.clone(), sub.handler.as_ref()) else {
        return;
    };
    loop {
        let batch = ch.recv_batch(WORKER_BATCH, None);
        if batch.is_empty() {
            return; // closed and drained
        }
        let mut batch = batch.into_iter();
        // `try_attach`: once the interpreter is finalizing (or gone) this thread must not
        // touch Python; `EXITING`: `_close_all_buses` ran out of its delivery budget.
        let attached = Python::try_attach(|py| {
            let Some(inner) = bus.upgrade() else {
                return;
            };
            while !EXITING.load(Ordering::Acquire) {
                let Some((_, ev)) = batch.next() else { break };
                let ev = ev.into_bound(py);
                let Ok(e) = ev.cast::<Event>() else { continue };
                let h = e.get().header.clone();
                // A PanicException raised by the handler resumes as a Rust panic when PyO3
                // fetches it; caught here so it cannot kill the worker (which would leave
                // the subscription active with nobody draining it, and block publishers).
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    inner.call_handler(py, &sub, handler, &ev, &h)
                }));
                match r {
                    Ok(Ok(true)) => {
                        inner.delivered.add(py, 1);
                    }
                    Ok(Ok(false)) => {}
                    // A BaseException (SystemExit, ...): counted and passed to on_error by
                    // `call_handler`; the subscription carries on (documented).
                    Ok(Err(_)) => {}
                    Err(payload) => {
                        let msg = payload
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a handler panicked".into());
                        pyo3::panic::PanicException::new_err(msg).write_unraisable(py, Some(&ev));
                    }
                }
            }
        });
        if attached.is_none() || EXITING.load(Ordering::Acquire) {
            // What this thread still holds never reaches the handler: counted, then leaked
            // (the process is exiting; releasing them would need the interpreter).
            let left: Vec<_> = batch.map(|(_, e)| e).chain(ch.discard_buffered()).collect();
            if let Some(inner) = bus.upgrade() {
                inner.lost.fetch_add(left.len() as u64, Ordering::Relaxed);
            }
            std::mem::forget(left);
            return;
        }
    }
}
