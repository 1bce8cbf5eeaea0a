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
                        Err(SendError::Closed(v))
                        | Err(SendError::Timeout(v))
                        | Err(SendError::Interrupted(v))
                        | Err(SendError::WouldDeadlock(v)) => t.handed_back.push(v),
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
                                    | Err(SendError::WouldBlock(v))
                                    | Err(SendError::Interrupted(v))
                                    | Err(SendError::WouldDeadlock(v)) => t.handed_back.push(v),
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
                                    Err(SendError::Closed(v))
                                    | Err(SendError::Timeout(v))
                                    | Err(SendError::Interrupted(v))
                                    | Err(SendError::WouldDeadlock(v)) => {
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
                            8 => t
                                .received
                                .extend(ch.drain(rng.below(4) as usize).into_iter().map(|x| x.1)),
                            _ => {
                                if rng.below(50) == 0 {
                                    ch.close();
                                    closed_early.store(true, Ordering::SeqCst);
                                } else if rng.below(20) == 0 {
                                    t.handed_back.extend(ch.discard_buffered());
                                } else if let Ok((_, v)) = ch.recv(Some(Duration::from_micros(50)))
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
