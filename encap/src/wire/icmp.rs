//! ICMP (RFC 792) and ICMPv6 (RFC 4443) headers, and the Neighbor Discovery messages
//! (RFC 4861) the pod gateway answers.

pub mod field {
    use crate::wire::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// The rest of the header: unused, or the next-hop MTU (frag-needed, packet-too-big).
    pub const REST: Field = 4..8;
}

pub const HEADER_LEN: usize = field::REST.end;

/// ICMPv4 types.
pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const TIMESTAMP: u8 = 13;
    pub const TIMESTAMP_REPLY: u8 = 14;
    /// Destination unreachable: fragmentation needed and DF set.
    pub const CODE_FRAG_NEEDED: u8 = 4;
}

/// ICMPv6 types.
pub mod v6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    /// Types below this are errors.
    pub const FIRST_INFORMATIONAL: u8 = 128;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Neighbor Solicitation / Advertisement bodies, relative to the ICMPv6 header.
pub mod nd {
    pub mod field {
        use crate::wire::Field;
        /// Advertisement flags (R, S, O) in the first byte, then reserved.
        pub const FLAGS: Field = 4..8;
        pub const TARGET: Field = 8..24;
        /// The first option: type, length in 8-byte units, link-layer address.
        pub const OPT_TYPE: usize = 24;
        pub const OPT_LEN: usize = 25;
        pub const OPT_LLADDR: Field = 26..32;
    }
    /// A solicitation's minimum length: header and target.
    pub const NS_MIN_LEN: usize = field::TARGET.end;
    /// Header, target and one link-layer address option.
    pub const WITH_LLADDR_LEN: usize = field::OPT_LLADDR.end;
    /// Router, Solicited, Override (first byte of `FLAGS`).
    pub const FLAGS_R_S_O: u8 = 0xe0;
    pub const OPT_SOURCE_LLADDR: u8 = 1;
    pub const OPT_TARGET_LLADDR: u8 = 2;
    /// ND messages are sent, and must arrive, with hop limit 255.
    pub const HOP_LIMIT: u8 = 255;
}
