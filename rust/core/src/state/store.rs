//! The centralized state store: one thread-safe source of truth for service states.
//!
//! Transitions are atomic (the old state is read and the new one written under one lock).
//! Subscribers are notified in the order the store applied the changes, per subscriber:
//! each subscription has its own FIFO outbox, filled under the data lock (so its order is
//! the store's apply order), and emptied into the subscription's channel by the writers
//! that owe it a change, after the data lock is released. A full block-strategy
//! subscriber only delays the writers that owe it a change; data reads and every other
//! write go on. A block subscription's `timeout` bounds that wait: a change still in the
//! outbox after it is dropped for that subscriber (counted, a gap in its sequence numbers).

use crate::delivery::channel::{thread_token, waits, Channel, Outside, SendError, Sent, Strategy};
use crate::model::kinds::State;
use crate::model::update::UpdateData;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// A change owed to one subscriber, waiting in its outbox.
struct Owed {
    ticket: u64,
    change: StateChange,
    /// When it was owed; only kept when the subscription's strategy has a block timeout.
    since: Option<Instant>,
    /// It found the channel full once (counted in the channel's `blocked`).
    waited: bool,
}

/// A subscriber's changes not yet in its channel, in the store's apply order.
#[derive(Default)]
struct Outbox {
    items: VecDeque<Owed>,
    /// Ticket of the next change owed (per subscription, assigned under the data lock).
    next: u64,
    /// Some thread is moving items into the channel (only one at a time, so the order
    /// holds); the ticket it holds outside the lock, if any.
    pumping: bool,
    in_flight: Option<u64>,
}

impl Outbox {
    /// The first ticket not yet handed to the channel (or dropped).
    fn first_pending(&self) -> u64 {
        self.in_flight
            .or_else(|| self.items.front().map(|o| o.ticket))
            .unwrap_or(self.next)
    }
}

/// A subscriber's channel, with the label it watches (`None` = every label).
pub struct StoreSubscription {
    pub id: u64,
    pub label: Option<Arc<str>>,
    pub channel: Arc<Channel<StateChange>>,
    outbox: Mutex<Outbox>,
    /// Notified when a pumping thread stops pumping.
    progress: Condvar,
}

impl StoreSubscription {
    fn owe(&self, change: StateChange) -> u64 {
        let since = self.channel.strategy().timeout.map(|_| Instant::now());
        let mut o = self.outbox.lock();
        let ticket = o.next;
        o.next += 1;
        o.items.push_back(Owed {
            ticket,
            change,
            since,
            waited: false,
        });
        ticket
    }

    /// Number of changes owed but not yet in the channel.
    pub fn owed(&self) -> usize {
        let o = self.outbox.lock();
        o.items.len() + usize::from(o.in_flight.is_some())
    }
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

/// Notifications owed after an operation: per subscription, the last ticket owed to it.
/// The caller hands them over with `notify` / `notify_for` (after releasing the GIL if it
/// must wait).
#[derive(Default)]
pub struct Pending {
    owed: Vec<(Arc<StoreSubscription>, u64)>,
}

impl Pending {
    /// True when nothing is owed any more.
    pub fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }
}

#[derive(Default)]
struct Data {
    services: HashMap<Arc<str>, Arc<UpdateData>>,
    by_type: HashMap<Arc<str>, u64>,
    by_state: [u64; 7],
    /// Watchers of one label, by label.
    watchers: HashMap<Arc<str>, Vec<Arc<StoreSubscription>>>,
    /// Watchers of every label.
    all_watchers: Vec<Arc<StoreSubscription>>,
    /// Every active subscription's label, by id.
    sub_labels: HashMap<u64, Option<Arc<str>>>,
    /// Labels whose report turn a thread holds (see `apply_reporting`).
    reports: HashMap<Arc<str>, ReportTurn>,
}

/// The thread holding a label's report turn, and how often it re-entered it.
struct ReportTurn {
    owner: u64,
    depth: u32,
}

impl Data {
    /// Puts `change` in the outbox of every subscription watching its label.
    fn owe(&self, change: &StateChange, p: &mut Pending) {
        let by_label = self.watchers.get(&change.label);
        for s in self
            .all_watchers
            .iter()
            .chain(by_label.into_iter().flatten())
        {
            let ticket = s.owe(change.clone());
            p.owed.push((s.clone(), ticket));
        }
    }

