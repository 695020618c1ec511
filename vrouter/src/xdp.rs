//! The vRouter's own XDP program (`vrouter/xdp/vrouter_xdp.c`, compiled by `build.rs` and embedded
//! here) and its loader.
//!
//! The program steers each received frame either to the kernel (`XDP_PASS`) or to the AF_XDP
//! socket bound to the receiving queue (`bpf_redirect_map` on the `xsks` XSKMAP, whose fallback
//! action is `XDP_PASS`: with no socket registered, traffic keeps flowing to the kernel). What goes
//! where depends on the interface's [`XdpRole`] and on the destination's [`PrefixClass`] in the
//! program's LPM tries (see the C file for the exact rules).
//!
//! The program is attached with a BPF link (`BPF_LINK_CREATE`, attach type `BPF_XDP`), not with the
//! netlink `IFLA_XDP` attach: the kernel detaches a link when its last fd closes, so the program
//! disappears when the [`XdpProgram`] is dropped *and* when the process dies, even by SIGKILL — a
//! dead vRouter never leaves a program redirecting into a dead socket.
//!
//! Each [`XdpProgram`] loads its own copy of the object, so its maps (prefixes, sockets, role) are
//! per interface.
//!
//! Opening, loading, finding the program and maps, map updates and libbpf's log go through
//! libbpf-rs (on the same libbpf-sys as xsk-rs: one libbpf in the binary). Once loaded, the
//! object is closed and only fds are kept: the program's, map handles and the link; the kernel
//! keeps what an fd refers to, and fds are what a restart hands over (see `adopt`).
//!
//! libbpf's own logging is silenced unless `VROUTER_LIBBPF_DEBUG` is set (then all of it, debug
//! level included, goes to stderr). A verifier rejection is reported in the returned error with the
//! tail of the verifier log.

// One bpf(2) call libbpf-rs 0.25 does not wrap (a BPF link with the XDP mode flags) and
// if_nametoindex(3): each block says why its pointers and fds are valid.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use ipnet::IpNet;
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapInfo, ObjectBuilder, PrintLevel};
use libbpf_sys as sys;

/// The compiled object, 8-byte aligned for libelf's in-memory parsing.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/vrouter_xdp.o")));

const OBJECT_NAME: &str = "vrouter_xdp";
const PROGRAM_NAME: &str = "vrouter_xdp";
const MAP_XSKS: &str = "xsks";
const MAP_PREFIXES_V4: &str = "prefixes_v4";
const MAP_PREFIXES_V6: &str = "prefixes_v6";
const MAP_SETTINGS: &str = "settings";

/// Entries of the `xsks` XSKMAP (valid queue indices are below this).
pub const MAX_QUEUES: u32 = 64;

/// How much of the end of the verifier log an error message carries.
const VERIFIER_LOG_TAIL: usize = 2048;

/// What the interface is to the vRouter; decides what the program steers to the AF_XDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpRole {
    /// The node's uplink: only traffic for [`PrefixClass::Ours`] destinations, and tunnel traffic
    /// (IPIP, IPv6-in-IP, VXLAN) for [`PrefixClass::Local`] ones, goes to the vRouter; the rest
    /// (ARP, the host's own SSH/BGP, ...) goes to the kernel.
    Uplink,
    /// A pod's host-side veth: everything goes to the vRouter (ARP and IPv6 ND included) except
    /// traffic for [`PrefixClass::Local`] destinations, and after
    /// [`XdpProgram::answers_to_kernel`] the pod's ARP replies and neighbour advertisements,
    /// which go to the kernel.
    Endpoint,
}

impl XdpRole {
    /// The value of `settings[0]` in the C program.
    fn code(self) -> u32 {
        match self {
            XdpRole::Uplink => 0,
            XdpRole::Endpoint => 1,
        }
    }
}

/// How the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Driver mode (`XDP_FLAGS_DRV_MODE`): the driver runs the program before building an skb.
    Native,
    /// Generic mode (`XDP_FLAGS_SKB_MODE`): runs after skb allocation; works on any device.
    Generic,
}

