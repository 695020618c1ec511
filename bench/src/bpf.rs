//! Tiny XDP programs written as raw BPF instructions (no compiler, no object file),
//! loaded with libbpf's low-level API and attached with BPF links (the kernel detaches a
//! link when its fd closes or the process dies): the benchmark sink (`XDP_DROP`), a
//! pass-through (`XDP_PASS`), and the live-frames generator's program (`XDP_TX` with a
//! random source port), see `pktgen`.

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
const LDXW: u8 = 0x61; // dst = *(u32 *)(src + off)
const STXH: u8 = 0x6b; // *(u16 *)(dst + off) = src
const STW_IMM: u8 = 0x62; // *(u32 *)(dst + off) = imm
const STH_IMM: u8 = 0x6a; // *(u16 *)(dst + off) = imm
const MOV64_IMM: u8 = 0xb7;
const MOV64_REG: u8 = 0xbf;
const ADD64_IMM: u8 = 0x07;
const AND64_IMM: u8 = 0x57;
const TO_BE: u8 = 0xdc; // dst = htobe<imm>(dst)
const JGT_REG: u8 = 0x2d;
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

/// The live-frames generator's program: rewrite the Ethernet and IPv4 headers from
/// `frame` (the kernel reuses live-frame pages without resetting them, and a forwarder
/// that passes frames to the stack, which decrements the TTL and rewrites MACs in place,
/// would otherwise send modified frames round), set the UDP source port to
/// `base + (random & mask)`, then `XDP_TX` (sent out of the interface the test run names).
/// `frame` is Ethernet + IPv4 without options (or IPv6) + UDP; shorter frames are
/// dropped.
pub fn live_tx_prog(frame: &[u8], base: u16, mask: u16) -> Vec<Insn> {
    let ip_len = if frame[12..14] == [0x86, 0xdd] {
        40
    } else {
        20
    };
    let sport: usize = 14 + ip_len;
    assert!(frame.len() >= sport + 2);
    let word = |off: usize| i32::from_ne_bytes(frame[off..off + 4].try_into().unwrap());
    let half = |off: usize| i16::from_ne_bytes(frame[off..off + 2].try_into().unwrap()) as i32;
    let mut p = vec![
        insn(LDXW, 6, 1, 0, 0),                     // r6 = ctx->data
        insn(LDXW, 7, 1, 4, 0),                     // r7 = ctx->data_end
        insn(MOV64_REG, 8, 6, 0, 0),                // r8 = r6
        insn(ADD64_IMM, 8, 0, 0, sport as i32 + 2), // r8 += 36 (56 for IPv6)
        insn(JGT_REG, 8, 7, 0, 0),                  // if r8 > r7 goto drop (patched below)
    ];
    let jump = p.len() - 1;
    // MACs (0..12), ethertype (12..14), IP header (14..34 or 14..54): what the stack
    // may touch.
    p.push(insn(STW_IMM, 6, 0, 0, word(0)));
    p.push(insn(STW_IMM, 6, 0, 4, word(4)));
    p.push(insn(STW_IMM, 6, 0, 8, word(8)));
    p.push(insn(STH_IMM, 6, 0, 12, half(12)));
    for off in (14..sport).step_by(4) {
        p.push(insn(STW_IMM, 6, 0, off as i16, word(off)));
    }
    p.extend([
        insn(CALL, 0, 0, 0, 7),                // r0 = bpf_get_prandom_u32()
        insn(AND64_IMM, 0, 0, 0, mask as i32), // r0 &= mask
        insn(ADD64_IMM, 0, 0, 0, base as i32), // r0 += base
        insn(TO_BE, 0, 0, 0, 16),              // r0 = htobe16(r0)
        insn(STXH, 6, 0, sport as i16, 0),     // *(u16 *)(r6 + sport) = r0
        insn(MOV64_IMM, 0, 0, 0, XDP_TX),
        insn(EXIT, 0, 0, 0, 0),
    ]);
    p[jump].off = (p.len() - jump - 1) as i16;
    p.extend(action_prog(XDP_DROP)); // drop: short frame
    p
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_program_jumps_to_its_drop_on_short_frames() {
        let p = live_tx_prog(&[0u8; 64], 10_000, 255);
        let j = p.iter().position(|i| i.code == JGT_REG).unwrap();
        let target = j + 1 + p[j].off as usize;
        assert_eq!(p[target].code, MOV64_IMM);
        assert_eq!(p[target].imm, XDP_DROP);
        assert_eq!(p.last().unwrap().code, EXIT);
        // Every store stays below the bound the program checks (36 bytes).
        for i in &p {
            if i.code == STW_IMM {
                assert!(i.off + 4 <= 36);
            }
            if i.code == STH_IMM || i.code == STXH {
                assert!(i.off + 2 <= 36);
            }
        }
    }
}
