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
//! libbpf's own logging is silenced unless `VROUTER_LIBBPF_DEBUG` is set (then all of it, debug
//! level included, goes to stderr). A verifier rejection is reported in the returned error with the
//! tail of the verifier log.

// Every function here calls libbpf or the bpf() syscall through FFI: the kernel demands
// it. Each block says why its pointers and fds are valid.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::Once;

use ipnet::IpNet;
use libbpf_sys as sys;

/// The compiled object, 8-byte aligned for libelf's in-memory parsing.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/vrouter_xdp.o")));

const OBJECT_NAME: &CStr = c"vrouter_xdp";
const PROGRAM_NAME: &CStr = c"vrouter_xdp";
const MAP_XSKS: &CStr = c"xsks";
const MAP_PREFIXES_V4: &CStr = c"prefixes_v4";
const MAP_PREFIXES_V6: &CStr = c"prefixes_v6";
const MAP_SETTINGS: &CStr = c"settings";

/// Entries of the `xsks` XSKMAP (valid queue indices are below this).
pub const MAX_QUEUES: u32 = 64;

/// Size of the buffer receiving the verifier log when loading fails.
const VERIFIER_LOG_SIZE: usize = 256 * 1024;
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

/// Key of `prefixes_v4` (`struct lpm_v4_key`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct LpmKeyV4 {
    prefixlen: u32,
    addr: [u8; 4],
}

/// Key of `prefixes_v6` (`struct lpm_v6_key`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct LpmKeyV6 {
    prefixlen: u32,
    addr: [u8; 16],
}

