//! `cargo bench`: the pure-Rust core without Python (channel, store, filters, dispatch
//! index, ids, latency histogram). Plain `std::time::Instant` loops (no bench crate): each
//! case runs once to warm up, then `RUNS` times; the table shows the median ns per operation
//! and the resulting millions of operations per second. Every case checks what it did
//! (items received, hits, matches), so the optimiser cannot remove the work.
//!
//! Run: `cargo bench --bench rust_benches` (or plain `cargo bench`); words after `--` keep
//! only the cases whose names contain one of them (`cargo bench -p tracebus-core -- index`).

// Printing the table is this program's job.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracebus_core::delivery::channel::{BufferAction, Channel, Sent, Strategy};
use tracebus_core::metrics::LatencyHistogram;
use tracebus_core::model::header::Header;
use tracebus_core::model::ids;
use tracebus_core::model::kinds::{Severity, State};
use tracebus_core::model::update::UpdateData;
use tracebus_core::routing::filter::Filter;
use tracebus_core::routing::index::{Index, Indexed};
use tracebus_core::routing::route::{Key, Route};
use tracebus_core::state::store::StateStore;

const RUNS: usize = 7;

/// Times `f` (which performs `ops` operations and returns a check value that must equal
/// `expect`) and prints one table row.
fn bench(name: &str, ops: u64, expect: u64, mut f: impl FnMut() -> u64) {
    if !selected(name) {
        return;
    }
    assert_eq!(f(), expect, "{name}: check failed on the warm-up run");
    let mut ns: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let got = black_box(f());
            let dt = t.elapsed();
            assert_eq!(got, expect, "{name}: check failed");
            dt.as_nanos() as f64 / ops as f64
        })
        .collect();
    ns.sort_by(|a, b| a.total_cmp(b));
    let med = ns[RUNS / 2];
    println!(
        "{name:<58} {med:>9.1} ns/op {:>9.2} M ops/s   (min {:.1}, max {:.1})",
        1e3 / med,
        ns[0],
        ns[RUNS - 1]
    );
}

/// Whether the command line keeps the case `name` (no words: every case).
fn selected(name: &str) -> bool {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    words.is_empty() || words.iter().any(|w| name.contains(w.as_str()))
}

fn header(type_id: u32, source: &str, severity: Severity) -> Header {
    Header {
        type_id,
        source: Arc::from(source),
        severity,
        event_id: ids::next_id(),
        correlation_id: Arc::from("corr_0000000000000001"),
        caused_by: Arc::from("bench"),
        parent_id: None,
        timestamp: 0.0,
        depth: 0,
    }
}

fn update(label: &Arc<str>, state: State) -> Arc<UpdateData> {
    Arc::new(UpdateData {
        timestamp: 0.0,
        source_type: Arc::from("PortForward"),
        label: label.clone(),
        state,
        is_ready: state == State::Running,
        error_detail: None,
        proxy_port: 0,
        pid: 0,
        event_id: ids::next_id(),
        correlation_id: Arc::from("corr_0000000000000001"),
        caused_by: Arc::from("bench"),
        parent_id: None,
    })
}

fn channel_benches() {
    const N: u64 = 1_000_000;
    let ch = Channel::new(1024, Strategy::simple(BufferAction::Drop));
    bench("channel: try_send + drain(1000), one thread", N, N, || {
        let mut got = 0;
        for _ in 0..N / 1000 {
            for i in 0..1000u64 {
                match ch.try_send(i, 2, 1) {
                    Ok(Sent::Queued(_)) => {}
                    _ => panic!("dropped"),
                }
            }
            got += ch.drain(usize::MAX).len() as u64;
        }
        got
    });
    bench(
        "channel: try_send + try_recv, one item at a time",
        N,
        N,
        || {
            let mut got = 0;
            for i in 0..N {
                let _ = ch.try_send(i, 2, 1);
                if ch.try_recv().is_ok() {
                    got += 1;
                }
            }
            got
        },
    );
    let full = Channel::new(1024, Strategy::simple(BufferAction::EvictOldest));
    for i in 0..1024u64 {
        let _ = full.try_send(i, 2, 1);
    }
    bench(
        "channel: try_send into a full evict_oldest channel",
        N,
        N,
        || {
            let mut evicted = 0;
            for i in 0..N {
                if let Ok(Sent::Evicted(..)) = full.try_send(i, 2, 1) {
                    evicted += 1;
                }
            }
            evicted
        },
    );

    const T: u64 = 4_000_000;
    bench(
        "channel: producer thread -> consumer thread (block, 8192)",
        T,
        T,
        || {
            let ch = Arc::new(Channel::new(8192, Strategy::simple(BufferAction::Block)));
            let rx = ch.clone();
            let consumer = std::thread::spawn(move || {
                let mut got = 0u64;
                while got < T {
                    let b = rx.recv_batch(4096, Some(Duration::from_secs(10)));
                    if b.is_empty() {
                        break;
                    }
                    got += b.len() as u64;
                }
                got
            });
            for i in 0..T {
                ch.send_blocking(i, 2, 1, None).expect("send");
            }
            consumer.join().expect("consumer")
        },
    );
}

