//! Tiny XDP programs written as raw BPF instructions (no compiler, no object file),
//! loaded with libbpf's low-level API and attached with BPF links (the kernel detaches a
//! link when its fd closes or the process dies): the benchmark sink (`XDP_DROP`), a
//! pass-through (`XDP_PASS`), and the live-frames generator's program (`XDP_TX` with a
//! random source port), see `pktgen`.

// BPF programs and maps through libbpf and the bpf() syscall: FFI.
#![allow(unsafe_code)]

use std::ffi::{c_char, CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One BPF instruction (`struct bpf_insn`: code, dst_reg:4 | src_reg:4, off, imm).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// An instruction from its fields (registers 0..=10).
pub const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

// Opcodes used here.
const LDXB: u8 = 0x71; // dst = *(u8 *)(src + off)
const LDXH: u8 = 0x69; // dst = *(u16 *)(src + off)
const LDXW: u8 = 0x61; // dst = *(u32 *)(src + off)
const LDXDW: u8 = 0x79; // dst = *(u64 *)(src + off)
const STXH: u8 = 0x6b; // *(u16 *)(dst + off) = src
const STXW: u8 = 0x63; // *(u32 *)(dst + off) = src
const STXDW: u8 = 0x7b; // *(u64 *)(dst + off) = src
const LD_IMM64: u8 = 0x18; // dst = imm64 (two slots); src 1: a map fd
const PSEUDO_MAP_FD: u8 = 1;
const STW_IMM: u8 = 0x62; // *(u32 *)(dst + off) = imm
const STH_IMM: u8 = 0x6a; // *(u16 *)(dst + off) = imm
const MOV64_IMM: u8 = 0xb7;
const MOV64_REG: u8 = 0xbf;
const ADD64_IMM: u8 = 0x07;
const ADD64_REG: u8 = 0x0f;
const SUB64_REG: u8 = 0x1f;
const RSH64_IMM: u8 = 0x77;
const AND64_IMM: u8 = 0x57;
const TO_BE: u8 = 0xdc; // dst = htobe<imm>(dst)
const JGT_REG: u8 = 0x2d;
const JEQ_IMM: u8 = 0x15;
const JGT_IMM: u8 = 0x25;
const JLT_IMM: u8 = 0xa5;
const JSGT_IMM: u8 = 0x65;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

/// XDP return codes.
pub const XDP_DROP: i32 = 1;
pub const XDP_PASS: i32 = 2;
pub const XDP_TX: i32 = 3;

/// `return action;`
pub const fn action_prog(action: i32) -> [Insn; 2] {
    [insn(MOV64_IMM, 0, 0, 0, action), insn(EXIT, 0, 0, 0, 0)]
}

/// Instructions with named jump targets (forward or backward), resolved by [`Asm::finish`].
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<(&'static str, usize)>,
    fixups: Vec<(usize, &'static str)>,
}

impl Asm {
    pub fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) -> &mut Self {
        self.insns.push(insn(code, dst, src, off, imm));
        self
    }
    /// A conditional (or `JA`) jump to `label`.
    pub fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.op(code, dst, src, 0, imm)
    }
    pub fn label(&mut self, name: &'static str) -> &mut Self {
        self.labels.push((name, self.insns.len()));
        self
    }
    /// `dst = map` (`BPF_LD_IMM64` with a map fd: two instruction slots).
    pub fn load_map(&mut self, dst: u8, map: &OwnedFd) -> &mut Self {
        self.op(LD_IMM64, dst, PSEUDO_MAP_FD, 0, map.as_raw_fd())
            .op(0, 0, 0, 0, 0)
    }
    /// `*(u64 *)map[*(u32 *)(r10 + key_slot)] += 1` when the element exists (a per-CPU
    /// array: no atomics needed). Clobbers r0..r5.
    pub fn count(&mut self, map: &OwnedFd, key_slot: i16, skip: &'static str) -> &mut Self {
        self.load_map(1, map)
            .op(MOV64_REG, 2, 10, 0, 0)
            .op(ADD64_IMM, 2, 0, 0, key_slot as i32)
            .op(CALL, 0, 0, 0, libbpf_sys::BPF_FUNC_map_lookup_elem as i32)
            .jump(JEQ_IMM, 0, 0, 0, skip)
            .op(LDXDW, 1, 0, 0, 0)
            .op(ADD64_IMM, 1, 0, 0, 1)
            .op(STXDW, 0, 1, 0, 0)
    }
    pub fn finish(mut self) -> Vec<Insn> {
        for (at, name) in &self.fixups {
            let target = self
                .labels
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("BPF label {name} is not defined"))
                .1;
            self.insns[*at].off = (target as i64 - *at as i64 - 1) as i16;
        }
        self.insns
    }
}