/// Our XDP program, loaded and attached to one interface through a BPF link.
///
/// Dropping it closes the link fd, which detaches the program, then frees the object (program and
/// maps).
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
        Self::attach_preloaded(ifname, Preloaded(loaded), mode).map_err(|(e, _)| e)
    }

    /// Loads the program with `role` set (the verifier's part of attaching), to attach later:
    /// a spare kept ready so that attaching to a new interface costs only the link.
    pub fn preload(role: XdpRole) -> io::Result<Preloaded> {
        Loaded::new("the embedded program", role).map(Preloaded)
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
        let loaded = pre.0;

        let opts = sys::bpf_link_create_opts {
            sz: size_of::<sys::bpf_link_create_opts>() as sys::size_t,
            flags: mode.flags(),
            ..Default::default()
        };
        let Ok(target) = c_int::try_from(ifindex) else {
            let err = io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range");
            return Err((context(&what, "attaching", err), Preloaded(loaded)));
        };
        // SAFETY: `prog_fd` is a loaded XDP program owned by `loaded`; `opts` is a fully
        // initialised `bpf_link_create_opts` whose `sz` is its size, alive for the call.
        let ret = unsafe { sys::bpf_link_create(loaded.prog_fd, target, sys::BPF_XDP, &opts) };
        let link_fd = match check(ret) {
            Ok(fd) => fd,
            Err(e) => return Err((attach_failure(ifname, mode, e), Preloaded(loaded))),
        };
        // SAFETY: `bpf_link_create` succeeded and returned a new fd that nothing else owns.
        let link = unsafe { OwnedFd::from_raw_fd(link_fd) };

        Ok(XdpProgram {
            ifname: ifname.to_string(),
            ifindex,
            link: Some(link),
            loaded,
            set_since_adopted: None,
        })
    }

    /// The fds a restart takes over (systemd's fd store): the link, which keeps the program
    /// attached while any copy of it is open, then the program and its maps, in the order
    /// [`XdpProgram::adopt`] takes them.
    pub fn keepable(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        let l = &self.loaded;
        let mut fds = Vec::with_capacity(6);
        fds.extend(self.link.as_ref().map(|f| f.as_fd()));
        for fd in [l.prog_fd, l.xsks, l.prefixes_v4, l.prefixes_v6, l.settings] {
            // SAFETY: these fds belong to `self.loaded`, alive as long as the borrow of `self`.
            fds.push(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
        }
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
        // SAFETY: `info` is a zeroed `bpf_link_info` of the size passed; the kernel fills it.
        let mut info: sys::bpf_link_info = unsafe { std::mem::zeroed() };
        let mut len = size_of::<sys::bpf_link_info>() as u32;
        // SAFETY: `link` is an open fd; `info` and `len` are valid for the call.
        check(unsafe { sys::bpf_link_get_info_by_fd(link.as_raw_fd(), &mut info, &mut len) })
            .map_err(|e| context(&what, "reading the kept link", e))?;
        // SAFETY: the `xdp` member is the one an XDP link fills (checked by its type).
        let attached_to = unsafe { info.__bindgen_anon_1.xdp.ifindex };
        if info.type_ != sys::BPF_LINK_TYPE_XDP || attached_to != ifindex {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{what}: the kept link is attached to ifindex {attached_to}, not {ifindex}"
                ),
            ));
        }
        let loaded = Loaded {
            _object: None,
            prog_fd: prog.as_raw_fd(),
            xsks: xsks.as_raw_fd(),
            prefixes_v4: v4.as_raw_fd(),
            prefixes_v6: v6.as_raw_fd(),
            settings: settings.as_raw_fd(),
            _adopted: vec![prog, xsks, v4, v6, settings],
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

    /// Adds (or reclassifies) a destination prefix. Host bits are ignored.
    pub fn add_prefix(&self, prefix: IpNet, class: PrefixClass) -> io::Result<()> {
        let value = class.code();
        let ret = match prefix.trunc() {
            IpNet::V4(net) => {
                let key = LpmKeyV4 {
                    prefixlen: net.prefix_len().into(),
                    addr: net.addr().octets(),
                };
                // SAFETY: `prefixes_v4` has key `struct lpm_v4_key` (same layout as `LpmKeyV4`)
                // and value `__u32`; both pointers are valid for the call.
                unsafe { update_elem(self.loaded.prefixes_v4, &key, &value) }
            }
            IpNet::V6(net) => {
                let key = LpmKeyV6 {
                    prefixlen: net.prefix_len().into(),
                    addr: net.addr().octets(),
                };
                // SAFETY: `prefixes_v6` has key `struct lpm_v6_key` (same layout as `LpmKeyV6`)
                // and value `__u32`; both pointers are valid for the call.
                unsafe { update_elem(self.loaded.prefixes_v6, &key, &value) }
            }
        };
        check(ret)
            .map(drop)
            .map_err(|e| self.context(&format!("adding prefix {prefix} as {class:?}"), e))
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
        let step = "listing the prefixes";
        // SAFETY: `prefixes_v4` has key `struct lpm_v4_key`, laid out as `LpmKeyV4`.
        let v4 = unsafe { all_keys::<LpmKeyV4>(self.loaded.prefixes_v4) }
            .map_err(|e| self.context(step, e))?;
        // SAFETY: `prefixes_v6` has key `struct lpm_v6_key`, laid out as `LpmKeyV6`.
        let v6 = unsafe { all_keys::<LpmKeyV6>(self.loaded.prefixes_v6) }
            .map_err(|e| self.context(step, e))?;
        let v4 = v4
            .iter()
            .map(|k| IpNet::new(std::net::Ipv4Addr::from(k.addr).into(), k.prefixlen as u8));
        let v6 = v6
            .iter()
            .map(|k| IpNet::new(std::net::Ipv6Addr::from(k.addr).into(), k.prefixlen as u8));
        Ok(v4.chain(v6).filter_map(Result::ok).collect())
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
        let ret = match prefix.trunc() {
            IpNet::V4(net) => {
                let key = LpmKeyV4 {
                    prefixlen: net.prefix_len().into(),
                    addr: net.addr().octets(),
                };
                // SAFETY: `prefixes_v4` has key `struct lpm_v4_key`, laid out as `LpmKeyV4`.
                unsafe { delete_elem(self.loaded.prefixes_v4, &key) }
            }
            IpNet::V6(net) => {
                let key = LpmKeyV6 {
                    prefixlen: net.prefix_len().into(),
                    addr: net.addr().octets(),
                };
                // SAFETY: `prefixes_v6` has key `struct lpm_v6_key`, laid out as `LpmKeyV6`.
                unsafe { delete_elem(self.loaded.prefixes_v6, &key) }
            }
        };
        check(ret)
            .map(drop)
            .map_err(|e| self.context(&format!("removing prefix {prefix}"), e))
            .inspect(|_| self.note_set(prefix, false))
    }

    /// On an endpoint: the pod's ARP replies and IPv6 neighbour advertisements go to the kernel
    /// (`true`; the vRouter knows the pod's MAC and asks no more: they answer the kernel's own
    /// requests, for its routes to the pod) or to the vRouter (`false`, as attached).
    pub fn answers_to_kernel(&self, on: bool) -> io::Result<()> {
        let value = u32::from(on);
        // SAFETY: `settings` is an ARRAY with `__u32` keys and values; pointers valid for the call.
        let ret = unsafe { update_elem(self.loaded.settings, &SETTING_ANSWERS_TO_KERNEL, &value) };
        check(ret)
            .map(drop)
            .map_err(|e| self.context(&format!("setting answers to the kernel to {on}"), e))
    }

    /// On an uplink: steer what returns to NAT outgoing's `ports` on a LOCAL address (replies,
    /// echo replies, ICMP errors about what we sent) to the vRouter; None: no NAT.
    pub fn nat_ports(&self, ports: Option<std::ops::RangeInclusive<u16>>) -> io::Result<()> {
        let (low, high) = ports.map_or((0, 0), |r| (u32::from(*r.start()), u32::from(*r.end())));
        // High first: with the low bound 0 (off) the program looks at nothing else.
        for (key, value) in [(SETTING_NAT_HIGH, high), (SETTING_NAT_LOW, low)] {
            // SAFETY: `settings` is an ARRAY with `__u32` keys and values; pointers valid for the call.
            let ret = unsafe { update_elem(self.loaded.settings, &key, &value) };
            check(ret).map_err(|e| self.context("setting the NAT ports", e))?;
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
        // SAFETY: `xsks` has 4-byte keys (queue index) and 4-byte values (socket fd); both
        // pointers are valid for the call. The kernel validates the fd.
        let ret = unsafe { update_elem(self.loaded.xsks, &queue, &value) };
        check(ret).map(drop).map_err(|e| self.context(&step, e))
    }

    /// Stops steering frames of rx `queue` to a socket (they go to the kernel again). Succeeds if
    /// no socket was registered.
    pub fn unregister_socket(&self, queue: u32) -> io::Result<()> {
        let step = format!("unregistering the AF_XDP socket of queue {queue}");
        if queue >= MAX_QUEUES {
            return Err(self.context(&step, queue_out_of_range(queue)));
        }
        // SAFETY: `xsks` has 4-byte keys; the pointer is valid for the call.
        let ret = unsafe { delete_elem(self.loaded.xsks, &queue) };
        match check(ret) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.context(&step, e)),
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
        // Close the link first: that detaches the program from the interface. `loaded` (the
        // object, its program and maps) is freed afterwards, when the fields drop.
        drop(self.link.take());
    }
}

