//! AF_XDP without libxdp: a UMEM in a memfd, the four rings mapped from a socket's fd,
//! sockets created and bound, or adopted from a previous run.
//!
//! Why by hand (docs/decisions.md, "Restart without losing the rings"): a restart keeps
//! the UMEM and the bound sockets in systemd's fd store and maps them again. xsk-rs
//! allocates its UMEM as anonymous memory (nothing another process can map) and only
//! creates sockets; since Linux 6.5 a bound socket's rings can be mapped again
//! (`xsk_mmap` accepts `XSK_BOUND`), which is what adoption needs.
//!
//! The ring protocol is the kernel's (Documentation/networking/af_xdp.rst): free-running
//! u32 producer and consumer indexes in shared memory, the producer published with a
//! release store after its slots are written, the other side's index read with an
//! acquire load only when the cached one says the ring looks full (or empty).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One RX or TX ring entry (`struct xdp_desc`): a frame's address in the UMEM (its
/// data may start past the frame's first byte: the kernel leaves headroom), and a length.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

const _: () = assert!(size_of::<Desc>() == size_of::<libc::xdp_desc>());

fn last_error(step: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{step}: {e}"))
}

fn check(ret: libc::c_int, step: &str) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(last_error(step))
    } else {
        Ok(ret)
    }
}

/// A shared mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, offset: u64, what: &str) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of `fd`; the kernel checks `len` and `offset`
        // against what the fd holds. Nothing aliases it until we hand out pointers.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(last_error(&format!("mapping {what}")));
        }
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).expect("mmap never returns NULL on success"),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; every pointer into it dies with its owner.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The packet memory of one worker: `frames` frames of `frame_size` bytes in a memfd, so
/// that a restarted process can map the very same pages (the kernel keeps them pinned
/// while any socket registered on them lives).
pub struct Umem {
    map: Mapping,
    frame_size: usize,
    memfd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory; which thread touches which frame is
// decided by frame ownership (`AfXdpIo::owner`), never by this type.
unsafe impl Send for Umem {}
// SAFETY: as above; `&Umem` hands out frames only through `unsafe fn data`.
unsafe impl Sync for Umem {}

impl Umem {
    /// New zeroed memory for `frames` frames.
    pub fn create(frames: usize, frame_size: usize) -> io::Result<Umem> {
        let len = frames * frame_size;
        let name = c"vrouter-umem";
        // MFD_NOEXEC_SEAL: packet memory is never executable (and 6.x warns without it).
        const MFD_NOEXEC_SEAL: libc::c_uint = 0x8;
        // SAFETY: a NUL-terminated name; the fd returned is new and ours.
        let mut fd =
            unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | MFD_NOEXEC_SEAL) };
        if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            // SAFETY: as above (a kernel without MFD_NOEXEC_SEAL).
            fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        }
        let fd = check(fd, "memfd_create for the UMEM")?;
        // SAFETY: `fd` was just created and nothing else owns it.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: resizing our own memfd.
        check(
            unsafe { libc::ftruncate(memfd.as_raw_fd(), len as libc::off_t) },
            "sizing the UMEM memfd",
        )?;
        let map = Mapping::new(memfd.as_fd(), len, 0, "the UMEM")?;
        Ok(Umem {
            map,
            frame_size,
            memfd,
        })
    }

    /// The memory of a previous run (its memfd from the fd store), frames as they are.
    pub fn adopt(memfd: OwnedFd, frame_size: usize) -> io::Result<Umem> {
        // SAFETY: fstat of an fd we own into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(
            unsafe { libc::fstat(memfd.as_raw_fd(), &mut st) },
            "fstat of the UMEM memfd",
        )?;
        let len = st.st_size as usize;
        if len == 0 || !len.is_multiple_of(frame_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a UMEM memfd of {len} bytes does not hold {frame_size}-byte frames"),
            ));
        }
        let map = Mapping::new(memfd.as_fd(), len, 0, "the adopted UMEM")?;
        Ok(Umem {
            map,
            frame_size,
            memfd,
        })
    }

    pub fn frames(&self) -> usize {
        self.map.len / self.frame_size
    }

    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    pub fn memfd(&self) -> BorrowedFd<'_> {
        self.memfd.as_fd()
    }

    /// The bytes of the frame holding `addr`, from `addr` to the frame's end.
    ///
    /// # Safety
    /// The frame must be ours (on no ring), and no other slice of it may be live.
    #[inline]
    #[allow(clippy::mut_from_ref)] // frames are handed out by ownership, not by borrow
    pub unsafe fn data(&self, addr: u64) -> &mut [u8] {
        let addr = addr as usize;
        let end = (addr / self.frame_size + 1) * self.frame_size;
        if end > self.map.len {
            return &mut [];
        }
        // SAFETY: `addr..end` lies inside the mapping (checked above); the caller owns it.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr.as_ptr().add(addr), end - addr) }
    }

    /// XDP_UMEM_REG on `fd`: the kernel pins the pages and checks frames by this size.
    fn register(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let reg = libc::xdp_umem_reg {
            addr: self.map.ptr.as_ptr() as u64,
            len: self.map.len as u64,
            chunk_size: self.frame_size as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(fd, libc::XDP_UMEM_REG, &reg, "registering the UMEM")
    }
}