impl AttachMode {
    fn flags(self) -> u32 {
        match self {
            AttachMode::Native => sys::XDP_FLAGS_DRV_MODE,
            AttachMode::Generic => sys::XDP_FLAGS_SKB_MODE,
        }
    }
}

/// The class of a destination prefix in the program's LPM tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixClass {
    /// Pool / pod addresses the vRouter forwards.
    Ours,
    /// The node's own addresses.
    Local,
}

impl PrefixClass {
    /// The map value in the C program.
    fn code(self) -> u32 {
        match self {
            PrefixClass::Ours => 1,
            PrefixClass::Local => 2,
        }
    }
}

/// Keys of `settings`.
const SETTING_ROLE: u32 = 0;
const SETTING_ANSWERS_TO_KERNEL: u32 = 1;
const SETTING_NAT_LOW: u32 = 2;
const SETTING_NAT_HIGH: u32 = 3;

/// The key of `prefixes_v4` or `prefixes_v6` (`struct lpm_v4_key` / `lpm_v6_key`: the prefix
/// length as a host-order `__u32`, then the address bytes), on the stack: no allocation per
/// update.
struct LpmKey {
    bytes: [u8; 20],
    len: usize,
}

impl LpmKey {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `prefix`'s key, host bits cleared.
fn lpm_key(prefix: IpNet) -> LpmKey {
    let prefix = prefix.trunc();
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&u32::from(prefix.prefix_len()).to_ne_bytes());
    let len = match prefix {
        IpNet::V4(n) => {
            bytes[4..8].copy_from_slice(&n.addr().octets());
            8
        }
        IpNet::V6(n) => {
            bytes[4..].copy_from_slice(&n.addr().octets());
            20
        }
    };
    LpmKey { bytes, len }
}

/// The prefix an LPM key of either trie holds (`None` if the key has another size).
fn prefix_of(key: &[u8]) -> Option<IpNet> {
    let (len, addr) = key.split_first_chunk::<4>()?;
    let len = u8::try_from(u32::from_ne_bytes(*len)).ok()?;
    let addr: std::net::IpAddr = match addr.len() {
        4 => <[u8; 4]>::try_from(addr).ok()?.into(),
        16 => <[u8; 16]>::try_from(addr).ok()?.into(),
        _ => return None,
    };
    IpNet::new(addr, len).ok()
}

/// Our XDP program, loaded and attached to one interface through a BPF link.
///
/// Dropping it closes the link fd, which detaches the program, then the program and map fds.
pub struct XdpProgram {
    ifname: String,
    ifindex: u32,
    /// The BPF link; `None` only during `drop`.
    link: Option<OwnedFd>,
    loaded: Loaded,
    /// A program taken over from the last run: the prefixes this run has set since, so
    /// that [`XdpProgram::sweep_stale`] can remove the others.
    set_since_adopted: Option<std::sync::Mutex<std::collections::HashSet<IpNet>>>,
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("link_fd", &self.link.as_ref().map(AsRawFd::as_raw_fd))
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads the program, sets its role and attaches it to `ifname` with a BPF link.
    ///
    /// Fails (naming the interface and the failing step) if the interface does not exist, the
    /// verifier rejects the program, the mode is not supported (e.g. native mode on a veth whose
    /// peer MTU is too large: ERANGE) or another XDP program is already attached (EBUSY/EEXIST).
    pub fn attach(ifname: &str, role: XdpRole, mode: AttachMode) -> io::Result<XdpProgram> {
        let loaded = Loaded::new(&format!("interface {ifname}"), role)?;
        Self::attach_preloaded(ifname, Preloaded(Box::new(loaded)), mode).map_err(|(e, _)| e)
    }

