//! A packet generator thread (optionally inside a network namespace and pinned to a core)
//! sending prebuilt 64-byte IPv4/UDP frames as fast as the interface takes them. Two
//! engines:
//!
//! - [`Engine::AfXdp`]: txonly AF_XDP (xsk-rs). One UMEM of prebuilt frames, batches on
//!   the TX ring and a kick per batch (copy mode on veth always needs one; notes
//!   afxdp-on-veth.md #5 and #10), frames recycled from the completion ring in FIFO
//!   order so every source port comes round. No XDP program is loaded (TX needs none);
//!   frames are never rewritten (copy-mode TX only reads them). Each frame is an skb sent
//!   one by one through the driver, and on veth the receiver's NAPI runs right after each
//!   one on the sender's CPU.
//! - [`Engine::XdpLive`]: XDP live frames (`BPF_PROG_RUN` with
//!   `BPF_F_TEST_XDP_LIVE_FRAMES`): the kernel runs a tiny program (`bpf::live_tx_prog`:
//!   rewrite the headers, random source port, `XDP_TX`) over page-pool frames in batches
//!   and sends them with `ndo_xdp_xmit`: no skb, one flush per batch. Several times
//!   faster on veth. The receiving veth needs NAPI (an XDP program or GRO on) or the
//!   frames are dropped.
//!
//! Frames of 64 to 1500 bytes (IPv4 or IPv6 UDP), many flows (source ports), optionally
//! random IPv4 destinations from a table (with their header checksums), a send time in
//! the last 8 bytes (for the probe sink's latency) and, with AF_XDP, a set rate. Used by
//! fwdbench and by the `pktgen` binary.

// The generator drives AF_XDP rings (xsk-rs: unsafe) and libbpf maps (FFI).
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;
use xsk_rs::config::UmemConfig;
use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig};
use xsk_rs::{FrameDesc, Socket, Umem};

/// setsockopt(SOL_XDP, XDP_MAX_TX_SKB_BUDGET): frames sent per kick in copy mode (6.18+).
const SOL_XDP: libc::c_int = 283;
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
const FRAME_SIZE: u32 = 2048;
const FRAMES: u32 = 4096;
const RING: u32 = 2048;

/// How frames are sent (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    AfXdp,
    XdpLive,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::AfXdp => "afxdp",
            Engine::XdpLive => "xdp-live",
        }
    }
}

/// What to send and from where.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub engine: Engine,
    /// Network namespace (`/run/netns/NAME`) the generator thread enters first.
    pub netns: Option<String>,
    pub ifname: String,
    pub queue: u32,
    /// Core the thread is pinned to.
    pub core: Option<usize>,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    /// IPv6 frames between these (source, destination) instead of IPv4.
    pub v6: Option<(Ipv6Addr, Ipv6Addr)>,
    /// Source ports `first_src_port ..` (`flows` of them), one flow each: in turn with
    /// AF_XDP, at random with XDP live frames (rounded up to a power of two there).
    pub first_src_port: u16,
    pub flows: u16,
    pub dst_port: u16,
    /// Frame length without FCS (64: the minimum Ethernet frame).
    pub frame_len: usize,
    /// Frames per kick (AF_XDP) or per run of the program (live frames, at most 256).
    pub batch: usize,
    /// Live frames: threads (on the same core). Each BPF_PROG_RUN call ends with an RCU
    /// grace period (~20 ms, page pool teardown) during which another thread sends, so
    /// the link never pauses. AF_XDP: always one.
    pub threads: usize,
    /// Frames per second (AF_XDP only: paced in batches of `batch`); 0 = as fast as the
    /// interface takes them.
    pub rate_pps: u64,
    /// Put the send time (CLOCK_MONOTONIC ns, what `bpf_ktime_get_ns` reads) in each
    /// frame's last 8 bytes, for the probe sink's one-way latency.
    pub stamp: bool,
    /// IPv4 destinations drawn at random per frame (rounded down to a power of two
    /// entries) instead of `dst_ip`.
    pub dst_table: Option<Arc<Vec<Ipv4Addr>>>,
}

