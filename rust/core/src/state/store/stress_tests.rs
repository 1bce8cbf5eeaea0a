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
                        let (_, mut p) = s.apply(upd(&format!("x{}", i % 13), CYCLE[(i + t) % 4]));
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