/// A program loaded (verified) and not attached yet: see [`XdpProgram::preload`].
pub struct Preloaded(Loaded);

impl std::fmt::Debug for Preloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preloaded")
            .field("prog_fd", &self.0.prog_fd)
            .finish()
    }
}

/// A loaded (not attached) object with the fds of its program and maps, which stay valid as long
/// as the object is open.
struct Loaded {
    /// Held for its `Drop`: the fds below belong to it (or, for a program a previous run
    /// attached, to `_adopted`).
    _object: Option<Object>,
    _adopted: Vec<OwnedFd>,
    prog_fd: RawFd,
    xsks: RawFd,
    prefixes_v4: RawFd,
    prefixes_v6: RawFd,
    settings: RawFd,
}

impl Loaded {
    /// Opens the embedded object, loads it into the kernel and writes `role` into `settings`.
    /// `what` names the target in error messages.
    fn new(what: &str, role: XdpRole) -> io::Result<Loaded> {
        init_libbpf_logging();

        let mut log = vec![0u8; VERIFIER_LOG_SIZE];
        let opts = sys::bpf_object_open_opts {
            sz: size_of::<sys::bpf_object_open_opts>() as sys::size_t,
            object_name: OBJECT_NAME.as_ptr(),
            kernel_log_buf: log.as_mut_ptr().cast::<c_char>(),
            kernel_log_size: log.len() as sys::size_t,
            ..Default::default()
        };
        // SAFETY: `OBJECT` is a static, so it outlives the object that references it; `opts` is a
        // fully initialised `bpf_object_open_opts` with its size in `sz`. libbpf copies
        // `object_name`. It keeps `kernel_log_buf` but only uses it inside `bpf_object__load`
        // (below), while `log` is alive.
        let ptr = unsafe {
            sys::bpf_object__open_mem(
                OBJECT.0.as_ptr().cast::<c_void>(),
                OBJECT.0.len() as sys::size_t,
                &opts,
            )
        };
        let object = match NonNull::new(ptr) {
            Some(ptr) => Object(ptr),
            None => {
                let err = io::Error::last_os_error();
                return Err(context(what, "opening the embedded BPF object", err));
            }
        };

        // SAFETY: `object` is an open, not yet loaded object; `log` (its kernel log buffer) is
        // alive for the whole call.
        let ret = unsafe { sys::bpf_object__load(object.0.as_ptr()) };
        if let Err(err) = check(ret) {
            let text = verifier_log_tail(&log);
            let step = if text.is_empty() {
                "loading the program into the kernel".to_string()
            } else {
                format!("loading the program into the kernel (verifier log tail: {text})")
            };
            return Err(context(what, &step, err));
        }
        drop(log);

        let prog_fd = object
            .program_fd(PROGRAM_NAME)
            .map_err(|e| context(what, "finding the program", e))?;
        let map_fd = |name: &CStr| {
            object
                .map_fd(name)
                .map_err(|e| context(what, &format!("finding map {name:?}"), e))
        };
        let xsks = map_fd(MAP_XSKS)?;
        let prefixes_v4 = map_fd(MAP_PREFIXES_V4)?;
        let prefixes_v6 = map_fd(MAP_PREFIXES_V6)?;
        let settings = map_fd(MAP_SETTINGS)?;

        let value = role.code();
        // SAFETY: `settings` is an ARRAY with `__u32` keys and values; pointers valid for the call.
        let ret = unsafe { update_elem(settings, &SETTING_ROLE, &value) };
        check(ret).map_err(|e| context(what, &format!("setting the role {role:?}"), e))?;

        Ok(Loaded {
            _object: Some(object),
            _adopted: Vec::new(),
            prog_fd,
            xsks,
            prefixes_v4,
            prefixes_v6,
            settings,
        })
    }
}

