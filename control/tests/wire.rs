//! Codec vectors: what we encode decodes to the same routes and attributes, a known
//! UPDATE decodes byte for byte, End-of-RIB markers, and RFC 7606 treat-as-withdraw.

use control::bgp::error::{BgpError, UpdateError};
use control::bgp::wire::{self, ErrorHandling, Family, Message, PathAttrs, Session};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};

const S4: Session = Session {
    four_octet_as: true,
};

fn update(msg: &[u8]) -> wire::Update {
    match wire::decode(msg, S4) {
        Ok(Message::Update(u)) => u,
        other => panic!("not an UPDATE: {other:?}"),
    }
}

#[test]
fn announcements_round_trip_both_families() {
    let attrs = PathAttrs {
        origin: 0,
        as_path: vec![65001, 4_200_000_000],
        as_path_len: 2,
        med: Some(10),
        local_pref: Some(200),
        communities: vec![0xfde8_0064],
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 9)),
        cluster_list: vec![Ipv4Addr::new(1, 1, 1, 1)],
        ..PathAttrs::default()
    };
    let v4: Vec<IpNet> = (0..1200u32)
        .map(|i| {
            IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 6)), 26).unwrap())
        })
        .collect();
    let msgs = wire::announce(&v4, &attrs, IpAddr::V4(Ipv4Addr::new(10, 98, 0, 1)), true);
    assert!(msgs.len() >= 3, "split to fit 4096 bytes");
    let mut got = Vec::new();
    for m in &msgs {
        assert!(m.len() <= wire::MAX_LEN);
        let u = update(m);
        assert_eq!(u.attrs.next_hop, Some(Ipv4Addr::new(10, 98, 0, 1)));
        assert_eq!(u.attrs.as_path, attrs.as_path);
        assert_eq!(u.attrs.as_path_len, 2);
        assert_eq!(u.attrs.med, Some(10));
        assert_eq!(u.attrs.local_pref, Some(200));
        assert_eq!(u.attrs.communities, attrs.communities);
        assert_eq!(u.attrs.originator_id, attrs.originator_id);
        assert_eq!(u.attrs.cluster_list, attrs.cluster_list);
        assert_eq!(u.error_handling, None);
        got.extend(u.announced);
    }
    assert_eq!(got, v4);

    let v6: Vec<IpNet> = (0..400u32)
        .map(|i| format!("fd10::{:x}:0/122", i).parse().unwrap())
        .collect();
    let nh: IpAddr = "fd98::1".parse().unwrap();
    let mut got = Vec::new();
    for m in wire::announce(&v6, &attrs, nh, false) {
        let u = update(&m);
        assert_eq!(u.attrs.mp_next_hop, Some(nh));
        assert_eq!(u.attrs.local_pref, None, "no LOCAL_PREF to eBGP peers");
        got.extend(u.announced);
    }
    assert_eq!(got, v6);

    let mut w = Vec::new();
    for m in wire::withdraw(&[v4[..700].to_vec(), v6[..3].to_vec()].concat()) {
        w.extend(update(&m).withdrawn);
    }
    assert_eq!(w, [v4[..700].to_vec(), v6[..3].to_vec()].concat());
}

#[test]
fn end_of_rib_markers() {
    assert_eq!(wire::end_of_rib(Family::Ipv4).len(), 23);
    assert_eq!(
        update(&wire::end_of_rib(Family::Ipv4)).end_of_rib,
        Some(Family::Ipv4)
    );
    assert_eq!(
        update(&wire::end_of_rib(Family::Ipv6)).end_of_rib,
        Some(Family::Ipv6)
    );
}

/// An UPDATE written out by hand (RFC 4271 §4.3): 10.244.1.0/26 via 10.98.0.2, ORIGIN
/// IGP, AS_PATH [65001] (4-byte), LOCAL_PREF 100.
fn hand_update(with_origin: bool, med_len: u8) -> Vec<u8> {
    let mut attrs = Vec::new();
    if with_origin {
        attrs.extend([0x40, 1, 1, 0]);
    }
    attrs.extend([0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]);
    attrs.extend([0x40, 3, 4, 10, 98, 0, 2]);
    attrs.extend([0x40, 5, 4, 0, 0, 0, 100]);
    if med_len > 0 {
        attrs.extend([0x80, 4, med_len]);
        attrs.extend(std::iter::repeat_n(0, med_len as usize));
    }
    let nlri = [26u8, 10, 244, 1, 0];
    let mut m = vec![0xff; 16];
    let len = 19 + 2 + 2 + attrs.len() + nlri.len();
    m.extend((len as u16).to_be_bytes());
    m.push(2);
    m.extend([0, 0]);
    m.extend((attrs.len() as u16).to_be_bytes());
    m.extend(attrs);
    m.extend(nlri);
    m
}

#[test]
fn a_hand_written_update_decodes() {
    let u = update(&hand_update(true, 0));
    assert_eq!(u.announced, vec!["10.244.1.0/26".parse::<IpNet>().unwrap()]);
    assert_eq!(u.attrs.next_hop, Some(Ipv4Addr::new(10, 98, 0, 2)));
    assert_eq!(u.attrs.as_path, vec![65001]);
    assert_eq!(u.attrs.local_pref, Some(100));
    assert_eq!(u.error_handling, None);
}

#[test]
fn rfc7606_treat_as_withdraw() {
    // Missing ORIGIN (well-known mandatory): the announcement becomes a withdrawal.
    let u = update(&hand_update(false, 0));
    assert_eq!(u.error_handling, Some(ErrorHandling::TreatAsWithdraw));
    assert!(u.announced.is_empty());
    assert_eq!(u.withdrawn, vec!["10.244.1.0/26".parse::<IpNet>().unwrap()]);
    // A MED of the wrong length (malformed optional attribute): likewise.
    let u = update(&hand_update(true, 3));
    assert_eq!(
        u.error_handling,
        Some(ErrorHandling::TreatAsWithdraw),
        "{u:?}"
    );
    assert!(u.announced.is_empty());
}