fn store_benches() {
    const N: u64 = 1_000_000;
    let labels: Vec<Arc<str>> = (0..100).map(|i| Arc::from(format!("svc-{i:02}"))).collect();
    let updates: Vec<Arc<UpdateData>> = [State::Running, State::Stopped]
        .iter()
        .flat_map(|s| labels.iter().map(move |l| update(l, *s)))
        .collect();
    let store = StateStore::new(1000);
    bench("store: apply (every update changes state)", N, N, || {
        let mut changed = 0;
        for i in 0..N as usize {
            let (t, mut p) = store.apply(updates[i % updates.len()].clone());
            store.notify(&mut p, false);
            changed += t.changed as u64;
        }
        changed
    });
    bench("store: get", N, N, || {
        let mut hits = 0;
        for i in 0..N as usize {
            hits += store.get(&labels[i % labels.len()]).is_some() as u64;
        }
        hits
    });
    bench("store: apply + get", 2 * N, N, || {
        let mut hits = 0;
        for i in 0..N as usize {
            let u = &updates[i % updates.len()];
            let (_, mut p) = store.apply(u.clone());
            store.notify(&mut p, false);
            hits += store.get(&u.label).is_some() as u64;
        }
        hits
    });
    // One label written, watched by one watcher; the store with 10,000 label watchers
    // (the others on other labels) must write as fast as the store with just that one.
    for watchers in [1usize, 10_000] {
        let store = StateStore::new(1000);
        let strategy = tracebus_core::delivery::channel::Strategy::simple(
            tracebus_core::delivery::channel::BufferAction::Drop,
        );
        let watched = store.subscribe(Some(labels[0].clone()), 1 << 20, strategy.clone());
        let _others: Vec<_> = (1..watchers)
            .map(|i| store.subscribe(Some(Arc::from(format!("other-{i}"))), 1, strategy.clone()))
            .collect();
        let pair = [
            update(&labels[0], State::Running),
            update(&labels[0], State::Stopped),
        ];
        bench(
            &format!("store: {watchers} label watchers, one label written"),
            N,
            N,
            || {
                watched.channel.drain(usize::MAX);
                for i in 0..N as usize {
                    let (_, mut p) = store.apply(pair[i % 2].clone());
                    store.notify(&mut p, false);
                }
                watched.channel.len() as u64
            },
        );
    }
}

fn filter_benches() {
    const N: u64 = 10_000_000;
    let hs: Vec<Header> = (0..8)
        .map(|i| header(1 + i % 4, &format!("svc-{i}"), Severity::Info))
        .collect();
    let mut none = |_: &()| -> Result<bool, ()> { Ok(true) };
    let cases: Vec<(&str, Filter<()>, u64)> = vec![
        ("filter: types {1}", Filter::Types([1].into()), N / 4),
        (
            "filter: types {1} and severity >= info",
            Filter::And(vec![
                Filter::Types([1].into()),
                Filter::MinSeverity(Severity::Info),
            ]),
            N / 4,
        ),
        (
            "filter: (source in 8 or types {2,3}) and not corr",
            Filter::And(vec![
                Filter::Or(vec![
                    Filter::Sources((0..8).map(|i| Arc::from(format!("x-{i}"))).collect()),
                    Filter::Types([2, 3].into()),
                ]),
                Filter::Not(Box::new(Filter::Correlation(Arc::from("corr_other")))),
            ]),
            N / 2,
        ),
    ];
    for (name, f, expect) in cases {
        bench(name, N, expect, || {
            let mut hits = 0;
            for i in 0..N as usize {
                hits += f
                    .matches(black_box(&hs[i % hs.len()]), &mut none)
                    .expect("no custom leaves") as u64;
            }
            hits
        });
    }
}

