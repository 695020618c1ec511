//! Which of a worker's taps have frames to read. A tap is read with one syscall per
//! attempt, so reading every tap every loop made a loop's cost grow with the number of
//! pods: a worker with 100 idle taps spent ~100 µs per empty loop in `read` (EAGAIN),
//! and five such nodes kept both cores busy (clusterbench, perf: 42% of all CPU in the
//! workers). Instead the taps sit in one edge-triggered epoll set, asked (one
//! `epoll_wait(0)`) every few loops; a tap is read only while it is known readable, and
//! stays so until a read finds it empty (an edge comes only after that).

use std::io;
use std::os::fd::RawFd;

/// Loops between two looks at the taps' readiness (a tap is a slow-path port: a few
/// loops' delay is a few microseconds).
const LOOK_EVERY: u32 = 8;

pub struct TapReadiness {
    poll: mio::Poll,
    events: mio::Events,
    /// By the port's index in the worker's list.
    ready: Vec<bool>,
    /// Taps the epoll set refused: always read.
    unwatched: Vec<usize>,
    taps: usize,
    loops: u32,
}

impl TapReadiness {
    pub fn new() -> io::Result<TapReadiness> {
        Ok(TapReadiness {
            poll: mio::Poll::new()?,
            events: mio::Events::with_capacity(64),
            ready: Vec::new(),
            unwatched: Vec::new(),
            taps: 0,
            loops: 0,
        })
    }

    /// The tap `fd` is port `i`: watched, and read at once (it may hold frames already).
    /// One the set refuses (epoll's watch limit) is read every loop, as before.
    pub fn add(&mut self, i: usize, fd: RawFd) {
        if let Err(e) = self.poll.registry().register(
            &mut mio::unix::SourceFd(&fd),
            mio::Token(i),
            mio::Interest::READABLE,
        ) {
            tracing::warn!(error = %e, "a tap could not join the readiness set");
            self.unwatched.push(i);
        }
        if self.ready.len() <= i {
            self.ready.resize(i + 1, false);
        }
        self.ready[i] = true;
        self.taps += 1;
    }

    /// Port `i` (tap `fd`) is no longer read here.
    pub fn remove(&mut self, i: usize, fd: RawFd) {
        self.unwatched.retain(|&u| u != i);
        let _ = self
            .poll
            .registry()
            .deregister(&mut mio::unix::SourceFd(&fd));
        if let Some(r) = self.ready.get_mut(i) {
            *r = false;
        }
        self.taps = self.taps.saturating_sub(1);
    }

    pub fn is_ready(&self, i: usize) -> bool {
        self.ready.get(i).copied().unwrap_or(false)
    }

    /// A read of port `i` found nothing: wait for its next edge.
    pub fn drained(&mut self, i: usize) {
        if self.unwatched.contains(&i) {
            return;
        }
        if let Some(r) = self.ready.get_mut(i) {
            *r = false;
        }
    }

    /// Once per loop: every `LOOK_EVERY` loops (or at once when `now`), take the taps that
    /// became readable.
    pub fn refresh(&mut self, now: bool) {
        if self.taps == 0 {
            return;
        }
        self.loops = self.loops.wrapping_add(1);
        if !now && !self.loops.is_multiple_of(LOOK_EVERY) {
            return;
        }
        if self
            .poll
            .poll(&mut self.events, Some(std::time::Duration::ZERO))
            .is_err()
        {
            // Interrupted or failing: read every tap once rather than miss a frame.
            self.ready.iter_mut().for_each(|r| *r = true);
            return;
        }
        for e in self.events.iter() {
            if let Some(r) = self.ready.get_mut(e.token().0) {
                *r = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    /// Any pollable fd stands for a tap: readiness is all this module looks at.
    #[test]
    fn only_taps_with_frames_are_read_and_each_edge_is_seen() {
        let (tap, kernel) = UnixDatagram::pair().unwrap();
        tap.set_nonblocking(true).unwrap();
        let mut r = TapReadiness::new().unwrap();
        r.add(3, tap.as_raw_fd());
        assert!(
            r.is_ready(3),
            "read once at once: it may hold frames already"
        );
        r.drained(3);
        r.refresh(true);
        assert!(!r.is_ready(3), "nothing arrived");
        kernel.send(b"frame").unwrap();
        for _ in 0..LOOK_EVERY - 1 {
            r.refresh(false);
        }
        assert!(r.is_ready(3), "seen within LOOK_EVERY loops");
        // Still ready until a read finds it empty, whatever the looks say.
        r.refresh(true);
        assert!(r.is_ready(3));
        let mut buf = [0u8; 16];
        assert_eq!(tap.recv(&mut buf).unwrap(), 5);
        r.drained(3);
        kernel.send(b"again").unwrap();
        r.refresh(true);
        assert!(r.is_ready(3), "a new frame after the drain is a new edge");
        r.remove(3, tap.as_raw_fd());
        assert!(!r.is_ready(3));
        kernel.send(b"gone").unwrap();
        r.refresh(true);
        assert!(!r.is_ready(3), "a removed tap is not read");
    }
}
