//! The kernel's neighbour changes as it makes them: a netlink socket in the
//! RTNLGRP_NEIGH multicast group, read by a thread of its own that hands each
//! datagram's changes to the control loop over a channel (the loop waits on channels
//! alone; see `control_loop`). The socket is nonblocking and waited on with mio, beside
//! a waker that stops the thread when the watch is dropped.
//!
//! The kernel drops multicast messages when the socket's buffer is full and says so
//! with ENOBUFS on the next read: what the socket still holds is dropped too (see
//! `discard_queued`) and the control loop gets `WatchEvent::Overrun`, after which the
//! table is dumped again (see `gateway_sync`).

use crate::neigh::{change, NeighbourChange};
use crate::rtnl::messages;
use crossbeam_channel as xch;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use netlink_packet_core::NetlinkPayload;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use tracing::warn;

/// What the watch hands the control loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The changes of one datagram, in the kernel's order.
    Changes(Vec<NeighbourChange>),
    /// Changes were lost (ENOBUFS) or unreadable: dump the table again.
    Overrun,
}

/// Asked of the kernel for the socket's receive buffer (it caps this at
/// net.core.rmem_max): a burst of changes while the thread is not scheduled, say a
/// link going down with hundreds of neighbours, fits in it rather than being dropped.
const RECEIVE_BUFFER: usize = 1 << 20;

const SOCKET: Token = Token(0);
const STOP: Token = Token(1);

pub struct NeighbourWatch {
    pub events: xch::Receiver<WatchEvent>,
    waker: Waker,
    thread: Option<JoinHandle<()>>,
}

impl NeighbourWatch {
    /// Join RTNLGRP_NEIGH and start reading. Changes made from now on are all reported
    /// (or an `Overrun` is): a dump taken after this returns misses none.
    pub fn start() -> io::Result<NeighbourWatch> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        socket.add_membership(libc::RTNLGRP_NEIGH)?;
        // Best effort: the default (net.core.rmem_default) still works, with overruns
        // sooner.
        let _ = socket.set_rx_buf_sz(RECEIVE_BUFFER);
        socket.set_non_blocking(true)?;
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&socket.as_raw_fd()),
            SOCKET,
            Interest::READABLE,
        )?;
        let waker = Waker::new(poll.registry(), STOP)?;
        let (tx, events) = xch::unbounded();
        let thread = std::thread::Builder::new()
            .name("neigh-watch".into())
            .spawn(move || read_changes(socket, poll, tx))?;
        Ok(NeighbourWatch {
            events,
            waker,
            thread: Some(thread),
        })
    }
}