    /// Loads the program with `role` set (the verifier's part of attaching), to attach later:
    /// a spare kept ready so that attaching to a new interface costs only the link.
    pub fn preload(role: XdpRole) -> io::Result<Preloaded> {
        Loaded::new("the embedded program", role).map(|l| Preloaded(Box::new(l)))
    }

    /// `attach` with a program loaded beforehand; on failure the program is given back (to
    /// try another mode with it).
    pub fn attach_preloaded(
        ifname: &str,
        pre: Preloaded,
        mode: AttachMode,
    ) -> Result<XdpProgram, (io::Error, Preloaded)> {
        let what = format!("interface {ifname}");
        let ifindex = match ifindex_of(ifname) {
            Ok(i) => i,
            Err(e) => return Err((context(&what, "looking up the ifindex", e), pre)),
        };
        let link = match link_xdp(pre.0.prog.as_fd(), ifindex, mode) {
            Ok(link) => link,
            Err(e) => return Err((attach_failure(ifname, mode, e), pre)),
        };
        Ok(XdpProgram {
            ifname: ifname.to_string(),
            ifindex,
            link: Some(link),
            loaded: *pre.0,
            set_since_adopted: None,
        })
    }

    /// The fds a restart takes over (systemd's fd store): the link, which keeps the program
    /// attached while any copy of it is open, then the program and its maps, in the order
    /// [`XdpProgram::adopt`] takes them.
    pub fn keepable(&self) -> Vec<BorrowedFd<'_>> {
        let l = &self.loaded;
        let mut fds = Vec::with_capacity(6);
        fds.extend(self.link.as_ref().map(|f| f.as_fd()));
        fds.push(l.prog.as_fd());
        fds.extend([&l.xsks, &l.prefixes_v4, &l.prefixes_v6, &l.settings].map(|m| m.as_fd()));
        fds
    }

    /// The program a previous run attached to `ifname` (its [`keepable`](Self::keepable)
    /// fds, from the fd store), still attached: nothing is detached or reloaded, so frames
    /// keep flowing to the sockets it steers to. Refused if the link no longer holds
    /// `ifname` (the interface was deleted and made again meanwhile).
    pub fn adopt(ifname: &str, fds: Vec<OwnedFd>) -> io::Result<XdpProgram> {
        let what = format!("interface {ifname}");
        let ifindex =
            ifindex_of(ifname).map_err(|e| context(&what, "looking up the ifindex", e))?;
        let [link, prog, xsks, v4, v6, settings]: [OwnedFd; 6] =
            fds.try_into().map_err(|v: Vec<OwnedFd>| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what}: {} kept fds, not 6", v.len()),
                )
            })?;
        let attached_to = xdp_link_ifindex(link.as_fd())
            .map_err(|e| context(&what, "reading the kept link", e))?;
        if attached_to != ifindex {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{what}: the kept link is attached to ifindex {attached_to}, not {ifindex}"
                ),
            ));
        }
        let map = |fd: OwnedFd, name: &str| {
            adopt_map(fd).map_err(|e| context(&what, &format!("taking over map {name:?}"), e))
        };
        let loaded = Loaded {
            prog,
            xsks: map(xsks, MAP_XSKS)?,
            prefixes_v4: map(v4, MAP_PREFIXES_V4)?,
            prefixes_v6: map(v6, MAP_PREFIXES_V6)?,
            settings: map(settings, MAP_SETTINGS)?,
        };
        let prog = XdpProgram {
            ifname: ifname.to_string(),
            ifindex,
            link: Some(link),
            loaded,
            set_since_adopted: Some(Default::default()),
        };
        // What the last run switched on is switched on again by this one when it knows
        // it: a pod's answers come to us until its MAC is learnt again, NAT's returns
        // once the pools ask for NAT.
        prog.answers_to_kernel(false)?;
        prog.nat_ports(None)?;
        Ok(prog)
    }

    /// Loads the embedded object into the kernel (the verifier included) with `role` set, without
    /// attaching it anywhere, then frees it. A self-test for start-up diagnostics and tests.
    pub fn check_load(role: XdpRole) -> io::Result<()> {
        Loaded::new("the embedded object", role).map(drop)
    }

    /// The trie holding `prefix`'s family.
    fn trie(&self, prefix: IpNet) -> &MapHandle {
        match prefix {
            IpNet::V4(_) => &self.loaded.prefixes_v4,
            IpNet::V6(_) => &self.loaded.prefixes_v6,
        }
    }

    /// Adds (or reclassifies) a destination prefix. Host bits are ignored.
    pub fn add_prefix(&self, prefix: IpNet, class: PrefixClass) -> io::Result<()> {
        let value = class.code().to_ne_bytes();
        self.trie(prefix)
            .update(lpm_key(prefix).as_bytes(), &value, MapFlags::ANY)
            .map_err(|e| {
                self.context(
                    &format!("adding prefix {prefix} as {class:?}"),
                    bpf_error(e),
                )
            })
            .inspect(|_| self.note_set(prefix, true))
    }

    fn note_set(&self, prefix: IpNet, set: bool) {
        if let Some(s) = &self.set_since_adopted {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            if set {
                s.insert(prefix.trunc());
            } else {
                s.remove(&prefix.trunc());
            }
        }
    }

    /// Every prefix in the program's maps (both families).
    pub fn prefixes(&self) -> io::Result<Vec<IpNet>> {
        let tries = [&self.loaded.prefixes_v4, &self.loaded.prefixes_v6];
        Ok(tries
            .into_iter()
            .flat_map(|t| t.keys())
            .filter_map(|k| prefix_of(&k))
            .collect())
    }

    /// On a program taken over from the last run: remove every prefix this run has not
    /// set since (a pool or an endpoint gone while no process ran). Call once the start
    /// has installed everything; returns the prefixes removed.
    pub fn sweep_stale(&self) -> io::Result<Vec<IpNet>> {
        let Some(set) = &self.set_since_adopted else {
            return Ok(Vec::new());
        };
        let set = set.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let stale: Vec<IpNet> = self
            .prefixes()?
            .into_iter()
            .filter(|p| !set.contains(p))
            .collect();
        for p in &stale {
            self.remove_prefix(*p)?;
        }
        Ok(stale)
    }

    /// Removes a destination prefix (`NotFound` if it is not there). Host bits are ignored.
    pub fn remove_prefix(&self, prefix: IpNet) -> io::Result<()> {
        self.trie(prefix)
            .delete(lpm_key(prefix).as_bytes())
            .map_err(|e| self.context(&format!("removing prefix {prefix}"), bpf_error(e)))
            .inspect(|_| self.note_set(prefix, false))
    }

    /// On an endpoint: the pod's ARP replies and IPv6 neighbour advertisements go to the kernel
    /// (`true`; the vRouter knows the pod's MAC and asks no more: they answer the kernel's own
    /// requests, for its routes to the pod) or to the vRouter (`false`, as attached).
    pub fn answers_to_kernel(&self, on: bool) -> io::Result<()> {
        self.loaded
            .set(SETTING_ANSWERS_TO_KERNEL, u32::from(on))
            .map_err(|e| self.context(&format!("setting answers to the kernel to {on}"), e))
    }

    /// On an uplink: steer what returns to NAT outgoing's `ports` on a LOCAL address (replies,
    /// echo replies, ICMP errors about what we sent) to the vRouter; None: no NAT.
    pub fn nat_ports(&self, ports: Option<std::ops::RangeInclusive<u16>>) -> io::Result<()> {
        let (low, high) = ports.map_or((0, 0), |r| (u32::from(*r.start()), u32::from(*r.end())));
        // High first: with the low bound 0 (off) the program looks at nothing else.
        for (key, value) in [(SETTING_NAT_HIGH, high), (SETTING_NAT_LOW, low)] {
            self.loaded
                .set(key, value)
                .map_err(|e| self.context("setting the NAT ports", e))?;
        }
        Ok(())
    }

    /// Steers frames received on rx `queue` (below [`MAX_QUEUES`]) to the AF_XDP socket `xsk_fd`.
    /// The kernel rejects an fd that is not an AF_XDP socket bound to this interface and queue.
    pub fn register_socket(&self, queue: u32, xsk_fd: RawFd) -> io::Result<()> {
        let step = format!("registering AF_XDP socket fd {xsk_fd} for queue {queue}");
        if queue >= MAX_QUEUES {
            return Err(self.context(&step, queue_out_of_range(queue)));
        }
        let Ok(value) = u32::try_from(xsk_fd) else {
            let err = io::Error::new(io::ErrorKind::InvalidInput, "negative fd");
            return Err(self.context(&step, err));
        };
        self.loaded
            .xsks
            .update(&queue.to_ne_bytes(), &value.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| self.context(&step, bpf_error(e)))
    }

    /// Stops steering frames of rx `queue` to a socket (they go to the kernel again). Succeeds if
    /// no socket was registered.
    pub fn unregister_socket(&self, queue: u32) -> io::Result<()> {
        let step = format!("unregistering the AF_XDP socket of queue {queue}");
        if queue >= MAX_QUEUES {
            return Err(self.context(&step, queue_out_of_range(queue)));
        }
        match self.loaded.xsks.delete(&queue.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.context(&step, bpf_error(e))),
        }
    }

    /// The ifindex of the interface the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The name of the interface the program is attached to (as given to [`XdpProgram::attach`]).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    fn context(&self, step: &str, err: io::Error) -> io::Error {
        context(&format!("interface {}", self.ifname), step, err)
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Close the link first: that detaches the program from the interface. The program and
        // map fds close afterwards, when the fields drop.
        drop(self.link.take());
    }
}

