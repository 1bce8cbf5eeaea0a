use super::*;
use std::sync::mpsc;

fn collecting(b: &Arc<Batcher<u64>>) -> (Arc<Mutex<Vec<Vec<u64>>>>, bool) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let started = b
        .start(move |batch, _| g.lock().push(batch))
        .expect("thread starts");
    (got, started)
}

fn flat(got: &Mutex<Vec<Vec<u64>>>) -> Vec<u64> {
    got.lock().iter().flatten().copied().collect()
}

#[test]
fn bad_config_names_the_parameter() {
    let e = Batcher::<u64>::new(0, Duration::from_millis(10), 10)
        .err()
        .unwrap();
    assert_eq!(e.param, "batch_size");
    let e = Batcher::<u64>::new(5, Duration::ZERO, 10).err().unwrap();
    assert_eq!(e.param, "flush_interval");
    let e = Batcher::<u64>::new(5, Duration::from_secs(100_000), 10)
        .err()
        .unwrap();
    assert_eq!(e.param, "flush_interval");
    let e = Batcher::<u64>::new(5, Duration::from_millis(1), 4)
        .err()
        .unwrap();
    assert_eq!(e.param, "max_queued");
}

#[test]
fn stopped_batcher_hands_items_back() {
    let b = Arc::new(Batcher::<u64>::new(4, Duration::from_secs(60), 16).unwrap());
    assert_eq!(b.push(1, false), Push::Direct(1));
    assert_eq!(b.stats().direct, 1);
    b.flush();
    assert!(!b.stop());
}

#[test]
fn full_batches_go_out_in_order_and_stop_flushes_the_rest() {
    // A long interval: only size, flush and stop can trigger.
    let b = Arc::new(Batcher::new(4, Duration::from_secs(3600), 64).unwrap());
    let (got, started) = collecting(&b);
    assert!(started);
    for i in 0..10 {
        assert_eq!(b.push(i, true), Push::Queued);
    }
    assert!(b.stop());
    assert_eq!(flat(&got), (0..10).collect::<Vec<_>>());
    let sizes: Vec<usize> = got.lock().iter().map(|v| v.len()).collect();
    assert!(sizes.iter().all(|&n| n <= 4), "{sizes:?}");
    let s = b.stats();
    assert_eq!((s.enqueued, s.flushed, s.queued), (10, 10, 0));
    assert!(!s.running);
}

#[test]
fn flush_waits_for_everything_queued_before_it() {
    let b = Arc::new(Batcher::new(100, Duration::from_secs(3600), 1000).unwrap());
    let (got, _) = collecting(&b);
    for i in 0..7 {
        b.push(i, true);
    }
    b.flush();
    assert_eq!(flat(&got), (0..7).collect::<Vec<_>>());
    b.stop();
}

#[test]
fn interval_flushes_a_partial_batch() {
    let b = Arc::new(Batcher::new(100, Duration::from_millis(5), 1000).unwrap());
    let (tx, rx) = mpsc::channel();
    b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
        let _ = tx.send(batch);
    })
    .unwrap();
    b.push(42, true);
    // Nothing else triggers a flush: it can only come from the interval.
    let batch = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("timed flush");
    assert_eq!(batch, vec![42]);
    b.stop();
}

#[test]
fn a_sink_can_pull_several_due_batches_per_wake() {
    let b = Arc::new(Batcher::new(4, Duration::from_secs(3600), 1000).unwrap());
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let wakes = Arc::new(Mutex::new(Vec::<Vec<Vec<u64>>>::new()));
    let w = wakes.clone();
    b.start(move |first: Vec<u64>, more: &mut More<u64>| {
        let _ = go_rx.recv(); // hold the first wake until everything is queued
        let mut wake = vec![first];
        while let Some(batch) = more() {
            wake.push(batch);
        }
        w.lock().push(wake);
    })
    .unwrap();
    for i in 0..100 {
        b.push(i, true);
    }
    drop(go_tx);
    b.stop();
    let wakes = wakes.lock().clone();
    let all: Vec<u64> = wakes.iter().flatten().flatten().copied().collect();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert!(wakes.iter().flatten().all(|batch| batch.len() <= 4));
    assert!(wakes.iter().all(|w| w.len() <= 1 + MAX_BATCHES_PER_WAKE));
    // the first wake held 4 items; the 96 queued meanwhile go out 17 batches a wake
    assert!(wakes.len() < 25, "{} wakes", wakes.len());
    let s = b.stats();
    assert_eq!((s.flushed, s.batches), (100, 25));
}