/// An open libbpf `bpf_object`, closed (with its program and map fds) on drop.
struct Object(NonNull<sys::bpf_object>);

// SAFETY: libbpf objects have no thread affinity; `Object` is only used through `&mut`/ownership
// (open, load, lookups while constructing `Loaded`, close), never concurrently. After
// construction, `XdpProgram`'s `&self` methods use only the plain map fds, whose bpf(2) syscalls
// are thread-safe, so sharing references across threads is sound as well.
unsafe impl Send for Object {}
// SAFETY: see above: no `&self` method of `Object` is called once it is shared.
unsafe impl Sync for Object {}

impl Object {
    fn program_fd(&self, name: &CStr) -> io::Result<RawFd> {
        // SAFETY: `self.0` is a valid open object; `name` is NUL-terminated.
        let prog = unsafe { sys::bpf_object__find_program_by_name(self.0.as_ptr(), name.as_ptr()) };
        if prog.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no program {name:?} in the object"),
            ));
        }
        // SAFETY: `prog` is a program of the live object `self.0`.
        check(unsafe { sys::bpf_program__fd(prog) })
    }

    fn map_fd(&self, name: &CStr) -> io::Result<RawFd> {
        // SAFETY: `self.0` is a valid open object; `name` is NUL-terminated.
        let map = unsafe { sys::bpf_object__find_map_by_name(self.0.as_ptr(), name.as_ptr()) };
        if map.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no map {name:?} in the object"),
            ));
        }
        // SAFETY: `map` is a map of the live object `self.0`.
        check(unsafe { sys::bpf_map__fd(map) })
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `bpf_object__open_mem` and is closed exactly once, here;
        // nothing uses its program or map fds afterwards (they belong to it).
        unsafe { sys::bpf_object__close(self.0.as_ptr()) }
    }
}

