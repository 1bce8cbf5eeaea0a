use super::*;
use std::sync::Arc;
use std::time::Duration;

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
fn every_armed_waker_fires() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ch: Channel<u32> = Channel::new(4, Strategy::simple(BufferAction::Drop));
    let hits = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let h = hits.clone();
        assert!(ch.arm_waker(Box::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        })));
    }
    ch.close();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn block_sender_that_is_the_consumer_never_waits_and_stays_bounded() {
    let ch = Arc::new(Channel::new(1, Strategy::simple(BufferAction::Block)));
    ch.try_send(1, 2, 0).unwrap();
    // Another thread is not the consumer: it would wait.
    let c2 = ch.clone();
    let other =
        std::thread::spawn(move || matches!(c2.try_send(9, 2, 0), Err(SendError::WouldBlock(9))));
    assert!(other.join().unwrap());
    ch.register_consumer();
    // The default on_self_block action drops the newcomer, counted.
    assert_eq!(ch.send_blocking(2, 2, 0, None), Ok(Sent::Dropped(2)));
    let s = ch.stats();
    assert_eq!((s.buffered, s.overflowed, s.dropped), (1, 1, 1));
    check(s);
    assert_eq!(ch.drain(10), vec![(0, 1)]);
    // Receiving registers the receiver as the consumer too.
    let c3 = ch.clone();
    let t = std::thread::spawn(move || {
        let _ = c3.drain(1);
        c3.try_send(3, 2, 0).unwrap();
        c3.try_send(4, 2, 0).is_ok()
    });
    assert!(t.join().unwrap());
    assert_eq!(ch.stats().overflowed, 2);
}

#[test]
fn self_block_actions_evict_or_raise_and_never_grow_past_capacity() {
    for (action, want) in [
        (SelfBlock::Drop, vec![0, 1]),
        (SelfBlock::EvictOldest, vec![98, 99]),
        (SelfBlock::Raise, vec![0, 1]),
    ] {
        let ch = Channel::new(
            2,
            Strategy::simple(BufferAction::Block).with_on_self_block(action),
        );
        ch.register_consumer();
        let mut raised = 0;
        for i in 0..100 {
            if let Err(SendError::WouldDeadlock(_)) = ch.send_blocking(i, 2, 0, None) {
                raised += 1;
            }
        }
        let s = ch.stats();
        assert_eq!((s.buffered, s.overflowed), (2, 98), "{action:?}");
        assert_eq!(raised, if action == SelfBlock::Raise { 98 } else { 0 });
        check(s);
        let got: Vec<_> = ch.drain(10).into_iter().map(|x| x.1).collect();
        assert_eq!(got, want, "{action:?}");
    }
}

#[test]
fn two_consumers_sending_to_each_others_full_channel_do_not_deadlock() {
    let a = Arc::new(Channel::new(1, Strategy::simple(BufferAction::Block)));
    let b = Arc::new(Channel::new(1, Strategy::simple(BufferAction::Block)));
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let spawn = |mine: Arc<Channel<i32>>, theirs: Arc<Channel<i32>>| {
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            mine.register_consumer();
            theirs.try_send(0, 2, 0).unwrap(); // fills the other's buffer
            barrier.wait();
            // Each waits for the other to receive: a cycle one of them must leave.
            let r = theirs.send_blocking(1, 2, 0, None);
            // Then it goes back to consuming, as a handler thread would.
            let _ = mine.recv(Some(std::time::Duration::from_secs(5)));
            r
        })
    };
    let ta = spawn(a.clone(), b.clone());
    let tb = spawn(b.clone(), a.clone());
    let ra = ta.join().unwrap();
    let rb = tb.join().unwrap();
    // At least one stopped waiting (dropping its item); the other may then have found room.
    let dropped = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Ok(Sent::Dropped(_))))
        .count();
    assert!(dropped >= 1, "{ra:?} {rb:?}");
    assert_eq!(a.stats().overflowed + b.stats().overflowed, dropped as u64);
    assert!(a.len() <= 1 && b.len() <= 1);
    check(a.stats());
    check(b.stats());
}

