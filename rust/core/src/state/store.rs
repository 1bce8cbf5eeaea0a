//! The centralized state store: one thread-safe source of truth for service states.
//!
//! Transitions are atomic (the old state is read and the new one written under one lock).
//! Subscribers are notified in transition order: each transition takes a ticket under the
//! data lock, and notifications are sent in ticket order, so a subscriber sees every change
//! in the order the store applied them, even when a block-strategy subscriber makes one
//! notifier wait. Data reads never wait for notifications.

use crate::delivery::channel::{thread_token, Channel, SendError, Sent, Strategy};
use crate::model::kinds::State;
use crate::model::update::UpdateData;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a state-store subscriber receives.
#[derive(Clone, Debug)]
pub struct StateChange {
    pub label: Arc<str>,
    pub old_state: State,
    pub new_state: State,
    /// The new snapshot; `None` when the service was cleared.
    pub snapshot: Option<Arc<UpdateData>>,
}

impl StateChange {
    pub fn severity(&self) -> u8 {
        self.new_state.severity() as u8
    }
}

/// A subscriber's channel, with the label it watches (`None` = every label).
pub struct StoreSubscription {
    pub id: u64,
    pub label: Option<Arc<str>>,
    pub channel: Arc<Channel<StateChange>>,
}

/// The result of applying one update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// False when a conditional update (`apply_if_newer`) was not stored.
    pub stored: bool,
    /// True when the label is new or its state differs (the reference's "changed").
    pub changed: bool,
    /// True when the snapshot differs in what subscribers see (state, readiness, error,
    /// port, pid, type) or the label is new; subscribers were notified exactly then.
    pub updated: bool,
    pub old_state: State,
    pub new_state: State,
}

/// Notifications owed after a transition, to be sent in ticket order.
pub struct Pending {
    ticket: u64,
    items: Vec<(Arc<Channel<StateChange>>, StateChange)>,
    next: usize,
}

#[derive(Default)]
struct Data {
    services: HashMap<Arc<str>, Arc<UpdateData>>,
    by_type: HashMap<Arc<str>, u64>,
    by_state: [u64; 7],
    subs: Vec<Arc<StoreSubscription>>,
    next_ticket: u64,
}

/// Store counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreMetrics {
    pub total_services: u64,
    pub state_changes: u64,
    pub operations: u64,
    pub subscription_events: u64,
    pub subscription_drops: u64,
    pub active_subscriptions: u64,
    pub by_type: Vec<(Arc<str>, u64)>,
    pub by_state: Vec<(State, u64)>,
}

/// Whose turn it is to notify, and which threads wait for their turn (by channel thread
/// token): a notifier blocked on a full block-strategy channel whose consumer is one of
/// them overflows instead of waiting (the consumer waits for the notifier: a cycle).
#[derive(Default)]
struct Turn {
    now: u64,
    waiting: Vec<u64>,
}

pub struct StateStore {
    data: Mutex<Data>,
    turn: Mutex<Turn>,
    turn_cv: Condvar,
    state_changes: AtomicU64,
    operations: AtomicU64,
    sub_events: AtomicU64,
    sub_drops: AtomicU64,
    next_sub: AtomicU64,
    pub default_buffer: usize,
}

impl StateStore {
    pub fn new(default_buffer: usize) -> Self {
        StateStore {
            data: Mutex::new(Data::default()),
            turn: Mutex::new(Turn::default()),
            turn_cv: Condvar::new(),
            state_changes: AtomicU64::new(0),
            operations: AtomicU64::new(0),
            sub_events: AtomicU64::new(0),
            sub_drops: AtomicU64::new(0),
            next_sub: AtomicU64::new(1),
            default_buffer,
        }
    }

    fn collect(data: &mut Data, change: &StateChange) -> Pending {
        let ticket = data.next_ticket;
        data.next_ticket += 1;
        let items = data
            .subs
            .iter()
            .filter(|s| s.label.as_ref().is_none_or(|l| *l == change.label))
            .map(|s| (s.channel.clone(), change.clone()))
            .collect();
        Pending {
            ticket,
            items,
            next: 0,
        }
    }

    /// A ticket with nothing to send: notifications are delivered in ticket order, so
    /// every operation takes one.
    fn empty_pending(d: &mut Data) -> Pending {
        let ticket = d.next_ticket;
        d.next_ticket += 1;
        Pending {
            ticket,
            items: Vec::new(),
            next: 0,
        }
    }

