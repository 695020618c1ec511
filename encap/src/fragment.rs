//! IPv4 fragmentation (RFC 791) for a packet larger than the egress MTU whose DF bit is
//! clear. Fragments are built one at a time in a caller's buffer (no allocation): the
//! Ethernet and IP headers are repeated, offsets are in 8-byte units, MF is set on all
//! but the last, and each header's checksum is computed anew. Options are repeated in
//! every fragment (forwarded packets with options are rare; RFC 791 allows repeating
//! only "copied" ones, which a receiver accepts either way).

use crate::rewrite::{ipv4_checksum, ETH_HDR_LEN};
use crate::wire::ipv4;

/// Largest frame a fragment can be: the MTU plus the Ethernet header.
pub const MAX_FRAGMENT_FRAME: usize = 9216 + ETH_HDR_LEN;

/// Why a packet cannot be fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    /// Not a well-formed IPv4 packet in an Ethernet frame.
    Malformed,
    /// DF is set: the sender must get frag-needed instead.
    DontFragment,
    /// The MTU cannot carry the header and 8 bytes of payload, or exceeds our buffer.
    BadMtu,
}

/// Split the IPv4 packet in `frame` (Ethernet + IP, `frame.len()` bytes) into fragments
/// of at most `mtu` IP bytes, passing each whole frame to `emit`. Returns the count.
pub fn ipv4_fragments(
    frame: &[u8],
    mtu: usize,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, FragmentError> {
    if frame.len() < ETH_HDR_LEN + ipv4::HEADER_LEN {
        return Err(FragmentError::Malformed);
    }
    let ip = &frame[ETH_HDR_LEN..];
    let ihl = ipv4::header_len(ip);
    let total = ipv4::total_len(ip);
    if ipv4::version(ip) != ipv4::VERSION
        || ihl < ipv4::HEADER_LEN
        || total < ihl
        || total > ip.len()
    {
        return Err(FragmentError::Malformed);
    }
    let flags_offset = ipv4::flg_off(ip);
    if flags_offset & ipv4::FLAG_DF != 0 {
        return Err(FragmentError::DontFragment);
    }
    if mtu < ihl + 8 || mtu + ETH_HDR_LEN > MAX_FRAGMENT_FRAME {
        return Err(FragmentError::BadMtu);
    }
    // A packet that is itself a fragment keeps its offset and its MF on the last piece.
    let base = (flags_offset & ipv4::FRAG_OFFSET) as usize * 8;
    let more_after = flags_offset & ipv4::FLAG_MF != 0;
    let payload = &ip[ihl..total];
    let step = (mtu - ihl) / 8 * 8;
    let mut buf = [0u8; MAX_FRAGMENT_FRAME];
    let mut count = 0;
    let mut at = 0;
    while at < payload.len() {
        let n = step.min(payload.len() - at);
        let last = at + n == payload.len();
        let len = ETH_HDR_LEN + ihl + n;
        buf[..ETH_HDR_LEN + ihl].copy_from_slice(&frame[..ETH_HDR_LEN + ihl]);
        buf[ETH_HDR_LEN + ihl..len].copy_from_slice(&payload[at..at + n]);
        let h = &mut buf[ETH_HDR_LEN..ETH_HDR_LEN + ihl];
        ipv4::set_total_len(h, (ihl + n) as u16);
        let mf = if last && !more_after {
            0
        } else {
            ipv4::FLAG_MF
        };
        let off = ((base + at) / 8) as u16 | mf;
        ipv4::set_flg_off(h, off);
        let sum = ipv4_checksum(h);
        ipv4::set_checksum(h, sum);
        emit(&buf[..len]);
        count += 1;
        at += n;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::field::{IDENT, PROTOCOL, TTL, VER_IHL};
    use crate::wire::{ethernet, ip::protocol};
    use proptest::prelude::*;

    fn packet(payload_len: usize, flags_offset: u16, ihl_words: u8) -> Vec<u8> {
        let ihl = ihl_words as usize * 4;
        let mut f = vec![0u8; ETH_HDR_LEN + ihl + payload_len];
        ethernet::set_ethertype(&mut f, ethernet::ethertype::IPV4);
        let ip = &mut f[ETH_HDR_LEN..];
        ip[VER_IHL] = ipv4::VERSION << 4 | ihl_words;
        ipv4::set_total_len(ip, (ihl + payload_len) as u16);
        ip[IDENT].copy_from_slice(&0x1234u16.to_be_bytes());
        ipv4::set_flg_off(ip, flags_offset);
        ip[TTL] = 63;
        ip[PROTOCOL] = protocol::UDP;
        ip[ipv4::field::SRC_ADDR].copy_from_slice(&[10, 0, 0, 1]);
        ip[ipv4::field::DST_ADDR].copy_from_slice(&[10, 0, 0, 2]);
        for (i, b) in ip[ipv4::HEADER_LEN..ihl].iter_mut().enumerate() {
            *b = if i % 4 == 3 { 0 } else { 1 }; // NOPs and EOL padding
        }
        for (i, b) in ip[ihl..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let sum = ipv4_checksum(&ip[..ihl]);
        ipv4::set_checksum(ip, sum);
        f
    }

    /// Reassemble as a receiver would: by offset, checking every header.
    fn reassemble(frags: &[Vec<u8>], ihl: usize) -> (Vec<u8>, bool) {
        let mut data = Vec::new();
        let mut last_mf = true;
        for f in frags {
            let ip = &f[ETH_HDR_LEN..];
            let stored = ipv4::checksum(ip);
            assert_eq!(ipv4_checksum(&ip[..ihl]), stored, "header checksum");
            let total = ipv4::total_len(ip);
            assert_eq!(total, ip.len());
            let fo = ipv4::flg_off(ip);
            let off = (fo & ipv4::FRAG_OFFSET) as usize * 8;
            assert_eq!(&ip[IDENT], &[0x12, 0x34], "same identification");
            if data.len() < off + total - ihl {
                data.resize(off + total - ihl, 0);
            }
            data[off..off + total - ihl].copy_from_slice(&ip[ihl..]);
            last_mf = fo & ipv4::FLAG_MF != 0;
        }
        (data, last_mf)
    }

    #[test]
    fn a_1500_byte_packet_through_a_1400_mtu_makes_two() {
        let p = packet(1480, 0, 5);
        let mut frags = Vec::new();
        let n = ipv4_fragments(&p, 1400, |f| frags.push(f.to_vec())).unwrap();
        assert_eq!(n, 2);
        assert_eq!(frags[0].len(), ETH_HDR_LEN + ipv4::HEADER_LEN + 1376);
        assert_eq!(frags[1].len(), ETH_HDR_LEN + ipv4::HEADER_LEN + 104);
        assert_eq!(
            reassemble(&frags, ipv4::HEADER_LEN).0,
            p[ETH_HDR_LEN + ipv4::HEADER_LEN..]
        );
        let parsed = etherparse::SlicedPacket::from_ethernet(&frags[0]).unwrap();
        let Some(etherparse::NetSlice::Ipv4(v4)) = parsed.net else {
            panic!()
        };
        assert!(v4.header().more_fragments());
        assert_eq!(v4.header().fragments_offset().value(), 0);
    }

    #[test]
    fn df_set_and_garbage_are_refused() {
        let p = packet(1480, ipv4::FLAG_DF, 5);
        assert_eq!(
            ipv4_fragments(&p, 1400, |_| {}),
            Err(FragmentError::DontFragment)
        );
        assert_eq!(
            ipv4_fragments(&p[..30], 1400, |_| {}),
            Err(FragmentError::Malformed)
        );
        let p = packet(100, 0, 5);
        assert_eq!(ipv4_fragments(&p, 20, |_| {}), Err(FragmentError::BadMtu));
    }

    proptest! {
        #[test]
        fn fragments_reassemble_to_the_packet(
            payload_len in 1usize..4000,
            mtu in 68usize..3000,
            ihl_words in 5u8..=15,
            prior_offset in 0u16..64,
            prior_mf in any::<bool>(),
        ) {
            let fo = prior_offset | if prior_mf { ipv4::FLAG_MF } else { 0 };
            let p = packet(payload_len, fo, ihl_words);
            let ihl = ihl_words as usize * 4;
            let mut frags = Vec::new();
            match ipv4_fragments(&p, mtu, |f| frags.push(f.to_vec())) {
                Err(FragmentError::BadMtu) => prop_assert!(mtu < ihl + 8),
                Err(e) => prop_assert!(false, "{:?}", e),
                Ok(n) => {
                    prop_assert_eq!(n, frags.len());
                    for f in &frags {
                        prop_assert!(f.len() - ETH_HDR_LEN <= mtu);
                        prop_assert_eq!(&f[..ETH_HDR_LEN], &p[..ETH_HDR_LEN]);
                    }
                    let (data, last_mf) = reassemble(&frags, ihl);
                    let base = prior_offset as usize * 8;
                    prop_assert_eq!(&data[base..], &p[ETH_HDR_LEN + ihl..]);
                    prop_assert_eq!(last_mf, prior_mf);
                }
            }
        }
    }
}
