//! chaosbench's probe: a sequence-numbered UDP stream from one network namespace to
//! another at a fixed rate (10 kpps, or 1 kHz for the restart figure). The sender's
//! thread lives in the source namespace, the receiver's in the destination one. The
//! receiver keeps one bit per sequence number (what arrived), the arrival gaps longer
//! than a threshold and the times of late (reordered) arrivals — enough to say, for any
//! window between two [`Mark`]s, how many packets were lost, the longest silence and how
//! many came out of order, over hours as over seconds (2 MB of bits per hour at 10 kpps).

// setsockopt(2) through libc: the receive buffer must outgrow net.core.rmem_max (root's
// SO_RCVBUFFORCE), which std does not offer.
#![allow(unsafe_code)]

use crate::netns;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a probe packet carries: its sequence number (8 bytes, little endian), padded to
/// this many bytes of UDP payload.
pub const PAYLOAD: usize = 64;

/// One probe stream's description.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    pub name: String,
    pub from_ns: String,
    pub to_ns: String,
    pub dst: Ipv4Addr,
    pub port: u16,
    pub pps: u32,
}

/// What the receiver saw, shared with the analysis.
#[derive(Default)]
struct Rx {
    /// One bit per sequence number received.
    bits: Vec<u64>,
    received: u64,
    duplicates: u64,
    /// The highest sequence number seen.
    max_seq: Option<u64>,
    /// Arrival time (ns since the probe's epoch) of the last packet.
    last_ns: Option<u64>,
    /// Arrival gaps longer than the threshold: (from, to) in ns since the epoch.
    gaps: Vec<(u64, u64)>,
    /// Arrival times of packets older than one already seen.
    late: Vec<u64>,
}

impl Rx {
    fn has(&self, seq: u64) -> bool {
        self.bits
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    fn record(&mut self, seq: u64, now_ns: u64, gap_ns: u64) {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.bits.len() {
            self.bits.resize(w + 1024, 0);
        }
        if self.bits[w] & (1 << b) != 0 {
            self.duplicates += 1;
            return;
        }
        self.bits[w] |= 1 << b;
        self.received += 1;
        if self.max_seq.is_some_and(|m| seq < m) {
            self.late.push(now_ns);
        } else {
            self.max_seq = Some(seq);
        }
        if let Some(last) = self.last_ns {
            if now_ns.saturating_sub(last) > gap_ns {
                self.gaps.push((last, now_ns));
            }
        }
        self.last_ns = Some(now_ns);
    }
}

struct Shared {
    spec: FlowSpec,
    epoch: Instant,
    stop: AtomicBool,
    /// Sequence numbers handed out so far (the next one to send).
    sent: AtomicU64,
    send_errors: AtomicU64,
    /// Times the sender fell more than [`MAX_LAG`] behind its schedule and restarted it.
    stalls: AtomicU64,
    gap_ns: u64,
    rx: Mutex<Rx>,
}

/// The sender restarts its schedule rather than burst when it is this late.
const MAX_LAG: Duration = Duration::from_millis(20);

/// A point in a probe's stream: how many had been sent, and when.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pub seq: u64,
    pub ns: u64,
}

/// One flow over one window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Window {
    pub flow: String,
    pub pps: u32,
    pub sent: u64,
    pub received: u64,
    pub lost_packets: u64,
    /// Lost packets times the sending interval: the traffic that was lost, in ms.
    pub loss_ms: f64,
    /// The longest silence (no arrival) overlapping the window, in ms; 0 when no gap
    /// was longer than the threshold (`gap_threshold_ms`).
    pub outage_ms: f64,
    pub gap_threshold_ms: f64,
    /// Packets that arrived after a later one.
    pub reordered: u64,
    /// Of the window's last quarter second, the share that arrived.
    pub tail_delivery: f64,
    pub recovered: bool,
}