    /// Applies an update atomically. Returns the transition and the notifications owed,
    /// which the caller sends with `notify` (possibly after releasing the GIL).
    pub fn apply(&self, upd: Arc<UpdateData>) -> (Transition, Pending) {
        self.apply_if(upd, false)
    }

    /// `apply`, except that with `if_newer` the update is stored only if its label is
    /// unknown or the update is newer than the label's snapshot by (timestamp, event id):
    /// last writer wins, decided under the store's lock (so a concurrent older write can
    /// never overwrite a newer one). An update not stored changes nothing and notifies
    /// nobody (`Transition::stored` is false).
    pub fn apply_if(&self, upd: Arc<UpdateData>, if_newer: bool) -> (Transition, Pending) {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let mut d = self.data.lock();
        if if_newer {
            if let Some(p) = d.services.get(&upd.label) {
                if (upd.timestamp, upd.event_id) <= (p.timestamp, p.event_id) {
                    let state = p.state;
                    let pending = Self::empty_pending(&mut d);
                    let t = Transition {
                        stored: false,
                        changed: false,
                        updated: false,
                        old_state: state,
                        new_state: state,
                    };
                    return (t, pending);
                }
            }
        }
        let new_state = upd.state;
        let prev = d.services.insert(upd.label.clone(), upd.clone());
        let (old_state, notify) = match &prev {
            None => {
                *d.by_type.entry(upd.source_type.clone()).or_insert(0) += 1;
                (State::Unknown, true)
            }
            Some(p) => {
                if p.source_type != upd.source_type {
                    Self::dec_type(&mut d.by_type, &p.source_type);
                    *d.by_type.entry(upd.source_type.clone()).or_insert(0) += 1;
                }
                d.by_state[p.state as usize] -= 1;
                (p.state, upd.differs_from(p))
            }
        };
        d.by_state[new_state as usize] += 1;
        let changed = prev.is_none() || old_state != new_state;
        if changed {
            self.state_changes.fetch_add(1, Ordering::Relaxed);
        }
        let pending = if notify && !d.subs.is_empty() {
            let change = StateChange {
                label: upd.label.clone(),
                old_state,
                new_state,
                snapshot: Some(upd),
            };
            Self::collect(&mut d, &change)
        } else {
            Self::empty_pending(&mut d)
        };
        drop(d);
        (
            Transition {
                stored: true,
                changed,
                updated: notify,
                old_state,
                new_state,
            },
            pending,
        )
    }

