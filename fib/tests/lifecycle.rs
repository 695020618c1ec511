//! Reader and writer lifecycles: QSBR waits for online readers only, idle readers do not
//! hold memory back, and a reader outlives the writer safely.

use fib::{Fib4, Fib6, NextHopId};
use std::net::Ipv4Addr;

fn net(s: &str) -> ipnet::Ipv4Net {
    s.parse().unwrap()
}
fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Churn one chunk so blocks are retired.
fn churn(fib: &mut Fib4, rounds: u32) {
    for i in 0..rounds {
        fib.insert(net("10.0.0.0/24"), NextHopId(i));
        fib.insert(net("10.0.1.0/24"), NextHopId(i));
    }
}

#[test]
fn an_online_reader_holds_back_reclamation_until_its_next_burst() {
    let mut fib = Fib4::new();
    let mut reader = fib.reader();
    fib.insert(net("10.0.0.0/24"), NextHopId(1));
    reader.quiescent(); // online, at the current token
    churn(&mut fib, 10);
    fib.try_reclaim();
    assert!(
        fib.retired_blocks() > 0,
        "a reader that has not passed a quiescent point pins blocks"
    );
    assert_eq!(reader.lookup(addr("10.0.0.1")), Some(NextHopId(9)));
    fib.try_reclaim();
    assert_eq!(
        fib.retired_blocks(),
        0,
        "after its burst everything retired before is freed"
    );
}

#[test]
fn an_offline_reader_does_not_hold_memory_back() {
    let mut fib = Fib4::new();
    let mut reader = fib.reader();
    reader.quiescent();
    reader.offline();
    churn(&mut fib, 10);
    fib.try_reclaim();
    assert_eq!(fib.retired_blocks(), 0);
    // Coming back online sees the latest state.
    assert_eq!(reader.lookup(addr("10.0.1.9")), Some(NextHopId(9)));
}

#[test]
fn a_never_started_or_dropped_reader_does_not_block_the_writer() {
    let mut fib = Fib4::new();
    let idle = fib.reader(); // registered, never online
    let gone = fib.reader();
    drop(gone);
    assert_eq!(idle.reader_count(), 1);
    churn(&mut fib, 100);
    fib.synchronize();
    assert_eq!(fib.retired_blocks(), 0);
}

#[test]
fn readers_outlive_the_writer() {
    let mut fib = Fib6::new();
    fib.insert("2001:db8::/32".parse().unwrap(), NextHopId(3));
    fib.insert("2001:db8:1::/48".parse().unwrap(), NextHopId(4));
    let mut reader = fib.reader();
    reader.quiescent();
    fib.insert("2001:db8:1::/48".parse().unwrap(), NextHopId(5)); // retires a block
    drop(fib);
    let view = reader.burst();
    assert_eq!(
        view.lookup("2001:db8:1::1".parse().unwrap()),
        Some(NextHopId(5))
    );
    assert_eq!(
        view.lookup("2001:db8:2::1".parse().unwrap()),
        Some(NextHopId(3))
    );
}

#[test]
fn readers_on_other_threads_see_updates_and_let_memory_go() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let mut fib = Fib4::new();
    let stop = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let mut reader = fib.reader();
            let (stop, hits) = (stop.clone(), hits.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if reader.burst().lookup(addr("10.0.0.1")).is_some() {
                        hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    churn(&mut fib, 2_000);
    fib.synchronize(); // returns because the readers keep bursting
    assert_eq!(fib.retired_blocks(), 0);
    while hits.load(Ordering::Relaxed) < 1_000 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn memory_is_reported_and_live_blocks_return_to_zero() {
    let mut fib = Fib4::new();
    let empty = fib.memory_bytes();
    assert!(empty >= (1 << 18) * 8, "the direct table");
    assert_eq!(fib.block_bytes(), 0);
    let nets: Vec<_> = (0..5000u32)
        .map(|i| ipnet::Ipv4Net::new(Ipv4Addr::from(0x0A00_0000 + (i << 8)), 24).unwrap())
        .collect();
    for (i, n) in nets.iter().enumerate() {
        fib.insert(*n, NextHopId(i as u32));
    }
    assert!(fib.block_bytes() > 0);
    assert!(fib.memory_bytes() > empty);
    assert!(fib.rib_bytes() > 0);
    for n in &nets {
        fib.remove(*n);
    }
    assert_eq!(fib.block_bytes(), 0);
    assert!(fib.is_empty());
}