    fn has_subs(&self) -> bool {
        !self.sub_labels.is_empty()
    }
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

/// Longest single wait of `notify` before it re-checks (a timeout, a close).
const WAIT_SLICE: Duration = Duration::from_millis(100);

pub struct StateStore {
    data: Mutex<Data>,
    /// Notified when a label's report turn is released.
    report_cv: Condvar,
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
            report_cv: Condvar::new(),
            state_changes: AtomicU64::new(0),
            operations: AtomicU64::new(0),
            sub_events: AtomicU64::new(0),
            sub_drops: AtomicU64::new(0),
            next_sub: AtomicU64::new(1),
            default_buffer,
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
        let mut pending = Pending::default();
        let mut d = self.data.lock();
        let t = self.apply_locked(&mut d, upd, if_newer, &mut pending);
        (t, pending)
    }

    /// `apply`, holding `upd`'s label's report turn: until the caller's `end_report`, no
    /// other thread applies a report to that label, so what the caller publishes for the
    /// transition keeps the store's order. The holding thread may re-enter (a handler of
    /// its own publish reporting the same label). `None`: another thread holds the turn;
    /// nothing was applied (wait with `wait_report_turn`, then retry).
    pub fn apply_reporting(&self, upd: Arc<UpdateData>) -> Option<(Transition, Pending)> {
        let me = thread_token();
        let mut d = self.data.lock();
        match d.reports.get_mut(&upd.label) {
            Some(turn) if turn.owner != me => return None,
            Some(turn) => turn.depth += 1,
            None => {
                d.reports.insert(
                    upd.label.clone(),
                    ReportTurn {
                        owner: me,
                        depth: 1,
                    },
                );
            }
        }
        let mut pending = Pending::default();
        let t = self.apply_locked(&mut d, upd, false, &mut pending);
        Some((t, pending))
    }

    /// Waits at most `slice` for `label`'s report turn to be free.
    /// While it waits, the caller waits for the turn's owner in the waits-for graph, so an
    /// owner blocked on a buffer this caller consumes finds the cycle (and takes that
    /// buffer's `on_self_block` action) instead of waiting for ever.
    pub fn wait_report_turn(&self, label: &str, slice: Duration) {
        let me = thread_token();
        let owner = match self.data.lock().reports.get(label) {
            Some(t) if t.owner != me => t.owner,
            _ => return,
        };
        let _edge = waits::enter(owner);
        let mut d = self.data.lock();
        if d.reports.get(label).is_some_and(|t| t.owner != me) {
            self.report_cv.wait_for(&mut d, slice);
        }
    }

    /// Releases the report turn the calling thread took with `apply_reporting`.
    pub fn end_report(&self, label: &str) {
        let mut d = self.data.lock();
        let Some(turn) = d.reports.get_mut(label) else {
            return;
        };
        turn.depth -= 1;
        if turn.depth == 0 {
            d.reports.remove(label);
            drop(d);
            self.report_cv.notify_all();
        }
    }