    fn dec_type(by_type: &mut HashMap<Arc<str>, u64>, t: &Arc<str>) {
        if let Some(n) = by_type.get_mut(t) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_type.remove(t);
            }
        }
    }

    fn remove_locked(d: &mut Data, label: &str) -> Option<Arc<UpdateData>> {
        let prev = d.services.remove(label)?;
        Self::dec_type(&mut d.by_type, &prev.source_type);
        d.by_state[prev.state as usize] -= 1;
        Some(prev)
    }

    fn cleared_change(prev: &UpdateData) -> StateChange {
        StateChange {
            label: prev.label.clone(),
            old_state: prev.state,
            new_state: State::Unknown,
            snapshot: None,
        }
    }

    /// Removes one service; subscribers are notified (new state Unknown, no snapshot).
    pub fn clear(&self, label: &str) -> (bool, Pending) {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let mut d = self.data.lock();
        match Self::remove_locked(&mut d, label) {
            Some(prev) => {
                let p = Self::collect(&mut d, &Self::cleared_change(&prev));
                (true, p)
            }
            None => {
                let ticket = d.next_ticket;
                d.next_ticket += 1;
                (
                    false,
                    Pending {
                        ticket,
                        items: Vec::new(),
                        next: 0,
                    },
                )
            }
        }
    }

    /// Removes every service, notifying subscribers of each, as one ticket.
    pub fn clear_all(&self) -> (usize, Pending) {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let mut d = self.data.lock();
        let all: Vec<Arc<UpdateData>> = d.services.drain().map(|(_, v)| v).collect();
        d.by_type.clear();
        d.by_state = [0; 7];
        let ticket = d.next_ticket;
        d.next_ticket += 1;
        let mut items = Vec::new();
        for prev in &all {
            let change = Self::cleared_change(prev);
            for s in &d.subs {
                if s.label.as_ref().is_none_or(|l| *l == change.label) {
                    items.push((s.channel.clone(), change.clone()));
                }
            }
        }
        (
            all.len(),
            Pending {
                ticket,
                items,
                next: 0,
            },
        )
    }

    /// Sends owed notifications in ticket order. With `may_block == false` it returns
    /// `false` instead of waiting (for its turn, or for room in a block-strategy channel);
    /// call it again with `may_block == true` after releasing the GIL.
    pub fn notify(&self, p: &mut Pending, may_block: bool) -> bool {
        {
            let mut turn = self.turn.lock();
            if turn.now != p.ticket {
                if !may_block {
                    return false;
                }
                let me = thread_token();
                turn.waiting.push(me);
                while turn.now != p.ticket {
                    self.turn_cv.wait(&mut turn);
                }
                if let Some(i) = turn.waiting.iter().position(|t| *t == me) {
                    turn.waiting.swap_remove(i);
                }
            }
        }
        let consumer_waits_for_turn =
            |token: u64| token != 0 && self.turn.lock().waiting.contains(&token);
        while p.next < p.items.len() {
            let (ch, change) = &p.items[p.next];
            let sev = change.severity();
            let ty = change.new_state.event_type();
            let res = if may_block {
                ch.send_blocking_unless(change.clone(), sev, ty, &consumer_waits_for_turn)
            } else {
                ch.try_send(change.clone(), sev, ty)
            };
            match res {
                Ok(Sent::Queued(_)) => {
                    self.sub_events.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Sent::Evicted(..)) => {
                    self.sub_events.fetch_add(1, Ordering::Relaxed);
                    self.sub_drops.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Sent::Dropped(_)) | Err(SendError::Closed(_)) | Err(SendError::Timeout(_)) => {
                    self.sub_drops.fetch_add(1, Ordering::Relaxed);
                }
                Err(SendError::WouldBlock(_)) => return false,
            }
            p.next += 1;
        }
        let mut turn = self.turn.lock();
        turn.now += 1;
        drop(turn);
        self.turn_cv.notify_all();
        true
    }

    pub fn get(&self, label: &str) -> Option<Arc<UpdateData>> {
        self.data.lock().services.get(label).cloned()
    }

    fn select(&self, pred: impl Fn(&UpdateData) -> bool) -> Vec<Arc<UpdateData>> {
        let d = self.data.lock();
        let mut v: Vec<_> = d.services.values().filter(|u| pred(u)).cloned().collect();
        drop(d);
        v.sort_by(|a, b| a.label.cmp(&b.label));
        v
    }

    /// All snapshots, sorted by label.
    pub fn all(&self) -> Vec<Arc<UpdateData>> {
        self.select(|_| true)
    }

    pub fn by_type(&self, t: &str) -> Vec<Arc<UpdateData>> {
        self.select(|u| &*u.source_type == t)
    }

    pub fn by_state(&self, s: State) -> Vec<Arc<UpdateData>> {
        self.select(|u| u.state == s)
    }

    pub fn len(&self) -> usize {
        self.data.lock().services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn subscribe(
        &self,
        label: Option<Arc<str>>,
        capacity: usize,
        strategy: Strategy,
    ) -> Arc<StoreSubscription> {
        let sub = Arc::new(StoreSubscription {
            id: self.next_sub.fetch_add(1, Ordering::Relaxed),
            label,
            channel: Arc::new(Channel::new(capacity, strategy)),
        });
        // Until another thread receives from it, the subscribing thread is taken for the
        // consumer: its own writes then never wait on a watcher only it would drain.
        sub.channel.register_consumer();
        self.data.lock().subs.push(sub.clone());
        sub
    }

    /// Removes a subscription and closes its channel. Returns false if it was not active.
    pub fn unsubscribe(&self, id: u64) -> bool {
        let mut d = self.data.lock();
        let Some(pos) = d.subs.iter().position(|s| s.id == id) else {
            return false;
        };
        let sub = d.subs.remove(pos);
        drop(d);
        sub.channel.close();
        true
    }

    pub fn metrics(&self) -> StoreMetrics {
        let d = self.data.lock();
        let mut by_type: Vec<_> = d.by_type.iter().map(|(k, v)| (k.clone(), *v)).collect();
        by_type.sort();
        StoreMetrics {
            total_services: d.services.len() as u64,
            state_changes: self.state_changes.load(Ordering::Relaxed),
            operations: self.operations.load(Ordering::Relaxed),
            subscription_events: self.sub_events.load(Ordering::Relaxed),
            subscription_drops: self.sub_drops.load(Ordering::Relaxed),
            active_subscriptions: d.subs.len() as u64,
            by_type,
            by_state: State::ALL
                .iter()
                .map(|s| (*s, d.by_state[*s as usize]))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }

    /// Approximate bytes held by snapshots and subscription buffers.
    pub fn memory_bytes(&self) -> u64 {
        let d = self.data.lock();
        let snap: u64 = d
            .services
            .values()
            .map(|u| {
                (std::mem::size_of::<UpdateData>()
                    + u.label.len() * 2
                    + u.source_type.len()
                    + u.correlation_id.len()
                    + u.caused_by.len()
                    + u.error_detail.as_ref().map_or(0, |e| e.len())
                    + u.parent_id.as_ref().map_or(0, |e| e.len())
                    + 48) as u64
            })
            .sum();
        let subs: u64 = d
            .subs
            .iter()
            .map(|s| s.channel.len() as u64 * std::mem::size_of::<StateChange>() as u64)
            .sum();
        snap + subs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::channel::{BufferAction, RecvError};

    pub(super) fn upd(label: &str, state: State) -> Arc<UpdateData> {
        Arc::new(UpdateData {
            timestamp: 0.0,
            source_type: Arc::from("PortForward"),
            label: Arc::from(label),
            state,
            is_ready: state == State::Running,
            error_detail: None,
            proxy_port: 0,
            pid: 0,
            event_id: crate::model::ids::next_id(),
            correlation_id: Arc::from("corr_0"),
            caused_by: Arc::from("test"),
            parent_id: None,
        })
    }

    fn set(s: &StateStore, u: Arc<UpdateData>) -> Transition {
        let (t, mut p) = s.apply(u);
        assert!(s.notify(&mut p, true));
        t
    }

    #[test]
    fn apply_if_newer_keeps_the_newest_update() {
        let s = StateStore::new(100);
        let sub = s.subscribe(None, 16, Strategy::simple(BufferAction::Drop));
        let at = |label: &str, state: State, timestamp: f64, event_id: u64| {
            let mut u = (*upd(label, state)).clone();
            u.timestamp = timestamp;
            u.event_id = event_id;
            Arc::new(u)
        };
        let apply = |u: Arc<UpdateData>| {
            let (t, mut p) = s.apply_if(u, true);
            assert!(s.notify(&mut p, true));
            t
        };
        assert!(apply(at("a", State::Starting, 10.0, 5)).stored); // unknown label
        let older = apply(at("a", State::Failed, 9.0, 99));
        assert!(!older.stored && !older.changed && !older.updated);
        assert_eq!(
            (older.old_state, older.new_state),
            (State::Starting, State::Starting)
        );
        assert!(!apply(at("a", State::Failed, 10.0, 5)).stored); // the same one again
        let tie = apply(at("a", State::Running, 10.0, 6)); // same time: the larger id wins
        assert!(tie.stored && tie.changed);
        assert!(apply(at("a", State::Stopped, 11.0, 1)).stored);
        assert_eq!(s.get("a").map(|u| u.state), Some(State::Stopped));
        // Subscribers saw exactly the stored updates.
        let seen: Vec<State> = sub
            .channel
            .drain(usize::MAX)
            .into_iter()
            .map(|(_, c)| c.new_state)
            .collect();
        assert_eq!(seen, [State::Starting, State::Running, State::Stopped]);
    }

    #[test]
    fn changed_semantics_and_counts() {
        let s = StateStore::new(100);
        assert!(set(&s, upd("a", State::Starting)).changed);
        let same = set(&s, upd("a", State::Starting));
        assert!(!same.changed && !same.updated);
        let t = set(&s, upd("a", State::Running));
        assert_eq!(
            (t.old_state, t.new_state, t.changed),
            (State::Starting, State::Running, true)
        );
        set(&s, upd("b", State::Failed));
        let m = s.metrics();
        assert_eq!(m.total_services, 2);
        assert_eq!(m.state_changes, 3);
        assert_eq!(m.by_state, vec![(State::Running, 1), (State::Failed, 1)]);
        assert!(s.clear("a").0);
        assert!(!s.clear("a").0);
        assert_eq!(s.clear_all().0, 1);
        let m = s.metrics();
        assert_eq!(
            (m.total_services, m.by_state.len(), m.by_type.len()),
            (0, 0, 0)
        );
    }

    #[test]
    fn subscribers_see_changes_and_clears_in_order() {
        let s = StateStore::new(100);
        let all = s.subscribe(None, 100, Strategy::simple(BufferAction::Drop));
        let only_b = s.subscribe(
            Some(Arc::from("b")),
            100,
            Strategy::simple(BufferAction::Drop),
        );
        set(&s, upd("a", State::Starting));
        set(&s, upd("b", State::Running));
        set(&s, upd("b", State::Running)); // identical: no notification
        let (_, mut p) = s.clear("b");
        s.notify(&mut p, true);
        let got: Vec<_> = all
            .channel
            .drain(10)
            .into_iter()
            .map(|(_, c)| (c.label, c.new_state))
            .collect();
        assert_eq!(
            got,
            vec![
                (Arc::from("a"), State::Starting),
                (Arc::from("b"), State::Running),
                (Arc::from("b"), State::Unknown)
            ]
        );
        assert_eq!(only_b.channel.drain(10).len(), 2);
        assert!(s.unsubscribe(all.id));
        assert!(matches!(all.channel.try_recv(), Err(RecvError::Closed)));
    }

    #[test]
    fn eight_threads_exact_counts_and_order() {
        let s = Arc::new(StateStore::new(100));
        let sub = s.subscribe(None, 1 << 20, Strategy::simple(BufferAction::Drop));
        let hs: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        let st = if i % 2 == 0 {
                            State::Starting
                        } else {
                            State::Running
                        };
                        set(&s, upd(&format!("svc-{t}"), st));
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let m = s.metrics();
        assert_eq!(m.state_changes, 8000);
        assert_eq!(m.operations, 8000);
        let changes = sub.channel.drain(usize::MAX);
        assert_eq!(changes.len(), 8000);
        // Per label, each change's old state is the previous change's new state.
        let mut last: HashMap<Arc<str>, State> = HashMap::new();
        for (_, c) in changes {
            let prev = last
                .insert(c.label.clone(), c.new_state)
                .unwrap_or(State::Unknown);
            assert_eq!(prev, c.old_state);
        }
    }

    #[test]
    fn subscribing_thread_counts_as_consumer_until_another_receives() {
        let s = StateStore::new(1);
        let sub = s.subscribe(None, 1, Strategy::simple(BufferAction::Block));
        for st in [State::Starting, State::Running, State::Failed] {
            set(&s, upd("a", st)); // would wait forever for itself without the rule
        }
        let st = sub.channel.stats();
        assert_eq!((st.buffered, st.overflowed), (3, 2));
    }

    #[test]
    fn block_subscriber_whose_consumer_writes_back_does_not_deadlock() {
        let s = Arc::new(StateStore::new(1));
        let sub = s.subscribe(None, 1, Strategy::simple(BufferAction::Block));
        let s2 = s.clone();
        let ch = sub.channel.clone();
        // The consumer reacts to each Starting by writing Running back to the store.
        let consumer = std::thread::spawn(move || {
            let mut seen = 0;
            while let Ok((_, c)) = ch.recv(Some(std::time::Duration::from_secs(5))) {
                seen += 1;
                if c.new_state == State::Starting {
                    set(&s2, upd(&format!("{}-ack", c.label), State::Running));
                }
                if seen == 40 {
                    break;
                }
            }
            seen
        });
        for i in 0..20 {
            set(&s, upd(&format!("svc{i}"), State::Starting));
        }
        assert_eq!(consumer.join().unwrap(), 40);
        assert_eq!(s.len(), 40);
    }

    #[test]
    fn block_subscriber_does_not_stall_reads() {
        let s = Arc::new(StateStore::new(1));
        let sub = s.subscribe(None, 1, Strategy::simple(BufferAction::Block));
        // Another thread consumes (the subscriber would otherwise count as the consumer).
        let ch = sub.channel.clone();
        std::thread::spawn(move || ch.register_consumer())
            .join()
            .unwrap();
        set(&s, upd("a", State::Starting));
        let (_, mut p) = s.apply(upd("a", State::Running));
        assert!(!s.notify(&mut p, false)); // would block
        assert_eq!(s.get("a").unwrap().state, State::Running);
        let s2 = s.clone();
        let h = std::thread::spawn(move || s2.notify(&mut p, true));
        assert_eq!(sub.channel.recv(None).unwrap().1.new_state, State::Starting);
        assert!(h.join().unwrap());
        assert_eq!(sub.channel.recv(None).unwrap().1.new_state, State::Running);
    }
}

/// Exact-count stress tests (reliability plan, test 4): many threads apply, clear and
/// subscribe at once; every notification is accounted for, each watcher sees each change of
/// its label once and in order, and the indexes agree with the data.
#[cfg(test)]
mod stress_tests {
    use super::tests::upd;
    use super::*;
    use crate::delivery::channel::stress_tests::size;
    use crate::delivery::channel::{BufferAction, RecvError};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    const CYCLE: [State; 4] = [
        State::Starting,
        State::Running,
        State::Failed,
        State::Retrying,
    ];

    /// 8 writers (one label each, plus clears), a block-strategy watcher of capacity 1
    /// drained by its own thread, drop and evict watchers, and a thread that subscribes and
    /// unsubscribes throughout. Exact counts everywhere.
    #[test]
    fn writers_watchers_and_churn_exact() {
        let s = Arc::new(StateStore::new(16));
        let all_block = s.subscribe(None, 1, Strategy::simple(BufferAction::Block));
        let all_drop = s.subscribe(None, 8, Strategy::simple(BufferAction::Drop));
        let all_evict = s.subscribe(None, 8, Strategy::simple(BufferAction::EvictOldest));
        let one = s.subscribe(
            Some(Arc::from("svc-3")),
            1 << 20,
            Strategy::simple(BufferAction::Drop),
        );
        let writers = 8;
        let per = size(3_000);
        let stop = Arc::new(AtomicBool::new(false));
        let drainer = {
            let ch = all_block.channel.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match ch.recv(Some(Duration::from_millis(20))) {
                        Ok((seq, c)) => got.push((seq, c)),
                        Err(RecvError::Closed) => return got,
                        Err(_) => {}
                    }
                }
            })
        };
        let churn = {
            let s = s.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let strategy = if n.is_multiple_of(3) {
                        Strategy::simple(BufferAction::Block)
                    } else {
                        Strategy::simple(BufferAction::Drop)
                    };
                    let sub = s.subscribe(None, 1, strategy);
                    let _ = sub.channel.try_recv();
                    // Unsubscribing closes the channel, waking a notifier blocked on it.
                    assert!(s.unsubscribe(sub.id));
                    n += 1;
                    // Let writers in (under valgrind, which runs one thread at a time, a
                    // spinning churn loop would starve them).
                    std::thread::yield_now();
                }
                n
            })
        };
        let hs: Vec<_> = (0..writers)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let label = format!("svc-{t}");
                    let mut changes = 0u64;
                    for i in 0..per {
                        if i % 97 == 96 {
                            let (existed, mut p) = s.clear(&label);
                            assert!(existed);
                            s.notify(&mut p, true);
                        } else {
                            let (tr, mut p) = s.apply(upd(&label, CYCLE[i % 4]));
                            assert!(tr.changed);
                            s.notify(&mut p, true);
                        }
                        changes += 1;
                    }
                    changes
                })
            })
            .collect();
        let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        stop.store(true, Ordering::SeqCst);
        let churned = churn.join().unwrap();
        s.unsubscribe(all_block.id);
        let got = drainer.join().unwrap();
        // The block watcher got every change, once, in ticket order.
        assert_eq!(got.len() as u64, total);
        assert!(got.iter().enumerate().all(|(k, (seq, _))| *seq == k as u64));
        let mut last: HashMap<Arc<str>, State> = HashMap::new();
        for (_, c) in &got {
            let prev = last
                .insert(c.label.clone(), c.new_state)
                .unwrap_or(State::Unknown);
            assert_eq!(prev, c.old_state, "per-label chain");
        }
        // Drop and evict watchers: exact counter identity.
        for w in [&all_drop, &all_evict] {
            let st = w.channel.stats();
            assert_eq!(st.sent, total);
            assert_eq!(
                st.sent,
                st.delivered + st.dropped + st.evicted + st.buffered
            );
        }
        // The single-label watcher saw exactly its label's changes.
        let mine = one.channel.drain(usize::MAX);
        assert_eq!(mine.len(), per);
        assert!(mine.iter().all(|(_, c)| &*c.label == "svc-3"));
        let m = s.metrics();
        assert_eq!(m.operations, total);
        assert_eq!(m.total_services as usize, s.len());
        let by_state: u64 = m.by_state.iter().map(|x| x.1).sum();
        assert_eq!(by_state, m.total_services);
        assert!(churned > 0);
        let d = all_drop.channel.stats();
        let e = all_evict.channel.stats();
        eprintln!(
            "[figures] writers_watchers_and_churn_exact: events={total} threads={} faults=0 \
             published={} delivered={} dropped={} evicted={} errors=0 lost=0 duplicated=0 \
             sub_unsub_cycles={churned}",
            writers + 2,
            3 * total + per as u64,
            got.len() + mine.len() + (d.delivered + d.buffered + e.delivered + e.buffered) as usize,
            d.dropped + e.dropped,
            e.evicted,
        );
    }

    /// A notifier that waits for its turn while another waits on a full block channel must
    /// not deadlock, and order is kept, with apply from many threads and one slow consumer.
    #[test]
    fn ticket_order_with_block_subscriber_and_slow_consumer() {
        let s = Arc::new(StateStore::new(1));
        let w = s.subscribe(None, 1, Strategy::simple(BufferAction::Block));
        let n = size(2_000);
        let consumer = {
            let ch = w.channel.clone();
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                while let Ok((seq, _)) = ch.recv(None) {
                    seqs.push(seq);
                    if seqs.len() % 64 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                seqs
            })
        };
        let hs: Vec<_> = (0..6)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..n {
                        let (_, mut p) = s.apply(upd(&format!("l{t}"), CYCLE[i % 4]));
                        // Try without waiting first, as the Python face does with the GIL.
                        if !s.notify(&mut p, false) {
                            s.notify(&mut p, true);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        s.unsubscribe(w.id);
        let seqs = consumer.join().unwrap();
        assert_eq!(seqs.len(), 6 * n);
        assert!(seqs.iter().enumerate().all(|(k, q)| *q == k as u64));
        eprintln!(
            "[figures] ticket_order_with_block_subscriber_and_slow_consumer: events={} \
             threads=7 faults=0 published={} delivered={} dropped=0 evicted=0 errors=0 lost=0 \
             duplicated=0",
            6 * n,
            6 * n,
            seqs.len()
        );
    }

    /// clear_all racing with writers: the counters always agree with the data.
    #[test]
    fn clear_all_races_keep_indexes_consistent() {
        let s = Arc::new(StateStore::new(16));
        let watch = s.subscribe(None, 1 << 22, Strategy::simple(BufferAction::Drop));
        let n = size(2_000);
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut cleared = 0;
                    for i in 0..n {
                        if t == 0 && i % 50 == 0 {
                            let (k, mut p) = s.clear_all();
                            cleared += k;
                            s.notify(&mut p, true);
                        } else {
                            let (_, mut p) =
                                s.apply(upd(&format!("x{}", i % 13), CYCLE[(i + t) % 4]));
                            s.notify(&mut p, true);
                        }
                        let m = s.metrics();
                        let by_state: u64 = m.by_state.iter().map(|x| x.1).sum();
                        let by_type: u64 = m.by_type.iter().map(|x| x.1).sum();
                        assert_eq!(by_state, m.total_services);
                        assert_eq!(by_type, m.total_services);
                    }
                    cleared
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // Per label, every notification chains from the previous one.
        let mut last: HashMap<Arc<str>, State> = HashMap::new();
        let changes = watch.channel.drain(usize::MAX);
        for (_, c) in &changes {
            let prev = last
                .insert(c.label.clone(), c.new_state)
                .unwrap_or(State::Unknown);
            assert_eq!(prev, c.old_state);
        }
        let st = watch.channel.stats();
        assert_eq!(st.dropped, 0);
        assert_eq!(st.sent as usize, changes.len());
        for (label, state) in last {
            let now = s.get(&label).map(|u| u.state).unwrap_or(State::Unknown);
            assert_eq!(
                now, state,
                "watcher's last view of {label} equals the store"
            );
        }
    }
}
