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