impl GenConfig {
    /// 64-byte UDP frames, 256 flows, batch 64, XDP live frames.
    pub fn udp64(
        ifname: &str,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Self {
        GenConfig {
            engine: Engine::XdpLive,
            netns: None,
            ifname: ifname.to_string(),
            queue: 0,
            core: None,
            src_mac,
            dst_mac,
            src_ip: src,
            dst_ip: dst,
            v6: None,
            first_src_port: 10_000,
            flows: 256,
            dst_port: 9,
            frame_len: 64,
            batch: 64,
            threads: 2,
            rate_pps: 0,
            stamp: false,
            dst_table: None,
        }
    }

    /// Send `rate_pps` frames per second (0: as fast as possible), in batches small
    /// enough to keep the stream smooth (a batch leaves back to back).
    pub fn set_rate(&mut self, rate_pps: u64) {
        self.rate_pps = rate_pps;
        if rate_pps > 0 {
            self.batch = ((rate_pps / 20_000) as usize).clamp(1, 64);
        }
    }

    /// The destination table's entries (a power of two of them, at most 2^20): each
    /// address with the IPv4 header checksum the frame gets with it.
    fn dst_entries(&self) -> Option<Vec<crate::bpf::DstEntry>> {
        let table = self.dst_table.as_ref().filter(|t| !t.is_empty())?;
        let n = 1usize << (usize::BITS - 1 - table.len().min(1 << 20).leading_zeros());
        let mut f = udp4_frame(self, self.first_src_port);
        Some(
            table[..n]
                .iter()
                .map(|a| {
                    f[30..34].copy_from_slice(&a.octets());
                    f[24..26].copy_from_slice(&[0, 0]);
                    let c = encap::rewrite::ipv4_checksum(&f[14..34]);
                    crate::bpf::DstEntry {
                        addr: a.octets(),
                        checksum: c.to_be_bytes(),
                        pad: [0; 2],
                    }
                })
                .collect(),
        )
    }
}

/// CLOCK_MONOTONIC in ns (the clock `bpf_ktime_get_ns` reads).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The frame the configuration asks for (IPv4 or IPv6) from source port `src_port`.
pub fn udp_frame(cfg: &GenConfig, src_port: u16) -> Vec<u8> {
    match cfg.v6 {
        Some((src, dst)) => udp6_frame(cfg, src, dst, src_port),
        None => udp4_frame(cfg, src_port),
    }
}

/// An Ethernet + IPv6 (hop limit 64) + UDP frame of `cfg.frame_len` bytes (at least
/// 62), with the UDP checksum IPv6 requires. (The live-frames program rewrites the
/// source port and leaves this checksum as is: forwarders do not check it and the sink
/// drops everything.)
pub fn udp6_frame(cfg: &GenConfig, src: Ipv6Addr, dst: Ipv6Addr, src_port: u16) -> Vec<u8> {
    let len = cfg.frame_len.max(14 + 40 + 8);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&cfg.dst_mac);
    f[6..12].copy_from_slice(&cfg.src_mac);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let udp_len = (len - 54) as u16;
    f[14] = 0x60;
    f[18..20].copy_from_slice(&udp_len.to_be_bytes());
    f[20] = 17; // UDP
    f[21] = 64; // hop limit
    f[22..38].copy_from_slice(&src.octets());
    f[38..54].copy_from_slice(&dst.octets());
    f[54..56].copy_from_slice(&src_port.to_be_bytes());
    f[56..58].copy_from_slice(&cfg.dst_port.to_be_bytes());
    f[58..60].copy_from_slice(&udp_len.to_be_bytes());
    // Pseudo-header (addresses, length, next header) + UDP header and payload.
    use encap::rewrite::{fold, sum16};
    let c = !fold(sum16(&f[22..54]) + u32::from(udp_len) + 17 + sum16(&f[54..len]));
    f[60..62].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    f
}

