//! Frames for a port another worker owns (a pod on worker 1 talking to a pod on worker
//! 0): each worker has one inbound mailbox; others copy frames into its preallocated
//! buffers (each worker has its own UMEM, so a copy is unavoidable) and the owner sends
//! them from its next loop. Lock-free queues; a sleeping owner is woken through mio.

use crate::nexthop::PortId;
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Frames a mailbox holds at most (beyond that, the sender counts a drop).
pub const MAILBOX_FRAMES: usize = 1024;
const BUFFER: usize = 4096;

pub struct Letter {
    pub port: PortId,
    pub len: usize,
    pub buf: Box<[u8]>,
    /// A frame received on `port` for the owner to process (a NAT reply whose flow it
    /// holds), not one to send out of `port`.
    pub handoff: bool,
}

pub struct Mailbox {
    full: ArrayQueue<Letter>,
    empty: ArrayQueue<Box<[u8]>>,
    /// Set by the owner while it sleeps in poll(); senders then wake it.
    sleeping: AtomicBool,
    /// A command from the control side waits in the owner's queue.
    commands: AtomicBool,
    waker: OnceLock<mio::Waker>,
}

impl Default for Mailbox {
    fn default() -> Self {
        let empty = ArrayQueue::new(MAILBOX_FRAMES);
        for _ in 0..MAILBOX_FRAMES {
            let _ = empty.push(vec![0u8; BUFFER].into_boxed_slice());
        }
        Mailbox {
            full: ArrayQueue::new(MAILBOX_FRAMES),
            empty,
            sleeping: AtomicBool::new(false),
            commands: AtomicBool::new(false),
            waker: OnceLock::new(),
        }
    }
}

impl Mailbox {
    /// Copy `frame` in for `port`. False when the mailbox is full.
    pub fn post(&self, port: PortId, frame: &[u8]) -> bool {
        self.post_letter(port, frame, false)
    }

    /// Copy in `frame`, received on `port`, for the owner to process. False when full.
    pub fn post_handoff(&self, port: PortId, frame: &[u8]) -> bool {
        self.post_letter(port, frame, true)
    }

    fn post_letter(&self, port: PortId, frame: &[u8], handoff: bool) -> bool {
        let Some(mut buf) = self.empty.pop() else {
            return false;
        };
        let len = frame.len().min(buf.len());
        buf[..len].copy_from_slice(&frame[..len]);
        if let Err(l) = self.full.push(Letter {
            port,
            len,
            buf,
            handoff,
        }) {
            let _ = self.empty.push(l.buf);
            return false;
        }
        true
    }

    /// After a burst of posts: wake the owner if it sleeps.
    pub fn ring(&self) {
        if self.sleeping.load(Ordering::SeqCst) {
            if let Some(w) = self.waker.get() {
                let _ = w.wake();
            }
        }
    }

    /// A command was queued for the owner: it does not go to sleep on it, and is woken
    /// if it sleeps (the flag and `sleeping` are a Dekker pair: one side sees the other).
    pub fn command_posted(&self) {
        self.commands.store(true, Ordering::SeqCst);
        self.ring();
    }

    pub fn take(&self) -> Option<Letter> {
        self.full.pop()
    }

    /// Give a letter's buffer back.
    pub fn recycle(&self, buf: Box<[u8]>) {
        let _ = self.empty.push(buf);
    }

    pub fn is_empty(&self) -> bool {
        self.full.is_empty()
    }

    /// The owner registers how to wake it (once).
    pub fn set_waker(&self, waker: mio::Waker) {
        let _ = self.waker.set(waker);
    }

    /// The owner is about to sleep: true if it may (nothing arrived meanwhile).
    pub fn may_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        if self.commands.swap(false, Ordering::SeqCst) || !self.full.is_empty() {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_arrive_in_order_and_buffers_come_back() {
        let m = Mailbox::default();
        for i in 0..MAILBOX_FRAMES {
            assert!(m.post(PortId(i as u16 % 3), &[i as u8; 60]));
        }
        assert!(!m.post(PortId(0), &[0; 60]), "full");
        for i in 0..MAILBOX_FRAMES {
            let l = m.take().unwrap();
            assert_eq!(
                (l.port, l.len, l.buf[0]),
                (PortId(i as u16 % 3), 60, i as u8)
            );
            m.recycle(l.buf);
        }
        assert!(m.take().is_none());
        assert!(m.post(PortId(1), &[7; 1500]));
    }

    #[test]
    fn a_command_posted_before_the_sleep_stops_it_once() {
        let m = Mailbox::default();
        assert!(m.may_sleep(), "nothing waits");
        m.awake();
        m.command_posted();
        assert!(!m.may_sleep(), "a command waits: no sleep");
        assert!(m.may_sleep(), "seen once: the worker took its commands");
        m.awake();
    }

    #[test]
    fn a_command_wakes_a_sleeping_owner() {
        let mut poll = mio::Poll::new().unwrap();
        let m = std::sync::Arc::new(Mailbox::default());
        m.set_waker(mio::Waker::new(poll.registry(), mio::Token(1)).unwrap());
        assert!(m.may_sleep());
        let sender = m.clone();
        let t = std::thread::spawn(move || sender.command_posted());
        let mut events = mio::Events::with_capacity(4);
        // Far longer than the test takes: only the waker ends the wait early.
        let started = std::time::Instant::now();
        poll.poll(&mut events, Some(std::time::Duration::from_secs(20)))
            .unwrap();
        t.join().unwrap();
        assert!(events.iter().any(|e| e.token() == mio::Token(1)));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