#[test]
fn a_producer_the_stuck_flush_thread_waits_on_overflows_instead_of_deadlocking() {
    // The flush thread's first batch waits until a producer has queued an item into
    // the full queue: without the stall rule both would wait for each other forever.
    let b = Arc::new(Batcher::new(2, Duration::from_secs(3600), 2).unwrap());
    let (pushed_tx, pushed_rx) = mpsc::channel::<()>();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
        if batch == vec![1, 2] {
            pushed_rx.recv().unwrap();
        }
        g.lock().extend(batch);
    })
    .unwrap();
    for i in 1..=4 {
        b.push(i, true); // [1, 2] goes to the sink, which blocks; 3 and 4 fill the queue
    }
    let b2 = b.clone();
    let producer = std::thread::spawn(move || {
        let r = b2.push(5, true);
        pushed_tx.send(()).unwrap();
        r
    });
    assert_eq!(producer.join().unwrap(), Push::Queued);
    b.stop();
    assert_eq!(*got.lock(), vec![1, 2, 3, 4, 5]);
    let s = b.stats();
    assert_eq!(s.flushed, 5);
    assert!(s.overflowed >= 1, "{s:?}"); // more only if the OS held a thread for 0.1 s
}

#[test]
fn push_overflow_never_waits_and_counts() {
    let b = Arc::new(Batcher::new(2, Duration::from_secs(3600), 2).unwrap());
    assert_eq!(b.push_overflow(9), Push::Direct(9)); // stopped
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
        let _ = go_rx.recv();
        g.lock().extend(batch);
    })
    .unwrap();
    for i in 1..=4 {
        b.push(i, true); // the sink holds [1, 2]; [3, 4] fill the queue
    }
    assert_eq!(b.push(5, false), Push::Full(5));
    assert_eq!(b.push_overflow(5), Push::Queued);
    assert_eq!(b.push_overflow(6), Push::Queued);
    drop(go_tx);
    b.stop();
    assert_eq!(*got.lock(), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(b.stats().overflowed, 2);
}

#[test]
fn restartable() {
    let b = Arc::new(Batcher::new(3, Duration::from_secs(3600), 16).unwrap());
    let (got, _) = collecting(&b);
    b.push(1, true);
    assert!(b.stop());
    assert_eq!(b.push(2, true), Push::Direct(2));
    let (got2, started) = collecting(&b);
    assert!(started);
    assert!(!b.start(|_, _| {}).unwrap(), "second start is a no-op");
    b.push(3, true);
    b.push(4, true);
    b.stop();
    assert_eq!(flat(&got), vec![1]);
    assert_eq!(flat(&got2), vec![3, 4]);
    assert_eq!(b.stats().starts, 2);
}

#[test]
fn many_producers_exact_counts_and_per_producer_order() {
    // Small capacity: producers hit backpressure and must wait, never lose items.
    let b = Arc::new(Batcher::new(8, Duration::from_millis(1), 8).unwrap());
    let (got, _) = collecting(&b);
    let threads: Vec<_> = (0..4u64)
        .map(|p| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..5000u64 {
                    assert_eq!(b.push(p * 1_000_000 + i, true), Push::Queued);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    b.stop();
    let all = flat(&got);
    assert_eq!(all.len(), 20_000);
    for p in 0..4u64 {
        let mine: Vec<u64> = all.iter().copied().filter(|x| x / 1_000_000 == p).collect();
        assert_eq!(
            mine,
            (0..5000).map(|i| p * 1_000_000 + i).collect::<Vec<_>>()
        );
    }
    let s = b.stats();
    assert_eq!((s.enqueued, s.flushed, s.overflowed), (20_000, 20_000, 0));
    assert!(s.max_batch <= 8);
}

#[test]
fn non_blocking_push_reports_full() {
    let b = Arc::new(Batcher::new(2, Duration::from_secs(3600), 2).unwrap());
    // A sink that waits for permission keeps the queue full.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
        let _ = go_rx.recv();
        g.lock().extend(batch);
    })
    .unwrap();
    // [1, 2] is a full batch: the thread takes it and waits in the sink, so 3 and 4
    // (which may have to wait for that) fill the queue again.
    for i in 1..=4 {
        assert_eq!(b.push(i, true), Push::Queued);
    }
    assert_eq!(b.push(5, false), Push::Full(5));
    drop(go_tx); // the sink stops waiting
    assert_eq!(b.push(5, true), Push::Queued);
    b.stop();
    assert_eq!(*got.lock(), vec![1, 2, 3, 4, 5]);
}