/// A running probe: a sender and a receiver thread.
pub struct Probe {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl Probe {
    /// Start the receiver in `spec.to_ns` (bound before the sender starts), then the
    /// sender in `spec.from_ns`. `epoch` is shared by every probe of a run.
    pub fn start(spec: FlowSpec, epoch: Instant) -> io::Result<Probe> {
        let period_ns = 1_000_000_000 / u64::from(spec.pps.max(1));
        let shared = Arc::new(Shared {
            gap_ns: (3 * period_ns).max(2_000_000),
            spec,
            epoch,
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            rx: Mutex::new(Rx::default()),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        let receiver = std::thread::spawn(move || receive(&s, ready_tx));
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(io::Error::other(format!(
                    "probe {}: the receiver did not start",
                    shared.spec.name
                )))
            }
        }
        let s = shared.clone();
        let sender = std::thread::spawn(move || send(&s, period_ns));
        Ok(Probe {
            shared,
            threads: vec![receiver, sender],
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.spec.name
    }

    pub fn spec(&self) -> &FlowSpec {
        &self.shared.spec
    }

    pub fn mark(&self) -> Mark {
        Mark {
            seq: self.shared.sent.load(Ordering::Acquire),
            ns: self.shared.epoch.elapsed().as_nanos() as u64,
        }
    }

    /// Packets received so far.
    pub fn received(&self) -> u64 {
        self.shared.rx.lock().expect("probe lock").received
    }

    pub fn send_errors(&self) -> u64 {
        self.shared.send_errors.load(Ordering::Relaxed)
    }

    pub fn sender_stalls(&self) -> u64 {
        self.shared.stalls.load(Ordering::Relaxed)
    }

    /// Whether packets arrive: more received after `d` than before.
    pub fn flowing(&self, d: Duration) -> bool {
        let before = self.received();
        std::thread::sleep(d);
        self.received() > before
    }

    /// The figures of the window `[from, to)`; call it once the window's last packets
    /// had time to arrive (a few ms after `to`).
    pub fn window(&self, from: Mark, to: Mark) -> Window {
        let rx = self.shared.rx.lock().expect("probe lock");
        let pps = self.shared.spec.pps;
        let sent = to.seq.saturating_sub(from.seq);
        let received = (from.seq..to.seq).filter(|&s| rx.has(s)).count() as u64;
        // The silence still running at `to` counts as a gap too.
        let open = rx.last_ns.map(|l| (l, to.ns.max(l)));
        let outage_ns = rx
            .gaps
            .iter()
            .copied()
            .chain(open.filter(|(l, t)| t - l > self.shared.gap_ns))
            .filter(|&(a, b)| b > from.ns && a < to.ns)
            .map(|(a, b)| b - a)
            .max()
            .unwrap_or(0);
        let tail = (u64::from(pps) / 4).clamp(1, sent.max(1));
        let tail_from = to.seq.saturating_sub(tail).max(from.seq);
        let tail_got = (tail_from..to.seq).filter(|&s| rx.has(s)).count() as f64;
        let tail_delivery = if to.seq > tail_from {
            tail_got / (to.seq - tail_from) as f64
        } else {
            0.0
        };
        let lost = sent - received;
        Window {
            flow: self.shared.spec.name.clone(),
            pps,
            sent,
            received,
            lost_packets: lost,
            loss_ms: lost as f64 * 1000.0 / f64::from(pps.max(1)),
            outage_ms: outage_ns as f64 / 1e6,
            gap_threshold_ms: self.shared.gap_ns as f64 / 1e6,
            reordered: rx
                .late
                .iter()
                .filter(|&&t| t >= from.ns && t < to.ns)
                .count() as u64,
            tail_delivery,
            recovered: tail_delivery >= 0.95,
        }
    }

    /// Stop both threads; the first error either met.
    pub fn stop(mut self) -> io::Result<()> {
        self.shared.stop.store(true, Ordering::Release);
        let mut first = Ok(());
        for t in self.threads.drain(..) {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a probe thread panicked")));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

fn set_rcvbuf(sock: &UdpSocket, bytes: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt on an open socket with a c_int value of the right size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn receive(s: &Shared, ready: std::sync::mpsc::Sender<io::Result<()>>) -> io::Result<()> {
    let bound = (|| -> io::Result<UdpSocket> {
        netns::enter(&s.spec.to_ns)?;
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, s.spec.port))?;
        // Seconds of packets: a receiver descheduled for a while loses nothing itself.
        set_rcvbuf(&sock, 16 << 20)?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(sock)
    })();
    let sock = match bound {
        Ok(sock) => {
            let _ = ready.send(Ok(()));
            sock
        }
        Err(e) => {
            let e = io::Error::new(e.kind(), format!("probe {} receiver: {e}", s.spec.name));
            let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    let mut buf = [0u8; 2048];
    while !s.stop.load(Ordering::Acquire) {
        match sock.recv(&mut buf) {
            Ok(n) if n >= 8 => {
                let now = s.epoch.elapsed().as_nanos() as u64;
                let seq = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                s.rx.lock().expect("probe lock").record(seq, now, s.gap_ns);
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn send(s: &Shared, period_ns: u64) -> io::Result<()> {
    netns::enter(&s.spec.from_ns)?;
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
    let dst = SocketAddrV4::new(s.spec.dst, s.spec.port);
    let mut buf = [0u8; PAYLOAD];
    let mut start = Instant::now();
    let mut n: u64 = 0;
    while !s.stop.load(Ordering::Acquire) {
        let due = start + Duration::from_nanos(n * period_ns);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > MAX_LAG {
            s.stalls.fetch_add(1, Ordering::Relaxed);
            start = now;
            n = 0;
        }
        let seq = s.sent.load(Ordering::Relaxed);
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        // Unconnected: an ICMP error from a dead path must not fail later sends.
        if sock.send_to(&buf, dst).is_err() {
            s.send_errors.fetch_add(1, Ordering::Relaxed);
        }
        s.sent.store(seq + 1, Ordering::Release);
        n += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_gaps_and_reordering_are_counted() {
        let mut rx = Rx::default();
        let ms = 1_000_000;
        // 0..10 every ms, 10..20 lost, 20..30 resume at 25 ms, 31 before 30.
        for s in 0..10 {
            rx.record(s, s * ms, 2 * ms);
        }
        for s in 20..30 {
            rx.record(s, (s + 5) * ms, 2 * ms);
        }
        rx.record(31, 35 * ms, 2 * ms);
        rx.record(30, 35 * ms + 1, 2 * ms);
        rx.record(30, 35 * ms + 2, 2 * ms);
        assert_eq!(rx.received, 22);
        assert_eq!(rx.duplicates, 1);
        assert_eq!(rx.late, vec![35 * ms + 1]);
        assert_eq!(rx.gaps, vec![(9 * ms, 25 * ms)]);
        assert!(rx.has(9) && !rx.has(10) && rx.has(31));
    }
}