/// A subscription of the benches: its seq and its filter's route (as the bus keeps them).
struct Sub(u64, Route<()>);

impl Sub {
    fn new(seq: u64, f: Filter<()>) -> Arc<Sub> {
        Arc::new(Sub(seq, f.route()))
    }
}

impl Indexed for Sub {
    fn seq(&self) -> u64 {
        self.0
    }
    fn keys(&self) -> Option<&[Key]> {
        self.1.keys.as_deref()
    }
}

/// Dispatches `h` `n` times as the bus does (candidates, residual where there is one) and
/// returns the deliveries.
fn dispatch(ix: &Index<Sub>, h: &Header, n: u64) -> u64 {
    let mut none = |_: &()| -> Result<bool, ()> { Ok(true) };
    let mut delivered = 0;
    for _ in 0..n {
        for s in ix.candidates(black_box(h)).iter() {
            let pass = match &s.1.residual {
                None => true,
                Some(f) => f.matches(h, &mut none).expect("no custom leaves"),
            };
            delivered += pass as u64;
        }
    }
    delivered
}

fn types(t: u32) -> Filter<()> {
    Filter::Types([t].into())
}

fn sources(s: &str) -> Filter<()> {
    Filter::Sources([Arc::from(s)].into())
}

/// The routing cases without Python: subscribers each with its own filter, one
/// matching (or none); per-publish cost should not grow with the subscribers.
fn dispatch_benches() {
    const N: u64 = 2_000_000;
    for subscribers in [1u64, 100, 10_000] {
        // One subscriber wants type 1000; the others want other types.
        let ix = Index::build(
            (0..subscribers)
                .map(|i| {
                    let t = if i == subscribers / 2 {
                        1000
                    } else {
                        2000 + i as u32
                    };
                    Sub::new(i, types(t))
                })
                .collect(),
        );
        let h = header(1000, "svc", Severity::Info);
        bench(
            &format!("dispatch: type, {subscribers} subscribers, 1 matches"),
            N,
            N,
            || dispatch(&ix, &h, N),
        );
    }
    for subscribers in [100u64, 10_000] {
        let ix = Index::build(
            (0..subscribers)
                .map(|i| Sub::new(i, Filter::And(vec![sources(&format!("pf-{i}")), types(7)])))
                .collect(),
        );
        let h = header(7, &format!("pf-{}", subscribers / 2), Severity::Info);
        bench(
            &format!("dispatch: source & type, {subscribers} subscribers, 1 matches"),
            N,
            N,
            || dispatch(&ix, &h, N),
        );
    }
    for subscribers in [1_000u64, 10_000] {
        let ix = Index::build(
            (0..subscribers)
                .map(|i| Sub::new(i, Filter::Correlation(Arc::from(format!("corr_{i:016}")))))
                .collect(),
        );
        let mut h = header(7, "svc", Severity::Info);
        h.correlation_id = Arc::from(format!("corr_{:016}", subscribers / 2));
        bench(
            &format!("dispatch: correlation, {subscribers} waiters, 1 matches"),
            N,
            N,
            || dispatch(&ix, &h, N),
        );
    }
    let ix = Index::build(
        (0..1_000)
            .map(|i| Sub::new(i, Filter::MinSeverity(Severity::Error)))
            .collect(),
    );
    let h = header(7, "svc", Severity::Info);
    bench(
        "dispatch: severity >= error, 1000 subscribers, info event",
        N,
        0,
        || dispatch(&ix, &h, N),
    );
    for catch_all in [false, true] {
        let mut subs: Vec<Arc<Sub>> = (0..100)
            .map(|i| Sub::new(i + 1, types(1000 + i as u32)))
            .collect();
        if catch_all {
            subs.push(Sub::new(0, Filter::All));
        }
        let ix = Index::build(subs);
        let h = header(1042, "svc", Severity::Info);
        bench(
            &format!(
                "dispatch: 100 type subscribers{}, 1 type matches",
                if catch_all { " + 1 catch-all" } else { "" }
            ),
            N,
            N * (1 + catch_all as u64),
            || dispatch(&ix, &h, N),
        );
    }
    for subscribers in [1_000u64, 10_000] {
        let subs: Vec<Arc<Sub>> = (0..subscribers)
            .map(|i| Sub::new(i, Filter::And(vec![sources(&format!("pf-{i}")), types(7)])))
            .collect();
        let mut ix: Index<Sub> = Index::default();
        bench(
            &format!("index: insert + remove {subscribers} source & type subscriptions"),
            2 * subscribers,
            0,
            || {
                for s in &subs {
                    ix.insert(s.clone());
                }
                for s in &subs {
                    ix.remove(s.0);
                }
                ix.len() as u64
            },
        );
    }
}