/// An Ethernet + IPv4 (TTL 64, DF, header checksum) + UDP (checksum 0) frame of
/// `cfg.frame_len` bytes from source port `src_port`; the payload is zeros.
pub fn udp4_frame(cfg: &GenConfig, src_port: u16) -> Vec<u8> {
    let len = cfg.frame_len.max(14 + 20 + 8);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&cfg.dst_mac);
    f[6..12].copy_from_slice(&cfg.src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[20] = 0x40; // DF
    f[22] = 64; // TTL
    f[23] = 17; // UDP
    f[26..30].copy_from_slice(&cfg.src_ip.octets());
    f[30..34].copy_from_slice(&cfg.dst_ip.octets());
    let c = encap::rewrite::ipv4_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&src_port.to_be_bytes());
    f[36..38].copy_from_slice(&cfg.dst_port.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// What the generator did, when stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenStats {
    /// Frames offered to the link: AF_XDP frames the kernel took off the TX ring
    /// (completed); live frames the program ran on (XDP_TX; the receiver may still drop).
    pub sent: u64,
    /// System calls: sendto() kicks, or BPF_PROG_RUN calls.
    pub calls: u64,
    /// AF_XDP: whether XDP_MAX_TX_SKB_BUDGET took (else 32 frames per kick at most).
    pub budget_raised: bool,
}

/// A running generator thread.
pub struct Generator {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handles: Vec<JoinHandle<io::Result<GenStats>>>,
}

impl Generator {
    /// Start sending. Returns once every thread is ready (or with the first setup error).
    pub fn start(cfg: GenConfig) -> io::Result<Generator> {
        if cfg.v6.is_some() && cfg.dst_table.is_some() {
            return Err(io::Error::other("destination tables are IPv4 only"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::channel();
        let threads = match cfg.engine {
            Engine::AfXdp => 1,
            Engine::XdpLive => cfg.threads.max(1),
        };
        let mut gen = Generator {
            stop,
            sent,
            handles: Vec::new(),
        };
        for i in 0..threads {
            let (s, c, r, cfg) = (
                gen.stop.clone(),
                gen.sent.clone(),
                ready_tx.clone(),
                cfg.clone(),
            );
            gen.handles.push(
                std::thread::Builder::new()
                    .name(format!("pktgen-{i}"))
                    .spawn(move || run(cfg, &s, &c, r))?,
            );
        }
        drop(ready_tx);
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = gen.finish();
                    return Err(e);
                }
                Err(_) => {
                    return Err(gen
                        .finish()
                        .err()
                        .unwrap_or_else(|| io::Error::other("a generator thread exited at start")))
                }
            }
        }
        Ok(gen)
    }

