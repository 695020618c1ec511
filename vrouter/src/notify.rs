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
    /// Notify `socket` (a datagram socket's path), with keepalives due every
    /// `watchdog_every` when set.
    pub fn to_path(
        socket: &std::path::Path,
        watchdog_every: Option<Duration>,
    ) -> io::Result<Notifier> {
        Ok(Notifier {
            socket: Some((
                UnixDatagram::unbound()?,
                std::os::unix::net::SocketAddr::from_pathname(socket)?,
            )),
            watchdog_every,
            last_watchdog: Instant::now(),
            last_heartbeats: Vec::new(),
        })
    }

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

    /// Where messages go, None without `NOTIFY_SOCKET` (`fdstore` sends fds from a socket
    /// of its own).
    pub(crate) fn addr(&self) -> Option<&std::os::unix::net::SocketAddr> {
        self.socket.as_ref().map(|(_, addr)| addr)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What systemd received since the last call.
    fn received(s: &UnixDatagram) -> Vec<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = s.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    }

    #[test]
    fn keepalives_only_while_every_worker_progresses() {
        let path = std::env::temp_dir().join(format!("vr-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let systemd = UnixDatagram::bind(&path).unwrap();
        systemd.set_nonblocking(true).unwrap();
        // Long enough that "not due yet" holds on a loaded machine.
        let every = Duration::from_millis(200);
        let mut n = Notifier::to_path(&path, Some(every)).unwrap();
        let due = || std::thread::sleep(every + Duration::from_millis(5));
        n.send("READY=1");
        assert_eq!(received(&systemd), ["READY=1"]);
        n.tick(vec![1, 1]);
        assert!(received(&systemd).is_empty(), "not due yet");
        due();
        n.tick(vec![1, 1]);
        assert_eq!(received(&systemd), ["WATCHDOG=1"], "first heartbeats seen");
        due();
        n.tick(vec![2, 2]);
        assert_eq!(received(&systemd), ["WATCHDOG=1"], "both workers moved");
        // Worker 1 wedged: no keepalive, however long it lasts.
        for beat in 3..6 {
            due();
            n.tick(vec![beat, 2]);
            assert!(
                received(&systemd).is_empty(),
                "withheld while worker 1 is stuck"
            );
        }
        // It moves again: keepalives resume.
        due();
        n.tick(vec![6, 3]);
        assert_eq!(received(&systemd), ["WATCHDOG=1"]);
        // No watchdog asked for: never a keepalive.
        let mut quiet = Notifier::to_path(&path, None).unwrap();
        due();
        quiet.tick(vec![7, 4]);
        assert!(received(&systemd).is_empty());
        let _ = std::fs::remove_file(&path);
    }
}
