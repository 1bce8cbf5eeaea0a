//! The bounded multi-producer channel behind every tracebus subscription, with the
//! reference's buffer strategies (drop, block, evict-oldest, priority).
//!
//! Items live in six lanes, one per severity, each FIFO, stamped with a per-channel
//! sequence number. Plain strategies use lane 0 only; the priority strategy files each
//! item under its severity so that eviction finds the least severe, oldest item in O(1),
//! and `recv` returns the item with the smallest sequence number among the lane heads, so
//! consumers still see send order. Every send is accounted exactly:
//! `sent == delivered + dropped + evicted + buffered` whenever the lock is not held.

use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to do with a send when the buffer is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferAction {
    /// The new item is dropped (and counted).
    Drop,
    /// The sender waits for room (optionally with a timeout); closing wakes it.
    Block,
    /// The oldest buffered item makes room (and is counted as evicted).
    EvictOldest,
}

impl BufferAction {
    pub const NAMES: [&'static str; 3] = ["drop", "block", "evict_oldest"];

    pub fn as_str(self) -> &'static str {
        match self {
            BufferAction::Drop => "drop",
            BufferAction::Block => "block",
            BufferAction::EvictOldest => "evict_oldest",
        }
    }

    pub fn parse(s: &str) -> Option<BufferAction> {
        match s {
            "drop" => Some(BufferAction::Drop),
            "block" => Some(BufferAction::Block),
            "evict_oldest" => Some(BufferAction::EvictOldest),
            _ => None,
        }
    }
}

/// What a block-action send does when it must not wait: the buffer is full and the sender
/// is the channel's own consumer, or the consumer is (transitively) waiting on the sender
/// (a waits-for cycle, see [`waits`]). Counted in `overflowed`; never admitted past
/// capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SelfBlock {
    /// The new item is dropped (counted in `dropped`). The default.
    #[default]
    Drop,
    /// The oldest buffered item makes room (counted in `evicted`).
    EvictOldest,
    /// The send fails with [`SendError::WouldDeadlock`] (the item counted in `dropped`).
    Raise,
}

impl SelfBlock {
    pub const NAMES: [&'static str; 3] = ["drop", "evict_oldest", "raise"];

    pub fn as_str(self) -> &'static str {
        match self {
            SelfBlock::Drop => "drop",
            SelfBlock::EvictOldest => "evict_oldest",
            SelfBlock::Raise => "raise",
        }
    }

    pub fn parse(s: &str) -> Option<SelfBlock> {
        match s {
            "drop" => Some(SelfBlock::Drop),
            "evict_oldest" => Some(SelfBlock::EvictOldest),
            "raise" => Some(SelfBlock::Raise),
            _ => None,
        }
    }
}

/// A buffer strategy: simple (one action) or priority (severity-aware eviction with
/// optional per-event-type action overrides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strategy {
    pub default_action: BufferAction,
    pub priority: bool,
    pub rules: HashMap<u32, BufferAction>,
    /// Longest wait of a block-action send (`None`: until there is room or the channel is
    /// closed). A send that waits past it drops the item (counted in `dropped` and
    /// `timed_out`) and the sender goes on.
    pub timeout: Option<Duration>,
    /// What a block-action send that must not wait does instead (see [`SelfBlock`]).
    pub on_self_block: SelfBlock,
}

impl Strategy {
    pub fn simple(action: BufferAction) -> Self {
        Strategy {
            default_action: action,
            priority: false,
            rules: HashMap::new(),
            timeout: None,
            on_self_block: SelfBlock::Drop,
        }
    }

    pub fn priority(default_action: BufferAction, rules: HashMap<u32, BufferAction>) -> Self {
        Strategy {
            default_action,
            priority: true,
            rules,
            timeout: None,
            on_self_block: SelfBlock::Drop,
        }
    }

    /// The same strategy with a block timeout.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same strategy with `on_self_block` set.
    pub fn with_on_self_block(mut self, on_self_block: SelfBlock) -> Self {
        self.on_self_block = on_self_block;
        self
    }

