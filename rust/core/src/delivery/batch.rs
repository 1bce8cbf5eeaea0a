//! Event batching: a bounded FIFO filled by any number of producer threads and emptied in
//! batches by one background flush thread, which hands each batch to a sink (the PyO3
//! face's sink attaches to the interpreter once per wake-up and calls `bus.publish_many`
//! once per batch).
//!
//! A batch is flushed when `batch_size` items are queued, when the oldest queued item has
//! waited `flush_interval` (measured from the moment the current batch started filling), on
//! `flush()` and on `stop()`. Items are handed to the sink in queue order, and only the one
//! flush thread ever calls the sink, so batches never overtake each other.
//!
//! The queue is bounded (`capacity`): a producer that finds it full waits until the flush
//! thread has brought it down to half (backpressure, nothing is lost; the hysteresis keeps
//! producer and flush thread from trading the GIL once per batch). Waiting can deadlock
//! when the flush thread is itself waiting on the producer (a bus handler thread or event
//! loop that publishes, while the flush thread blocks on that handler's full buffer), so:
//! - a push from this batcher's own flush thread (a handler publishing while a batch is
//!   delivered) is handed back to be published directly, like a nested publish;
//! - a push from *another* batcher's flush thread is admitted over capacity at once, and
//!   so is `push_overflow` (the PyO3 face uses it for pushes made inside a bus handler,
//!   whose thread or event loop the flush thread may be waiting on);
//! - a producer that has waited `STALL` without the flush thread taking or finishing any
//!   batch is admitted over capacity: the flush thread is stuck in the sink, possibly on
//!   this very producer (a last resort for cycles nobody could know about in advance). Over-capacity admissions are counted in `overflowed`; a stuck
//!   flush thread lets each waiting producer through at most once per `STALL`.
//!
//! While stopping, pushes are admitted over capacity too, so that a producer's earlier
//! events are never overtaken by a later direct publish.
//!
//! No lock is held while the sink runs, and the flush thread waits on a condition variable
//! (no polling) whenever there is nothing due.

use crate::delivery::channel::{earliest, Interrupt, WAIT_SLICE};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest accepted `flush_interval` (one day): longer values are a unit mistake.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(86_400);

thread_local! {
    /// Address of the batcher whose flush thread this is (0 on every other thread).
    static FLUSHER: Cell<usize> = const { Cell::new(0) };
}

/// How long a waiting producer lets the flush thread make no progress at all before it
/// concludes that the flush thread may be waiting on it and overflows the bound.
pub const STALL: Duration = Duration::from_millis(100);

/// Batches per flush-thread wake-up: after the first batch, the sink may pull up to this
/// many more due batches through its `more` argument (e.g. while it holds the GIL).
pub const MAX_BATCHES_PER_WAKE: usize = 16;

/// The sink's second argument: the next due batch, if any (None when nothing is due or
/// `MAX_BATCHES_PER_WAKE` batches were handed over in this wake-up).
pub type More<'a, T> = dyn FnMut() -> Option<Vec<T>> + 'a;

/// Why a configuration was refused; carries the parameter name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub param: &'static str,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.param, self.message)
    }
}

/// Why `start` failed.
#[derive(Debug)]
pub enum StartError {
    /// `start` was called from the batcher's own flush thread while it is stopping.
    OwnThread,
    /// The OS refused the thread.
    Spawn(std::io::Error),
}

/// Result of `push`.
#[derive(Debug, PartialEq, Eq)]
pub enum Push<T> {
    /// Queued for a later batch.
    Queued,
    /// Not queued: the batcher is stopped, or this is its own flush thread. The caller
    /// publishes the item itself, now.
    Direct(T),
    /// Only from a non-blocking push: the queue is full. Retry with `block = true` (after
    /// releasing anything the flush thread may need, e.g. the GIL).
    Full(T),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Stopped,
    Running,
    Stopping,
}