/// What `EventBus.publish` does around the handler call, without Python: counters, the
/// history ring under its mutex, the index's buckets for the event (mutex + an `Arc` clone per bucket), candidates, and
/// the delivery counters; against the same bookkeeping on plain (single-owner) data. The
/// difference is what the atomics and locks cost per publish.
fn publish_bookkeeping_benches() {
    use parking_lot::Mutex;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    const N: u64 = 5_000_000;
    const HISTORY: usize = 10_000;
    let subs: Vec<Arc<Sub>> = (0..100)
        .map(|i| Sub::new(i, types(1000 + i as u32)))
        .collect();
    let index = Mutex::new(Index::build(subs));
    let history: Mutex<VecDeque<u64>> = Mutex::new(VecDeque::with_capacity(HISTORY));
    let (published, per_type, delivered, sub_delivered) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let h = header(1042, "svc", Severity::Info);
    bench(
        "publish bookkeeping: atomics + 2 mutexes + bucket Arc clone",
        N,
        N,
        || {
            sub_delivered.store(0, Relaxed);
            for i in 0..N {
                published.fetch_add(1, Relaxed);
                per_type.fetch_add(1, Relaxed);
                {
                    let mut hist = history.lock();
                    if hist.len() >= HISTORY {
                        hist.pop_front();
                    }
                    hist.push_back(i);
                }
                let cands = index.lock().candidates(black_box(&h));
                for _s in cands.iter() {
                    sub_delivered.fetch_add(1, Relaxed);
                }
                delivered.fetch_add(1, Relaxed);
            }
            sub_delivered.load(Relaxed)
        },
    );
    let ix = Index::build(
        (0..100)
            .map(|i| Sub::new(i, types(1000 + i as u32)))
            .collect(),
    );
    let mut hist: VecDeque<u64> = VecDeque::with_capacity(HISTORY);
    let (mut p, mut t, mut d) = (0u64, 0u64, 0u64);
    bench(
        "publish bookkeeping: plain counters, no locks",
        N,
        N,
        || {
            let mut sd = 0;
            for i in 0..N {
                p += 1;
                t += 1;
                if hist.len() >= HISTORY {
                    hist.pop_front();
                }
                hist.push_back(i);
                for _s in ix.candidates(black_box(&h)).iter() {
                    sd += 1;
                }
                d += 1;
            }
            black_box((p, t, d));
            sd
        },
    );
}

fn misc_benches() {
    const N: u64 = 10_000_000;
    bench("ids: next_id", N, N, || {
        let mut nonzero = 0;
        for _ in 0..N {
            nonzero += (black_box(ids::next_id()) != 0) as u64;
        }
        nonzero
    });
    const M: u64 = 2_000_000;
    bench("ids: new_correlation_id (String)", M, M * 21, || {
        let mut len = 0;
        for _ in 0..M {
            len += black_box(ids::new_correlation_id()).len() as u64;
        }
        len
    });
    let hist = LatencyHistogram::new();
    bench("metrics: latency histogram record", N, N, || {
        hist.reset();
        for i in 0..N {
            hist.record(black_box(100 + (i & 1023)));
        }
        hist.summary().count
    });
}

fn main() {
    // `cargo test --benches` runs bench targets with `--test`-style flags: keep that cheap.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!(
        "tracebus core, {} CPUs, median of {RUNS} runs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    channel_benches();
    store_benches();
    filter_benches();
    dispatch_benches();
    publish_bookkeeping_benches();
    misc_benches();
}