    fn action_for(&self, type_id: u32) -> BufferAction {
        if self.rules.is_empty() {
            self.default_action
        } else {
            *self.rules.get(&type_id).unwrap_or(&self.default_action)
        }
    }

    /// True when some send on this strategy may have to wait.
    pub fn may_block(&self) -> bool {
        self.default_action == BufferAction::Block
            || self.rules.values().any(|a| *a == BufferAction::Block)
    }
}

/// Counters of one channel, read atomically together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub evicted: u64,
    pub blocked: u64,
    /// Block-action sends that could not wait because the sender is the channel's own
    /// consumer or the consumer waits (transitively) on the sender; each then took the
    /// strategy's `on_self_block` action (and is also counted as dropped or evicted).
    pub overflowed: u64,
    /// Block-action sends dropped because they waited past the strategy's timeout (also
    /// counted in `dropped`).
    pub timed_out: u64,
    pub buffered: u64,
    pub capacity: u64,
    pub closed: bool,
}

/// Result of a send that did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent<T> {
    /// Buffered; carries its sequence number.
    Queued(u64),
    /// Buffered after evicting the returned (oldest, least severe) item.
    Evicted(u64, T),
    /// The item itself was dropped (buffer full and the strategy says drop, or priority
    /// refused to evict a more severe item).
    Dropped(T),
}

/// Why a send failed. The item is counted as dropped and handed back.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError<T> {
    Closed(T),
    Timeout(T),
    /// Only from `try_send`: the strategy says block and the buffer is full. Not counted;
    /// retry with `send_blocking`.
    WouldBlock(T),
    /// The wait for room was given up because its `Interrupt` said so (e.g. Ctrl-C).
    /// Counted as dropped.
    Interrupted(T),
    /// The strategy says block, the buffer is full and waiting would deadlock (see
    /// [`SelfBlock::Raise`]). Counted as dropped and overflowed.
    WouldDeadlock(T),
}

/// What `count_outside` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outside {
    /// The item had to wait for room (`blocked`).
    Blocked,
    /// The item was given up before it reached the buffer (`sent`, `dropped`): the
    /// consumer sees a gap in the sequence numbers.
    Dropped,
    /// Given up after waiting past the strategy's timeout (also `timed_out`).
    TimedOut,
}

/// Why a receive returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    Empty,
    Timeout,
    Closed,
    /// The wait was given up because its `Interrupt` said so (e.g. Ctrl-C).
    Interrupted,
}

/// Longest a blocking wait sleeps before it asks its `Interrupt` whether to give up.
pub const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Asked between slices of a blocking wait (at most every `WAIT_SLICE`), with no lock
/// held: `true` gives the wait up. The Python face checks for signals in it, so Ctrl-C
/// ends any wait within ~`WAIT_SLICE`.
pub type Interrupt<'a> = &'a dyn Fn() -> bool;

/// Whether a block-action send may wait for room: not at all (`try_send`), or for at
/// most a timeout (`None`: forever), asking an `Interrupt` between slices if given.
#[derive(Clone, Copy)]
enum Wait<'a> {
    No,
    For(Option<Duration>, Option<Interrupt<'a>>),
}

/// The earlier of two optional instants (None: never).
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

type Waker = Box<dyn FnOnce() + Send>;

struct Slot<T> {
    seq: u64,
    item: T,
}

struct Inner<T> {
    lanes: [VecDeque<Slot<T>>; 6],
    len: usize,
    closed: bool,
    stats: ChannelStats,
    /// One-shot wakers of async consumers waiting for an item (all run on the next push or
    /// on close; each consumer re-checks and re-arms, so several consumers never hang).
    wakers: Vec<Waker>,
}

impl<T> Inner<T> {
    fn pop(&mut self) -> Option<Slot<T>> {
        let lane = if self.lanes[1..].iter().all(VecDeque::is_empty) {
            0
        } else {
            (0..6)
                .filter(|&l| !self.lanes[l].is_empty())
                .min_by_key(|&l| self.lanes[l][0].seq)?
        };
        let slot = self.lanes[lane].pop_front()?;
        self.len -= 1;
        self.stats.delivered += 1;
        Some(slot)
    }