fn setsockopt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, value: &T, step: &str) -> io::Result<()> {
    setsockopt_level(fd, libc::SOL_XDP, opt, value, step)
}

fn setsockopt_level<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    value: &T,
    step: &str,
) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of the size passed; the kernel copies it.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check(ret, step).map(drop)
}

fn getsockopt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, step: &str) -> io::Result<T> {
    // SAFETY: zeroed plain-old-data kernel structs; the kernel writes at most `len` bytes.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = size_of::<T>() as libc::socklen_t;
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    check(ret, step)?;
    Ok(value)
}

/// One ring: `T` is `u64` (fill, completion) or [`Desc`] (RX, TX).
pub struct Ring<T: Copy> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    /// XDP_RING_NEED_WAKEUP is set here when the socket was bound with need_wakeup.
    flags: NonNull<AtomicU32>,
    slots: NonNull<T>,
    mask: u32,
    /// The producer's index as we know it (ours when we produce).
    cached_prod: u32,
    /// The consumer's index (plus the ring size when we produce: the first index that
    /// is not free).
    cached_cons: u32,
    _map: Mapping,
}

// SAFETY: a ring is used by one thread at a time (its worker); the kernel side
// synchronises through the atomics.
unsafe impl<T: Copy> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// Map a ring of `size` entries (a power of two) at `pgoff` of `fd`.
    fn map(
        fd: BorrowedFd<'_>,
        off: &libc::xdp_ring_offset,
        pgoff: u64,
        size: u32,
        producer_side: bool,
        what: &str,
    ) -> io::Result<Ring<T>> {
        let len = off.desc as usize + size as usize * size_of::<T>();
        let map = Mapping::new(fd, len, pgoff, what)?;
        let base = map.ptr.as_ptr();
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS for this very ring, inside `len`,
        // and the kernel aligns them for their types.
        let (producer, consumer, flags, slots) = unsafe {
            (
                NonNull::new_unchecked(base.add(off.producer as usize).cast::<AtomicU32>()),
                NonNull::new_unchecked(base.add(off.consumer as usize).cast::<AtomicU32>()),
                NonNull::new_unchecked(base.add(off.flags as usize).cast::<AtomicU32>()),
                NonNull::new_unchecked(base.add(off.desc as usize).cast::<T>()),
            )
        };
        let mut ring = Ring {
            producer,
            consumer,
            flags,
            slots,
            mask: size - 1,
            cached_prod: 0,
            cached_cons: 0,
            _map: map,
        };
        // From the shared indexes: 0 for a new ring, where the last run left them else.
        ring.cached_prod = ring.producer_index();
        ring.cached_cons = ring.consumer_index() + if producer_side { size } else { 0 };
        Ok(ring)
    }

    pub fn size(&self) -> u32 {
        self.mask + 1
    }

    pub fn producer_index(&self) -> u32 {
        // SAFETY: points into our live mapping.
        unsafe { self.producer.as_ref() }.load(Ordering::Acquire)
    }

    pub fn consumer_index(&self) -> u32 {
        // SAFETY: as above.
        unsafe { self.consumer.as_ref() }.load(Ordering::Acquire)
    }

    /// The kernel asks to be woken (a sendto for TX, a recvfrom or poll for fill). Only
    /// meaningful on a socket bound with XDP_USE_NEED_WAKEUP.
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: points into our live mapping.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// The entry at free-running index `i`.
    pub fn entry(&self, i: u32) -> T {
        // SAFETY: masked into the ring; entries are plain data (a stale one is harmless).
        unsafe {
            self.slots
                .as_ptr()
                .add((i & self.mask) as usize)
                .read_volatile()
        }
    }

    /// Producer side (fill, TX): put as many of `src` as fit, converted by `f`; returns
    /// how many.
    #[inline]
    pub fn produce_with<S>(&mut self, src: &[S], f: impl Fn(&S) -> T) -> usize {
        let mut free = self.cached_cons.wrapping_sub(self.cached_prod);
        if (free as usize) < src.len() {
            self.cached_cons = self.consumer_index().wrapping_add(self.size());
            free = self.cached_cons.wrapping_sub(self.cached_prod);
        }
        let n = src.len().min(free as usize);
        for (k, s) in src[..n].iter().enumerate() {
            let i = self.cached_prod.wrapping_add(k as u32) & self.mask;
            // SAFETY: slot `i` is free (between producer and consumer + size) and ours.
            unsafe { self.slots.as_ptr().add(i as usize).write(f(s)) };
        }
        if n > 0 {
            self.cached_prod = self.cached_prod.wrapping_add(n as u32);
            // Release: the slots are written before the kernel sees the index.
            // SAFETY: points into our live mapping.
            unsafe { self.producer.as_ref() }.store(self.cached_prod, Ordering::Release);
        }
        n
    }

    /// Consumer side (RX, completion): take up to `dst.len()` entries, converted by `f`.
    #[inline]
    pub fn consume_with<D>(&mut self, dst: &mut [D], f: impl Fn(T) -> D) -> usize {
        let mut ready = self.cached_prod.wrapping_sub(self.cached_cons);
        if (ready as usize) < dst.len() {
            self.cached_prod = self.producer_index();
            ready = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        let n = dst.len().min(ready as usize);
        for (k, d) in dst[..n].iter_mut().enumerate() {
            *d = f(self.entry(self.cached_cons.wrapping_add(k as u32)));
        }
        if n > 0 {
            self.cached_cons = self.cached_cons.wrapping_add(n as u32);
            // Release: our reads of the slots happen before the kernel reuses them.
            // SAFETY: points into our live mapping.
            unsafe { self.consumer.as_ref() }.store(self.cached_cons, Ordering::Release);
        }
        n
    }

    /// Entries between the shared consumer and producer indexes right now.
    pub fn outstanding(&self) -> Vec<T> {
        let (c, p) = (self.consumer_index(), self.producer_index());
        (0..p.wrapping_sub(c).min(self.size()))
            .map(|k| self.entry(c.wrapping_add(k)))
            .collect()
    }
}

