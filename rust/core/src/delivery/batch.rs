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

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cell::Cell;
use std::collections::VecDeque;
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

    pub fn is_running(&self) -> bool {
        self.state.lock().phase == Phase::Running
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
            st.phase = Phase::Running;
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
                st.phase = Phase::Stopped;
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
    pub fn flush(&self) {
        if self.on_flush_thread() {
            return;
        }
        let mut st = self.state.lock();
        let target = st.enqueued;
        if st.completed >= target {
            return;
        }
        st.flush_upto = st.flush_upto.max(target);
        self.work.notify_one();
        while st.completed < target && st.phase != Phase::Stopped {
            self.progress.wait(&mut st);
        }
    }

    /// Asks the flush thread to flush everything and exit, without waiting.
    pub fn request_stop(&self) {
        let mut st = self.state.lock();
        if st.phase == Phase::Running {
            st.phase = Phase::Stopping;
            self.work.notify_one();
            self.room.notify_all();
        }
    }

    /// Stops: the flush thread publishes everything queued, then exits; waits for it
    /// (except when called from the flush thread itself, which finishes after the current
    /// batch). Returns false if it was not running. Call it without holding anything the
    /// sink needs.
    pub fn stop(&self) -> bool {
        if self.on_flush_thread() {
            let was = self.state.lock().phase == Phase::Running;
            self.request_stop();
            return was;
        }
        let mut handle = self.handle.lock();
        let was = self.state.lock().phase == Phase::Running;
        self.request_stop();
        if let Some(h) = handle.take() {
            let _ = h.join();
        }
        let mut st = self.state.lock();
        while st.phase != Phase::Stopped {
            self.progress.wait(&mut st);
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
                    st.phase = Phase::Stopped;
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
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn collecting(b: &Arc<Batcher<u64>>) -> (Arc<Mutex<Vec<Vec<u64>>>>, bool) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let started = b
            .start(move |batch, _| g.lock().push(batch))
            .expect("thread starts");
        (got, started)
    }

    fn flat(got: &Mutex<Vec<Vec<u64>>>) -> Vec<u64> {
        got.lock().iter().flatten().copied().collect()
    }

    #[test]
    fn bad_config_names_the_parameter() {
        let e = Batcher::<u64>::new(0, Duration::from_millis(10), 10)
            .err()
            .unwrap();
        assert_eq!(e.param, "batch_size");
        let e = Batcher::<u64>::new(5, Duration::ZERO, 10).err().unwrap();
        assert_eq!(e.param, "flush_interval");
        let e = Batcher::<u64>::new(5, Duration::from_secs(100_000), 10)
            .err()
            .unwrap();
        assert_eq!(e.param, "flush_interval");
        let e = Batcher::<u64>::new(5, Duration::from_millis(1), 4)
            .err()
            .unwrap();
        assert_eq!(e.param, "max_queued");
    }

    #[test]
    fn stopped_batcher_hands_items_back() {
        let b = Arc::new(Batcher::<u64>::new(4, Duration::from_secs(60), 16).unwrap());
        assert_eq!(b.push(1, false), Push::Direct(1));
        assert_eq!(b.stats().direct, 1);
        b.flush();
        assert!(!b.stop());
    }

    #[test]
    fn full_batches_go_out_in_order_and_stop_flushes_the_rest() {
        // A long interval: only size, flush and stop can trigger.
        let b = Arc::new(Batcher::new(4, Duration::from_secs(3600), 64).unwrap());
        let (got, started) = collecting(&b);
        assert!(started);
        for i in 0..10 {
            assert_eq!(b.push(i, true), Push::Queued);
        }
        assert!(b.stop());
        assert_eq!(flat(&got), (0..10).collect::<Vec<_>>());
        let sizes: Vec<usize> = got.lock().iter().map(|v| v.len()).collect();
        assert!(sizes.iter().all(|&n| n <= 4), "{sizes:?}");
        let s = b.stats();
        assert_eq!((s.enqueued, s.flushed, s.queued), (10, 10, 0));
        assert!(!s.running);
    }

    #[test]
    fn flush_waits_for_everything_queued_before_it() {
        let b = Arc::new(Batcher::new(100, Duration::from_secs(3600), 1000).unwrap());
        let (got, _) = collecting(&b);
        for i in 0..7 {
            b.push(i, true);
        }
        b.flush();
        assert_eq!(flat(&got), (0..7).collect::<Vec<_>>());
        b.stop();
    }

    #[test]
    fn interval_flushes_a_partial_batch() {
        let b = Arc::new(Batcher::new(100, Duration::from_millis(5), 1000).unwrap());
        let (tx, rx) = mpsc::channel();
        b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
            let _ = tx.send(batch);
        })
        .unwrap();
        b.push(42, true);
        // Nothing else triggers a flush: it can only come from the interval.
        let batch = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("timed flush");
        assert_eq!(batch, vec![42]);
        b.stop();
    }

    #[test]
    fn a_sink_can_pull_several_due_batches_per_wake() {
        let b = Arc::new(Batcher::new(4, Duration::from_secs(3600), 1000).unwrap());
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let wakes = Arc::new(Mutex::new(Vec::<Vec<Vec<u64>>>::new()));
        let w = wakes.clone();
        b.start(move |first: Vec<u64>, more: &mut More<u64>| {
            let _ = go_rx.recv(); // hold the first wake until everything is queued
            let mut wake = vec![first];
            while let Some(batch) = more() {
                wake.push(batch);
            }
            w.lock().push(wake);
        })
        .unwrap();
        for i in 0..100 {
            b.push(i, true);
        }
        drop(go_tx);
        b.stop();
        let wakes = wakes.lock().clone();
        let all: Vec<u64> = wakes.iter().flatten().flatten().copied().collect();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(wakes.iter().flatten().all(|batch| batch.len() <= 4));
        assert!(wakes.iter().all(|w| w.len() <= 1 + MAX_BATCHES_PER_WAKE));
        // the first wake held 4 items; the 96 queued meanwhile go out 17 batches a wake
        assert!(wakes.len() < 25, "{} wakes", wakes.len());
        let s = b.stats();
        assert_eq!((s.flushed, s.batches), (100, 25));
    }

    #[test]
    fn a_producer_the_stuck_flush_thread_waits_on_overflows_instead_of_deadlocking() {
        // The flush thread's first batch waits until a producer has queued an item into
        // the full queue: without the stall rule both would wait for each other forever.
        let b = Arc::new(Batcher::new(2, Duration::from_secs(3600), 2).unwrap());
        let (pushed_tx, pushed_rx) = mpsc::channel::<()>();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
            if batch == vec![1, 2] {
                pushed_rx.recv().unwrap();
            }
            g.lock().extend(batch);
        })
        .unwrap();
        for i in 1..=4 {
            b.push(i, true); // [1, 2] goes to the sink, which blocks; 3 and 4 fill the queue
        }
        let b2 = b.clone();
        let producer = std::thread::spawn(move || {
            let r = b2.push(5, true);
            pushed_tx.send(()).unwrap();
            r
        });
        assert_eq!(producer.join().unwrap(), Push::Queued);
        b.stop();
        assert_eq!(*got.lock(), vec![1, 2, 3, 4, 5]);
        let s = b.stats();
        assert_eq!(s.flushed, 5);
        assert!(s.overflowed >= 1, "{s:?}"); // more only if the OS held a thread for 0.1 s
    }

    #[test]
    fn push_overflow_never_waits_and_counts() {
        let b = Arc::new(Batcher::new(2, Duration::from_secs(3600), 2).unwrap());
        assert_eq!(b.push_overflow(9), Push::Direct(9)); // stopped
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
            let _ = go_rx.recv();
            g.lock().extend(batch);
        })
        .unwrap();
        for i in 1..=4 {
            b.push(i, true); // the sink holds [1, 2]; [3, 4] fill the queue
        }
        assert_eq!(b.push(5, false), Push::Full(5));
        assert_eq!(b.push_overflow(5), Push::Queued);
        assert_eq!(b.push_overflow(6), Push::Queued);
        drop(go_tx);
        b.stop();
        assert_eq!(*got.lock(), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(b.stats().overflowed, 2);
    }

    #[test]
    fn restartable() {
        let b = Arc::new(Batcher::new(3, Duration::from_secs(3600), 16).unwrap());
        let (got, _) = collecting(&b);
        b.push(1, true);
        assert!(b.stop());
        assert_eq!(b.push(2, true), Push::Direct(2));
        let (got2, started) = collecting(&b);
        assert!(started);
        assert!(!b.start(|_, _| {}).unwrap(), "second start is a no-op");
        b.push(3, true);
        b.push(4, true);
        b.stop();
        assert_eq!(flat(&got), vec![1]);
        assert_eq!(flat(&got2), vec![3, 4]);
        assert_eq!(b.stats().starts, 2);
    }

    #[test]
    fn many_producers_exact_counts_and_per_producer_order() {
        // Small capacity: producers hit backpressure and must wait, never lose items.
        let b = Arc::new(Batcher::new(8, Duration::from_millis(1), 8).unwrap());
        let (got, _) = collecting(&b);
        let threads: Vec<_> = (0..4u64)
            .map(|p| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..5000u64 {
                        assert_eq!(b.push(p * 1_000_000 + i, true), Push::Queued);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        b.stop();
        let all = flat(&got);
        assert_eq!(all.len(), 20_000);
        for p in 0..4u64 {
            let mine: Vec<u64> = all.iter().copied().filter(|x| x / 1_000_000 == p).collect();
            assert_eq!(
                mine,
                (0..5000).map(|i| p * 1_000_000 + i).collect::<Vec<_>>()
            );
        }
        let s = b.stats();
        assert_eq!((s.enqueued, s.flushed, s.overflowed), (20_000, 20_000, 0));
        assert!(s.max_batch <= 8);
    }

    #[test]
    fn non_blocking_push_reports_full() {
        let b = Arc::new(Batcher::new(2, Duration::from_secs(3600), 2).unwrap());
        // A sink that waits for permission keeps the queue full.
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
            let _ = go_rx.recv();
            g.lock().extend(batch);
        })
        .unwrap();
        // [1, 2] is a full batch: the thread takes it and waits in the sink, so 3 and 4
        // (which may have to wait for that) fill the queue again.
        for i in 1..=4 {
            assert_eq!(b.push(i, true), Push::Queued);
        }
        assert_eq!(b.push(5, false), Push::Full(5));
        drop(go_tx); // the sink stops waiting
        assert_eq!(b.push(5, true), Push::Queued);
        b.stop();
        assert_eq!(*got.lock(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn push_and_flush_from_the_flush_thread_keep_order_and_never_wait() {
        // capacity == batch_size: waiting for room on the flush thread would deadlock.
        let b = Arc::new(Batcher::new(2, Duration::from_secs(3600), 2).unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, b2) = (seen.clone(), b.clone());
        b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
            for x in batch {
                s.lock().push(x);
                if x < 100 {
                    // A handler re-publishing: handed back to publish now (nested publish).
                    match b2.push(100 + x, true) {
                        Push::Direct(child) => s.lock().push(child),
                        other => panic!("expected Direct, got {other:?}"),
                    }
                    b2.flush(); // returns at once on the flush thread
                }
            }
        })
        .unwrap();
        for i in 0..6 {
            b.push(i, true);
        }
        b.stop();
        let v = seen.lock().clone();
        let expected: Vec<u64> = (0..6).flat_map(|i| [i, 100 + i]).collect();
        assert_eq!(v, expected);
        let s = b.stats();
        assert_eq!((s.enqueued, s.flushed, s.direct), (6, 6, 6));
    }

    #[test]
    fn stop_from_the_flush_thread_does_not_deadlock_and_restart_works() {
        let b = Arc::new(Batcher::new(1, Duration::from_secs(3600), 8).unwrap());
        let b2 = b.clone();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
            g.lock().extend(batch.iter().copied());
            if batch.contains(&1) {
                assert!(b2.stop());
                assert!(matches!(b2.start(|_, _| {}), Err(StartError::OwnThread)));
            }
        })
        .unwrap();
        b.push(1, true);
        // Wait for the thread to have stopped itself.
        let mut st = b.state.lock();
        while st.phase != Phase::Stopped {
            b.progress.wait(&mut st);
        }
        drop(st);
        let (got2, started) = collecting(&b);
        assert!(started);
        b.push(2, true);
        b.stop();
        assert_eq!(*got.lock(), vec![1]);
        assert_eq!(flat(&got2), vec![2]);
    }

    #[test]
    fn a_panicking_sink_does_not_wedge_the_batcher() {
        let b = Arc::new(Batcher::new(1, Duration::from_secs(3600), 4).unwrap());
        b.start(|batch: Vec<u64>, _: &mut More<u64>| {
            if batch[0] == 0 {
                panic!("sink failure (expected in this test)");
            }
        })
        .unwrap();
        for i in 0..3 {
            b.push(i, true);
        }
        b.flush();
        assert!(b.stop());
        assert_eq!(b.stats().flushed, 3);
    }

    #[test]
    fn concurrent_flushers_and_stoppers() {
        let b = Arc::new(Batcher::new(16, Duration::from_millis(2), 64).unwrap());
        let (got, _) = collecting(&b);
        let hs: Vec<_> = (0..3u64)
            .map(|p| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..2000u64 {
                        if let Push::Direct(_) = b.push(p * 10_000 + i, true) {
                            unreachable!("running");
                        }
                        if i % 97 == 0 {
                            b.flush();
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let s1 = std::thread::spawn({
            let b = b.clone();
            move || b.stop()
        });
        let r2 = b.stop();
        let r1 = s1.join().unwrap();
        assert!(r1 ^ r2, "exactly one stop saw it running");
        assert_eq!(flat(&got).len(), 6000);
    }
}
