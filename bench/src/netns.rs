//! Network namespaces for the namespace benchmarks: created with `ip netns add`, entered
//! one thread at a time with setns(2) (a network namespace is per thread), removed on
//! drop — after errors and Ctrl-C too (see [`install_interrupt_handler`]). Also: interface
//! counters read from inside a namespace.

// setns(2), kill(2) and geteuid(2) through libc: the kernel demands FFI.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether we run as root (namespaces, XDP and AF_XDP need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run `cmd args`, failing with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> io::Result<()> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot run {cmd}: {e} (is it installed? Debian: apt install iproute2 ethtool)"
            ),
        )
    })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// `ip ARGS`.
pub fn ip(args: &[&str]) -> io::Result<()> {
    run("ip", args)
}

/// A veth pair: `a` in namespace `ns_a`, its peer `b` in `ns_b`.
pub fn veth(a: &str, ns_a: &str, b: &str, ns_b: &str) -> io::Result<()> {
    veth_queues(a, ns_a, b, ns_b, 1)
}

/// A veth pair with `queues` rx and tx queues on each side.
pub fn veth_queues(a: &str, ns_a: &str, b: &str, ns_b: &str, queues: u32) -> io::Result<()> {
    let q = queues.to_string();
    ip(&[
        "link",
        "add",
        a,
        "netns",
        ns_a,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        ns_b,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ])
}

/// Move the calling thread into the named namespace (`/run/netns/NAME`).
pub fn enter(name: &str) -> io::Result<()> {
    let path = format!("/run/netns/{name}");
    let f = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    // SAFETY: `f` is an open namespace file; setns only changes this thread's namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("setns({path}): {e}")));
    }
    Ok(())
}

/// The calling thread's network namespace, to come back to with [`restore`].
pub fn current() -> io::Result<File> {
    File::open("/proc/thread-self/ns/net")
}

/// Move the calling thread back into a namespace saved with [`current`].
pub fn restore(ns: &File) -> io::Result<()> {
    // SAFETY: `ns` is an open namespace file; setns only changes this thread's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run `f` on a fresh thread inside namespace `name` and return its result.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(name)?;
            f()
        })
        .join()
        .map_err(|_| io::Error::other(format!("a thread in namespace {name} panicked")))?
    })
}

/// A network namespace we created; dropping it kills what still runs in it and deletes
/// it (its interfaces go with it).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create namespace `name` with its loopback up and IPv6 off (no DAD, router
    /// solicitations or MLD reports on the benchmark's links).
    pub fn add(name: &str) -> io::Result<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        for conf in ["all", "default"] {
            // Absent when the kernel has no IPv6: nothing to silence then.
            let _ = ns.write_proc_sys(&format!("net/ipv6/conf/{conf}/disable_ipv6"), "1");
        }
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip netns exec NAME ARGS` (a fresh /sys of the namespace, unlike our threads).
    pub fn exec(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip netns exec NAME ARGS`, its standard output (fails on a non-zero exit).
    pub fn exec_output(&self, args: &[&str]) -> io::Result<String> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", self.name.as_str()])
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Write `/proc/sys/KEY` of this namespace (net sysctls follow the writer's thread).
    pub fn write_proc_sys(&self, key: &str, value: &str) -> io::Result<()> {
        let path = format!("/proc/sys/{key}");
        in_netns(&self.name, || {
            std::fs::write(&path, value)
                .map_err(|e| io::Error::new(e.kind(), format!("{path} in {}: {e}", self.name)))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

fn delete_netns(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<libc::pid_t>() {
                // SAFETY: plain kill(2) of a process living in our namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = Command::new("ip").args(["netns", "del", name]).output();
}

/// Send signal `sig` (libc::SIGTERM, ...) to process `pid`.
pub fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain kill(2); the caller names a process it started.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Delete namespaces `PREFIX<pid>-<suffix>` left by runs whose process no longer exists
/// (a run killed with SIGKILL cannot clean up after itself).
pub fn remove_stale(prefix: &str) {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(&name);
        }
    }
}

/// Set by SIGINT / SIGTERM once [`install_interrupt_handler`] ran; a second signal exits
/// at once (status 130).
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

static INTERRUPTED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// Turn SIGINT / SIGTERM into [`interrupted`] so that namespaces are cleaned up.
pub fn install_interrupt_handler() -> io::Result<()> {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(())
}

/// Sleep `d`, waking early with `Interrupted` when a signal arrived.
pub fn sleep_interruptible(d: Duration) -> io::Result<()> {
    let end = Instant::now() + d;
    loop {
        if interrupted() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Packet counters of one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

/// `/proc/net/dev` of a namespace: opened by a thread inside it, the file stays bound to
/// that namespace, so any thread can read it cheaply (microseconds, no process spawned).
pub struct DevStats {
    file: File,
    buf: String,
}

impl DevStats {
    pub fn open(netns: &str) -> io::Result<DevStats> {
        let file = in_netns(netns, || File::open("/proc/thread-self/net/dev"))?;
        Ok(DevStats {
            file,
            buf: String::with_capacity(4096),
        })
    }

    /// The calling thread's namespace.
    pub fn open_current() -> io::Result<DevStats> {
        let file = File::open("/proc/thread-self/net/dev")?;
        Ok(DevStats {
            file,
            buf: String::with_capacity(4096),
        })
    }

    /// The counters of `dev` (the same figures as `ip -s link`).
    pub fn read(&mut self, dev: &str) -> io::Result<IfCounters> {
        self.file.rewind()?;
        self.buf.clear();
        self.file.read_to_string(&mut self.buf)?;
        parse_dev(&self.buf, dev).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {dev} not in /proc/net/dev"),
            )
        })
    }
}

/// The counters of `dev` in the text of /proc/net/dev.
fn parse_dev(text: &str, dev: &str) -> Option<IfCounters> {
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != dev {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if f.len() < 16 {
            return None;
        }
        // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop ...
        return Some(IfCounters {
            rx_bytes: f[0],
            rx_packets: f[1],
            rx_dropped: f[3],
            tx_packets: f[9],
            tx_dropped: f[11],
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev_is_parsed() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
 f123s: 6400000  100000    0    7    0     0          0         0      840      12    0    3    0     0       0          0
";
        assert_eq!(
            parse_dev(text, "f123s"),
            Some(IfCounters {
                rx_bytes: 6400000,
                rx_packets: 100000,
                rx_dropped: 7,
                tx_packets: 12,
                tx_dropped: 3
            })
        );
        assert_eq!(parse_dev(text, "f123"), None);
    }
}
