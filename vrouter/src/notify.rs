//! The systemd service protocol (sd_notify): `READY=1` once the workers run and the BGP
//! speaker has started, `STOPPING=1` at shutdown, and watchdog keepalives (`WATCHDOG=1`)
//! sent only while every worker's loop is seen making progress, so a wedged worker gets
//! the daemon restarted (`WatchdogSec=` in configs/vrouterd.service). Without
//! `NOTIFY_SOCKET` (not started by systemd) all of it is a no-op.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// Half the watchdog interval systemd asked for.
    watchdog_every: Option<Duration>,
    last_watchdog: Instant,
    last_heartbeats: Vec<u64>,
}

impl Notifier {
    pub fn from_env() -> io::Result<Notifier> {
        let socket = match std::env::var("NOTIFY_SOCKET") {
            Ok(path) if !path.is_empty() => {
                let addr = if let Some(name) = path.strip_prefix('@') {
                    use std::os::linux::net::SocketAddrExt;
                    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?
                } else {
                    std::os::unix::net::SocketAddr::from_pathname(&path)?
                };
                Some((UnixDatagram::unbound()?, addr))
            }
            _ => None,
        };
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0)
            .map(|u| Duration::from_micros(u / 2));
        Ok(Notifier {
            socket,
            watchdog_every,
            last_watchdog: Instant::now(),
            last_heartbeats: Vec::new(),
        })
    }

    /// Send one state message (`READY=1`, `STATUS=...`, ...).
    pub fn send(&self, state: &str) {
        if let Some((s, addr)) = &self.socket {
            let _ = s.send_to_addr(state.as_bytes(), addr);
        }
    }

    /// Call often: sends `WATCHDOG=1` when due and every worker's heartbeat advanced
    /// since the last one.
    pub fn tick(&mut self, heartbeats: Vec<u64>) {
        let Some(every) = self.watchdog_every else {
            return;
        };
        if self.last_watchdog.elapsed() < every {
            return;
        }
        let progressed = self.last_heartbeats.len() != heartbeats.len()
            || heartbeats
                .iter()
                .zip(&self.last_heartbeats)
                .all(|(now, before)| now > before);
        if progressed {
            self.send("WATCHDOG=1");
            self.last_watchdog = Instant::now();
            self.last_heartbeats = heartbeats;
        }
    }
}