#[test]
fn a_broken_attribute_list_is_a_session_error() {
    let mut m = hand_update(true, 0);
    // Total path attribute length beyond the message.
    m[21..23].copy_from_slice(&500u16.to_be_bytes());
    let e = wire::decode(&m, S4).unwrap_err();
    assert_eq!(
        e.notification().error(),
        Some(BgpError::Update(UpdateError::MalformedAttributeList)),
        "{e:?}"
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any body behind a well-formed header, for every type: a message or the
        /// NOTIFICATION to send, never a panic.
        #[test]
        fn decoding_never_panics(ty in 1u8..=5, body in prop::collection::vec(any::<u8>(), 0..300), asn4 in any::<bool>()) {
            let mut m = vec![0xff; 16];
            m.extend(((19 + body.len()) as u16).to_be_bytes());
            m.push(ty);
            m.extend(&body);
            let _ = wire::decode(&m, Session { four_octet_as: asn4 });
        }

        /// Attribute lists of random TLVs behind real NLRI: never a panic, and either a
        /// NOTIFICATION or an UPDATE whose announcements survived only if well-formed.
        #[test]
        fn random_attribute_lists(attrs in prop::collection::vec((any::<u8>(), 1u8..20, prop::collection::vec(any::<u8>(), 0..12)), 0..6)) {
            let mut list = Vec::new();
            for (flags, ty, value) in &attrs {
                list.extend([flags & !0x10, *ty, value.len() as u8]);
                list.extend(value);
            }
            let nlri = [24u8, 10, 1, 2];
            let mut m = vec![0xff; 16];
            m.extend(((19 + 4 + list.len() + nlri.len()) as u16).to_be_bytes());
            m.push(2);
            m.extend([0, 0]);
            m.extend((list.len() as u16).to_be_bytes());
            m.extend(&list);
            m.extend(nlri);
            if let Ok(Message::Update(u)) = wire::decode(&m, S4) {
                prop_assert_eq!(u.announced.len() + u.withdrawn.len(), 1);
            }
        }
    }
}

/// `hand_update` with its NEXT_HOP's flags set to `flags`, and an extra attribute.
fn with_flags(next_hop_flags: u8, extra: &[u8]) -> Vec<u8> {
    let mut m = hand_update(true, 0);
    // The NEXT_HOP attribute starts after the header (19), withdrawn length (2), the
    // attribute length (2), ORIGIN (4) and AS_PATH (9).
    let at = 19 + 2 + 2 + 4 + 9;
    assert_eq!(m[at + 1], 3, "NEXT_HOP's type");
    m[at] = next_hop_flags;
    if !extra.is_empty() {
        let alen = u16::from_be_bytes([m[21], m[22]]) as usize + extra.len();
        m[21..23].copy_from_slice(&(alen as u16).to_be_bytes());
        let end = 23 + alen - extra.len();
        m.splice(end..end, extra.iter().copied());
        let len = m.len() as u16;
        m[16..18].copy_from_slice(&len.to_be_bytes());
    }
    m
}

#[test]
fn rfc7606_attribute_flag_errors_are_withdrawals_not_resets() {
    // NEXT_HOP must be well-known transitive (0x40): every other Optional / Transitive
    // combination is treat-as-withdraw (RFC 7606 §3 c), not a NOTIFICATION 3/1.
    for flags in [0x00, 0x80, 0xC0, 0x20] {
        let u = wire::decode(&with_flags(flags, &[]), S4)
            .map(|m| match m {
                Message::Update(u) => u,
                other => panic!("{other:?}"),
            })
            .unwrap_or_else(|e| panic!("NEXT_HOP flags {flags:#04x}: {e}"));
        assert_eq!(
            u.error_handling,
            Some(ErrorHandling::TreatAsWithdraw),
            "{flags:#04x}"
        );
        assert!(u.announced.is_empty());
        assert_eq!(u.withdrawn, vec!["10.244.1.0/26".parse::<IpNet>().unwrap()]);
    }
    // MED flagged well-known (0x40; it is optional non-transitive, 0x80): likewise.
    let u = update(&with_flags(0x40, &[0x40, 4, 4, 0, 0, 0, 7]));
    assert_eq!(u.error_handling, Some(ErrorHandling::TreatAsWithdraw));
    assert!(u.announced.is_empty());
    // The right flags: nothing to handle.
    assert_eq!(
        update(&with_flags(0x40, &[0x80, 4, 4, 0, 0, 0, 7])).error_handling,
        None
    );
}

#[test]
fn an_unrecognised_well_known_attribute_is_notification_3_2() {
    // RFC 4271 §6.3: flags 0x40 (well-known), type 99: the session ends, the attribute
    // is the NOTIFICATION's data.
    let attr = [0x40, 99, 2, 0xab, 0xcd];
    let e = wire::decode(&with_flags(0x40, &attr), S4).unwrap_err();
    let n = e.notification();
    assert_eq!(
        n.error(),
        Some(BgpError::Update(
            UpdateError::UnrecognizedWellKnownAttribute
        )),
        "{e:?}"
    );
    assert_eq!(n.data, attr);
    // The same type flagged optional transitive is taken (and passed over).
    let u = update(&with_flags(0x40, &[0xC0, 99, 2, 0xab, 0xcd]));
    assert_eq!(u.announced, vec!["10.244.1.0/26".parse::<IpNet>().unwrap()]);
}