/// Where the live-frames program takes each frame's destination from: `map` is an array
/// of `mask + 1` [`DstEntry`] values (IPv4 frames only), one drawn at random per frame.
pub struct DstTable<'a> {
    pub map: &'a OwnedFd,
    pub mask: u32,
}

/// One destination of a [`DstTable`]: the address as it goes on the wire and the IPv4
/// header checksum of the template frame with that address in it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct DstEntry {
    pub addr: [u8; 4],
    pub checksum: [u8; 2],
    pub pad: [u8; 2],
}

/// The live-frames generator's program: rewrite the Ethernet and IP headers from
/// `frame` (the kernel reuses live-frame pages without resetting them, and a forwarder
/// that passes frames to the stack, which decrements the TTL and rewrites MACs in place,
/// would otherwise send modified frames round), optionally put a destination drawn from
/// `dst` in (with its header checksum) and the send time (`bpf_ktime_get_ns`, the
/// monotonic clock) in the frame's last 8 bytes (`stamp`), set the UDP source port to
/// `base + (random & mask)`, then `XDP_TX` (sent out of the interface the test run
/// names). `frame` is Ethernet + IPv4 without options (or IPv6) + UDP; frames shorter
/// than `frame` are dropped.
pub fn live_tx_prog(
    frame: &[u8],
    base: u16,
    mask: u16,
    dst: Option<DstTable>,
    stamp: bool,
) -> Vec<Insn> {
    let v6 = frame[12..14] == [0x86, 0xdd];
    let sport: usize = 14 + if v6 { 40 } else { 20 };
    assert!(frame.len() >= sport + 2);
    assert!(
        !(stamp && frame.len() < sport + 8 + 8),
        "no room for a stamp"
    );
    assert!(!(v6 && dst.is_some()), "destination tables are IPv4 only");
    let word = |off: usize| i32::from_ne_bytes(frame[off..off + 4].try_into().unwrap());
    let half = |off: usize| i16::from_ne_bytes(frame[off..off + 2].try_into().unwrap()) as i32;
    let mut a = Asm::default();
    a.op(LDXW, 6, 1, 0, 0) // r6 = ctx->data
        .op(LDXW, 7, 1, 4, 0) // r7 = ctx->data_end
        .op(MOV64_REG, 8, 6, 0, 0)
        .op(ADD64_IMM, 8, 0, 0, frame.len() as i32)
        .jump(JGT_REG, 8, 7, 0, "drop"); // shorter than the template
                                         // MACs (0..12), ethertype (12..14), IP header: what the stack may touch.
    a.op(STW_IMM, 6, 0, 0, word(0))
        .op(STW_IMM, 6, 0, 4, word(4))
        .op(STW_IMM, 6, 0, 8, word(8))
        .op(STH_IMM, 6, 0, 12, half(12));
    for off in (14..sport).step_by(4) {
        a.op(STW_IMM, 6, 0, off as i16, word(off));
    }
    if let Some(t) = dst {
        a.op(CALL, 0, 0, 0, libbpf_sys::BPF_FUNC_get_prandom_u32 as i32)
            .op(AND64_IMM, 0, 0, 0, t.mask as i32)
            .op(STXW, 10, 0, -4, 0)
            .load_map(1, t.map)
            .op(MOV64_REG, 2, 10, 0, 0)
            .op(ADD64_IMM, 2, 0, 0, -4)
            .op(CALL, 0, 0, 0, libbpf_sys::BPF_FUNC_map_lookup_elem as i32)
            .jump(JEQ_IMM, 0, 0, 0, "drop")
            .op(LDXW, 1, 0, 0, 0)
            .op(STXW, 6, 1, 30, 0) // destination address
            .op(LDXH, 1, 0, 4, 0)
            .op(STXH, 6, 1, 24, 0); // header checksum
    }
    if stamp {
        a.op(CALL, 0, 0, 0, libbpf_sys::BPF_FUNC_ktime_get_ns as i32)
            .op(STXDW, 6, 0, (frame.len() - 8) as i16, 0);
    }
    a.op(CALL, 0, 0, 0, libbpf_sys::BPF_FUNC_get_prandom_u32 as i32)
        .op(AND64_IMM, 0, 0, 0, mask as i32)
        .op(ADD64_IMM, 0, 0, 0, base as i32)
        .op(TO_BE, 0, 0, 0, 16) // r0 = htobe16(r0)
        .op(STXH, 6, 0, sport as i16, 0)
        .op(MOV64_IMM, 0, 0, 0, XDP_TX)
        .op(EXIT, 0, 0, 0, 0)
        .label("drop")
        .op(MOV64_IMM, 0, 0, 0, XDP_DROP)
        .op(EXIT, 0, 0, 0, 0);
    a.finish()
}

