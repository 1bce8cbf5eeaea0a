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

/// A buffer strategy: simple (one action) or priority (severity-aware eviction with
/// optional per-event-type action overrides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strategy {
    pub default_action: BufferAction,
    pub priority: bool,
    pub rules: HashMap<u32, BufferAction>,
}

impl Strategy {
    pub fn simple(action: BufferAction) -> Self {
        Strategy {
            default_action: action,
            priority: false,
            rules: HashMap::new(),
        }
    }

    pub fn priority(default_action: BufferAction, rules: HashMap<u32, BufferAction>) -> Self {
        Strategy {
            default_action,
            priority: true,
            rules,
        }
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
    /// Block-action sends admitted past capacity because the sender is the channel's own
    /// consumer (waiting would deadlock); see `send_overflow`.
    pub overflowed: u64,
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
}

/// Why a receive returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    Empty,
    Timeout,
    Closed,
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
    fn after_push(&self, mut g: parking_lot::MutexGuard<'_, Inner<T>>) {
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
    pub fn try_send(&self, item: T, severity: u8, type_id: u32) -> Result<Sent<T>, SendError<T>> {
        self.send_inner(item, severity, type_id, None, false, None)
    }

    /// Sends, waiting for room under the block action for at most `timeout` (forever if
    /// `None`). Never call this while holding a lock another consumer needs.
    pub fn send_blocking(
        &self,
        item: T,
        severity: u8,
        type_id: u32,
        timeout: Option<Duration>,
    ) -> Result<Sent<T>, SendError<T>> {
        self.send_inner(item, severity, type_id, timeout, true, None)
    }

    /// Like `send_blocking` without a timeout, but while waiting it asks `consumer_stuck`
    /// (every few milliseconds, with this channel's consumer token, no lock held) whether
    /// the consumer is itself waiting on something this sender holds; if so the item is
    /// admitted past capacity (counted in `overflowed`) instead of waiting forever.
    pub fn send_blocking_unless(
        &self,
        item: T,
        severity: u8,
        type_id: u32,
        consumer_stuck: &dyn Fn(u64) -> bool,
    ) -> Result<Sent<T>, SendError<T>> {
        self.send_inner(item, severity, type_id, None, true, Some(consumer_stuck))
    }

    /// Token of the thread registered as this channel's consumer (0: none yet).
    pub fn consumer_token(&self) -> u64 {
        self.consumer.load(Ordering::Relaxed)
    }

    fn send_inner(
        &self,
        item: T,
        severity: u8,
        type_id: u32,
        timeout: Option<Duration>,
        may_wait: bool,
        consumer_stuck: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Sent<T>, SendError<T>> {
        let mut g = self.inner.lock();
        if g.closed {
            g.stats.sent += 1;
            g.stats.dropped += 1;
            return Err(SendError::Closed(item));
        }
        if g.len < self.capacity {
            let seq = g.push(self.lane(severity), item);
            self.after_push(g);
            return Ok(Sent::Queued(seq));
        }
        match self.strategy.action_for(type_id) {
            BufferAction::Drop => {
                g.stats.sent += 1;
                g.stats.dropped += 1;
                Ok(Sent::Dropped(item))
            }
            BufferAction::EvictOldest => {
                let victim_lane = if self.strategy.priority {
                    (0..6).find(|&l| !g.lanes[l].is_empty()).unwrap_or(0)
                } else {
                    0
                };
                if self.strategy.priority && victim_lane > usize::from(severity) {
                    // Everything buffered is more severe than the newcomer: keep them.
                    g.stats.sent += 1;
                    g.stats.dropped += 1;
                    return Ok(Sent::Dropped(item));
                }
                let victim = g.lanes[victim_lane]
                    .pop_front()
                    .expect("a full channel has a non-empty lane");
                g.len -= 1;
                g.stats.evicted += 1;
                let seq = g.push(self.lane(severity), item);
                self.after_push(g);
                Ok(Sent::Evicted(seq, victim.item))
            }
            BufferAction::Block if self.is_consumer() => {
                // The sender is the consumer: waiting could never end and dropping would
                // lose an event nobody chose to lose, so admit it past capacity (counted).
                g.stats.overflowed += 1;
                let seq = g.push(self.lane(severity), item);
                self.after_push(g);
                Ok(Sent::Queued(seq))
            }
            BufferAction::Block => {
                if !may_wait {
                    return Err(SendError::WouldBlock(item));
                }
                g.stats.blocked += 1;
                let deadline = timeout.map(|t| Instant::now() + t);
                while g.len >= self.capacity && !g.closed {
                    if let Some(stuck) = consumer_stuck {
                        let slice = Instant::now() + Duration::from_millis(5);
                        if self.not_full.wait_until(&mut g, slice).timed_out()
                            && g.len >= self.capacity
                            && !g.closed
                        {
                            let token = self.consumer.load(Ordering::Relaxed);
                            if parking_lot::MutexGuard::unlocked(&mut g, || stuck(token))
                                && g.len >= self.capacity
                                && !g.closed
                            {
                                g.stats.overflowed += 1;
                                break;
                            }
                        }
                        continue;
                    }
                    match deadline {
                        Some(d) => {
                            if self.not_full.wait_until(&mut g, d).timed_out()
                                && g.len >= self.capacity
                                && !g.closed
                            {
                                g.stats.sent += 1;
                                g.stats.dropped += 1;
                                return Err(SendError::Timeout(item));
                            }
                        }
                        None => self.not_full.wait(&mut g),
                    }
                }
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
        self.register_consumer();
        let deadline = timeout.map(|t| Instant::now() + t);
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
            match deadline {
                Some(d) => {
                    if self.not_empty.wait_until(&mut g, d).timed_out() && g.len == 0 {
                        return Err(if g.closed {
                            RecvError::Closed
                        } else {
                            RecvError::Timeout
                        });
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
            let deadline = timeout.map(|t| Instant::now() + t);
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
mod tests {
    use super::*;
    use std::sync::Arc;

    fn check(s: ChannelStats) {
        assert_eq!(
            s.sent,
            s.delivered + s.dropped + s.evicted + s.buffered,
            "{s:?}"
        );
    }

    #[test]
    fn drop_strategy_drops_newest() {
        let ch = Channel::new(2, Strategy::simple(BufferAction::Drop));
        for i in 0..5 {
            ch.try_send(i, 2, 0).unwrap();
        }
        assert_eq!(
            ch.drain(10).into_iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![0, 1]
        );
        let s = ch.stats();
        assert_eq!((s.sent, s.delivered, s.dropped), (5, 2, 3));
        check(s);
    }

    #[test]
    fn evict_oldest_keeps_newest_and_sequence_shows_gaps() {
        let ch = Channel::new(2, Strategy::simple(BufferAction::EvictOldest));
        for i in 0..5 {
            ch.try_send(i, 2, 0).unwrap();
        }
        let got = ch.drain(10);
        assert_eq!(got, vec![(3, 3), (4, 4)]);
        let s = ch.stats();
        assert_eq!(s.evicted, 3);
        check(s);
    }

    #[test]
    fn priority_never_evicts_more_severe() {
        let ch = Channel::new(
            3,
            Strategy::priority(BufferAction::EvictOldest, HashMap::new()),
        );
        ch.try_send("err1", 4, 0).unwrap();
        ch.try_send("info1", 2, 0).unwrap();
        ch.try_send("err2", 4, 0).unwrap();
        // full: a warn evicts the info
        assert!(matches!(
            ch.try_send("warn1", 3, 0).unwrap(),
            Sent::Evicted(_, "info1")
        ));
        // full of warn/error: a debug is dropped instead of evicting
        assert!(matches!(
            ch.try_send("debug", 1, 0).unwrap(),
            Sent::Dropped("debug")
        ));
        // an error evicts the warn (least severe)
        assert!(matches!(
            ch.try_send("err3", 4, 0).unwrap(),
            Sent::Evicted(_, "warn1")
        ));
        let order: Vec<_> = ch.drain(10).into_iter().map(|x| x.1).collect();
        assert_eq!(order, vec!["err1", "err2", "err3"]);
        check(ch.stats());
    }

    #[test]
    fn priority_rules_override_action() {
        let mut rules = HashMap::new();
        rules.insert(7, BufferAction::Drop);
        let ch = Channel::new(1, Strategy::priority(BufferAction::EvictOldest, rules));
        ch.try_send(1, 2, 0).unwrap();
        assert!(matches!(ch.try_send(2, 2, 7).unwrap(), Sent::Dropped(2)));
        assert!(matches!(ch.try_send(3, 2, 0).unwrap(), Sent::Evicted(_, 1)));
    }

    #[test]
    fn block_waits_and_times_out_and_close_wakes() {
        let ch = Arc::new(Channel::new(1, Strategy::simple(BufferAction::Block)));
        ch.try_send(1, 2, 0).unwrap();
        assert!(matches!(
            ch.try_send(2, 2, 0),
            Err(SendError::WouldBlock(2))
        ));
        let t = Instant::now();
        assert!(matches!(
            ch.send_blocking(2, 2, 0, Some(Duration::from_millis(20))),
            Err(SendError::Timeout(2))
        ));
        assert!(t.elapsed() >= Duration::from_millis(19));
        let c2 = ch.clone();
        let h = std::thread::spawn(move || c2.send_blocking(3, 2, 0, None));
        std::thread::sleep(Duration::from_millis(20));
        ch.close();
        assert!(matches!(h.join().unwrap(), Err(SendError::Closed(3))));
        assert_eq!(ch.recv(None), Ok((0, 1)));
        assert_eq!(ch.recv(None), Err(RecvError::Closed));
        check(ch.stats());
    }

    #[test]
    fn block_exact_under_threads() {
        let ch = Arc::new(Channel::new(16, Strategy::simple(BufferAction::Block)));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        ch.send_blocking((p, i), 2, 0, None).unwrap();
                    }
                })
            })
            .collect();
        let mut last = [None::<u64>; 4];
        let mut n = 0;
        while n < 80_000 {
            for (_, (p, i)) in ch.recv_batch(64, None) {
                if let Some(prev) = last[p as usize] {
                    assert!(i > prev, "per-producer order");
                }
                last[p as usize] = Some(i);
                n += 1;
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        let s = ch.stats();
        assert_eq!((s.sent, s.delivered, s.dropped), (80_000, 80_000, 0));
    }

    #[test]
    fn evict_exact_under_threads() {
        let ch = Arc::new(Channel::new(
            64,
            Strategy::simple(BufferAction::EvictOldest),
        ));
        let producers: Vec<_> = (0..8u64)
            .map(|p| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        ch.try_send((p, i), 2, 0).unwrap();
                    }
                })
            })
            .collect();
        let mut got = 0u64;
        let mut seqs = std::collections::HashSet::new();
        let mut last = [None::<u64>; 8];
        while producers.iter().any(|p| !p.is_finished()) || !ch.is_empty() {
            for (seq, (p, i)) in ch.drain(32) {
                assert!(seqs.insert(seq));
                if let Some(prev) = last[p as usize] {
                    assert!(i > prev);
                }
                last[p as usize] = Some(i);
                got += 1;
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        got += ch.drain(usize::MAX).len() as u64;
        let s = ch.stats();
        assert_eq!(s.sent, 80_000);
        assert_eq!(s.delivered, got);
        assert_eq!(s.delivered + s.evicted, 80_000);
    }

    #[test]
    fn waker_fires_once_on_push_and_on_close() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let ch = Channel::new(4, Strategy::simple(BufferAction::Drop));
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        assert!(ch.arm_waker(Box::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        })));
        ch.try_send(1, 2, 0).unwrap();
        ch.try_send(2, 2, 0).unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let h = hits.clone();
        assert!(!ch.arm_waker(Box::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        })));
        ch.drain(10);
        let h = hits.clone();
        assert!(ch.arm_waker(Box::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        })));
        ch.close();
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn every_armed_waker_fires() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let ch: Channel<u32> = Channel::new(4, Strategy::simple(BufferAction::Drop));
        let hits = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let h = hits.clone();
            assert!(ch.arm_waker(Box::new(move || {
                h.fetch_add(1, Ordering::SeqCst);
            })));
        }
        ch.close();
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn block_sender_that_is_the_consumer_overflows_instead_of_waiting() {
        let ch = Arc::new(Channel::new(1, Strategy::simple(BufferAction::Block)));
        ch.try_send(1, 2, 0).unwrap();
        // Another thread is not the consumer: it would wait.
        let c2 = ch.clone();
        let other = std::thread::spawn(move || {
            matches!(c2.try_send(9, 2, 0), Err(SendError::WouldBlock(9)))
        });
        assert!(other.join().unwrap());
        ch.register_consumer();
        assert_eq!(ch.send_blocking(2, 2, 0, None), Ok(Sent::Queued(1)));
        let s = ch.stats();
        assert_eq!((s.buffered, s.overflowed), (2, 1));
        check(s);
        assert_eq!(ch.drain(10), vec![(0, 1), (1, 2)]);
        // Receiving registers the receiver as the consumer too.
        let c3 = ch.clone();
        let t = std::thread::spawn(move || {
            let _ = c3.drain(1);
            c3.try_send(3, 2, 0).unwrap();
            c3.try_send(4, 2, 0).is_ok()
        });
        assert!(t.join().unwrap());
        assert_eq!(ch.stats().overflowed, 2);
    }

    #[test]
    fn closed_channel_counts_sends_as_dropped() {
        let ch = Channel::new(4, Strategy::simple(BufferAction::Drop));
        ch.close();
        assert!(matches!(ch.try_send(1, 2, 0), Err(SendError::Closed(1))));
        let s = ch.stats();
        assert_eq!((s.sent, s.dropped), (1, 1));
    }
}