/// A program loaded (verified) and not attached yet: see [`XdpProgram::preload`].
/// Boxed: `attach_preloaded` gives it back in its `Err`, which stays small.
pub struct Preloaded(Box<Loaded>);

impl std::fmt::Debug for Preloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preloaded")
            .field("prog_fd", &self.0.prog.as_raw_fd())
            .finish()
    }
}

/// A loaded (not attached) program and its maps, held by fds: the kernel keeps each alive as
/// long as one of its fds is open.
struct Loaded {
    prog: OwnedFd,
    xsks: MapHandle,
    prefixes_v4: MapHandle,
    prefixes_v6: MapHandle,
    settings: MapHandle,
}

impl Loaded {
    /// Opens the embedded object, loads it into the kernel, keeps fds of its program and maps
    /// (closing the object) and writes `role` into `settings`. `what` names the target in
    /// error messages.
    fn new(what: &str, role: XdpRole) -> io::Result<Loaded> {
        init_libbpf_logging();
        let open = ObjectBuilder::default()
            .name(OBJECT_NAME)
            .and_then(|b| b.open_memory(&OBJECT.0))
            .map_err(|e| context(what, "opening the embedded BPF object", bpf_error(e)))?;
        let (object, warnings) = with_libbpf_warnings(|| open.load());
        let object = object.map_err(|e| {
            let text = verifier_log_tail(&warnings);
            let step = if text.is_empty() {
                "loading the program into the kernel".to_string()
            } else {
                format!("loading the program into the kernel (verifier log tail: {text})")
            };
            context(what, &step, bpf_error(e))
        })?;

        let prog = object
            .progs()
            .find(|p| p.name() == PROGRAM_NAME)
            .ok_or_else(|| not_in_object("program", PROGRAM_NAME))
            .and_then(|p| p.as_fd().try_clone_to_owned())
            .map_err(|e| context(what, "finding the program", e))?;
        let map = |name: &str| {
            object
                .maps()
                .find(|m| m.name() == name)
                .ok_or_else(|| not_in_object("map", name))
                .and_then(|m| MapHandle::try_from(&m).map_err(bpf_error))
                .map_err(|e| context(what, &format!("finding map {name:?}"), e))
        };
        let loaded = Loaded {
            prog,
            xsks: map(MAP_XSKS)?,
            prefixes_v4: map(MAP_PREFIXES_V4)?,
            prefixes_v6: map(MAP_PREFIXES_V6)?,
            settings: map(MAP_SETTINGS)?,
        };
        loaded
            .set(SETTING_ROLE, role.code())
            .map_err(|e| context(what, &format!("setting the role {role:?}"), e))?;
        Ok(loaded)
    }