    /// Frames sent so far (AF_XDP: updated every loop; live frames: per run of the
    /// program, so in steps of up to a few hundred thousand).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stop and return the totals.
    pub fn stop(mut self) -> io::Result<GenStats> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<GenStats> {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = GenStats::default();
        let mut failure = None;
        for h in self.handles.drain(..) {
            match h.join() {
                Ok(Ok(s)) => {
                    total.sent += s.sent;
                    total.calls += s.calls;
                    total.budget_raised |= s.budget_raised;
                }
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => {
                    failure = failure.or(Some(io::Error::other("a generator thread panicked")))
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn other<E: std::fmt::Debug>(what: &str, e: E) -> io::Error {
    io::Error::other(format!("{what}: {e:?}"))
}

fn run(
    cfg: GenConfig,
    stop: &AtomicBool,
    sent: &AtomicU64,
    ready: mpsc::Sender<io::Result<()>>,
) -> io::Result<GenStats> {
    if let Err(e) = place(&cfg) {
        let _ = ready.send(Err(e));
        return Ok(GenStats::default());
    }
    match cfg.engine {
        Engine::AfXdp => run_afxdp(cfg, stop, sent, ready),
        Engine::XdpLive => run_live(cfg, stop, sent, ready),
    }
}

/// Frames per BPF_PROG_RUN call: tens of milliseconds of sending (stop is noticed within
/// that), against the ~20 ms grace period each call ends with.
const LIVE_CHUNK: u32 = 256 * 1024;

fn run_live(
    cfg: GenConfig,
    stop: &AtomicBool,
    sent: &AtomicU64,
    ready: mpsc::Sender<io::Result<()>>,
) -> io::Result<GenStats> {
    let what = format!("live-frames generator on {}", cfg.ifname);
    let frame = udp_frame(&cfg, cfg.first_src_port);
    let mask = (u32::from(cfg.flows.max(1)).next_power_of_two() - 1) as u16;
    let setup = (|| {
        if cfg.rate_pps > 0 {
            return Err(io::Error::other(
                "a set rate needs the AF_XDP engine (live frames go as fast as they can)",
            ));
        }
        let dst_map = match cfg.dst_entries() {
            Some(entries) => {
                let map = crate::bpf::array_map(
                    c"fwb_dsts",
                    std::mem::size_of::<crate::bpf::DstEntry>() as u32,
                    entries.len() as u32,
                    false,
                )?;
                crate::bpf::fill_dst_table(&map, &entries)?;
                Some((map, entries.len() as u32 - 1))
            }
            None => None,
        };
        let prog = crate::bpf::load_xdp(
            c"fwb_pktgen",
            &crate::bpf::live_tx_prog(
                &frame,
                cfg.first_src_port,
                mask,
                dst_map
                    .as_ref()
                    .map(|(map, mask)| crate::bpf::DstTable { map, mask: *mask }),
                cfg.stamp,
            ),
        )?;
        let ifindex = crate::bpf::ifindex(&cfg.ifname)?;
        Ok::<_, io::Error>((prog, ifindex))
    })();
    let (prog, ifindex) = match setup {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(io::Error::new(e.kind(), format!("{what}: {e}"))));
            return Ok(GenStats::default());
        }
    };
    // The kernel wants data_end = the frame's length (and data = data_meta = 0).
    let ctx = libbpf_sys::xdp_md {
        data_end: frame.len() as u32,
        ingress_ifindex: ifindex,
        rx_queue_index: cfg.queue,
        ..Default::default()
    };
    let batch = cfg.batch.clamp(1, 256) as u32;
    let mut stats = GenStats::default();
    let mut first = true;
    loop {
        let repeat = if first { 1 } else { LIVE_CHUNK };
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as libbpf_sys::size_t,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            ctx_in: (&ctx as *const libbpf_sys::xdp_md).cast(),
            ctx_size_in: std::mem::size_of::<libbpf_sys::xdp_md>() as u32,
            repeat: repeat as libc::c_int,
            flags: libbpf_sys::BPF_F_TEST_XDP_LIVE_FRAMES,
            batch_size: batch,
            ..Default::default()
        };
        // SAFETY: a loaded XDP program; `frame` and `ctx` outlive the call; no output
        // buffers (live frames have none).
        let r = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) };
        stats.calls += 1;
        if r < 0 && -r != libc::EINTR {
            let e = io::Error::from_raw_os_error(-r);
            let e = io::Error::new(e.kind(), format!("{what}: BPF_PROG_RUN (live frames): {e}"));
            if first {
                let _ = ready.send(Err(e));
                return Ok(stats);
            }
            return Err(e);
        }
        if r == 0 {
            stats.sent += u64::from(repeat);
            sent.fetch_add(u64::from(repeat), Ordering::Relaxed);
        }
        if first {
            first = false;
            let _ = ready.send(Ok(()));
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(stats);
        }
    }
}