/// A bound AF_XDP socket with its own four rings (sockets sharing a UMEM on other
/// interfaces or queues each have their fill and completion rings).
pub struct Socket {
    pub rx: Ring<Desc>,
    pub tx: Ring<Desc>,
    pub fill: Ring<u64>,
    pub comp: Ring<u64>,
    /// Last: the rings are unmapped before the socket closes.
    fd: OwnedFd,
}

impl Socket {
    /// A new socket on `ifindex` / `queue` with rings of `ring_size` entries. It registers
    /// `umem` itself, or (`share`: a bound socket that did) shares that registration.
    /// `need_wakeup` binds with XDP_USE_NEED_WAKEUP; a sharing socket inherits the first
    /// socket's choice (the kernel refuses the flag there).
    pub fn open(
        umem: &Umem,
        share: Option<BorrowedFd<'_>>,
        ifindex: u32,
        queue: u32,
        ring_size: u32,
        need_wakeup: bool,
    ) -> io::Result<Socket> {
        // SAFETY: plain socket(2); the fd returned is new and ours.
        let fd = check(
            unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) },
            "creating the AF_XDP socket",
        )?;
        // SAFETY: just created, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if share.is_none() {
            umem.register(fd.as_fd())?;
        }
        for (opt, what) in [
            (libc::XDP_UMEM_FILL_RING, "sizing the fill ring"),
            (libc::XDP_UMEM_COMPLETION_RING, "sizing the completion ring"),
            (libc::XDP_RX_RING, "sizing the RX ring"),
            (libc::XDP_TX_RING, "sizing the TX ring"),
        ] {
            setsockopt(fd.as_fd(), opt, &ring_size, what)?;
        }
        let socket = Self::map_rings(fd, ring_size)?;
        let addr = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: if share.is_some() {
                libc::XDP_SHARED_UMEM
            } else if need_wakeup {
                libc::XDP_USE_NEED_WAKEUP
            } else {
                0
            },
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: share.map_or(0, |s| s.as_raw_fd() as u32),
        };
        // SAFETY: `addr` is a complete sockaddr_xdp of the size passed.
        let ret = unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        check(ret, "binding")?;
        Ok(socket)
    }

    /// A socket bound by a previous run (kept in the fd store): its rings are mapped
    /// again with the indexes and entries the kernel and the last run left.
    pub fn adopt(fd: OwnedFd, ring_size: u32) -> io::Result<Socket> {
        Self::map_rings(fd, ring_size)
    }

    fn map_rings(fd: OwnedFd, ring_size: u32) -> io::Result<Socket> {
        let off: libc::xdp_mmap_offsets = getsockopt(
            fd.as_fd(),
            libc::XDP_MMAP_OFFSETS,
            "reading the ring offsets",
        )?;
        let b = fd.as_fd();
        Ok(Socket {
            rx: Ring::map(
                b,
                &off.rx,
                libc::XDP_PGOFF_RX_RING as u64,
                ring_size,
                false,
                "the RX ring",
            )?,
            tx: Ring::map(
                b,
                &off.tx,
                libc::XDP_PGOFF_TX_RING as u64,
                ring_size,
                true,
                "the TX ring",
            )?,
            fill: Ring::map(
                b,
                &off.fr,
                libc::XDP_UMEM_PGOFF_FILL_RING,
                ring_size,
                true,
                "the fill ring",
            )?,
            comp: Ring::map(
                b,
                &off.cr,
                libc::XDP_UMEM_PGOFF_COMPLETION_RING,
                ring_size,
                false,
                "the completion ring",
            )?,
            fd,
        })
    }

    /// Ask the kernel to send what the TX ring holds (copy mode sends only when kicked).
    #[inline]
    pub fn kick(&self) {
        // SAFETY: a zero-length sendto on our socket; errors (EAGAIN, ENOBUFS) only mean
        // "kick again later", which the next flush does.
        unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
    }

    /// A zero-length non-blocking recvfrom: with busy polling on, it runs the device's
    /// NAPI in our thread (how DPDK's AF_XDP driver polls an empty RX ring); with
    /// need_wakeup, it tells the kernel the fill ring has frames again.
    #[inline]
    pub fn poke_rx(&self) {
        // SAFETY: a zero-length recvfrom on our socket with no address out; errors
        // (EAGAIN) only mean nothing was there.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// setsockopt with an int at `level` (SOL_XDP's TX budget, SOL_SOCKET's busy
    /// polling); `what` names the step in the error.
    pub fn set_option(
        &self,
        level: libc::c_int,
        opt: libc::c_int,
        value: libc::c_int,
        what: &str,
    ) -> io::Result<()> {
        setsockopt_level(self.fd.as_fd(), level, opt, &value, what)
    }

    pub fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        getsockopt(
            self.fd.as_fd(),
            libc::XDP_STATISTICS,
            "reading XDP_STATISTICS",
        )
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Open a socket on `ifname` / `queue` sharing `umem` through `share` (see
/// [`Socket::open`]). A queue a process that just exited released can be busy for a
/// second or two: EBUSY is retried for up to 4 s. Errors name the interface and queue.
pub fn open_retrying(
    umem: &Umem,
    share: Option<BorrowedFd<'_>>,
    ifname: &str,
    queue: u32,
    ring_size: u32,
    need_wakeup: bool,
) -> io::Result<Socket> {
    let named =
        |e: io::Error| io::Error::new(e.kind(), format!("AF_XDP {ifname} queue {queue}: {e}"));
    let ifindex = ifindex(ifname).map_err(named)?;
    let mut tries = 0;
    loop {
        match Socket::open(umem, share, ifindex, queue, ring_size, need_wakeup) {
            Ok(s) => return Ok(s),
            Err(e) if tries < 20 && e.raw_os_error() == Some(libc::EBUSY) => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(named(e)),
        }
    }
}

/// Opens sockets on a worker's UMEM from another thread: binding takes the kernel's RTNL
/// lock, which it can hold for seconds while interfaces come and go (measured: 10-14 s
/// under endpoint churn), and a worker waiting for it stops forwarding every flow.
pub struct Opener {
    umem: std::sync::Arc<Umem>,
    /// A socket of the worker that registered or shares the UMEM (a copy of its fd).
    share: Option<OwnedFd>,
    ring_size: u32,
    need_wakeup: bool,
}

impl Opener {
    pub fn new(
        umem: std::sync::Arc<Umem>,
        share: Option<OwnedFd>,
        ring_size: u32,
        need_wakeup: bool,
    ) -> Opener {
        Opener {
            umem,
            share,
            ring_size,
            need_wakeup,
        }
    }

    pub fn open(&self, ifname: &str, queue: u32) -> io::Result<Socket> {
        open_retrying(
            &self.umem,
            self.share.as_ref().map(|s| s.as_fd()),
            ifname,
            queue,
            self.ring_size,
            self.need_wakeup,
        )
    }
}

/// The ifindex of `ifname`.
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
    // SAFETY: a NUL-terminated name.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(last_error(&format!("no interface {ifname}"))),
        i => Ok(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A ring over a memfd (the kernel's layout: indexes, then slots), so that both sides
    /// can be played by the test: `a` produces, `b` consumes.
    fn ring_pair(size: u32) -> (Ring<u64>, Ring<u64>) {
        let umem = Umem::create(1, 4096 + size as usize * 8).unwrap();
        let off = libc::xdp_ring_offset {
            producer: 0,
            consumer: 64,
            desc: 128,
            flags: 192,
        };
        let a = Ring::map(umem.memfd(), &off, 0, size, true, "test ring").unwrap();
        let b = Ring::map(umem.memfd(), &off, 0, size, false, "test ring").unwrap();
        (a, b)
    }

    proptest! {
        /// Whatever the interleaving of produce and consume sizes, the ring is a FIFO
        /// that never holds more than its size and never loses or invents an entry.
        #[test]
        fn ring_is_a_bounded_fifo(ops in proptest::collection::vec((any::<bool>(), 0usize..40), 1..200)) {
            let (mut prod, mut cons) = ring_pair(16);
            let mut model = VecDeque::new();
            let mut next = 0u64;
            for (produce, n) in ops {
                if produce {
                    let src: Vec<u64> = (next..next + n as u64).collect();
                    let put = prod.produce_with(&src, |&x| x);
                    prop_assert_eq!(put, n.min(16 - model.len()));
                    model.extend(&src[..put]);
                    next += put as u64;
                } else {
                    let mut dst = vec![0u64; n];
                    let got = cons.consume_with(&mut dst, |x| x);
                    prop_assert_eq!(got, n.min(model.len()));
                    for d in &dst[..got] {
                        prop_assert_eq!(Some(*d), model.pop_front());
                    }
                }
                prop_assert_eq!(cons.outstanding(), model.iter().copied().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn umem_survives_in_its_memfd() {
        let umem = Umem::create(4, 2048).unwrap();
        // SAFETY: a test's own frames.
        unsafe { umem.data(2048 + 256)[..3].copy_from_slice(b"abc") };
        assert_eq!(unsafe { umem.data(2048 + 256) }.len(), 2048 - 256);
        let fd = umem.memfd().try_clone_to_owned().unwrap();
        drop(umem);
        let again = Umem::adopt(fd, 2048).unwrap();
        assert_eq!(again.frames(), 4);
        assert_eq!(&unsafe { again.data(2048 + 256) }[..3], b"abc");
        assert!(unsafe { again.data(4 * 2048) }.is_empty(), "past the end");
        let fd = again.memfd().try_clone_to_owned().unwrap();
        assert!(
            Umem::adopt(fd, 3000).is_err(),
            "frame size must divide the memfd"
        );
    }
}
