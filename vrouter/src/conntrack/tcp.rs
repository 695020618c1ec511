//! TCP as connection tracking needs it: enough state to age a flow as the kernel's
//! nf_conntrack does (its default timeouts), not a sequence-window check.
//!
//! ```text
//!  SYN ─▶ SynSent ─(reply SYN+ACK)─▶ SynRecv ─(orig ACK)─▶ Established
//!  Established ─(FIN one way)─▶ FinWait ─(FIN the other way)─▶ LastAck ─(ACK)─▶ TimeWait
//!  TimeWait / Close ─(a new SYN)─▶ SynSent (the port reused)
//!  any ─(RST)─▶ Close            a first packet that is not a SYN: Established (loose
//!                                pick-up, as the kernel's nf_conntrack_tcp_loose = 1)
//! ```

/// TCP header flags (byte 13).
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    SynSent,
    SynRecv,
    Established,
    /// One side sent its FIN (true: the reply side).
    FinWait(bool),
    /// Both sides sent their FIN; the last ACK is awaited.
    LastAck,
    TimeWait,
    Close,
}

impl TcpState {
    /// How long a flow in this state lives without packets (the kernel's defaults,
    /// `net.netfilter.nf_conntrack_tcp_timeout_*`), in seconds.
    pub fn timeout_s(self) -> u32 {
        match self {
            TcpState::SynSent => 120,
            TcpState::SynRecv => 60,
            TcpState::Established => 432_000,
            TcpState::FinWait(_) => 120,
            TcpState::LastAck => 30,
            TcpState::TimeWait => 120,
            TcpState::Close => 10,
        }
    }

    /// Flows the table may evict first when it is full (the kernel's early drop): not
    /// yet established, or on their way out.
    pub fn evictable(self) -> bool {
        !matches!(self, TcpState::Established)
    }
}

/// What a packet with `flags`, seen in direction `reply` (false: the flow's original
/// direction), does to a flow. `None` for the packet that would create a flow: the
/// state it starts in (`None` back: a packet that makes no flow, a lone RST).
pub fn next(state: Option<TcpState>, flags: u8, reply: bool) -> Option<TcpState> {
    use TcpState::*;
    let Some(s) = state else {
        return if flags & RST != 0 {
            None
        } else if flags & SYN != 0 && flags & ACK == 0 {
            Some(SynSent)
        } else {
            Some(Established)
        };
    };
    if flags & RST != 0 {
        return Some(Close);
    }
    Some(match (s, reply) {
        (SynSent, true) if flags & SYN != 0 && flags & ACK != 0 => SynRecv,
        // A retransmitted SYN, or the reply's bare ACK: no change yet.
        (SynSent, _) => SynSent,
        (SynRecv, false) if flags & ACK != 0 && flags & SYN == 0 => Established,
        (SynRecv, _) => SynRecv,
        (Established, r) if flags & FIN != 0 => FinWait(r),
        (Established, _) => Established,
        // The other side's FIN; the same side's again is a retransmission.
        (FinWait(by), r) if flags & FIN != 0 && r != by => LastAck,
        (FinWait(by), _) => FinWait(by),
        (LastAck, _) if flags & ACK != 0 && flags & FIN == 0 => TimeWait,
        (LastAck, _) => LastAck,
        // A new SYN on a finished flow (port reuse): the flow starts over.
        (TimeWait | Close, false) if flags & SYN != 0 && flags & ACK == 0 => SynSent,
        (TimeWait, _) => TimeWait,
        (Close, _) => Close,
    })
}