    /// `settings[key] = value` (an ARRAY of `__u32`).
    fn set(&self, key: u32, value: u32) -> io::Result<()> {
        self.settings
            .update(&key.to_ne_bytes(), &value.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_error)
    }
}

fn not_in_object(kind: &str, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no {kind} {name:?} in the object"),
    )
}

/// A map a previous run created, from its kept fd: libbpf-rs makes handles from map ids,
/// so the kept fd only names the map and is closed once the handle holds its own.
fn adopt_map(fd: OwnedFd) -> io::Result<MapHandle> {
    let id = MapInfo::new(fd.as_fd()).map_err(bpf_error)?.info.id;
    MapHandle::from_map_id(id).map_err(bpf_error)
}

/// The interface an XDP BPF link is attached to, from the kernel's description of the fd
/// (`/proc/self/fdinfo`: `link_type: xdp`, `ifindex: N`).
fn xdp_link_ifindex(link: BorrowedFd<'_>) -> io::Result<u32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", link.as_raw_fd()))?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    match field("link_type") {
        Some("xdp") => {}
        other => {
            return Err(invalid(format!(
                "not an XDP BPF link (link_type {other:?})"
            )))
        }
    }
    let ifindex = field("ifindex").ok_or_else(|| invalid("no ifindex in its fdinfo".into()))?;
    ifindex
        .parse()
        .map_err(|e| invalid(format!("ifindex {ifindex:?}: {e}")))
}