/// Latency buckets of the probe sink: 1.024 µs each (ns >> 10), the last one holding
/// everything from 8.4 ms up.
pub const LATENCY_BUCKETS: u32 = 8192;
pub const LATENCY_SHIFT: u32 = 10;

/// The probe sink: drops every frame, like the plain sink, after counting it by the last
/// byte of its destination MAC (`by_mac`, 256 per-CPU u64: which next hop it was sent
/// to) and, when its last 8 bytes hold a send time (the generator's stamp, monotonic
/// ns), by one-way delay (`latency`, [`LATENCY_BUCKETS`] per-CPU u64). Put on the sink
/// only while probing: it costs more than `XDP_DROP` alone, and veth runs the sink's
/// receive on the forwarder's core.
pub fn probe_sink_prog(by_mac: &OwnedFd, latency: &OwnedFd) -> Vec<Insn> {
    let mut a = Asm::default();
    a.op(MOV64_REG, 9, 1, 0, 0) // r9 = ctx
        .op(LDXW, 6, 1, 0, 0) // r6 = data
        .op(LDXW, 7, 1, 4, 0) // r7 = data_end
        .op(MOV64_REG, 2, 6, 0, 0)
        .op(ADD64_IMM, 2, 0, 0, 14)
        .jump(JGT_REG, 2, 7, 0, "drop")
        .op(LDXB, 1, 6, 5, 0)
        .op(STXW, 10, 1, -4, 0)
        .count(by_mac, -4, "by_mac_done")
        .label("by_mac_done")
        .op(MOV64_REG, 1, 9, 0, 0)
        .op(CALL, 0, 0, 0, libbpf_sys::BPF_FUNC_xdp_get_buff_len as i32)
        .jump(JGT_IMM, 0, 0, 4096, "drop")
        .jump(JLT_IMM, 0, 0, 42 + 8, "drop")
        .op(ADD64_IMM, 0, 0, 0, -8)
        .op(MOV64_REG, 8, 6, 0, 0)
        .op(ADD64_REG, 8, 0, 0, 0) // r8 = data + len - 8
        .op(MOV64_REG, 2, 8, 0, 0)
        .op(ADD64_IMM, 2, 0, 0, 8)
        .jump(JGT_REG, 2, 7, 0, "drop")
        .op(LDXDW, 8, 8, 0, 0) // r8 = the stamp
        .jump(JEQ_IMM, 8, 0, 0, "drop")
        .op(CALL, 0, 0, 0, libbpf_sys::BPF_FUNC_ktime_get_ns as i32)
        .op(SUB64_REG, 0, 8, 0, 0)
        .jump(JSGT_IMM, 0, 0, -1, "not_negative")
        .op(MOV64_IMM, 0, 0, 0, 0)
        .label("not_negative")
        .op(RSH64_IMM, 0, 0, 0, LATENCY_SHIFT as i32)
        .jump(JLT_IMM, 0, 0, LATENCY_BUCKETS as i32, "in_range")
        .op(MOV64_IMM, 0, 0, 0, LATENCY_BUCKETS as i32 - 1)
        .label("in_range")
        .op(STXW, 10, 0, -8, 0)
        .count(latency, -8, "drop")
        .label("drop")
        .op(MOV64_IMM, 0, 0, 0, XDP_DROP)
        .op(EXIT, 0, 0, 0, 0);
    a.finish()
}