#[test]
fn closed_channel_counts_sends_as_dropped() {
    let ch = Channel::new(4, Strategy::simple(BufferAction::Drop));
    ch.close();
    assert!(matches!(ch.try_send(1, 2, 0), Err(SendError::Closed(1))));
    let s = ch.stats();
    assert_eq!((s.sent, s.dropped), (1, 1));
}

#[test]
fn block_timeout_of_the_strategy_drops_and_the_sender_goes_on() {
    let strategy =
        Strategy::simple(BufferAction::Block).with_timeout(Some(Duration::from_millis(20)));
    let ch = Arc::new(Channel::new(1, strategy));
    // Another thread sends: the test thread is not the consumer.
    let c2 = ch.clone();
    let r = std::thread::spawn(move || {
        c2.try_send(1, 2, 0).unwrap();
        c2.send_blocking(2, 2, 0, None)
    })
    .join()
    .unwrap();
    assert_eq!(r, Ok(Sent::Dropped(2)));
    let s = ch.stats();
    assert_eq!((s.dropped, s.timed_out, s.blocked), (1, 1, 1));
    check(s);
    // The call's own, shorter timeout still fails the send (and is no strategy timeout).
    let c3 = ch.clone();
    let r = std::thread::spawn(move || c3.send_blocking(3, 2, 0, Some(Duration::from_millis(1))))
        .join()
        .unwrap();
    assert_eq!(r, Err(SendError::Timeout(3)));
    assert_eq!(ch.stats().timed_out, 1);
    // The gap is visible to the consumer: the next item gets sequence number 3.
    assert_eq!(ch.drain(10), vec![(0, 1)]);
    assert_eq!(ch.try_send(4, 2, 0), Ok(Sent::Queued(3)));
    // A timeout too large for the clock means waiting until room or close.
    let huge = Strategy::simple(BufferAction::Block).with_timeout(Some(Duration::MAX));
    let ch = Arc::new(Channel::new(1, huge));
    let c4 = ch.clone();
    let h = std::thread::spawn(move || {
        c4.try_send(1, 2, 0).unwrap();
        c4.send_blocking(2, 2, 0, None)
    });
    std::thread::sleep(Duration::from_millis(20));
    ch.close();
    assert_eq!(h.join().unwrap(), Err(SendError::Closed(2)));
}

#[test]
fn interrupted_waits_give_up_and_count() {
    let ch = Channel::new(1, Strategy::simple(BufferAction::Block));
    ch.try_send(1, 2, 0).unwrap();
    let asked = std::cell::Cell::new(0);
    let interrupt = || {
        asked.set(asked.get() + 1);
        asked.get() >= 2 // gives up at the second slice
    };
    assert!(matches!(
        ch.send_interruptible(2, 2, 0, None, &interrupt),
        Err(SendError::Interrupted(2))
    ));
    assert_eq!(asked.get(), 2);
    let s = ch.stats();
    assert_eq!((s.sent, s.dropped, s.buffered), (2, 1, 1));
    check(s);
    // A huge timeout is no deadline (no Instant overflow) and still interruptible.
    assert!(matches!(
        ch.send_interruptible(3, 2, 0, Some(Duration::MAX), &|| true),
        Err(SendError::Interrupted(3))
    ));
    assert_eq!(ch.recv(None), Ok((0, 1)));
    assert_eq!(
        ch.recv_interruptible(Some(Duration::MAX), &|| true),
        Err(RecvError::Interrupted)
    );
    // An item that is there is taken without asking.
    ch.try_send(4, 2, 0).unwrap();
    assert!(matches!(ch.recv_interruptible(None, &|| true), Ok((_, 4))));
    check(ch.stats());
}
