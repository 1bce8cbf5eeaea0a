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
/// them takes the strategy's `on_self_block` action instead of waiting (the consumer waits
/// for the notifier: a cycle).
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
                Ok(Sent::Dropped(_))
                | Err(SendError::Closed(_))
                | Err(SendError::Timeout(_))
                | Err(SendError::WouldDeadlock(_)) => {
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
mod tests;

/// Exact-count stress tests (reliability plan, test 4): many threads apply, clear and
/// subscribe at once; every notification is accounted for, each watcher sees each change of
/// its label once and in order, and the indexes agree with the data.
#[cfg(test)]
mod stress_tests;
