//! Publishing: dispatch of one event to the matching subscriptions (sync handlers in the
//! publisher's thread, thread and async ones through their channels), error reports and
//! latency samples.

use super::*;

impl BusInner {
    /// In a forked child (see `crate::fork`): an error if a thread-mode subscription of
    /// the parent is still active (its worker thread stayed in the parent: events sent to
    /// it would never be handled, and publishers would block once its buffer is full).
    pub(super) fn check_threads_after_fork(&self, py: Python<'_>) -> PyResult<()> {
        let now = crate::fork::generation();
        let stale = self.index.with(py, |ix| {
            ix.all().any(|s| {
                matches!(s.mode, Mode::Thread)
                    && s.generation != now
                    && s.active.load(Ordering::Acquire)
            })
        });
        if stale {
            return Err(crate::fork::forked_error(
                "this EventBus has a thread-mode subscription that",
            ));
        }
        Ok(())
    }

    pub(super) fn record_latency(&self, start: Option<Instant>) {
        if let Some(t) = start {
            self.latency.record(t.elapsed().as_nanos() as u64);
        }
    }

    pub(super) fn report_error(
        self: &Arc<Self>,
        py: Python<'_>,
        err: PyErr,
        event: &Bound<'_, PyAny>,
        sub: &Arc<Sub>,
    ) {
        sub.errors.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
        let hook = self.on_error.lock().as_ref().map(|h| h.clone_ref(py));
        let Some(hook) = hook else {
            err.restore(py);
            // SAFETY-free: writes the traceback to sys.unraisablehook.
            PyErr::fetch(py).write_unraisable(py, Some(event));
            return;
        };
        let sub_obj = Subscription {
            sub: sub.clone(),
            bus: Arc::downgrade(self),
            owner: false,
        };
        let exc = err.into_value(py);
        if let Err(e) = hook.bind(py).call1((exc, event, sub_obj)) {
            e.write_unraisable(py, Some(hook.bind(py)));
        }
    }

    /// Calls a handler for one event, with correlation propagation, sampling and error
    /// isolation. Every error is counted and passed to `on_error`; non-`Exception` errors
    /// (KeyboardInterrupt, SystemExit, panics, custom `BaseException`s) are then returned
    /// too: a sync publish re-raises them, a handler thread carries on.
    pub(super) fn call_handler(
        self: &Arc<Self>,
        py: Python<'_>,
        sub: &Arc<Sub>,
        handler: &Py<PyAny>,
        event: &Bound<'_, PyAny>,
        h: &Header,
    ) -> PyResult<bool> {
        let _g = DeliveryGuard::enter(h);
        // Sampling follows the subscription's own call count, so a new bus or subscription
        // gets figures at once whatever the thread did before.
        let n = sub.delivered.get() + sub.errors.load(Ordering::Relaxed);
        let start = (n < SAMPLE_WARMUP || n.is_multiple_of(SAMPLE_EVERY)).then(Instant::now);
        let r = handler.bind(py).call1((event,));
        self.record_latency(start);
        match r {
            Ok(_) => {
                sub.delivered.add(py, 1);
                Ok(true)
            }
            Err(e) if e.is_instance_of::<PyException>(py) => {
                self.report_error(py, e, event, sub);
                Ok(false)
            }
            Err(e) => {
                self.report_error(py, e.clone_ref(py), event, sub);
                Err(e)
            }
        }
    }

    /// Ends a thread/async subscription whose handler can no longer be reached (its loop
    /// closed, or its handler ended it with a `BaseException`): unsubscribes it, and counts
    /// what it still buffers plus `undelivered` in `events_lost`.
    pub(super) fn abandon(&self, py: Python<'_>, sub: &Sub, undelivered: u64) {
        self.remove(py, sub.seq);
        let left = sub
            .channel
            .as_ref()
            .map(|c| c.discard_buffered())
            .unwrap_or_default();
        self.lost
            .fetch_add(left.len() as u64 + undelivered, Ordering::Relaxed);
        drop(left); // no lock held: dropping events may run Python code
    }

    pub(super) fn remove(&self, py: Python<'_>, seq: u64) -> Option<Arc<Sub>> {
        // Per-key copy-on-write: only the buckets of this subscription's keys that a
        // publisher holds are copied (e.g. unsubscribing from a handler).
        let sub = self.index.with(py, |ix| ix.remove(seq))?;
        sub.active.store(false, Ordering::Release);
        if let Some(ch) = &sub.channel {
            ch.close();
        }
        Some(sub)
    }
}

/// What `publish` owes after dispatch.
pub(super) struct Outcome {
    pub(super) deliveries: u64,
    pub(super) timed_out: bool,
    /// A block-strategy subscriber was full and waiting would deadlock, with
    /// `on_self_block="raise"`.
    pub(super) deadlocked: bool,
}

impl Outcome {
    /// The error `publish` raises after delivering to everyone else, if any.
    #[inline]
    pub(super) fn error(&self, what: &str) -> Option<PyErr> {
        if self.deadlocked || self.timed_out {
            Some(self.raise(what))
        } else {
            None
        }
    }

    #[cold]
    fn raise(&self, what: &str) -> PyErr {
        if self.deadlocked {
            PublishDeadlockError::new_err(format!("a block-strategy subscriber was full and waiting for room would deadlock (this thread is its consumer, or its consumer waits on this thread) and its strategy says on_self_block='raise'; {what} counted as dropped for it"))
        } else {
            PublishTimeoutError::new_err(format!("a block-strategy subscriber stayed full for the whole timeout; {what} counted as dropped for it"))
        }
    }
}

