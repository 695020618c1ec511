//! The next-hop (adjacency) table the FIB's leaves index into. An entry is the output
//! port and destination MAC packed into one `u64`, so changing where a next hop points
//! (a neighbour's MAC moved, a port went away) is one store: workers never see a port
//! paired with another entry's MAC, and never take a lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// A port number of this node (uplink queue socket, veth or tap endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// Where packets for a next hop go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjacency {
    /// Out of `port` to `mac`.
    Forward { port: PortId, mac: [u8; 6] },
    /// The neighbour is not resolved yet: hold the packet briefly (or drop when full).
    Incomplete,
    /// An unused address of our own block: drop, never send back out.
    Blackhole,
    /// Encapsulate toward a remote node through tunnel `id` (see `tunnel`).
    Tunnel { id: u32 },
    /// Several next hops (ECMP group `id`, see `ecmp`): a flow hash picks one.
    Group { id: u32 },
}

/// A MAC in its text form, `aa:bb:cc:dd:ee:ff`: how logs and replies show one (never
/// the byte array `Debug` prints).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

const INCOMPLETE: u64 = u64::MAX;
const BLACKHOLE: u64 = u64::MAX - 1;
/// Tunnels: port field 0xfffe, tunnel id in the low 32 bits; ECMP groups: 0xfffd.
const TUNNEL_PORT: u64 = 0xfffe;
const GROUP_PORT: u64 = 0xfffd;
/// Ports 0xfffd..=0xffff would collide with the markers above.
pub const MAX_PORT: u16 = 0xfffc;

fn encode(a: Adjacency) -> u64 {
    match a {
        Adjacency::Forward { port, mac } => {
            assert!(port.0 <= MAX_PORT, "port {} is reserved", port.0);
            let mut m = [0u8; 8];
            m[2..].copy_from_slice(&mac);
            (port.0 as u64) << 48 | u64::from_be_bytes(m)
        }
        Adjacency::Incomplete => INCOMPLETE,
        Adjacency::Blackhole => BLACKHOLE,
        Adjacency::Tunnel { id } => TUNNEL_PORT << 48 | id as u64,
        Adjacency::Group { id } => GROUP_PORT << 48 | id as u64,
    }
}

fn decode(v: u64) -> Adjacency {
    match v {
        INCOMPLETE => Adjacency::Incomplete,
        BLACKHOLE => Adjacency::Blackhole,
        _ if v >> 48 == TUNNEL_PORT => Adjacency::Tunnel { id: v as u32 },
        _ if v >> 48 == GROUP_PORT => Adjacency::Group { id: v as u32 },
        _ => {
            let b = v.to_be_bytes();
            Adjacency::Forward {
                port: PortId((v >> 48) as u16),
                mac: b[2..].try_into().unwrap(),
            }
        }
    }
}

/// Fixed-capacity table shared by the control thread (writes) and workers (reads).
pub struct NextHopTable {
    entries: Box<[AtomicU64]>,
}

impl NextHopTable {
    /// `capacity` next hops, all `Incomplete`.
    pub fn new(capacity: usize) -> NextHopTable {
        NextHopTable {
            entries: (0..capacity).map(|_| AtomicU64::new(INCOMPLETE)).collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Point next hop `id` somewhere: one store.
    pub fn set(&self, id: u32, adjacency: Adjacency) {
        self.entries[id as usize].store(encode(adjacency), Ordering::Release);
    }

    /// Where next hop `id` points now; `None` for an id outside the table.
    #[inline]
    pub fn get(&self, id: u32) -> Option<Adjacency> {
        self.entries
            .get(id as usize)
            .map(|e| decode(e.load(Ordering::Acquire)))
    }
}

/// Hands out next-hop ids (control side only), reusing freed ones.
#[derive(Debug, Default)]
pub struct NextHopIds {
    next: u32,
    free: Vec<u32>,
    capacity: u32,
}

impl NextHopIds {
    pub fn new(capacity: u32) -> NextHopIds {
        NextHopIds {
            next: 0,
            free: Vec::new(),
            capacity,
        }
    }

    /// A free id, or `None` when the table is full.
    pub fn allocate(&mut self) -> Option<u32> {
        self.free.pop().or_else(|| {
            (self.next < self.capacity).then(|| {
                self.next += 1;
                self.next - 1
            })
        })
    }

    /// Give an id back. The caller first removes every route that used it.
    pub fn release(&mut self, id: u32) {
        debug_assert!(id < self.next && !self.free.contains(&id));
        self.free.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_print_as_text() {
        let m = Mac([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x01]);
        assert_eq!(m.to_string(), "aa:bb:0c:dd:ee:01");
        assert_eq!(format!("{m:?}"), "aa:bb:0c:dd:ee:01");
    }
    use proptest::prelude::*;
    use std::sync::Arc;

    #[test]
    fn entries_start_incomplete_and_change_in_one_store() {
        let t = NextHopTable::new(4);
        assert_eq!(t.get(0), Some(Adjacency::Incomplete));
        assert_eq!(t.get(4), None);
        let a = Adjacency::Forward {
            port: PortId(3),
            mac: [0xee; 6],
        };
        t.set(1, a);
        assert_eq!(t.get(1), Some(a));
        t.set(1, Adjacency::Blackhole);
        assert_eq!(t.get(1), Some(Adjacency::Blackhole));
    }

    #[test]
    #[should_panic(expected = "reserved")]
    fn reserved_ports_are_refused() {
        NextHopTable::new(1).set(
            0,
            Adjacency::Forward {
                port: PortId(0xffff),
                mac: [0; 6],
            },
        );
    }

    #[test]
    fn ids_are_reused() {
        let mut ids = NextHopIds::new(2);
        assert_eq!(
            (ids.allocate(), ids.allocate(), ids.allocate()),
            (Some(0), Some(1), None)
        );
        ids.release(0);
        assert_eq!(ids.allocate(), Some(0));
    }

    /// A reader racing a writer sees only whole entries the writer stored.
    #[test]
    fn readers_never_see_a_torn_entry() {
        let t = Arc::new(NextHopTable::new(1));
        let a = Adjacency::Forward {
            port: PortId(1),
            mac: [0x11; 6],
        };
        let b = Adjacency::Forward {
            port: PortId(2),
            mac: [0x22; 6],
        };
        t.set(0, a);
        let r = {
            let t = t.clone();
            std::thread::spawn(move || {
                for _ in 0..200_000 {
                    let got = t.get(0).unwrap();
                    assert!(got == a || got == b, "{got:?}");
                }
            })
        };
        for i in 0..200_000 {
            t.set(0, if i % 2 == 0 { b } else { a });
        }
        r.join().unwrap();
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(port in 0..=MAX_PORT, mac in any::<[u8; 6]>()) {
            let a = Adjacency::Forward { port: PortId(port), mac };
            prop_assert_eq!(decode(encode(a)), a);
        }

        #[test]
        fn tunnels_round_trip_and_differ_from_every_forward(id in any::<u32>(), port in 0..=MAX_PORT, mac in any::<[u8; 6]>()) {
            for t in [Adjacency::Tunnel { id }, Adjacency::Group { id }] {
                prop_assert_eq!(decode(encode(t)), t);
                prop_assert_ne!(encode(t), encode(Adjacency::Forward { port: PortId(port), mac }));
                prop_assert_ne!(encode(t), INCOMPLETE);
                prop_assert_ne!(encode(t), BLACKHOLE);
            }
            prop_assert_ne!(encode(Adjacency::Tunnel { id }), encode(Adjacency::Group { id }));
        }
    }
}