fn run_afxdp(
    cfg: GenConfig,
    stop: &AtomicBool,
    sent: &AtomicU64,
    ready: mpsc::Sender<io::Result<()>>,
) -> io::Result<GenStats> {
    let setup = setup(&cfg);
    let (umem, mut tx, mut cq, mut free, budget_raised) = match setup {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(GenStats::default());
        }
    };
    // Before saying ready: 2^20 entries take most of a second in a debug build, which
    // a short latency probe's settling time would not cover.
    let dsts = cfg.dst_entries();
    let _ = ready.send(Ok(()));
    let len = cfg.frame_len;
    let batch = cfg.batch.clamp(1, RING as usize);
    let mut rng = fib::synth::Rng::new(fib::synth::DEFAULT_SEED);
    let start = std::time::Instant::now();
    let mut produced = 0u64;
    let mut done = vec![FrameDesc::default(); RING as usize];
    let mut stats = GenStats {
        budget_raised,
        ..Default::default()
    };
    let mut outstanding = 0usize;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: completed descriptors are frames of `umem`, ours again.
        let n = unsafe { cq.consume(&mut done) };
        if n > 0 {
            for d in &mut done[..n] {
                // The completion ring reports no length: restore it (contents are intact).
                // SAFETY: we own the frame.
                unsafe { umem.data_mut(d).cursor().set_pos(len) };
            }
            free.extend(&done[..n]);
            outstanding -= n;
            stats.sent += n as u64;
            sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        // Paced: only what the rate allows by now (in batches).
        let allowed = if cfg.rate_pps == 0 {
            u64::MAX
        } else {
            (start.elapsed().as_secs_f64() * cfg.rate_pps as f64) as u64
        };
        if free.len() >= batch && allowed >= produced + batch as u64 {
            let n = batch.min(free.as_slices().0.len());
            if dsts.is_some() || cfg.stamp {
                let stamp = if cfg.stamp { monotonic_ns() } else { 0 };
                for d in &mut free.as_mut_slices().0[..n] {
                    // SAFETY: a free frame of `umem`: ours until produced.
                    let mut frame = unsafe { umem.data_mut(d) };
                    let data = frame.contents_mut();
                    if let Some(dsts) = &dsts {
                        let e = &dsts[rng.next_u32() as usize & (dsts.len() - 1)];
                        data[30..34].copy_from_slice(&e.addr);
                        data[24..26].copy_from_slice(&e.checksum);
                    }
                    if cfg.stamp {
                        data[len - 8..len].copy_from_slice(&stamp.to_ne_bytes());
                    }
                }
            }
            let slice = &free.as_slices().0[..n];
            // SAFETY: free descriptors are frames of `umem` that we own, with their length set.
            let k = unsafe { tx.produce(slice) };
            free.drain(..k);
            outstanding += k;
            produced += k as u64;
        }
        if outstanding > 0 {
            // ENOBUFS / EAGAIN / EBUSY (the peer's queue is full) are not errors.
            tx.wakeup()
                .map_err(|e| io::Error::new(e.kind(), format!("TX kick on {}: {e}", cfg.ifname)))?;
            stats.calls += 1;
        }
    }
    // Count what was still in flight at the stop (it reaches the receiver too).
    let deadline = std::time::Instant::now() + Duration::from_millis(200);
    while outstanding > 0 && std::time::Instant::now() < deadline {
        // SAFETY: as above: completed descriptors are frames of `umem`.
        let n = unsafe { cq.consume(&mut done) };
        outstanding -= n;
        stats.sent += n as u64;
        sent.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            let _ = tx.wakeup();
        }
    }
    drop(umem);
    Ok(stats)
}

type Setup = (
    Umem,
    xsk_rs::TxQueue,
    xsk_rs::CompQueue,
    VecDeque<FrameDesc>,
    bool,
);

/// Move the calling thread into the generator's namespace and onto its core.
fn place(cfg: &GenConfig) -> io::Result<()> {
    if let Some(ns) = &cfg.netns {
        crate::netns::enter(ns)?;
    }
    if let Some(core) = cfg.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            return Err(io::Error::other(format!(
                "cannot pin the generator to core {core}"
            )));
        }
    }
    Ok(())
}