/// Counters, read together under the lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Items currently queued.
    pub queued: u64,
    /// Items ever queued.
    pub enqueued: u64,
    /// Items handed to the sink (or published inline by `flush` on the flush thread).
    pub flushed: u64,
    /// Sink calls.
    pub batches: u64,
    /// Largest batch handed to the sink.
    pub max_batch: u64,
    /// Pushes answered with `Direct` (stopped, or from the flush thread itself).
    pub direct: u64,
    /// Pushes that had to wait for room.
    pub waits: u64,
    /// Pushes admitted over capacity: from another batcher's flush thread, or after a
    /// `STALL` without progress of the flush thread.
    pub overflowed: u64,
    /// Times the flush thread was started.
    pub starts: u64,
    pub running: bool,
}

struct State<T> {
    queue: VecDeque<T>,
    phase: Phase,
    /// When the current batch started filling (None when the queue is empty).
    filling_since: Option<Instant>,
    /// Sequence numbers: items ever queued / taken from the queue / through the sink.
    enqueued: u64,
    taken: u64,
    completed: u64,
    /// `flush()` asked for everything up to this sequence number to go out now.
    flush_upto: u64,
    batches: u64,
    max_batch: u64,
    direct: u64,
    waits: u64,
    overflowed: u64,
    starts: u64,
}

pub struct Batcher<T> {
    batch_size: usize,
    flush_interval: Duration,
    capacity: usize,
    state: Mutex<State<T>>,
    /// The flush thread waits here for work.
    work: Condvar,
    /// Producers that found the queue full wait here (woken at the low-water mark).
    room: Condvar,
    /// Flushers (completion) and stoppers (stopped) wait here.
    progress: Condvar,
    /// The flush thread's handle; also serializes `start` and `stop` of other threads.
    handle: Mutex<Option<JoinHandle<()>>>,
    /// `channel::thread_token` of the flush thread (0: none yet): a `flush` waits for it,
    /// an edge of the waits-for graph (`channel::waits`).
    flusher_token: AtomicU64,
    /// Whether `state.phase` is `Running`, read without the lock: a forked child must not
    /// take a lock that a thread of its parent (the flush thread) may have held at the fork.
    running: AtomicBool,
}