    fn push(&mut self, lane: usize, item: T) -> u64 {
        let seq = self.stats.sent;
        self.stats.sent += 1;
        self.lanes[lane].push_back(Slot { seq, item });
        self.len += 1;
        seq
    }
}

/// A bounded MPMC channel with a buffer strategy and exact accounting.
pub struct Channel<T> {
    inner: Mutex<Inner<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
    strategy: Strategy,
    /// Token of the thread that last received (or was registered as the consumer); 0 =
    /// none. A block-action sender on that thread must not wait: nobody else would make room.
    consumer: AtomicU64,
}

static NEXT_THREAD_TOKEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD_TOKEN: u64 = NEXT_THREAD_TOKEN.fetch_add(1, Ordering::Relaxed);
}

/// A small unique number for the calling thread.
pub fn thread_token() -> u64 {
    THREAD_TOKEN.with(|t| *t)
}

/// How long a blocked sender waits before re-checking the waits-for graph.
const CYCLE_SLICE: Duration = Duration::from_millis(5);

/// The process-wide waits-for graph: which thread waits for which. A thread blocked on a
/// full channel waits for that channel's consumer; other blocking waits (a batch flush)
/// add their own edge. A thread whose wait target reaches it back is in a cycle: nobody in
/// the cycle can make progress, so the thread that finds it stops waiting.
pub mod waits {
    use parking_lot::Mutex;

    /// (waiter, waited-for) thread tokens; a thread has at most one edge at a time. Touched
    /// only by threads about to wait (every few ms), never on a send that does not wait.
    static EDGES: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

    /// The calling thread's edge while it waits; removed on drop.
    #[derive(Default)]
    pub struct Edge {
        target: Option<u64>,
    }

    impl Edge {
        /// Records (or moves) the calling thread's edge to `target` (0: nobody).
        pub fn wait_for(&mut self, target: u64) {
            if self.target == Some(target) {
                return;
            }
            let me = super::thread_token();
            let mut e = EDGES.lock();
            e.retain(|(w, _)| *w != me);
            if target != 0 {
                e.push((me, target));
            }
            self.target = Some(target);
        }
    }

    impl Drop for Edge {
        fn drop(&mut self) {
            if self.target.is_some() {
                let me = super::thread_token();
                EDGES.lock().retain(|(w, _)| *w != me);
            }
        }
    }

    /// An edge from the calling thread to `target` for the guard's life.
    pub fn enter(target: u64) -> Edge {
        let mut e = Edge::default();
        e.wait_for(target);
        e
    }

    /// Whether following waits-for edges from `from` reaches `to` (`from == to` counts).
    pub fn reaches(from: u64, to: u64) -> bool {
        if from == 0 {
            return false;
        }
        let e = EDGES.lock();
        let mut at = from;
        for _ in 0..=e.len() {
            if at == to {
                return true;
            }
            match e.iter().find(|(w, _)| *w == at) {
                Some((_, t)) => at = *t,
                None => return false,
            }
        }
        false
    }
}

/// Largest capacity accepted (items are preallocated lazily, but a bound catches typos).
pub const MAX_CAPACITY: usize = 1 << 24;