/// A BPF link attaching `prog` to `ifindex` in `mode`. libbpf-rs's `Program::attach_xdp` makes
/// a link without mode flags (the kernel then picks native mode whenever the driver has it), so
/// this calls `bpf_link_create` itself.
fn link_xdp(prog: BorrowedFd<'_>, ifindex: u32, mode: AttachMode) -> io::Result<OwnedFd> {
    let target = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    let opts = sys::bpf_link_create_opts {
        sz: std::mem::size_of::<sys::bpf_link_create_opts>() as sys::size_t,
        flags: mode.flags(),
        ..Default::default()
    };
    // SAFETY: `prog` is an open fd (of a loaded XDP program) for the call; `opts` is a fully
    // initialised `bpf_link_create_opts` whose `sz` is its size, alive for the call.
    let ret = unsafe { sys::bpf_link_create(prog.as_raw_fd(), target, sys::BPF_XDP, &opts) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    // SAFETY: `bpf_link_create` succeeded and returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// A libbpf-rs error as an `io::Error` of the same kind (`NotFound`, `AlreadyExists`, ...),
/// its message the whole chain.
fn bpf_error(e: libbpf_rs::Error) -> io::Error {
    use libbpf_rs::ErrorKind as K;
    let kind = match e.kind() {
        K::NotFound => io::ErrorKind::NotFound,
        K::PermissionDenied => io::ErrorKind::PermissionDenied,
        K::AlreadyExists => io::ErrorKind::AlreadyExists,
        K::WouldBlock => io::ErrorKind::WouldBlock,
        K::InvalidInput => io::ErrorKind::InvalidInput,
        K::InvalidData => io::ErrorKind::InvalidData,
        K::TimedOut => io::ErrorKind::TimedOut,
        K::Interrupted => io::ErrorKind::Interrupted,
        K::Unsupported => io::ErrorKind::Unsupported,
        K::OutOfMemory => io::ErrorKind::OutOfMemory,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{e:#}"))
}

/// Why attaching to `ifname` failed, sorted for the caller: another program already
/// attached (EEXIST, EBUSY) is `AlreadyExists`, said plainly, and no other mode will do
/// better; the driver refusing the mode (EOPNOTSUPP, EINVAL, ERANGE: e.g. native mode
/// on a veth whose peer's MTU is too large) is `Unsupported`, where generic mode may
/// still work; anything else keeps its kind.
fn attach_failure(ifname: &str, mode: AttachMode, e: io::Error) -> io::Error {
    let what = format!("interface {ifname}");
    let step = match mode {
        AttachMode::Native => "attaching (BPF link, native/driver mode)",
        AttachMode::Generic => "attaching (BPF link, generic/skb mode)",
    };
    let kind = match e.raw_os_error() {
        Some(libc::EEXIST | libc::EBUSY) => {
            return io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "XDP on {what}: {ifname} already has an XDP program attached \
                     (another vrouterd running?): {e}"
                ),
            );
        }
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ERANGE) => io::ErrorKind::Unsupported,
        _ => e.kind(),
    };
    io::Error::new(kind, format!("XDP on {what}: {step}: {e}"))
}

fn context(what: &str, step: &str, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("XDP on {what}: {step}: {err}"))
}