impl<T: Send + 'static> Batcher<T> {
    /// A stopped batcher. `batch_size` ≥ 1, `flush_interval` in (0, 1 day], `capacity` ≥
    /// `batch_size`.
    pub fn new(
        batch_size: usize,
        flush_interval: Duration,
        capacity: usize,
    ) -> Result<Self, ConfigError> {
        if batch_size == 0 {
            return Err(ConfigError {
                param: "batch_size",
                message: "must be at least 1, got 0".into(),
            });
        }
        if flush_interval.is_zero() || flush_interval > MAX_FLUSH_INTERVAL {
            return Err(ConfigError {
                param: "flush_interval",
                message: format!(
                    "must be more than 0 and at most {} seconds, got {:?}",
                    MAX_FLUSH_INTERVAL.as_secs(),
                    flush_interval
                ),
            });
        }
        if capacity < batch_size {
            return Err(ConfigError {
                param: "max_queued",
                message: format!("must be at least batch_size ({batch_size}), got {capacity}"),
            });
        }
        Ok(Batcher {
            batch_size,
            flush_interval,
            capacity,
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(batch_size.min(4096)),
                phase: Phase::Stopped,
                filling_since: None,
                enqueued: 0,
                taken: 0,
                completed: 0,
                flush_upto: 0,
                batches: 0,
                max_batch: 0,
                direct: 0,
                waits: 0,
                overflowed: 0,
                starts: 0,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            progress: Condvar::new(),
            handle: Mutex::new(None),
            flusher_token: AtomicU64::new(0),
            running: AtomicBool::new(false),
        })
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn flush_interval(&self) -> Duration {
        self.flush_interval
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Producers that found the queue full resume when it is down to this.
    fn low_water(&self) -> usize {
        self.capacity / 2
    }

    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// True on this batcher's own flush thread.
    pub fn on_flush_thread(&self) -> bool {
        FLUSHER.with(|f| f.get() == self.addr())
    }

    /// Whether the flush thread runs (takes no lock: safe in a forked child).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Sets the phase (under the state lock) and its lock-free mirror.
    fn set_phase(&self, st: &mut State<T>, phase: Phase) {
        st.phase = phase;
        self.running
            .store(phase == Phase::Running, Ordering::Release);
    }

    pub fn stats(&self) -> BatchStats {
        let s = self.state.lock();
        BatchStats {
            queued: s.queue.len() as u64,
            enqueued: s.enqueued,
            flushed: s.completed,
            batches: s.batches,
            max_batch: s.max_batch,
            direct: s.direct,
            waits: s.waits,
            overflowed: s.overflowed,
            starts: s.starts,
            running: s.phase == Phase::Running,
        }
    }

    /// Starts the flush thread, which hands every batch to `sink(batch, more)`; the sink may
    /// call `more()` for further due batches, so that one interpreter acquisition can
    /// publish several (each still its own batch, in order). Returns Ok(false) if it
    /// was already running. Waits for a previous flush thread that is still finishing
    /// (call it without holding anything that thread's sink needs).
    pub fn start<F>(self: &Arc<Self>, sink: F) -> Result<bool, StartError>
    where
        F: FnMut(Vec<T>, &mut More<'_, T>) + Send + 'static,
    {
        if self.on_flush_thread() {
            // Never touch `handle` here: another thread may hold it while joining us.
            return match self.state.lock().phase {
                Phase::Running => Ok(false),
                _ => Err(StartError::OwnThread),
            };
        }
        let mut handle = self.handle.lock();
        if self.state.lock().phase == Phase::Running {
            return Ok(false);
        }
        if let Some(old) = handle.take() {
            // Stopped from its own thread earlier; it finishes its queue and exits.
            let _ = old.join();
        }
        {
            let mut st = self.state.lock();
            self.set_phase(&mut st, Phase::Running);
            st.starts += 1;
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("tracebus-batch".into())
            .spawn(move || me.run(sink));
        match spawned {
            Ok(h) => {
                *handle = Some(h);
                Ok(true)
            }
            Err(e) => {
                let mut st = self.state.lock();
                self.set_phase(&mut st, Phase::Stopped);
                self.room.notify_all();
                self.progress.notify_all();
                Err(StartError::Spawn(e))
            }
        }
    }

    /// Queues `item`, or hands it back (see `Push`). With `block`, waits for room when the
    /// queue is full (call it without holding anything the sink needs, e.g. the GIL).
    pub fn push(&self, item: T, block: bool) -> Push<T> {
        let flusher = FLUSHER.with(|f| f.get());
        let mut st = self.state.lock();
        'admit: loop {
            match st.phase {
                Phase::Stopped => {
                    st.direct += 1;
                    return Push::Direct(item);
                }
                _ if flusher == self.addr() => {
                    st.direct += 1;
                    return Push::Direct(item);
                }
                Phase::Stopping => break,
                Phase::Running if st.queue.len() < self.capacity => break,
                Phase::Running if flusher != 0 => {
                    st.overflowed += 1;
                    break;
                }
                Phase::Running if !block => return Push::Full(item),
                Phase::Running => {
                    // Wait until the queue is down to half (hysteresis): waking producers
                    // for every batch taken would trade the GIL back and forth per batch.
                    st.waits += 1;
                    let mut progress = (st.taken, st.completed);
                    while st.phase == Phase::Running && st.queue.len() > self.low_water() {
                        if !self.room.wait_for(&mut st, STALL).timed_out() {
                            continue;
                        }
                        if (st.taken, st.completed) == progress {
                            st.overflowed += 1; // stuck, perhaps on us: see the module docs
                            break 'admit;
                        }
                        progress = (st.taken, st.completed);
                    }
                }
            }
        }
        self.admit(&mut st, item);
        Push::Queued
    }

    /// Like `push`, but never waits: a full queue takes the item over capacity (counted in
    /// `overflowed`). For producers the flush thread may be waiting on (e.g. a thread that
    /// drains one of the sink's own destinations), which must not wait for it in turn.
    pub fn push_overflow(&self, item: T) -> Push<T> {
        let flusher = FLUSHER.with(|f| f.get());
        let mut st = self.state.lock();
        if st.phase == Phase::Stopped || flusher == self.addr() {
            st.direct += 1;
            return Push::Direct(item);
        }
        if st.phase == Phase::Running && st.queue.len() >= self.capacity {
            st.overflowed += 1;
        }
        self.admit(&mut st, item);
        Push::Queued
    }

    fn admit(&self, st: &mut MutexGuard<'_, State<T>>, item: T) {
        if st.queue.is_empty() {
            st.filling_since = Some(Instant::now());
            st.queue.push_back(item);
            st.enqueued += 1;
            // The flush thread sleeps without a deadline while the queue is empty.
            self.work.notify_one();
            return;
        }
        st.queue.push_back(item);
        st.enqueued += 1;
        if st.queue.len() == self.batch_size {
            self.work.notify_one();
        }
    }

    /// Waits until everything queued before the call has been through the sink. On the
    /// flush thread itself (a handler calling flush) it returns at once: that thread cannot
    /// wait for itself, and publishing the queue there would overtake the rest of the
    /// current batch; the queued items go out, in order, right after it.
    ///
    /// While it waits, the caller waits for the flush thread in the waits-for graph: if the
    /// flush thread then blocks on a buffer this caller consumes (a thread-mode bus handler
    /// calling flush), it finds the cycle and that send takes its `on_self_block` action
    /// instead of waiting, so the flush completes.
    pub fn flush(&self) {
        self.flush_interruptible(None, &|| false);
    }

    /// `flush` that waits at most `timeout` (None: no limit) and asks `interrupt` between
    /// slices of its wait. Returns false if it gave up (timeout or interrupt) before
    /// everything queued before the call went through the sink.
    pub fn flush_interruptible(&self, timeout: Option<Duration>, interrupt: Interrupt<'_>) -> bool {
        if self.on_flush_thread() {
            return true;
        }
        // (Refreshed each slice: a flush thread that has not stored its token yet, just
        // started, must still be waited for in the graph once it has.)
        let mut edge = super::channel::waits::enter(self.flusher_token.load(Ordering::Acquire));
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut st = self.state.lock();
        let target = st.enqueued;
        if st.completed >= target {
            return true;
        }
        st.flush_upto = st.flush_upto.max(target);
        self.work.notify_one();
        while st.completed < target && st.phase != Phase::Stopped {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            edge.wait_for(self.flusher_token.load(Ordering::Acquire));
            let until = earliest(deadline, Some(now + WAIT_SLICE)).unwrap_or(now + WAIT_SLICE);
            if self.progress.wait_until(&mut st, until).timed_out()
                && st.completed < target
                && st.phase != Phase::Stopped
                && MutexGuard::unlocked(&mut st, interrupt)
            {
                return false;
            }
        }
        st.completed >= target
    }

    /// Asks the flush thread to flush everything and exit, without waiting.
    pub fn request_stop(&self) {
        let mut st = self.state.lock();
        if st.phase == Phase::Running {
            self.set_phase(&mut st, Phase::Stopping);
            self.work.notify_one();
            self.room.notify_all();
        }
    }

    /// Stops: the flush thread publishes everything queued, then exits; waits for it
    /// (except when called from the flush thread itself, which finishes after the current
    /// batch). Returns false if it was not running. Call it without holding anything the
    /// sink needs.
    pub fn stop(&self) -> bool {
        self.stop_interruptible(&|| false)
    }

    /// `stop` that asks `interrupt` between slices of its wait; when it says so, returns
    /// with the flush thread still finishing (in the background).
    pub fn stop_interruptible(&self, interrupt: Interrupt<'_>) -> bool {
        if self.on_flush_thread() {
            let was = self.state.lock().phase == Phase::Running;
            self.request_stop();
            return was;
        }
        let mut handle = self.handle.lock();
        let was = self.state.lock().phase == Phase::Running;
        self.request_stop();
        let mut st = self.state.lock();
        while st.phase != Phase::Stopped {
            if self.progress.wait_for(&mut st, WAIT_SLICE).timed_out()
                && st.phase != Phase::Stopped
                && MutexGuard::unlocked(&mut st, interrupt)
            {
                return was;
            }
        }
        drop(st);
        if let Some(h) = handle.take() {
            let _ = h.join(); // it has stopped: ends at once
        }
        was
    }

    /// How many items are due now (None: nothing due; Some(deadline) to wait for in `Err`).
    fn due(&self, st: &State<T>, now: Instant) -> Result<usize, Option<Instant>> {
        let len = st.queue.len();
        if len == 0 {
            return Err(None);
        }
        let n = len.min(self.batch_size);
        if len >= self.batch_size || st.phase == Phase::Stopping || st.taken < st.flush_upto {
            return Ok(n);
        }
        let deadline = st.filling_since.unwrap_or(now) + self.flush_interval;
        if deadline <= now {
            Ok(n)
        } else {
            Err(Some(deadline))
        }
    }

    /// Takes the next `n` items off the queue (lock held).
    fn take(&self, st: &mut State<T>, n: usize) -> Vec<T> {
        let batch: Vec<T> = st.queue.drain(..n).collect();
        st.taken += n as u64;
        st.filling_since = if st.queue.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        if st.queue.len() <= self.low_water() {
            self.room.notify_all();
        }
        batch
    }

    /// Records a batch of `n` items as through the sink (lock held).
    fn complete(&self, st: &mut State<T>, n: usize) {
        if n == 0 {
            return;
        }
        st.completed += n as u64;
        st.batches += 1;
        st.max_batch = st.max_batch.max(n as u64);
        self.progress.notify_all();
    }

    fn run<F: FnMut(Vec<T>, &mut More<'_, T>)>(self: Arc<Self>, mut sink: F) {
        FLUSHER.with(|f| f.set(self.addr()));
        self.flusher_token
            .store(super::channel::thread_token(), Ordering::Release);
        let mut st = self.state.lock();
        loop {
            match self.due(&st, Instant::now()) {
                Ok(n) => {
                    let batch = self.take(&mut st, n);
                    let mut in_flight = n;
                    MutexGuard::unlocked(&mut st, || {
                        let mut pulled = 0;
                        let mut more = || {
                            let mut st = self.state.lock();
                            self.complete(&mut st, in_flight);
                            in_flight = 0;
                            if pulled >= MAX_BATCHES_PER_WAKE {
                                return None;
                            }
                            let n = self.due(&st, Instant::now()).ok()?;
                            pulled += 1;
                            in_flight = n;
                            Some(self.take(&mut st, n))
                        };
                        // A panicking sink must not leave the batcher "running" with no
                        // thread: its batches count as flushed (the sink owns reporting).
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            sink(batch, &mut more)
                        }));
                    });
                    self.complete(&mut st, in_flight);
                }
                Err(_) if st.phase == Phase::Stopping => {
                    self.set_phase(&mut st, Phase::Stopped);
                    st.flush_upto = 0;
                    self.progress.notify_all();
                    break;
                }
                Err(Some(deadline)) => {
                    self.work.wait_until(&mut st, deadline);
                }
                Err(None) => {
                    self.work.wait(&mut st);
                }
            }
        }
        drop(st);
        FLUSHER.with(|f| f.set(0));
        drop(sink);
    }
}

impl<T> Drop for Batcher<T> {
    fn drop(&mut self) {
        // The flush thread holds an Arc, so a batcher is only dropped once it has exited.
        debug_assert!(self.state.get_mut().phase != Phase::Running);
    }
}

#[cfg(test)]
mod tests;