    fn apply_locked(
        &self,
        d: &mut Data,
        upd: Arc<UpdateData>,
        if_newer: bool,
        pending: &mut Pending,
    ) -> Transition {
        self.operations.fetch_add(1, Ordering::Relaxed);
        if if_newer {
            if let Some(p) = d.services.get(&upd.label) {
                if (upd.timestamp, upd.event_id) <= (p.timestamp, p.event_id) {
                    let state = p.state;
                    return Transition {
                        stored: false,
                        changed: false,
                        updated: false,
                        old_state: state,
                        new_state: state,
                    };
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
        if notify && d.has_subs() {
            let change = StateChange {
                label: upd.label.clone(),
                old_state,
                new_state,
                snapshot: Some(upd),
            };
            d.owe(&change, pending);
        }
        Transition {
            stored: true,
            changed,
            updated: notify,
            old_state,
            new_state,
        }
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
        let mut pending = Pending::default();
        let mut d = self.data.lock();
        let existed = match Self::remove_locked(&mut d, label) {
            Some(prev) => {
                d.owe(&Self::cleared_change(&prev), &mut pending);
                true
            }
            None => false,
        };
        drop(d);
        (existed, pending)
    }

    /// Removes every service, notifying subscribers of each, as one operation. Costs
    /// O(services + notifications): each service finds its watchers by label.
    pub fn clear_all(&self) -> (usize, Pending) {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let mut pending = Pending::default();
        let mut d = self.data.lock();
        let all: Vec<Arc<UpdateData>> = d.services.drain().map(|(_, v)| v).collect();
        d.by_type.clear();
        d.by_state = [0; 7];
        if d.has_subs() {
            for prev in &all {
                d.owe(&Self::cleared_change(prev), &mut pending);
            }
        }
        drop(d);
        // Keep one entry per subscription: its last ticket.
        pending
            .owed
            .sort_unstable_by_key(|(s, t)| (s.id, std::cmp::Reverse(*t)));
        pending.owed.dedup_by_key(|(s, _)| s.id);
        (all.len(), pending)
    }

    /// Moves `sub`'s outbox into its channel, in order, while the channel takes items
    /// without waiting. A change that a full block-strategy channel cannot take is kept,
    /// unless it has waited past the strategy's timeout: then it is dropped (counted).
    /// Only one thread pumps a subscription at a time; no lock is held while sending (the
    /// send may run a consumer's waker).
    fn pump(&self, sub: &StoreSubscription) {
        self.pump_with(sub, false);
    }

    /// `pump`; with `deadlocked` (the channel's consumer waits on the pumping writer) a
    /// change the full channel cannot take takes the strategy's `on_self_block` action
    /// instead of being kept.
    fn pump_with(&self, sub: &StoreSubscription, deadlocked: bool) {
        let mut o = sub.outbox.lock();
        if o.pumping {
            return;
        }
        o.pumping = true;
        let timeout = sub.channel.strategy().timeout;
        let mut expired_since: Option<Instant> = None;
        while let Some(Owed {
            ticket,
            change,
            since,
            waited,
        }) = o.items.pop_front()
        {
            o.in_flight = Some(ticket);
            drop(o);
            let sev = change.severity();
            let ty = change.new_state.event_type();
            let sent = match sub.channel.try_send(change, sev, ty) {
                Err(SendError::WouldBlock(change)) if deadlocked => {
                    sub.channel.send_self_blocked(change, sev)
                }
                r => r,
            };
            let kept = match sent {
                Ok(Sent::Queued(_)) => {
                    self.sub_events.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Ok(Sent::Evicted(..)) => {
                    self.sub_events.fetch_add(1, Ordering::Relaxed);
                    self.sub_drops.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Ok(Sent::Dropped(_))
                | Err(SendError::Closed(_))
                | Err(SendError::Timeout(_))
                | Err(SendError::Interrupted(_))
                | Err(SendError::WouldDeadlock(_)) => {
                    self.sub_drops.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(SendError::WouldBlock(change)) => {
                    let now = *expired_since.get_or_insert_with(Instant::now);
                    match (timeout, since) {
                        (Some(t), Some(s)) if now.duration_since(s) >= t => {
                            sub.channel.count_outside(Outside::TimedOut);
                            self.sub_drops.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        _ => {
                            if !waited {
                                sub.channel.count_outside(Outside::Blocked);
                            }
                            Some(change)
                        }
                    }
                }
            };
            o = sub.outbox.lock();
            o.in_flight = None;
            if let Some(change) = kept {
                o.items.push_front(Owed {
                    ticket,
                    change,
                    since,
                    waited: true,
                });
                break;
            }
        }
        o.pumping = false;
        drop(o);
        sub.progress.notify_all();
    }

    /// True when `ticket` has left `sub`'s outbox; else waits at most `slice` for room in
    /// the channel (or for the thread pumping it), never past `ticket`'s block timeout.
    fn wait_delivered(&self, sub: &StoreSubscription, ticket: u64, slice: Duration) -> bool {
        self.pump(sub);
        let mut o = sub.outbox.lock();
        if o.first_pending() > ticket {
            return true;
        }
        if o.pumping {
            sub.progress.wait_for(&mut o, slice);
            return false;
        }
        // The head waits for room; never past its timeout (the next pump drops it).
        let slice = match (sub.channel.strategy().timeout, o.items.front()) {
            (Some(t), Some(Owed { since: Some(s), .. })) => s.checked_add(t).map_or(slice, |d| {
                slice.min(d.saturating_duration_since(Instant::now()))
            }),
            _ => slice,
        };
        drop(o);
        // While it waits, this writer waits for the channel's consumer (waits-for graph): a
        // consumer that waits on this writer in turn (a watcher feeding a handler thread
        // that writes the store) is a cycle, and the change takes `on_self_block`.
        let consumer = sub.channel.consumer_token();
        let _edge = waits::enter(consumer);
        sub.channel.wait_for_room(slice);
        if waits::reaches(consumer, thread_token()) {
            self.pump_with(sub, true);
        }
        false
    }

    /// Hands owed notifications over, per subscription in the store's order. With
    /// `may_block == false` it never waits and returns false while some change is still
    /// owed (a full block-strategy channel); call it again with `may_block == true`
    /// (after releasing the GIL), which returns once everything left the outboxes.
    pub fn notify(&self, p: &mut Pending, may_block: bool) -> bool {
        if may_block {
            while !self.notify_for(p, WAIT_SLICE) {}
            true
        } else {
            self.notify_for(p, Duration::ZERO)
        }
    }

    /// One round of `notify` waiting at most about `slice`: true when nothing is owed any
    /// more. Callers that must stay interruptible loop on it.
    pub fn notify_for(&self, p: &mut Pending, slice: Duration) -> bool {
        let mut waited = slice.is_zero();
        p.owed.retain(|(sub, ticket)| {
            self.pump(sub);
            if sub.outbox.lock().first_pending() > *ticket {
                return false;
            }
            if !waited {
                waited = true;
                return !self.wait_delivered(sub, *ticket, slice);
            }
            true
        });
        p.owed.is_empty()
    }

    /// Gives up on owed notifications (the waiting caller was interrupted): each change
    /// still in an outbox is removed and counted as dropped for its subscriber.
    pub fn abandon(&self, p: Pending) {
        for (sub, ticket) in p.owed {
            let mut o = sub.outbox.lock();
            let before = o.items.len();
            o.items.retain(|owed| owed.ticket > ticket);
            let n = before - o.items.len();
            drop(o);
            for _ in 0..n {
                sub.channel.count_outside(Outside::Dropped);
                self.sub_drops.fetch_add(1, Ordering::Relaxed);
            }
        }
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
            outbox: Mutex::new(Outbox::default()),
            progress: Condvar::new(),
        });
        // Until another thread receives from it, the subscribing thread is taken for the
        // consumer: its own writes then never wait on a watcher only it would drain.
        sub.channel.register_consumer();
        let mut d = self.data.lock();
        d.sub_labels.insert(sub.id, sub.label.clone());
        match &sub.label {
            Some(l) => d.watchers.entry(l.clone()).or_default().push(sub.clone()),
            None => d.all_watchers.push(sub.clone()),
        }
        drop(d);
        sub
    }

    /// Removes a subscription and closes its channel (a writer waiting on it wakes; what
    /// it still owed is counted as dropped). Returns false if it was not active.
    pub fn unsubscribe(&self, id: u64) -> bool {
        let mut d = self.data.lock();
        let Some(label) = d.sub_labels.remove(&id) else {
            return false;
        };
        let list = match &label {
            Some(l) => d.watchers.get_mut(l),
            None => Some(&mut d.all_watchers),
        };
        let sub = list.and_then(|v| {
            let pos = v.iter().position(|s| s.id == id)?;
            Some(v.swap_remove(pos))
        });
        if let Some(l) = &label {
            if d.watchers.get(l).is_some_and(Vec::is_empty) {
                d.watchers.remove(l);
            }
        }
        drop(d);
        if let Some(sub) = sub {
            sub.channel.close();
            // Nobody may be left to pump what is owed: hand it over (counted as dropped).
            self.pump(&sub);
        }
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
            active_subscriptions: d.sub_labels.len() as u64,
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
            .all_watchers
            .iter()
            .chain(d.watchers.values().flatten())
            .map(|s| {
                (s.channel.len() + s.owed()) as u64 * std::mem::size_of::<StateChange>() as u64
            })
            .sum();
        snap + subs
    }
}

#[cfg(test)]
mod tests;

/// Exact-count stress tests (reliability plan, test 4): many threads apply, clear and
/// subscribe at once; every notification is accounted for, each watcher sees each change of
/// its label once and in order, and the indexes agree with the data.
#[cfg(test)]
mod stress_tests;
