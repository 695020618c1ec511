//! The burst compiled twice (pipeline/cpu.rs): the baseline x86-64 code and the fast
//! path must do the same to every frame. Both run the same bursts here, side by side;
//! on a CPU without the fast path's features only the baseline runs, and the test says
//! so by checking what `Path::available()` holds.

use super::*;
use fib::cpu::Path;

/// Real frames of every kind the tests know (pod to pod, to the uplink, IPv6, expired,
/// unroutable, held), mutated, mixed with random bytes.
fn burst_of(random: Vec<Vec<u8>>, mutate: &[(prop::sample::Index, u8)]) -> Vec<Vec<u8>> {
    let mut frames = vec![
        udp4(A4, B4, 64),
        udp4(A4, [10, 244, 2, 7], 64),
        udp4(A4, [10, 244, 1, 9], 64),
        udp4(A4, [10, 244, 1, 33], 64),
        udp4(A4, B4, 1),
        udp4(A4, [192, 0, 2, 1], 64),
        udp6(A6, B6, 64),
        udp6(A6, B6, 1),
    ];
    for (k, (i, b)) in mutate.iter().enumerate() {
        let f = k % frames.len();
        let at = i.index(frames[f].len());
        frames[f][at] = *b;
    }
    frames.extend(random);
    frames.truncate(BURST);
    frames
}

#[test]
fn this_cpu_runs_the_baseline_and_says_which_paths_it_has() {
    let paths = Path::available();
    assert_eq!(paths[0], Path::Baseline);
    assert!(paths.iter().all(|p| p.supported()));
    let n = node_on(Path::Baseline, &[], 1, 0);
    assert_eq!(n.pipeline.fib4.cpu_path(), Path::Baseline);
}

proptest! {
    /// Every path this CPU can run gives the same actions, the same bytes out and the
    /// same counters as the baseline, burst after burst (state such as ARP-held frames
    /// carries over between bursts).
    #[test]
    fn every_cpu_path_does_what_the_baseline_does(
        bursts in prop::collection::vec(
            (
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 0..24),
                prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
                0u16..4,
            ),
            1..4,
        ),
    ) {
        let mut baseline = node_on(Path::Baseline, &[("0.0.0.0/0", 2)], 1, 0);
        let mut others: Vec<Node> = Path::available()
            .into_iter()
            .filter(|&p| p != Path::Baseline)
            .map(|p| node_on(p, &[("0.0.0.0/0", 2)], 1, 0))
            .collect();
        for (random, mutate, rx) in bursts {
            let frames = burst_of(random, &mutate);
            let want = run(&mut baseline, PortId(rx), &frames);
            for other in &mut others {
                let got = run(other, PortId(rx), &frames);
                prop_assert_eq!(&got, &want);
            }
        }
        let want = baseline.counters.total();
        for other in &others {
            prop_assert_eq!(&other.counters.total(), &want);
        }
    }
}