/// A libbpf return value: itself when not negative, else the error it stands for
/// (libbpf returns -errno), with what was being done in front.
fn libbpf_result(r: libc::c_int, what: impl FnOnce() -> String) -> io::Result<libc::c_int> {
    if r >= 0 {
        return Ok(r);
    }
    let e = io::Error::from_raw_os_error(-r);
    Err(io::Error::new(e.kind(), format!("{}: {e}", what())))
}

/// A new BPF array map (`per_cpu`: one value per possible CPU) of `entries` values.
pub fn array_map(name: &CStr, value_size: u32, entries: u32, per_cpu: bool) -> io::Result<OwnedFd> {
    let kind = if per_cpu {
        libbpf_sys::BPF_MAP_TYPE_PERCPU_ARRAY
    } else {
        libbpf_sys::BPF_MAP_TYPE_ARRAY
    };
    // SAFETY: a NUL-terminated name; no options.
    let fd = unsafe {
        libbpf_sys::bpf_map_create(
            kind,
            name.as_ptr(),
            4,
            value_size,
            entries,
            std::ptr::null(),
        )
    };
    let fd = libbpf_result(fd, || {
        format!("creating BPF map {}", name.to_string_lossy())
    })?;
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Fill an array map of [`DstEntry`] from index 0 in one system call.
pub fn fill_dst_table(map: &OwnedFd, entries: &[DstEntry]) -> io::Result<()> {
    let keys: Vec<u32> = (0..entries.len() as u32).collect();
    let mut count = entries.len() as u32;
    // SAFETY: keys and values hold `count` elements of the map's key and value sizes.
    let r = unsafe {
        libbpf_sys::bpf_map_update_batch(
            map.as_raw_fd(),
            keys.as_ptr().cast(),
            entries.as_ptr().cast(),
            &mut count,
            std::ptr::null(),
        )
    };
    libbpf_result(r, || "filling the destination table".into()).map(drop)
}

/// The per-CPU u64 counters of array map `map` (`entries` of them), summed over CPUs.
pub fn read_counters(map: &OwnedFd, entries: u32) -> io::Result<Vec<u64>> {
    // SAFETY: no arguments.
    let cpus = unsafe { libbpf_sys::libbpf_num_possible_cpus() }.max(1) as usize;
    let mut per_cpu = vec![0u64; cpus];
    let mut out = Vec::with_capacity(entries as usize);
    for key in 0..entries {
        // SAFETY: a u32 key; the value buffer holds one u64 per possible CPU.
        let r = unsafe {
            libbpf_sys::bpf_map_lookup_elem(
                map.as_raw_fd(),
                (&key as *const u32).cast(),
                per_cpu.as_mut_ptr().cast(),
            )
        };
        libbpf_result(r, || "reading a BPF counter".into())?;
        out.push(per_cpu.iter().sum());
    }
    Ok(out)
}

/// Replace the program behind an XDP link (the interface never goes without one).
pub fn replace_program(link: &OwnedFd, prog: &OwnedFd) -> io::Result<()> {
    // SAFETY: two fds we own; no options.
    let r = unsafe {
        libbpf_sys::bpf_link_update(link.as_raw_fd(), prog.as_raw_fd(), std::ptr::null())
    };
    libbpf_result(r, || "replacing an XDP program".into()).map(drop)
}

/// Load an XDP program; a verifier rejection comes back with the end of its log.
pub fn load_xdp(name: &CStr, insns: &[Insn]) -> io::Result<OwnedFd> {
    let mut log = vec![0u8; 64 * 1024];
    let opts = libbpf_sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_prog_load_opts>() as libbpf_sys::size_t,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr().cast::<c_char>(),
        ..Default::default()
    };
    let mut opts = opts;
    // SAFETY: `Insn` has the layout of `struct bpf_insn` (8 bytes); the instructions, name,
    // license, options and log buffer all outlive the call.
    let fd = unsafe {
        libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_XDP,
            name.as_ptr(),
            c"GPL".as_ptr(),
            insns.as_ptr().cast(),
            insns.len() as libbpf_sys::size_t,
            &mut opts,
        )
    };
    if fd < 0 {
        let e = io::Error::from_raw_os_error(-fd);
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[end.saturating_sub(1500)..end]);
        return Err(io::Error::new(
            e.kind(),
            format!(
                "loading XDP program {}: {e}; verifier: {}",
                name.to_string_lossy(),
                text.trim().replace('\n', " | ")
            ),
        ));
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The ifindex of `ifname` in the calling thread's namespace.
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    let cname = CString::new(ifname).map_err(|_| io::Error::other("NUL in interface name"))?;
    // SAFETY: a valid NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {ifname}: {e}")));
    }
    Ok(ifindex)
}

