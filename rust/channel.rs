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
    waker: Option<Waker>,
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
                waker: None,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
            strategy,
        }
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

    /// Wakes consumers after a push; the one-shot waker (async consumers) runs after the
    /// lock is released, so it may call anything.
    fn after_push(&self, mut g: parking_lot::MutexGuard<'_, Inner<T>>) {
        let waker = g.waker.take();
        drop(g);
        self.not_empty.notify_one();
        if let Some(w) = waker {
            w();
        }
    }

    /// Sends without ever waiting. A full buffer under the block action gives
    /// `WouldBlock` (uncounted), to be retried with `send_blocking` after releasing
    /// whatever the caller holds (the GIL).
    pub fn try_send(&self, item: T, severity: u8, type_id: u32) -> Result<Sent<T>, SendError<T>> {
        self.send_inner(item, severity, type_id, None, false)
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
        self.send_inner(item, severity, type_id, timeout, true)
    }

    fn send_inner(
        &self,
        item: T,
        severity: u8,
        type_id: u32,
        timeout: Option<Duration>,
        may_wait: bool,
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
            BufferAction::Block => {
                if !may_wait {
                    return Err(SendError::WouldBlock(item));
                }
                g.stats.blocked += 1;
                let deadline = timeout.map(|t| Instant::now() + t);
                while g.len >= self.capacity && !g.closed {
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
        g.waker = Some(waker);
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
        let waker = g.waker.take();
        drop(g);
        self.not_empty.notify_all();
        self.not_full.notify_all();
        if let Some(w) = waker {
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
    fn closed_channel_counts_sends_as_dropped() {
        let ch = Channel::new(4, Strategy::simple(BufferAction::Drop));
        ch.close();
        assert!(matches!(ch.try_send(1, 2, 0), Err(SendError::Closed(1))));
        let s = ch.stats();
        assert_eq!((s.sent, s.dropped), (1, 1));
    }
}