impl Drop for NeighbourWatch {
    fn drop(&mut self) {
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The neighbour changes of one datagram; an error when it cannot be read (the
/// caller then resyncs: a change may be in it).
pub fn datagram_changes(datagram: &[u8]) -> io::Result<Vec<NeighbourChange>> {
    Ok(messages(datagram)?
        .iter()
        .filter_map(|m| match &m.payload {
            NetlinkPayload::InnerMessage(m) => change(m),
            _ => None,
        })
        .collect())
}

/// The thread: read every datagram the socket holds each time it is readable, until
/// the waker says stop or the control loop is gone. A failed read ends it (the channel
/// then disconnects and the control loop falls back to dumps).
fn read_changes(socket: Socket, mut poll: Poll, tx: xch::Sender<WatchEvent>) {
    let mut events = Events::with_capacity(4);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            warn!(error = %e, "neighbour watch: waiting");
            return;
        }
        if events.iter().any(|e| e.token() == STOP) {
            return;
        }
        // Edge-triggered: read until the socket is empty.
        loop {
            let event = match socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => match datagram_changes(&buf[..n]) {
                    Ok(changes) => WatchEvent::Changes(changes),
                    Err(e) => {
                        warn!(error = %e, "neighbour watch: unreadable message, resyncing");
                        WatchEvent::Overrun
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    discard_queued(&socket, &mut buf);
                    WatchEvent::Overrun
                }
                Err(e) => {
                    warn!(error = %e, "neighbour watch: reading");
                    return;
                }
            };
            if tx.send(event).is_err() {
                return;
            }
        }
    }
}

/// After an overrun: drop what the socket still holds. The kernel reports ENOBUFS
/// before the messages queued ahead of the lost ones, and one of those, read after the
/// resync's dump, could put back an entry's state older than a lost change (with
/// nothing later to correct it). Whatever is read from here on is newer than all that
/// was lost.
fn discard_queued(socket: &Socket, buf: &mut [u8]) {
    loop {
        match socket.recv(&mut &mut buf[..], 0) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
            // Empty (WouldBlock); anything else, the next read says.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neigh::Neighbour;

    fn bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    // Datagrams captured from RTNLGRP_NEIGH on Linux 6.x (a Python socket bound to
    // RTMGRP_NEIGH in a namespace, veth d0 with ifindex 3) as `ip` made each change.

    /// `ip neigh replace 10.77.0.5 lladdr 02:00:00:00:00:05 dev d0 nud reachable`
    const NEW_V4_REACHABLE: &str = "4c0000001c00000000000000f1060000020000000300000002000001080001000a4d00050a000200020000000005000008000400000000001400030000000000000000000000000002000000";
    /// `ip neigh replace fd77::5 lladdr 02:00:00:00:00:06 dev d0 nud stale`
    const NEW_V6_STALE: &str = "580000001c000000000000000f0700000a000000030000000400000114000100fd7700000000000000000000000000050a000200020000000006000008000400000000001400030070170000000000000000000001000000";
    /// `ip neigh del 10.77.0.5 dev d0`: the kernel first announces the entry FAILED
    /// (RTM_NEWNEIGH, no link-layer address), then deletes it (RTM_DELNEIGH).
    const FAILED_V4: &str = "400000001c0000000000000018070000020000000300000020000001080001000a4d000508000400000000001400030068000000680000006800000001000000";
    const DEL_V4: &str = "400000001d0000000000000000000000020000000300000020000001080001000a4d000508000400000000001400030068000000680000006800000000000000";

    /// A reachable IPv4 entry and a stale IPv6 one: updates with their MAC.
    #[test]
    fn usable_entries_are_updates_with_their_mac() {
        for (datagram, ip, mac) in [
            (NEW_V4_REACHABLE, "10.77.0.5", [2, 0, 0, 0, 0, 5]),
            (NEW_V6_STALE, "fd77::5", [2, 0, 0, 0, 0, 6]),
        ] {
            assert_eq!(
                datagram_changes(&bytes(datagram)).unwrap(),
                vec![NeighbourChange::Updated(Neighbour {
                    ifindex: 3,
                    ip: ip.parse().unwrap(),
                    mac: Some(mac),
                })]
            );
        }
    }

    #[test]
    fn a_failed_entry_has_no_mac_and_a_deletion_is_one() {
        let ip = "10.77.0.5".parse().unwrap();
        assert_eq!(
            datagram_changes(&bytes(FAILED_V4)).unwrap(),
            vec![NeighbourChange::Updated(Neighbour {
                ifindex: 3,
                ip,
                mac: None
            })]
        );
        assert_eq!(
            datagram_changes(&bytes(DEL_V4)).unwrap(),
            vec![NeighbourChange::Deleted { ifindex: 3, ip }]
        );
    }

    /// Several messages in one datagram are read in order (each padded to 4 bytes).
    #[test]
    fn a_datagram_of_several_messages_gives_each_in_order() {
        let mut d = bytes(FAILED_V4);
        d.extend(bytes(DEL_V4));
        d.extend(bytes(NEW_V4_REACHABLE));
        let got = datagram_changes(&d).unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(got[1], NeighbourChange::Deleted { .. }));
        assert!(matches!(
            got[2],
            NeighbourChange::Updated(Neighbour { mac: Some(_), .. })
        ));
    }

    /// A truncated datagram is an error (the caller resyncs), never silently nothing.
    #[test]
    fn a_truncated_datagram_is_an_error() {
        let d = bytes(NEW_V4_REACHABLE);
        assert!(datagram_changes(&d[..40]).is_err());
    }
}