/// Attach `prog` to `ifname` (calling thread's namespace) with a BPF link, in native mode
/// if the driver takes it, else generic. Returns the link (the program stays while it is
/// open) and whether native mode took.
pub fn attach_xdp(prog: &OwnedFd, ifname: &str) -> io::Result<(OwnedFd, bool)> {
    let ifindex = ifindex(ifname)?;
    let mut last = None;
    for (flags, native) in [
        (libbpf_sys::XDP_FLAGS_DRV_MODE, true),
        (libbpf_sys::XDP_FLAGS_SKB_MODE, false),
    ] {
        let opts = libbpf_sys::bpf_link_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as libbpf_sys::size_t,
            flags,
            ..Default::default()
        };
        // SAFETY: a loaded XDP program fd, an ifindex, and options sized as libbpf expects.
        let link = unsafe {
            libbpf_sys::bpf_link_create(
                prog.as_raw_fd(),
                ifindex as libc::c_int,
                libbpf_sys::BPF_XDP,
                &opts,
            )
        };
        if link >= 0 {
            // SAFETY: a new fd nothing else owns.
            return Ok((unsafe { OwnedFd::from_raw_fd(link) }, native));
        }
        last = Some(io::Error::from_raw_os_error(-link));
    }
    let e = last.unwrap();
    Err(io::Error::new(
        e.kind(),
        format!("attaching an XDP program to {ifname}: {e}"),
    ))
}

/// Attach `return action;` to `ifname` (see [`attach_xdp`]). `XDP_DROP` makes a sink whose
/// drops still count in the veth's rx_packets; `XDP_PASS` gives a veth the NAPI that XDP
/// frames sent to it (redirect, XDP_TX) need.
pub fn attach_action(ifname: &str, action: i32) -> io::Result<(OwnedFd, bool)> {
    let prog = load_xdp(c"fwb_action", &action_prog(action))?;
    attach_xdp(&prog, ifname)
}

/// The probe sink's maps and program (see [`probe_sink_prog`]).
pub struct ProbeSink {
    by_mac: OwnedFd,
    latency: OwnedFd,
    pub prog: OwnedFd,
}

/// What the probe sink counted: frames per last byte of the destination MAC, and
/// stamped frames per latency bucket.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub by_mac: Vec<u64>,
    pub latency: Vec<u64>,
}