impl<T> Channel<T> {
    /// A channel of `capacity` (1..=MAX_CAPACITY) items.
    pub fn new(capacity: usize, strategy: Strategy) -> Self {
        assert!(
            (1..=MAX_CAPACITY).contains(&capacity),
            "capacity out of range"
        );
        Channel {
            inner: Mutex::new(Inner {
                lanes: Default::default(),
                len: 0,
                closed: false,
                stats: ChannelStats {
                    capacity: capacity as u64,
                    ..Default::default()
                },
                wakers: Vec::new(),
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
            strategy,
            consumer: AtomicU64::new(0),
        }
    }

    /// Registers the calling thread as this channel's consumer (receiving does it too), so
    /// that its own block-action sends overflow instead of deadlocking.
    pub fn register_consumer(&self) {
        self.consumer.store(thread_token(), Ordering::Relaxed);
    }

    fn is_consumer(&self) -> bool {
        self.consumer.load(Ordering::Relaxed) == thread_token()
    }

    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lane(&self, severity: u8) -> usize {
        if self.strategy.priority {
            usize::from(severity.min(5))
        } else {
            0
        }
    }

    /// Wakes consumers after a push; the one-shot wakers (async consumers) run after the
    /// lock is released, so they may call anything.
    #[inline]
    fn after_push(&self, mut g: parking_lot::MutexGuard<'_, Inner<T>>) {
        if g.wakers.is_empty() {
            drop(g);
            self.not_empty.notify_one();
            return;
        }
        let wakers = std::mem::take(&mut g.wakers);
        drop(g);
        self.not_empty.notify_one();
        for w in wakers {
            w();
        }
    }

    /// Sends without ever waiting. A full buffer under the block action gives
    /// `WouldBlock` (uncounted), to be retried with `send_blocking` after releasing
    /// whatever the caller holds (the GIL).
    #[inline]
    pub fn try_send(&self, item: T, severity: u8, type_id: u32) -> Result<Sent<T>, SendError<T>> {
        self.send_inner(item, severity, type_id, Wait::No)
    }

    /// Sends, waiting for room under the block action for at most `timeout` (forever if
    /// `None`). While it waits, the thread is an edge of the [`waits`] graph; when the
    /// consumer turns out to wait (transitively) on this thread, the send takes the
    /// strategy's `on_self_block` action instead. Never call this while holding a lock
    /// another consumer needs.
    pub fn send_blocking(
        &self,
        item: T,
        severity: u8,
        type_id: u32,
        timeout: Option<Duration>,
    ) -> Result<Sent<T>, SendError<T>> {
        self.send_inner(item, severity, type_id, Wait::For(timeout, None))
    }

    /// `send_blocking` that asks `interrupt` between slices of its wait and gives up with
    /// `Interrupted` (counted as dropped) when it says so.
    pub fn send_interruptible(
        &self,
        item: T,
        severity: u8,
        type_id: u32,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Sent<T>, SendError<T>> {
        self.send_inner(item, severity, type_id, Wait::For(timeout, Some(interrupt)))
    }

    /// Token of the thread registered as this channel's consumer (0: none yet).
    pub fn consumer_token(&self) -> u64 {
        self.consumer.load(Ordering::Relaxed)
    }

    #[inline]
    fn send_inner(
        &self,
        item: T,
        severity: u8,
        type_id: u32,
        wait: Wait<'_>,
    ) -> Result<Sent<T>, SendError<T>> {
        match self.push_if_room(item, severity) {
            Err(done) => done,
            Ok((g, item)) => self.when_full(g, item, severity, type_id, wait),
        }
    }

    /// A send that found the channel full: the strategy's action (out of line, so that
    /// a send with room costs only [`Self::push_if_room`]).
    #[inline(never)]
    fn when_full(
        &self,
        mut g: parking_lot::MutexGuard<'_, Inner<T>>,
        item: T,
        severity: u8,
        type_id: u32,
        wait: Wait<'_>,
    ) -> Result<Sent<T>, SendError<T>> {
        match self.strategy.action_for(type_id) {
            BufferAction::Drop => {
                g.stats.sent += 1;
                g.stats.dropped += 1;
                Ok(Sent::Dropped(item))
            }
            BufferAction::EvictOldest => Ok(self.evict_for(g, item, severity)),
            BufferAction::Block if self.is_consumer() => {
                // The sender is the consumer: waiting could never end.
                self.self_block(g, item, severity)
            }
            BufferAction::Block => {
                let Wait::For(timeout, interrupt) = wait else {
                    return Err(SendError::WouldBlock(item));
                };
                g.stats.blocked += 1;
                let now = Instant::now();
                // A timeout too large for the clock means no timeout.
                let call_deadline = timeout.and_then(|t| now.checked_add(t));
                let own_deadline = self.strategy.timeout.and_then(|t| now.checked_add(t));
                // The earlier of the two decides what a timeout means.
                let (deadline, own) = match (call_deadline, own_deadline) {
                    (Some(c), Some(o)) if o < c => (Some(o), true),
                    (Some(c), _) => (Some(c), false),
                    (None, o) => (o, o.is_some()),
                };
                let me = thread_token();
                let mut edge = waits::Edge::default();
                let mut asked = now;
                while g.len >= self.capacity && !g.closed {
                    let now = Instant::now();
                    if deadline.is_some_and(|d| now >= d) {
                        drop(edge);
                        g.stats.sent += 1;
                        g.stats.dropped += 1;
                        if own {
                            g.stats.timed_out += 1;
                            return Ok(Sent::Dropped(item));
                        }
                        return Err(SendError::Timeout(item));
                    }
                    // Waits in slices: after each, a still-full channel whose consumer waits
                    // (transitively) on this sender is a deadlock, not a wait; every
                    // `WAIT_SLICE` it also asks `interrupt`.
                    let until = earliest(deadline, Some(now + CYCLE_SLICE)).unwrap_or(now);
                    if !self.not_full.wait_until(&mut g, until).timed_out()
                        || g.len < self.capacity
                        || g.closed
                    {
                        continue;
                    }
                    let token = self.consumer.load(Ordering::Relaxed);
                    let stuck = parking_lot::MutexGuard::unlocked(&mut g, || {
                        edge.wait_for(token);
                        waits::reaches(token, me)
                    });
                    if stuck && g.len >= self.capacity && !g.closed {
                        drop(edge);
                        return self.self_block(g, item, severity);
                    }
                    if let Some(interrupt) = interrupt {
                        if asked.elapsed() >= WAIT_SLICE {
                            asked = Instant::now();
                            if parking_lot::MutexGuard::unlocked(&mut g, interrupt) {
                                drop(edge);
                                g.stats.sent += 1;
                                g.stats.dropped += 1;
                                return Err(SendError::Interrupted(item));
                            }
                        }
                    }
                }
                drop(edge);
                if g.closed {
                    g.stats.sent += 1;
                    g.stats.dropped += 1;
                    return Err(SendError::Closed(item));
                }
                let seq = g.push(self.lane(severity), item);
                self.after_push(g);
                Ok(Sent::Queued(seq))
            }
        }
    }

    /// Sends `item` as a block-action send that must not wait (its consumer waits on the
    /// sender, see [`waits`]): queued if there is room, else the strategy's `on_self_block`
    /// action (counted in `overflowed`).
    pub fn send_self_blocked(&self, item: T, severity: u8) -> Result<Sent<T>, SendError<T>> {
        match self.push_if_room(item, severity) {
            Ok((g, item)) => self.self_block(g, item, severity),
            Err(done) => done,
        }
    }

    /// The start of every send: `Err` with the result when the channel is closed (counted
    /// as dropped) or has room (queued); `Ok` with the lock and the item when it is full.
    #[allow(clippy::type_complexity)]
    #[inline]
    fn push_if_room(
        &self,
        item: T,
        severity: u8,
    ) -> Result<(parking_lot::MutexGuard<'_, Inner<T>>, T), Result<Sent<T>, SendError<T>>> {
        let mut g = self.inner.lock();
        if g.closed {
            g.stats.sent += 1;
            g.stats.dropped += 1;
            return Err(Err(SendError::Closed(item)));
        }
        if g.len < self.capacity {
            let seq = g.push(self.lane(severity), item);
            self.after_push(g);
            return Err(Ok(Sent::Queued(seq)));
        }
        Ok((g, item))
    }

    /// Counts what happened to an item held outside the channel (a store outbox) on its
    /// way in, as if it had been sent here.
    pub fn count_outside(&self, what: Outside) {
        let mut g = self.inner.lock();
        match what {
            Outside::Blocked => g.stats.blocked += 1,
            Outside::Dropped | Outside::TimedOut => {
                g.stats.sent += 1;
                g.stats.dropped += 1;
                g.stats.timed_out += u64::from(what == Outside::TimedOut);
            }
        }
    }

    /// Waits at most `timeout` until the buffer has room or the channel is closed (only
    /// block-action strategies are woken by receives; others just wait out the timeout).
    pub fn wait_for_room(&self, timeout: Duration) {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return;
        };
        let mut g = self.inner.lock();
        while g.len >= self.capacity && !g.closed {
            if self.not_full.wait_until(&mut g, deadline).timed_out() {
                return;
            }
        }
    }

    /// Buffers `item` into a full channel by evicting the oldest (least severe) item, or
    /// drops `item` when priority finds only more severe ones.
    fn evict_for(
        &self,
        mut g: parking_lot::MutexGuard<'_, Inner<T>>,
        item: T,
        severity: u8,
    ) -> Sent<T> {
        let victim_lane = if self.strategy.priority {
            (0..6).find(|&l| !g.lanes[l].is_empty()).unwrap_or(0)
        } else {
            0
        };
        if self.strategy.priority && victim_lane > usize::from(severity) {
            // Everything buffered is more severe than the newcomer: keep them.
            g.stats.sent += 1;
            g.stats.dropped += 1;
            return Sent::Dropped(item);
        }
        let victim = g.lanes[victim_lane]
            .pop_front()
            .expect("a full channel has a non-empty lane");
        g.len -= 1;
        g.stats.evicted += 1;
        let seq = g.push(self.lane(severity), item);
        self.after_push(g);
        Sent::Evicted(seq, victim.item)
    }

    /// A block-action send into a full channel that must not wait: the strategy's
    /// `on_self_block` action, counted in `overflowed`.
    fn self_block(
        &self,
        mut g: parking_lot::MutexGuard<'_, Inner<T>>,
        item: T,
        severity: u8,
    ) -> Result<Sent<T>, SendError<T>> {
        g.stats.overflowed += 1;
        match self.strategy.on_self_block {
            SelfBlock::Drop => {
                g.stats.sent += 1;
                g.stats.dropped += 1;
                Ok(Sent::Dropped(item))
            }
            SelfBlock::EvictOldest => Ok(self.evict_for(g, item, severity)),
            SelfBlock::Raise => {
                g.stats.sent += 1;
                g.stats.dropped += 1;
                Err(SendError::WouldDeadlock(item))
            }
        }
    }

    fn after_pop(&self, n: usize) {
        if n > 0 && self.strategy.may_block() {
            self.not_full.notify_all();
        }
    }

    /// Takes the next item (with its sequence number) if one is buffered.
    pub fn try_recv(&self) -> Result<(u64, T), RecvError> {
        self.register_consumer();
        let mut g = self.inner.lock();
        match g.pop() {
            Some(s) => {
                drop(g);
                self.after_pop(1);
                Ok((s.seq, s.item))
            }
            None if g.closed => Err(RecvError::Closed),
            None => Err(RecvError::Empty),
        }
    }

    /// Waits for the next item for at most `timeout` (forever if `None`). Buffered items
    /// are still returned after `close`; `Closed` comes once the buffer is empty.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<(u64, T), RecvError> {
        self.recv_inner(timeout, None)
    }

    /// `recv` that asks `interrupt` between slices of its wait and gives up with
    /// `Interrupted` when it says so.
    pub fn recv_interruptible(
        &self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<(u64, T), RecvError> {
        self.recv_inner(timeout, Some(interrupt))
    }

    fn recv_inner(
        &self,
        timeout: Option<Duration>,
        interrupt: Option<Interrupt<'_>>,
    ) -> Result<(u64, T), RecvError> {
        self.register_consumer();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut g = self.inner.lock();
        loop {
            if let Some(s) = g.pop() {
                drop(g);
                self.after_pop(1);
                return Ok((s.seq, s.item));
            }
            if g.closed {
                return Err(RecvError::Closed);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(RecvError::Timeout);
            }
            let slice = interrupt.map(|_| now + WAIT_SLICE);
            match earliest(deadline, slice) {
                Some(until) => {
                    let timed_out = self.not_empty.wait_until(&mut g, until).timed_out();
                    if let Some(interrupt) = interrupt {
                        if timed_out
                            && g.len == 0
                            && !g.closed
                            && parking_lot::MutexGuard::unlocked(&mut g, interrupt)
                        {
                            return Err(RecvError::Interrupted);
                        }
                    }
                }
                None => self.not_empty.wait(&mut g),
            }
        }
    }

    /// Takes up to `max` buffered items in one lock acquisition.
    pub fn drain(&self, max: usize) -> Vec<(u64, T)> {
        self.register_consumer();
        let mut g = self.inner.lock();
        let n = g.len.min(max);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match g.pop() {
                Some(s) => out.push((s.seq, s.item)),
                None => break,
            }
        }
        drop(g);
        self.after_pop(out.len());
        out
    }

    /// Blocks until at least one item is buffered or the channel is closed (or the
    /// timeout passes), then drains up to `max`. Empty result: closed or timed out.
    pub fn recv_batch(&self, max: usize, timeout: Option<Duration>) -> Vec<(u64, T)> {
        self.register_consumer();
        {
            let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
            let mut g = self.inner.lock();
            while g.len == 0 && !g.closed {
                match deadline {
                    Some(d) => {
                        if self.not_empty.wait_until(&mut g, d).timed_out() {
                            break;
                        }
                    }
                    None => self.not_empty.wait(&mut g),
                }
            }
        }
        self.drain(max)
    }

    /// Registers a one-shot waker that runs on the next push, unless items are already
    /// buffered or the channel is closed (then returns false and the waker is dropped).
    pub fn arm_waker(&self, waker: Waker) -> bool {
        let mut g = self.inner.lock();
        if g.len > 0 || g.closed {
            // The waker may own Python objects: dropped after the lock.
            drop(g);
            drop(waker);
            return false;
        }
        g.wakers.push(waker);
        true
    }

    /// Closes the channel: later sends fail (counted as dropped), blocked senders and
    /// waiting receivers wake, buffered items stay receivable. Returns false if already
    /// closed.
    pub fn close(&self) -> bool {
        let mut g = self.inner.lock();
        if g.closed {
            return false;
        }
        g.closed = true;
        g.stats.closed = true;
        let wakers = std::mem::take(&mut g.wakers);
        drop(g);
        self.not_empty.notify_all();
        self.not_full.notify_all();
        for w in wakers {
            w();
        }
        true
    }

    /// Drops everything buffered, counting it as dropped (used when a subscription is torn
    /// down with items nobody will read).
    pub fn discard_buffered(&self) -> Vec<T> {
        let mut g = self.inner.lock();
        let mut out = Vec::with_capacity(g.len);
        for lane in 0..6 {
            while let Some(s) = g.lanes[lane].pop_front() {
                out.push(s.item);
            }
        }
        let n = out.len() as u64;
        g.len = 0;
        g.stats.dropped += n;
        drop(g);
        self.after_pop(out.len());
        out
    }

    /// Calls `f` on every buffered item, unless the lock is busy (then nothing is visited).
    /// For GC traversal, which must never wait.
    pub fn try_for_each<E>(&self, mut f: impl FnMut(&T) -> Result<(), E>) -> Result<(), E> {
        let Some(g) = self.inner.try_lock() else {
            return Ok(());
        };
        for lane in &g.lanes {
            for slot in lane {
                f(&slot.item)?;
            }
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    pub fn len(&self) -> usize {
        self.inner.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> ChannelStats {
        let g = self.inner.lock();
        let mut s = g.stats;
        s.buffered = g.len as u64;
        s
    }
}

#[cfg(test)]
mod tests;

/// Exact-count stress tests (reliability plan, test 4): every item sent ends up exactly once
/// as received, handed back (dropped / evicted / refused on close) or still buffered, under
/// many threads and seeded random interleavings; a Drop counter checks nothing is leaked or
/// dropped twice.
#[cfg(test)]
pub(crate) mod stress_tests;