fn queue_out_of_range(queue: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("queue {queue} out of range (the XSKMAP has {MAX_QUEUES} entries)"),
    )
}

pub(crate) fn ifindex_of(ifname: &str) -> io::Result<u32> {
    let name = CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// libbpf prints a rejected program's verifier log between these lines (a warning, when no
/// log buffer of ours is given: it then retries the load with one of its own).
const LOG_BEGIN: &str = "-- BEGIN PROG LOAD LOG --";
const LOG_END: &str = "-- END PROG LOAD LOG --";

/// The last [`VERIFIER_LOG_TAIL`] bytes of the verifier log in libbpf's `warnings` (of all
/// of them if no log is there), on one line.
fn verifier_log_tail(warnings: &str) -> String {
    let log = match warnings.split_once(LOG_BEGIN) {
        Some((_, rest)) => rest.split_once(LOG_END).map_or(rest, |(log, _)| log),
        None => warnings,
    };
    let bytes = log.trim().as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(VERIFIER_LOG_TAIL)..];
    String::from_utf8_lossy(tail).trim().replace('\n', " | ")
}

thread_local! {
    /// libbpf's warnings on this thread while [`with_libbpf_warnings`] runs.
    static WARNINGS: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Whether libbpf's output goes to stderr (`VROUTER_LIBBPF_DEBUG`).
static LIBBPF_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Runs `f`, returning what it returns and the warnings libbpf printed on this thread meanwhile
/// (libbpf prints from the calling thread).
fn with_libbpf_warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    WARNINGS.with_borrow_mut(|w| *w = Some(String::new()));
    let out = f();
    let warnings = WARNINGS.with_borrow_mut(Option::take).unwrap_or_default();
    (out, warnings)
}

fn on_libbpf_print(level: PrintLevel, msg: String) {
    if level == PrintLevel::Warn {
        WARNINGS.with_borrow_mut(|w| w.as_mut().map(|w| w.push_str(&msg)));
    }
    if LIBBPF_TO_STDERR.load(Ordering::Relaxed) {
        eprint!("{msg}");
    }
}

