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

/// Another thread becomes `sub`'s consumer (the subscribing thread would otherwise count
/// as its consumer, whose own writes overflow instead of waiting).
fn consumed_elsewhere(sub: &StoreSubscription) {
    let ch = sub.channel.clone();
    std::thread::spawn(move || ch.register_consumer())
        .join()
        .unwrap();
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
    // Bounded: the two changes that could not wait took the default action, drop.
    let st = sub.channel.stats();
    assert_eq!((st.buffered, st.overflowed, st.dropped), (1, 2, 2));
}

#[test]
fn block_subscriber_whose_consumer_writes_back_does_not_deadlock() {
    let s = Arc::new(StateStore::new(1));
    let sub = s.subscribe(None, 1, Strategy::simple(BufferAction::Block));
    let s2 = s.clone();
    let ch = sub.channel.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    // The consumer reacts to each Starting by writing Running back to the store.
    let consumer = std::thread::spawn(move || {
        let mut seen = 0;
        loop {
            match ch.recv(Some(std::time::Duration::from_millis(50))) {
                Ok((_, c)) => {
                    seen += 1;
                    if c.new_state == State::Starting {
                        set(&s2, upd(&format!("{}-ack", c.label), State::Running));
                    }
                }
                Err(_) if done2.load(std::sync::atomic::Ordering::SeqCst) => break,
                Err(_) => {}
            }
        }
        seen
    });
    for i in 0..20 {
        set(&s, upd(&format!("svc{i}"), State::Starting));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = consumer.join().unwrap();
    // Every change is received or counted as dropped (a notifier that could not wait for
    // the writing-back consumer drops, by default): bounded and accounted, no deadlock.
    let st = sub.channel.stats();
    assert_eq!(st.sent, st.delivered + st.dropped + st.buffered, "{st:?}");
    assert_eq!(st.delivered, seen);
    assert_eq!(st.dropped, st.overflowed);
    assert_eq!(s.len() as u64, 20 + (st.sent - 20));
}

#[test]
fn block_subscriber_does_not_stall_reads() {
    let s = Arc::new(StateStore::new(1));
    let sub = s.subscribe(None, 1, Strategy::simple(BufferAction::Block));
    consumed_elsewhere(&sub);
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

/// A store watched by a full block subscriber whose consumer is busy: writers that owe it
/// a change wait; a write to another label, and reads, do not.
#[test]
fn full_block_watcher_only_delays_writers_that_owe_it() {
    let s = Arc::new(StateStore::new(1));
    let sub = s.subscribe(
        Some(Arc::from("a")),
        1,
        Strategy::simple(BufferAction::Block),
    );
    consumed_elsewhere(&sub);
    set(&s, upd("a", State::Starting));
    let (_, mut owed) = s.apply(upd("a", State::Running));
    assert!(!s.notify(&mut owed, false)); // would block: the watcher is full
                                          // Another label: nobody blocks on it, the write returns at once, from any thread.
    for i in 0..100 {
        let (_, mut p) = s.apply(upd(&format!("b{i}"), State::Running));
        assert!(
            s.notify(&mut p, false),
            "write {i} to another label was held back"
        );
    }
    let s2 = s.clone();
    let other = std::thread::spawn(move || {
        let (_, mut p) = s2.apply(upd("c", State::Failed));
        s2.notify(&mut p, false)
    });
    assert!(other.join().unwrap());
    assert_eq!(s.get("a").unwrap().state, State::Running);
    // The owed change arrives in order once the consumer makes room.
    let s3 = s.clone();
    let h = std::thread::spawn(move || s3.notify(&mut owed, true));
    let (seq, first) = sub.channel.recv(None).unwrap();
    assert_eq!((seq, first.new_state), (0, State::Starting));
    assert!(h.join().unwrap());
    assert_eq!(sub.channel.recv(None).unwrap().1.new_state, State::Running);
}

/// A block subscription with a timeout: a change that waits past it is dropped for that
/// subscriber (counted in its stats and the store metrics, a gap in its sequence numbers)
/// and the writer returns.
#[test]
fn block_timeout_drops_the_change_for_that_subscriber() {
    let s = Arc::new(StateStore::new(1));
    let strategy =
        Strategy::simple(BufferAction::Block).with_timeout(Some(Duration::from_millis(30)));
    let sub = s.subscribe(None, 1, strategy);
    consumed_elsewhere(&sub);
    set(&s, upd("a", State::Starting));
    set(&s, upd("a", State::Running)); // waits 30 ms, then drops
    let st = sub.channel.stats();
    assert_eq!(
        (st.sent, st.dropped, st.timed_out, st.buffered),
        (2, 1, 1, 1)
    );
    assert_eq!(s.metrics().subscription_drops, 1);
    assert_eq!(sub.channel.try_recv().unwrap().0, 0);
    set(&s, upd("a", State::Failed));
    let (seq, c) = sub.channel.try_recv().unwrap();
    assert_eq!((seq, c.new_state), (2, State::Failed)); // the gap: 1 was dropped
}

/// Interrupted waiting: what is still owed is counted as dropped, nothing is stranded.
#[test]
fn abandoned_notifications_are_counted() {
    let s = StateStore::new(1);
    let sub = s.subscribe(None, 1, Strategy::simple(BufferAction::Block));
    consumed_elsewhere(&sub);
    set(&s, upd("a", State::Starting));
    let (_, mut p) = s.apply(upd("a", State::Running));
    assert!(!s.notify_for(&mut p, Duration::from_millis(1)));
    s.abandon(p);
    assert_eq!(sub.owed(), 0);
    assert_eq!(s.metrics().subscription_drops, 1);
    let st = sub.channel.stats();
    assert_eq!((st.sent, st.dropped), (2, 1));
}

/// Watchers are kept by label: unsubscribing keeps the index exact, and clear_all
/// notifies each watcher of its own label only.
#[test]
fn watchers_by_label_subscribe_unsubscribe_clear_all() {
    let s = StateStore::new(16);
    let subs: Vec<_> = (0..50)
        .map(|i| {
            s.subscribe(
                Some(Arc::from(format!("l{}", i % 10).as_str())),
                16,
                Strategy::simple(BufferAction::Drop),
            )
        })
        .collect();
    let all = s.subscribe(None, 64, Strategy::simple(BufferAction::Drop));
    for i in 0..10 {
        set(&s, upd(&format!("l{i}"), State::Running));
    }
    for sub in subs.iter().step_by(2) {
        assert!(s.unsubscribe(sub.id));
        assert!(!s.unsubscribe(sub.id));
    }
    assert_eq!(s.metrics().active_subscriptions, 26);
    let (n, mut p) = s.clear_all();
    assert_eq!(n, 10);
    assert!(s.notify(&mut p, false));
    for (i, sub) in subs.iter().enumerate() {
        let got = sub.channel.drain(16);
        let label = format!("l{}", i % 10);
        assert!(got.iter().all(|(_, c)| *c.label == *label));
        assert_eq!(got.len(), if i % 2 == 0 { 1 } else { 2 }, "watcher {i}");
    }
    assert_eq!(all.channel.drain(64).len(), 20);
}

/// A label's report turn: one thread at a time (re-entrant for the holder), released by
/// `end_report`; other labels are not affected.
#[test]
fn report_turn_orders_reports_per_label() {
    let s = Arc::new(StateStore::new(1));
    let (t, _) = s.apply_reporting(upd("a", State::Starting)).unwrap();
    assert_eq!(
        (t.old_state, t.new_state),
        (State::Unknown, State::Starting)
    );
    // The holder may re-enter (a handler of its own publish reporting the same label).
    assert!(s.apply_reporting(upd("a", State::Running)).is_some());
    s.end_report("a");
    let s2 = s.clone();
    let other = std::thread::spawn(move || {
        let refused = s2.apply_reporting(upd("a", State::Failed)).is_none();
        let (t, _) = s2.apply_reporting(upd("b", State::Failed)).unwrap();
        s2.end_report("b");
        // Waits (in slices) until the holder ends its report, then goes on.
        let got = loop {
            if let Some((t, _)) = s2.apply_reporting(upd("a", State::Failed)) {
                break t;
            }
            s2.wait_report_turn("a", Duration::from_millis(5));
        };
        s2.end_report("a");
        (refused, t.new_state, got.old_state)
    });
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(s.get("a").unwrap().state, State::Running); // nothing applied meanwhile
    s.end_report("a");
    assert_eq!(other.join().unwrap(), (true, State::Failed, State::Running));
}