/// `bpf_map_update_elem(fd, key, value, BPF_ANY)`.
///
/// # Safety
/// `K` and `V` must have exactly the layout and size of the map's key and value.
unsafe fn update_elem<K, V>(fd: RawFd, key: &K, value: &V) -> c_int {
    // SAFETY: the caller guarantees the sizes; the references are valid for the call.
    unsafe {
        sys::bpf_map_update_elem(
            fd,
            std::ptr::from_ref(key).cast::<c_void>(),
            std::ptr::from_ref(value).cast::<c_void>(),
            sys::BPF_ANY.into(),
        )
    }
}

/// Every key of map `fd`, in the kernel's order (`bpf_map_get_next_key` from no key
/// until ENOENT).
///
/// # Safety
/// `K` must have exactly the layout and size of the map's key.
unsafe fn all_keys<K: Copy + Default>(fd: RawFd) -> io::Result<Vec<K>> {
    let mut keys: Vec<K> = Vec::new();
    loop {
        let at = keys
            .last()
            .map_or(std::ptr::null(), |k| std::ptr::from_ref(k).cast::<c_void>());
        let mut next = K::default();
        // SAFETY: the caller guarantees the size; the pointers are valid (or null) for
        // the call.
        let ret = unsafe {
            sys::bpf_map_get_next_key(fd, at, std::ptr::from_mut(&mut next).cast::<c_void>())
        };
        match check(ret) {
            Ok(_) => keys.push(next),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(keys),
            Err(e) => return Err(e),
        }
    }
}

/// `bpf_map_delete_elem(fd, key)`.
///
/// # Safety
/// `K` must have exactly the layout and size of the map's key.
unsafe fn delete_elem<K>(fd: RawFd, key: &K) -> c_int {
    // SAFETY: the caller guarantees the size; the reference is valid for the call.
    unsafe { sys::bpf_map_delete_elem(fd, std::ptr::from_ref(key).cast::<c_void>()) }
}

/// libbpf's convention: a negative return is `-errno`.
fn check(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::from_raw_os_error(-ret))
    } else {
        Ok(ret)
    }
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

/// The last [`VERIFIER_LOG_TAIL`] bytes of the NUL-terminated log libbpf wrote, on one line.
fn verifier_log_tail(log: &[u8]) -> String {
    let len = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let start = len.saturating_sub(VERIFIER_LOG_TAIL);
    let text = String::from_utf8_lossy(&log[start..len]);
    text.trim().replace('\n', " | ")
}

/// Silences libbpf (a process-wide setting), or routes all of its output to stderr when
/// `VROUTER_LIBBPF_DEBUG` is set.
fn init_libbpf_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let print: sys::libbpf_print_fn_t = if std::env::var_os("VROUTER_LIBBPF_DEBUG").is_some() {
            Some(libbpf_print_stderr)
        } else {
            None
        };
        // SAFETY: `print` is `None` (no printing) or a function valid for the whole program.
        unsafe { sys::libbpf_set_print(print) };
    });
}

unsafe extern "C" fn libbpf_print_stderr(
    _level: sys::libbpf_print_level,
    format: *const c_char,
    args: *mut sys::__va_list_tag,
) -> c_int {
    // SAFETY: libbpf passes a valid printf format and its matching `va_list`.
    unsafe { sys::vdprintf(libc::STDERR_FILENO, format, args) }
}

#[cfg(test)]
mod tests {
    use super::*;

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