impl ProbeSink {
    pub fn new() -> io::Result<ProbeSink> {
        let by_mac = array_map(c"fwb_by_mac", 8, 256, true)?;
        let latency = array_map(c"fwb_latency", 8, LATENCY_BUCKETS, true)?;
        let prog = load_xdp(c"fwb_probe", &probe_sink_prog(&by_mac, &latency))?;
        Ok(ProbeSink {
            by_mac,
            latency,
            prog,
        })
    }

    /// The counters so far (a few thousand map reads: ~10 ms).
    pub fn read(&self) -> io::Result<Probe> {
        Ok(Probe {
            by_mac: read_counters(&self.by_mac, 256)?,
            latency: read_counters(&self.latency, LATENCY_BUCKETS)?,
        })
    }
}

impl Probe {
    /// What was counted between `earlier` and `self`.
    pub fn since(&self, earlier: &Probe) -> Probe {
        let sub = |a: &[u64], b: &[u64]| -> Vec<u64> {
            a.iter()
                .zip(b.iter().chain(std::iter::repeat(&0)))
                .map(|(x, y)| x.saturating_sub(*y))
                .collect()
        };
        Probe {
            by_mac: sub(&self.by_mac, &earlier.by_mac),
            latency: sub(&self.latency, &earlier.latency),
        }
    }

    /// Stamped frames counted.
    pub fn stamped(&self) -> u64 {
        self.latency.iter().sum()
    }

    /// The `p`-th percentile (0..=100) of the one-way latency in µs: the middle of the
    /// bucket it falls in (buckets of 1.024 µs). None when nothing was stamped.
    pub fn latency_us(&self, p: f64) -> Option<f64> {
        let total = self.stamped();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let width = (1u64 << LATENCY_SHIFT) as f64 / 1000.0;
                return Some((i as f64 + 0.5) * width);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_from_buckets() {
        let mut latency = vec![0u64; LATENCY_BUCKETS as usize];
        latency[4] = 50; // 4.096..5.12 us
        latency[9] = 49;
        latency[100] = 1;
        let p = Probe {
            by_mac: vec![],
            latency,
        };
        assert_eq!(p.stamped(), 100);
        assert!((p.latency_us(50.0).unwrap() - 4.608).abs() < 1e-9);
        assert!((p.latency_us(99.0).unwrap() - 9.728).abs() < 1e-9);
        assert!((p.latency_us(100.0).unwrap() - 102.912).abs() < 1e-9);
        assert!(Probe::default().latency_us(50.0).is_none());
        let later = Probe {
            by_mac: vec![5, 7],
            latency: vec![3],
        };
        let d = later.since(&Probe {
            by_mac: vec![1, 2],
            latency: vec![],
        });
        assert_eq!(d.by_mac, vec![4, 5]);
        assert_eq!(d.latency, vec![3]);
    }

    #[test]
    fn jumps_land_on_their_labels() {
        let mut a = Asm::default();
        a.jump(JEQ_IMM, 0, 0, 0, "end")
            .op(MOV64_IMM, 0, 0, 0, 1)
            .label("back")
            .op(MOV64_IMM, 0, 0, 0, 2)
            .jump(JGT_IMM, 0, 0, 5, "back")
            .label("end")
            .op(EXIT, 0, 0, 0, 0);
        let p = a.finish();
        assert_eq!(p[0].off, 3); // 0 -> 4
        assert_eq!(p[3].off, -2); // 3 -> 2
    }

    #[test]
    fn live_program_jumps_to_its_drop_on_short_frames() {
        let p = live_tx_prog(&[0u8; 64], 10_000, 255, None, true);
        let j = p.iter().position(|i| i.code == JGT_REG).unwrap();
        let target = j + 1 + p[j].off as usize;
        assert_eq!(p[target].code, MOV64_IMM);
        assert_eq!(p[target].imm, XDP_DROP);
        assert_eq!(p.last().unwrap().code, EXIT);
        // Every store stays below the bound the program checks (the frame's 64 bytes).
        for i in &p {
            let size = match i.code {
                STW_IMM | STXW => 4,
                STH_IMM | STXH => 2,
                STXDW => 8,
                _ => 0,
            };
            assert!(i.off + size <= 64);
        }
    }
}