fn setup(cfg: &GenConfig) -> io::Result<Setup> {
    place(cfg)?;
    let what = format!("generator on {} queue {}", cfg.ifname, cfg.queue);
    if cfg.frame_len > (FRAME_SIZE - 256) as usize {
        return Err(io::Error::other(format!(
            "{what}: frames of {} B do not fit ({} B at most)",
            cfg.frame_len,
            FRAME_SIZE - 256
        )));
    }
    let ucfg = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| other(&what, e))?)
        .fill_queue_size(QueueSize::new(RING).map_err(|e| other(&what, e))?)
        .comp_queue_size(QueueSize::new(FRAMES).map_err(|e| other(&what, e))?)
        .build()
        .map_err(|e| other(&what, e))?;
    let (umem, descs) = Umem::new(ucfg, NonZeroU32::new(FRAMES).unwrap(), false)
        .map_err(|e| io::Error::other(format!("{what}: UMEM: {e}")))?;
    let iface: Interface = cfg
        .ifname
        .parse()
        .map_err(|_| io::Error::other(format!("{what}: bad interface name")))?;
    let scfg = SocketConfig::builder()
        .rx_queue_size(QueueSize::new(64).map_err(|e| other(&what, e))?)
        .tx_queue_size(QueueSize::new(RING).map_err(|e| other(&what, e))?)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_COPY)
        .build();
    // A queue released by a socket that just closed can be busy for a second or two.
    let mut tries = 0;
    let (tx, _rx, rings) = loop {
        // SAFETY: the only socket on this UMEM; no XDP program is loaded (INHIBIT_PROG_LOAD).
        match unsafe { Socket::new(scfg, &umem, &iface, cfg.queue) } {
            Ok(s) => break s,
            Err(e) if tries < 20 && format!("{e:?}").contains("Busy") => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(io::Error::other(format!("{what}: AF_XDP socket: {e}"))),
        }
    };
    let (_fq, cq) =
        rings.ok_or_else(|| io::Error::other(format!("{what}: no fill/completion rings")))?;
    let budget: libc::c_int = cfg.batch.clamp(32, RING as usize) as libc::c_int;
    // SAFETY: a plain int option on a socket we own; failure is handled.
    let budget_raised = unsafe {
        libc::setsockopt(
            tx.fd().as_raw_fd(),
            SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            (&budget as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    let mut free = VecDeque::with_capacity(FRAMES as usize);
    for (i, mut d) in descs.into_iter().enumerate() {
        let port = cfg
            .first_src_port
            .wrapping_add((i % cfg.flows.max(1) as usize) as u16);
        let frame = udp_frame(cfg, port);
        // SAFETY: a fresh frame of this UMEM that nothing else uses yet.
        unsafe {
            let mut data = umem.data_mut(&mut d);
            let mut cursor = data.cursor();
            cursor.set_pos(0);
            cursor
                .write_all(&frame)
                .map_err(|e| io::Error::new(e.kind(), format!("{what}: writing a frame: {e}")))?;
        }
        free.push_back(d);
    }
    Ok((umem, tx, cq, free, budget_raised))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_frames_have_their_udp_checksum() {
        let mut cfg = GenConfig::udp64(
            "x",
            [2; 6],
            [4; 6],
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
        );
        cfg.v6 = Some((
            "fd99::fe".parse().unwrap(),
            "fd10:0:0:1::2".parse().unwrap(),
        ));
        let f = udp_frame(&cfg, 10_007);
        assert_eq!(f.len(), 64);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(u16::from_be_bytes([f[54], f[55]]), 10_007);
        // The one's-complement sum over pseudo-header and UDP comes to 0xffff.
        let mut sum: u32 = 0;
        for c in f[22..54].chunks(2).chain(f[54..].chunks(2)) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        sum += 10 + 17; // UDP length (8 + 2) and next header
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        // The live-frames program takes IPv6 frames (it checks their length).
        assert!(!crate::bpf::live_tx_prog(&f, 10_000, 255, None, false).is_empty());
    }

    #[test]
    fn destination_entries_carry_their_header_checksum() {
        let mut cfg = GenConfig::udp64(
            "x",
            [2; 6],
            [4; 6],
            Ipv4Addr::new(10, 244, 1, 2),
            Ipv4Addr::new(1, 1, 1, 1),
        );
        cfg.dst_table = Some(Arc::new(
            (0..1000u32)
                .map(|i| Ipv4Addr::from(0x0b00_0000 + i * 7919))
                .collect(),
        ));
        let entries = cfg.dst_entries().unwrap();
        assert_eq!(entries.len(), 512); // rounded down to a power of two
        let mut f = udp4_frame(&cfg, 10_000);
        for (e, a) in entries.iter().zip(cfg.dst_table.as_ref().unwrap().iter()) {
            assert_eq!(e.addr, a.octets());
            f[30..34].copy_from_slice(&e.addr);
            f[24..26].copy_from_slice(&e.checksum);
            let sum = f[14..34]
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum::<u32>();
            assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff, "{a}");
        }
    }

    #[test]
    fn udp_frames_are_64_bytes_with_a_valid_ipv4_header() {
        let cfg = GenConfig::udp64(
            "x",
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            Ipv4Addr::new(10, 99, 0, 254),
            Ipv4Addr::new(10, 244, 1, 2),
        );
        let f = udp4_frame(&cfg, 10_007);
        assert_eq!(f.len(), 64);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 50);
        assert_eq!(f[22], 64);
        assert_eq!(&f[30..34], &[10, 244, 1, 2]);
        // A header with its checksum sums to 0xffff.
        let sum = f[14..34]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 10_007);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 30);
    }
}