impl EventBus {
    pub(super) fn dispatch(
        &self,
        py: Python<'_>,
        event: &Bound<'_, PyAny>,
        h: &Header,
        timeout: Option<Duration>,
    ) -> PyResult<Outcome> {
        let inner = &self.inner;
        inner.published.add(py, 1);
        if let Some(c) = inner.per_type.get(h.type_id as usize) {
            c.add(py, 1);
        }
        if inner.history_size > 0 {
            let oldest = inner.history.with(py, |hist| {
                let oldest = (hist.len() >= inner.history_size).then(|| hist.pop_front());
                hist.push_back(event.clone().unbind());
                oldest
            });
            drop(oldest); // outside the cell: dropping an event may run Python code
        }
        let cands = inner.index.with(py, |ix| ix.candidates(h));
        if inner.panic_next.load(Ordering::Relaxed)
            && inner.panic_next.swap(false, Ordering::Relaxed)
        {
            panic!("injected panic (_testing.inject_panic)");
        }
        let mut out = Outcome {
            deliveries: 0,
            timed_out: false,
            deadlocked: false,
        };
        for sub in cands.iter() {
            if !sub.active.load(Ordering::Acquire) {
                continue;
            }
            let pass = match &sub.route.residual {
                None => true, // the key implies the filter
                Some(f) => match eval(f, event, h) {
                    Ok(p) => p,
                    Err(e) if e.is_instance_of::<PyException>(py) => {
                        inner.report_error(py, e, event, sub);
                        false
                    }
                    Err(e) => return Err(e),
                },
            };
            if !pass {
                continue;
            }
            match (&sub.handler, &sub.channel) {
                (Some(handler), None) => {
                    if inner.call_handler(py, sub, handler, event, h)? {
                        out.deliveries += 1;
                    }
                }
                (_, Some(ch)) => {
                    let sev = h.severity as u8;
                    let res = match ch.try_send(event.clone().unbind(), sev, h.type_id) {
                        Err(SendError::WouldBlock(_)) if sub.loop_closed(py) => {
                            // Nobody will ever drain it: end it rather than wait forever.
                            inner.abandon(py, sub, 1);
                            continue;
                        }
                        Err(SendError::WouldBlock(obj)) => {
                            let ch = ch.clone();
                            let ty = h.type_id;
                            let r = crate::args::detach_interruptible(py, move |i| {
                                ch.send_interruptible(obj, sev, ty, timeout, i)
                            });
                            match r {
                                Ok(r) => r,
                                Err(interrupted) => {
                                    // Counted as dropped by the channel; the bus counts it
                                    // too, and what was delivered so far, then raises.
                                    inner.dropped.fetch_add(1, Ordering::Relaxed);
                                    inner.delivered.add(py, out.deliveries);
                                    return Err(interrupted);
                                }
                            }
                        }
                        r => r,
                    };
                    match res {
                        Ok(Sent::Queued(_)) => {
                            if sub.mode == Mode::Channel {
                                sub.delivered.add(py, 1);
                                out.deliveries += 1;
                            }
                        }
                        Ok(Sent::Evicted(..)) => {
                            inner.evicted.fetch_add(1, Ordering::Relaxed);
                            if sub.mode == Mode::Channel {
                                sub.delivered.add(py, 1);
                                out.deliveries += 1;
                            }
                        }
                        Ok(Sent::Dropped(_))
                        | Err(SendError::Closed(_))
                        | Err(SendError::Interrupted(_)) => {
                            inner.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(SendError::Timeout(_)) => {
                            inner.dropped.fetch_add(1, Ordering::Relaxed);
                            out.timed_out = true;
                        }
                        Err(SendError::WouldDeadlock(_)) => {
                            inner.dropped.fetch_add(1, Ordering::Relaxed);
                            out.deadlocked = true;
                        }
                        Err(SendError::WouldBlock(_)) => {
                            unreachable!("send_blocking never returns WouldBlock")
                        }
                    }
                }
                (None, None) => {}
            }
        }
        inner.delivered.add(py, out.deliveries);
        Ok(out)
    }

    pub(super) fn publish_checked(
        &self,
        py: Python<'_>,
        event: &Bound<'_, PyAny>,
        timeout: Option<Duration>,
    ) -> PyResult<Outcome> {
        let e = event
            .cast::<Event>()
            .map_err(|_| type_err("event", "a tracebus Event", event))?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(BusClosedError::new_err("the event bus is closed"));
        }
        if self.inner.generation != crate::fork::generation() {
            self.inner.check_threads_after_fork(py)?;
        }
        let max = self.inner.max_depth;
        let cascade = e.get().header.depth;
        // One thread-local access checks the depth and raises it (if the publish goes on).
        let depth = DEPTH.with(|d| {
            let depth = d.get();
            if depth < max && cascade < max {
                d.set(depth + 1);
            }
            depth
        });
        if depth >= max {
            return Err(PublishDepthError::new_err(format!(
                "handlers published events nested {} deep (max_depth={max}); a handler is probably re-publishing what it receives",
                depth + 1
            )));
        }
        if cascade >= max {
            return Err(PublishDepthError::new_err(format!(
                "the event is {cascade} levels deep in its cascade (max_depth={max}); handlers are probably re-publishing what they receive"
            )));
        }
        // Restored on drop, so a panic in dispatch (it reaches Python as PanicException)
        // does not leave this thread's depth raised for good.
        let _restore = DepthRestore(depth);
        self.dispatch(py, event, &e.get().header, timeout)
    }
}