/// Exact-count stress tests (reliability plan, test 4): every item sent ends up exactly once
/// as received, handed back (dropped / evicted / refused on close) or still buffered, under
/// many threads and seeded random interleavings; a Drop counter checks nothing is leaked or
/// dropped twice.
#[cfg(test)]
pub(crate) mod stress_tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Scales sizes with TRACEBUS_STRESS (default 1), as the Python reliability suite does.
    fn scaled(n: usize) -> usize {
        let k = std::env::var("TRACEBUS_STRESS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        n * k
    }

    /// Under Miri or valgrind everything is ~50x slower: keep the interleavings, fewer items.
    fn small() -> bool {
        cfg!(miri) || std::env::var("TRACEBUS_SMALL").is_ok_and(|v| !v.is_empty() && v != "0")
    }

    /// A stress test's item count: `n` scaled by TRACEBUS_STRESS, or far fewer under
    /// Miri/valgrind (TRACEBUS_SMALL). Shared with the store's stress tests.
    pub(crate) fn size(n: usize) -> usize {
        if small() {
            (n / 50).max(10)
        } else {
            scaled(n)
        }
    }

    /// A tiny deterministic PRNG (xorshift64*), so failures replay from the printed seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// One line of figures, like the Python reliability suite's (`cargo test -- --nocapture`).
    fn figures(test: &str, events: u64, threads: u64, s: &ChannelStats, extra: &str) {
        eprintln!(
            "[figures] {test}: events={events} threads={threads} faults=0 published={} \
             delivered={} dropped={} evicted={} errors=0 lost={} duplicated=0 overflowed={}{extra}",
            s.sent,
            s.delivered,
            s.dropped,
            s.evicted,
            s.sent - (s.delivered + s.dropped + s.evicted + s.buffered),
            s.overflowed,
        );
    }

    /// Where each item ended up.
    #[derive(Default)]
    struct Tally {
        received: Vec<(u64, u64)>,
        handed_back: Vec<(u64, u64)>,
    }

    fn check_conservation(
        senders: u64,
        per: u64,
        tallies: Vec<Tally>,
        rest: Vec<(u64, u64)>,
    ) -> (usize, usize) {
        let mut seen = vec![0u8; (senders * per) as usize];
        let (mut rec, mut back) = (0, 0);
        let mut mark = |(p, i): (u64, u64)| {
            let k = (p * per + i) as usize;
            seen[k] += 1;
        };
        for t in tallies {
            rec += t.received.len();
            back += t.handed_back.len();
            t.received.into_iter().for_each(&mut mark);
            t.handed_back.into_iter().for_each(&mut mark);
        }
        rec += rest.len();
        rest.into_iter().for_each(&mut mark);
        let missing = seen.iter().filter(|&&c| c == 0).count();
        let twice = seen.iter().filter(|&&c| c > 1).count();
        assert_eq!((missing, twice), (0, 0), "items lost or duplicated");
        (rec, back)
    }

    /// 4 senders x 4 receivers for each strategy: each value ends up exactly once, counters
    /// match, and each receiver sees each sender's values in order.
    fn mpmc(name: &str, strategy: Strategy, capacity: usize) {
        const S: u64 = 4;
        const R: usize = 4;
        let per = size(50_000) as u64;
        let ch = Arc::new(Channel::new(capacity, strategy));
        let senders_done = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..S)
            .map(|p| {
                let ch = ch.clone();
                let done = senders_done.clone();
                std::thread::spawn(move || {
                    let mut t = Tally::default();
                    for i in 0..per {
                        let sev = ((p + i) % 6) as u8;
                        match ch.send_blocking((p, i), sev, 0, None) {
                            Ok(Sent::Queued(_)) => {}
                            Ok(Sent::Evicted(_, v)) | Ok(Sent::Dropped(v)) => t.handed_back.push(v),
                            Err(SendError::Closed(v)) | Err(SendError::Timeout(v)) => {
                                t.handed_back.push(v)
                            }
                            Err(SendError::WouldBlock(_)) => unreachable!(),
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    t
                })
            })
            .collect();
        let receivers: Vec<_> = (0..R)
            .map(|r| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    let mut t = Tally::default();
                    let mut last = [None::<u64>; S as usize];
                    loop {
                        let got = if r % 2 == 0 {
                            ch.recv_batch(16, Some(Duration::from_millis(50)))
                        } else {
                            match ch.recv(Some(Duration::from_millis(50))) {
                                Ok(x) => vec![x],
                                Err(RecvError::Closed) => break,
                                Err(_) => continue,
                            }
                        };
                        if got.is_empty() && ch.is_closed() && ch.is_empty() {
                            break;
                        }
                        for (_, (p, i)) in got {
                            if let Some(prev) = last[p as usize] {
                                assert!(i > prev, "per-sender order");
                            }
                            last[p as usize] = Some(i);
                            t.received.push((p, i));
                        }
                    }
                    t
                })
            })
            .collect();
        let mut tallies: Vec<Tally> = senders.into_iter().map(|h| h.join().unwrap()).collect();
        ch.close();
        tallies.extend(receivers.into_iter().map(|h| h.join().unwrap()));
        let rest: Vec<_> = ch.drain(usize::MAX).into_iter().map(|x| x.1).collect();
        let (rec, back) = check_conservation(S, per, tallies, rest);
        let s = ch.stats();
        assert_eq!(s.sent, S * per);
        assert_eq!(s.delivered as usize, rec);
        assert_eq!((s.dropped + s.evicted) as usize, back);
        assert_eq!(s.sent, s.delivered + s.dropped + s.evicted + s.buffered);
        assert_eq!(s.buffered, 0);
        figures(name, S * per, S + R as u64, &s, "");
    }

    #[test]
    fn mpmc_block_exact() {
        mpmc("mpmc_block_exact", Strategy::simple(BufferAction::Block), 8);
    }

    #[test]
    fn mpmc_drop_exact() {
        mpmc("mpmc_drop_exact", Strategy::simple(BufferAction::Drop), 64);
    }

    #[test]
    fn mpmc_evict_exact() {
        mpmc(
            "mpmc_evict_exact",
            Strategy::simple(BufferAction::EvictOldest),
            64,
        );
    }

    #[test]
    fn mpmc_priority_exact() {
        mpmc(
            "mpmc_priority_exact",
            Strategy::priority(BufferAction::EvictOldest, HashMap::new()),
            64,
        );
    }

    #[test]
    fn mpmc_priority_with_block_rule_exact() {
        let mut rules = HashMap::new();
        rules.insert(0, BufferAction::Block);
        mpmc(
            "mpmc_priority_with_block_rule_exact",
            Strategy::priority(BufferAction::Drop, rules),
            16,
        );
    }

    /// Counts constructions and drops of items, to catch leaks and double drops.
    struct Counted {
        drops: Arc<AtomicUsize>,
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn drop_counter_nothing_leaked_or_dropped_twice() {
        for (k, strategy) in [
            Strategy::simple(BufferAction::Drop),
            Strategy::simple(BufferAction::EvictOldest),
            Strategy::simple(BufferAction::Block),
            Strategy::priority(BufferAction::EvictOldest, HashMap::new()),
        ]
        .into_iter()
        .enumerate()
        {
            let drops = Arc::new(AtomicUsize::new(0));
            let made = Arc::new(AtomicUsize::new(0));
            let n = size(20_000);
            {
                let ch = Arc::new(Channel::new(32, strategy));
                let hs: Vec<_> = (0..4)
                    .map(|p| {
                        let ch = ch.clone();
                        let drops = drops.clone();
                        let made = made.clone();
                        std::thread::spawn(move || {
                            for i in 0..n {
                                made.fetch_add(1, Ordering::SeqCst);
                                let item = Counted {
                                    drops: drops.clone(),
                                };
                                // Handed-back items are dropped here by the caller.
                                let _ = ch.send_blocking(
                                    item,
                                    ((p + i) % 6) as u8,
                                    0,
                                    Some(Duration::from_millis(1)),
                                );
                            }
                        })
                    })
                    .collect();
                let consumer = {
                    let ch = ch.clone();
                    std::thread::spawn(move || {
                        let mut got = 0usize;
                        while !(ch.is_closed() && ch.is_empty()) {
                            got += ch.recv_batch(8, Some(Duration::from_millis(5))).len();
                            if k == 1 {
                                std::thread::yield_now();
                            }
                        }
                        got
                    })
                };
                for h in hs {
                    h.join().unwrap();
                }
                // Close with items possibly buffered: they stay receivable, then the rest
                // is dropped with the channel.
                ch.discard_buffered();
                ch.close();
                consumer.join().unwrap();
                let s = ch.stats();
                assert_eq!(s.sent, s.delivered + s.dropped + s.evicted + s.buffered);
            }
            assert_eq!(
                drops.load(Ordering::SeqCst),
                made.load(Ordering::SeqCst),
                "strategy #{k}: every item dropped exactly once"
            );
        }
    }

    #[test]
    fn buffered_items_are_dropped_with_the_channel() {
        let drops = Arc::new(AtomicUsize::new(0));
        {
            let ch = Channel::new(100, Strategy::simple(BufferAction::Drop));
            for _ in 0..150 {
                let _ = ch.try_send(
                    Counted {
                        drops: drops.clone(),
                    },
                    2,
                    0,
                );
            }
            assert_eq!(drops.load(Ordering::SeqCst), 50); // the 50 refused ones
            ch.close();
        }
        assert_eq!(drops.load(Ordering::SeqCst), 150);
    }

    #[test]
    fn close_wakes_every_blocked_sender_and_hands_items_back() {
        let ch = Arc::new(Channel::new(2, Strategy::simple(BufferAction::Block)));
        ch.try_send(0u64, 2, 0).unwrap();
        ch.try_send(1u64, 2, 0).unwrap();
        let n = 16u64;
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let ch = ch.clone();
                std::thread::spawn(move || ch.send_blocking(100 + i, 2, 0, None))
            })
            .collect();
        while ch.stats().blocked < n {
            std::thread::yield_now();
        }
        ch.close();
        let mut back: Vec<u64> = hs
            .into_iter()
            .map(|h| match h.join().unwrap() {
                Err(SendError::Closed(v)) => v,
                other => panic!("expected Closed, got {other:?}"),
            })
            .collect();
        back.sort();
        assert_eq!(back, (100..100 + n).collect::<Vec<_>>());
        let s = ch.stats();
        assert_eq!((s.sent, s.dropped, s.buffered), (2 + n, n, 2));
        assert_eq!(ch.drain(10).len(), 2);
    }

    /// Seeded random interleavings: threads pick random operations (send, try_send, recv,
    /// drain, discard, close) on a tiny channel with a random strategy; item conservation
    /// and the counter identity hold at the end of every run.
    #[test]
    fn seeded_random_interleavings() {
        let runs = if small() { 10 } else { scaled(200) };
        let mut total = ChannelStats::default();
        let mut items = 0u64;
        for seed in 1..=runs as u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let strategy = match rng.below(4) {
                0 => Strategy::simple(BufferAction::Drop),
                1 => Strategy::simple(BufferAction::EvictOldest),
                2 => Strategy::simple(BufferAction::Block),
                _ => Strategy::priority(BufferAction::EvictOldest, HashMap::new()),
            };
            let cap = 1 + rng.below(4) as usize;
            let ch = Arc::new(Channel::new(cap, strategy));
            let threads = 2 + rng.below(4);
            let per = 200u64;
            let closed_early = Arc::new(AtomicBool::new(false));
            let hs: Vec<_> = (0..threads)
                .map(|p| {
                    let ch = ch.clone();
                    let closed_early = closed_early.clone();
                    let mut rng = Rng(rng.next() | 1);
                    std::thread::spawn(move || {
                        let mut t = Tally::default();
                        let mut i = 0;
                        while i < per {
                            match rng.below(10) {
                                0..=4 => {
                                    let r = ch.send_blocking(
                                        (p, i),
                                        rng.below(6) as u8,
                                        0,
                                        Some(Duration::from_micros(rng.below(200))),
                                    );
                                    match r {
                                        Ok(Sent::Queued(_)) => {}
                                        Ok(Sent::Evicted(_, v)) | Ok(Sent::Dropped(v)) => {
                                            t.handed_back.push(v)
                                        }
                                        Err(SendError::Closed(v))
                                        | Err(SendError::Timeout(v))
                                        | Err(SendError::WouldBlock(v)) => t.handed_back.push(v),
                                    }
                                    i += 1;
                                }
                                5 => {
                                    match ch.try_send((p, i), rng.below(6) as u8, 0) {
                                        Ok(Sent::Queued(_)) => i += 1,
                                        Ok(Sent::Evicted(_, v)) | Ok(Sent::Dropped(v)) => {
                                            t.handed_back.push(v);
                                            i += 1;
                                        }
                                        Err(SendError::Closed(v)) | Err(SendError::Timeout(v)) => {
                                            t.handed_back.push(v);
                                            i += 1;
                                        }
                                        // Not counted and not consumed: retried later.
                                        Err(SendError::WouldBlock(_)) => {}
                                    }
                                }
                                6 | 7 => {
                                    if let Ok((_, v)) = ch.try_recv() {
                                        t.received.push(v);
                                    }
                                }
                                8 => t.received.extend(
                                    ch.drain(rng.below(4) as usize).into_iter().map(|x| x.1),
                                ),
                                _ => {
                                    if rng.below(50) == 0 {
                                        ch.close();
                                        closed_early.store(true, Ordering::SeqCst);
                                    } else if rng.below(20) == 0 {
                                        t.handed_back.extend(ch.discard_buffered());
                                    } else if let Ok((_, v)) =
                                        ch.recv(Some(Duration::from_micros(50)))
                                    {
                                        t.received.push(v);
                                    }
                                }
                            }
                        }
                        t
                    })
                })
                .collect();
            let tallies: Vec<Tally> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            let rest: Vec<_> = ch.drain(usize::MAX).into_iter().map(|x| x.1).collect();
            let (rec, back) = check_conservation(threads, per, tallies, rest);
            let s = ch.stats();
            assert_eq!(s.sent, threads * per, "seed {seed}");
            assert_eq!(s.delivered as usize, rec, "seed {seed}");
            assert_eq!((s.dropped + s.evicted) as usize, back, "seed {seed}");
            assert_eq!(s.buffered, 0, "seed {seed}");
            total.sent += s.sent;
            total.delivered += s.delivered;
            total.dropped += s.dropped;
            total.evicted += s.evicted;
            total.overflowed += s.overflowed;
            items += threads * per;
        }
        figures(
            "seeded_random_interleavings",
            items,
            0,
            &total,
            &format!(" runs={runs}"),
        );
    }

    /// Priority under concurrent senders and a stalled consumer: nothing lost is more severe
    /// than anything kept.
    #[test]
    fn priority_never_loses_more_severe_than_kept_under_threads() {
        let cap = 64;
        let ch = Arc::new(Channel::new(
            cap,
            Strategy::priority(BufferAction::EvictOldest, HashMap::new()),
        ));
        let per = size(20_000) as u64;
        let sev = |p: u64, i: u64| -> u8 {
            let h = (i.wrapping_mul(2_654_435_761) ^ p.wrapping_mul(40_503)) % 1000;
            match h {
                0..=599 => 1,
                600..=989 => 2,
                990..=994 => 3,
                _ => 4,
            }
        };
        let hs: Vec<_> = (0..8u64)
            .map(|p| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    let mut lost = 0u8;
                    for i in 0..per {
                        match ch.try_send((p, i), sev(p, i), 0).unwrap() {
                            Sent::Queued(_) => {}
                            Sent::Evicted(_, (q, j)) | Sent::Dropped((q, j)) => {
                                lost = lost.max(sev(q, j));
                            }
                        }
                    }
                    lost
                })
            })
            .collect();
        let lost_max = hs.into_iter().map(|h| h.join().unwrap()).max().unwrap();
        let kept = ch.drain(usize::MAX);
        assert_eq!(kept.len(), cap);
        let kept_min = kept.iter().map(|(_, (p, i))| sev(*p, *i)).min().unwrap();
        assert!(lost_max <= kept_min, "lost {lost_max} > kept {kept_min}");
        // Sequence numbers come out in send order.
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