#[test]
fn push_and_flush_from_the_flush_thread_keep_order_and_never_wait() {
    // capacity == batch_size: waiting for room on the flush thread would deadlock.
    let b = Arc::new(Batcher::new(2, Duration::from_secs(3600), 2).unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s, b2) = (seen.clone(), b.clone());
    b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
        for x in batch {
            s.lock().push(x);
            if x < 100 {
                // A handler re-publishing: handed back to publish now (nested publish).
                match b2.push(100 + x, true) {
                    Push::Direct(child) => s.lock().push(child),
                    other => panic!("expected Direct, got {other:?}"),
                }
                b2.flush(); // returns at once on the flush thread
            }
        }
    })
    .unwrap();
    for i in 0..6 {
        b.push(i, true);
    }
    b.stop();
    let v = seen.lock().clone();
    let expected: Vec<u64> = (0..6).flat_map(|i| [i, 100 + i]).collect();
    assert_eq!(v, expected);
    let s = b.stats();
    assert_eq!((s.enqueued, s.flushed, s.direct), (6, 6, 6));
}

#[test]
fn stop_from_the_flush_thread_does_not_deadlock_and_restart_works() {
    let b = Arc::new(Batcher::new(1, Duration::from_secs(3600), 8).unwrap());
    let b2 = b.clone();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    b.start(move |batch: Vec<u64>, _: &mut More<u64>| {
        g.lock().extend(batch.iter().copied());
        if batch.contains(&1) {
            assert!(b2.stop());
            assert!(matches!(b2.start(|_, _| {}), Err(StartError::OwnThread)));
        }
    })
    .unwrap();
    b.push(1, true);
    // Wait for the thread to have stopped itself.
    let mut st = b.state.lock();
    while st.phase != Phase::Stopped {
        b.progress.wait(&mut st);
    }
    drop(st);
    let (got2, started) = collecting(&b);
    assert!(started);
    b.push(2, true);
    b.stop();
    assert_eq!(*got.lock(), vec![1]);
    assert_eq!(flat(&got2), vec![2]);
}

#[test]
fn a_panicking_sink_does_not_wedge_the_batcher() {
    let b = Arc::new(Batcher::new(1, Duration::from_secs(3600), 4).unwrap());
    b.start(|batch: Vec<u64>, _: &mut More<u64>| {
        if batch[0] == 0 {
            panic!("sink failure (expected in this test)");
        }
    })
    .unwrap();
    for i in 0..3 {
        b.push(i, true);
    }
    b.flush();
    assert!(b.stop());
    assert_eq!(b.stats().flushed, 3);
}

#[test]
fn concurrent_flushers_and_stoppers() {
    let b = Arc::new(Batcher::new(16, Duration::from_millis(2), 64).unwrap());
    let (got, _) = collecting(&b);
    let hs: Vec<_> = (0..3u64)
        .map(|p| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..2000u64 {
                    if let Push::Direct(_) = b.push(p * 10_000 + i, true) {
                        unreachable!("running");
                    }
                    if i % 97 == 0 {
                        b.flush();
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let s1 = std::thread::spawn({
        let b = b.clone();
        move || b.stop()
    });
    let r2 = b.stop();
    let r1 = s1.join().unwrap();
    assert!(r1 ^ r2, "exactly one stop saw it running");
    assert_eq!(flat(&got).len(), 6000);
}