/// Routes libbpf's output (a process-wide setting) to [`on_libbpf_print`]: warnings only, kept
/// for error messages, unless `VROUTER_LIBBPF_DEBUG` is set (then all of it, to stderr too).
fn init_libbpf_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let debug = std::env::var_os("VROUTER_LIBBPF_DEBUG").is_some();
        LIBBPF_TO_STDERR.store(debug, Ordering::Relaxed);
        let level = if debug {
            PrintLevel::Debug
        } else {
            PrintLevel::Warn
        };
        libbpf_rs::set_print(Some((level, on_libbpf_print)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpm_keys_match_the_c_layout_and_read_back() {
        let v4: IpNet = "10.244.1.7/24".parse().unwrap();
        let key = lpm_key(v4);
        let key = key.as_bytes();
        assert_eq!(key.len(), 8, "struct lpm_v4_key is 8 bytes");
        assert_eq!(key[..4], 24u32.to_ne_bytes());
        assert_eq!(key[4..], [10, 244, 1, 0], "host bits cleared");
        assert_eq!(prefix_of(key), Some("10.244.1.0/24".parse().unwrap()));
        let v6: IpNet = "fd00:10:244::1/56".parse().unwrap();
        let key = lpm_key(v6);
        let key = key.as_bytes();
        assert_eq!(key.len(), 20, "struct lpm_v6_key is 20 bytes");
        assert_eq!(prefix_of(key), Some("fd00:10:244::/56".parse().unwrap()));
        assert_eq!(prefix_of(&key[..7]), None);
    }

    #[test]
    fn the_verifier_log_tail_is_cut_from_libbpfs_warnings() {
        let warnings = "libbpf: prog 'vrouter_xdp': BPF program load failed: Permission denied\n\
             libbpf: prog 'vrouter_xdp': -- BEGIN PROG LOAD LOG --\n\
             0: R1=ctx() R10=fp0\n\
             1: invalid access to packet\n\
             -- END PROG LOAD LOG --\n\
             libbpf: failed to load object 'vrouter_xdp'\n";
        assert_eq!(
            verifier_log_tail(warnings),
            "0: R1=ctx() R10=fp0 | 1: invalid access to packet"
        );
        let long = format!("{LOG_BEGIN}\n{}\nlast line\n{LOG_END}\n", "x".repeat(5000));
        let tail = verifier_log_tail(&long);
        // The last 2,048 bytes, their one newline shown as " | ".
        assert_eq!(tail.len(), VERIFIER_LOG_TAIL + 2);
        assert!(
            tail.starts_with('x') && tail.ends_with("x | last line"),
            "{tail}"
        );
        assert_eq!(verifier_log_tail("libbpf: no log\n"), "libbpf: no log");
    }

    /// libbpf's print goes through libbpf-rs to the capture, on the thread that called it.
    #[test]
    fn libbpf_warnings_are_captured_on_the_calling_thread() {
        init_libbpf_logging();
        let (opened, warnings) =
            with_libbpf_warnings(|| ObjectBuilder::default().open_memory(b"not an ELF object"));
        assert!(opened.is_err(), "garbage opened as a BPF object");
        assert!(
            warnings.contains("libbpf: "),
            "no warning captured: {warnings:?}"
        );
        let (_, none) = with_libbpf_warnings(|| ());
        assert_eq!(none, "");
    }

    #[test]
    fn attach_failures_are_sorted_for_the_fallback() {
        let busy = attach_failure(
            "eth0",
            AttachMode::Native,
            io::Error::from_raw_os_error(libc::EEXIST),
        );
        assert_eq!(busy.kind(), io::ErrorKind::AlreadyExists);
        let text = busy.to_string();
        assert!(
            text.contains("eth0 already has an XDP program attached (another vrouterd running?)")
                && text.contains("File exists"),
            "{text}"
        );
        let ebusy = attach_failure(
            "eth0",
            AttachMode::Generic,
            io::Error::from_raw_os_error(libc::EBUSY),
        );
        assert_eq!(ebusy.kind(), io::ErrorKind::AlreadyExists);
        for errno in [libc::EOPNOTSUPP, libc::EINVAL, libc::ERANGE] {
            let e = attach_failure(
                "veth1",
                AttachMode::Native,
                io::Error::from_raw_os_error(errno),
            );
            assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{errno}: {e}");
            assert!(e.to_string().contains("native/driver mode"), "{e}");
        }
        let perm = attach_failure(
            "eth0",
            AttachMode::Native,
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert_eq!(perm.kind(), io::ErrorKind::PermissionDenied);
    }
}
