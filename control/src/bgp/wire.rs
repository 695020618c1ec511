//! BGP messages on the wire (RFC 4271 §4) as the speaker uses them.
//!
//! OPEN and UPDATE bodies are decoded and encoded by `netgauze-bgp-pkt` (why: see
//! docs/decisions.md); the 19-byte header, KEEPALIVE, NOTIFICATION and ROUTE-REFRESH are
//! small enough to frame by hand, which also lets every header error name the exact
//! NOTIFICATION RFC 4271 §6.1 asks for. Decoding never panics: any input gives either a
//! message or a [`DecodeError`], which names the NOTIFICATION to send.
//!
//! UPDATE errors follow RFC 7606 ([`ErrorHandling`]): a malformed optional attribute or a
//! missing mandatory one makes the message "treat-as-withdraw" (its announcements become
//! withdrawals); a broken attribute list, or a malformed MP_REACH / MP_UNREACH (whose
//! prefixes cannot be known), resets the session.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::path_attribute::{
    As4PathSegment, AsPath, AsPathSegmentType, ClusterId, ClusterList, Communities,
    LocalPreference, MpReach, MpUnreach, MultiExitDiscriminator, NextHop, Origin, Originator,
    PathAttribute, PathAttributeValue,
};
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_bgp_pkt::{community::Community, BgpMessage};
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use netgauze_parse_utils::WritablePdu;
use std::collections::HashMap;
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr};

pub use super::error::{DecodeError, ErrorHandling, Notification};
use super::rfc7606;

pub const HEADER_LEN: usize = 19;
pub const MAX_LEN: usize = 4096;
/// The 2-byte AS field's stand-in for a 4-byte AS number (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// Message types.
pub const OPEN: u8 = 1;
pub const UPDATE: u8 = 2;
pub const NOTIFICATION: u8 = 3;
pub const KEEPALIVE: u8 = 4;
pub const ROUTE_REFRESH: u8 = 5;

/// The address families we carry (unicast only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    fn address_type(self) -> AddressType {
        match self {
            Family::Ipv4 => AddressType::Ipv4Unicast,
            Family::Ipv6 => AddressType::Ipv6Unicast,
        }
    }

    fn from_address_type(t: AddressType) -> Option<Family> {
        match t {
            AddressType::Ipv4Unicast => Some(Family::Ipv4),
            AddressType::Ipv6Unicast => Some(Family::Ipv6),
            _ => None,
        }
    }

    /// (AFI, SAFI) as on the wire.
    pub fn afi_safi(self) -> (u16, u8) {
        match self {
            Family::Ipv4 => (1, 1),
            Family::Ipv6 => (2, 1),
        }
    }
}

/// What an OPEN says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The sender's AS (the 4-byte capability's value when present).
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub caps: Capabilities,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub four_octet_as: bool,
    /// Multiprotocol families (none listed: IPv4 unicast only, RFC 4760 §8).
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub graceful_restart: Option<GracefulRestart>,
}

/// The graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restarting: bool,
    pub restart_time: u16,
    /// Families whose forwarding state the sender kept (F bit per family).
    pub families: Vec<(Family, bool)>,
}

/// The path attributes the speaker uses. Other transitive attributes are not kept (we
/// do not re-advertise learnt routes except as a route reflector, which keeps these).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PathAttrs {
    /// 0 IGP, 1 EGP, 2 incomplete.
    pub origin: u8,
    /// AS_PATH flattened (AS_SET members included).
    pub as_path: Vec<u32>,
    /// Path length for the decision process: a set counts as one (RFC 4271 §9.1.2.2).
    pub as_path_len: u32,
    pub next_hop: Option<Ipv4Addr>,
    /// MP_REACH next hop (global; link-local dropped).
    pub mp_next_hop: Option<IpAddr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<u32>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
}

/// A decoded UPDATE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<IpNet>,
    pub announced: Vec<IpNet>,
    pub attrs: PathAttrs,
    /// An End-of-RIB marker (RFC 4724 §2) for this family.
    pub end_of_rib: Option<Family>,
    /// How RFC 7606 handled a malformed attribute (None: nothing was malformed). With
    /// `TreatAsWithdraw`, `announced` was moved into `withdrawn`.
    pub error_handling: Option<ErrorHandling>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(Family),
    /// A ROUTE-REFRESH for a family we do not carry (ignored, RFC 2918 §4).
    RouteRefreshOther,
}

/// How UPDATEs are read on this session (from the negotiated capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub four_octet_as: bool,
}

/// The length of the first message in `buf`, once its header is there: `Ok(None)` until
/// 19 bytes arrived; the header's NOTIFICATION when it is wrong.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16].iter().any(|&b| b != 0xff) {
        return Err(DecodeError::NotSynchronized);
    }
    let len = u16::from_be_bytes([buf[16], buf[17]]) as usize;
    let ty = buf[18];
    let bad_len = || DecodeError::BadLength([buf[16], buf[17]]);
    if !(HEADER_LEN..=MAX_LEN).contains(&len) {
        return Err(bad_len());
    }
    let ok = match ty {
        OPEN => len >= HEADER_LEN + 10,
        UPDATE => len >= HEADER_LEN + 4,
        NOTIFICATION => len >= HEADER_LEN + 2,
        KEEPALIVE => len == HEADER_LEN,
        ROUTE_REFRESH => len == HEADER_LEN + 4,
        _ => return Err(DecodeError::BadType(ty)),
    };
    if !ok {
        return Err(bad_len());
    }
    Ok(Some(len))
}

/// Decode one whole message (`frame_len` bytes).
pub fn decode(msg: &[u8], session: Session) -> Result<Message, DecodeError> {
    let Some(len) = frame_len(msg)? else {
        return Err(DecodeError::Truncated);
    };
    let msg = &msg[..len.min(msg.len())];
    if msg.len() < len {
        return Err(DecodeError::Truncated);
    }
    let body = &msg[HEADER_LEN..];
    match msg[18] {
        KEEPALIVE => Ok(Message::Keepalive),
        NOTIFICATION => Ok(Message::Notification(Notification {
            code: body[0],
            subcode: body[1],
            data: body[2..].to_vec(),
        })),
        ROUTE_REFRESH => {
            let afi = u16::from_be_bytes([body[0], body[1]]);
            Ok(match (afi, body[3]) {
                (1, 1) => Message::RouteRefresh(Family::Ipv4),
                (2, 1) => Message::RouteRefresh(Family::Ipv6),
                _ => Message::RouteRefreshOther,
            })
        }
        OPEN => decode_open(msg),
        _ => decode_update(msg, session),
    }
}

/// netgauze's parse, lenient with malformed path attributes (it lists them in the
/// returned context) and strict with the rest.
fn parse(msg: &[u8], asn4: bool) -> Result<(BgpMessage, BgpParsingContext), DecodeError> {
    let mut ctx = BgpParsingContext::new(
        asn4,
        HashMap::new(),
        HashMap::new(),
        false,
        false,
        false,
        false,
    );
    let parsed =
        BgpMessage::parse(&mut SliceReader::new(msg), &mut ctx).map_err(DecodeError::Parser)?;
    Ok((parsed, ctx))
}

fn decode_open(msg: &[u8]) -> Result<Message, DecodeError> {
    if msg[HEADER_LEN] != 4 {
        return Err(DecodeError::UnsupportedVersion(msg[HEADER_LEN]));
    }
    let (parsed, _) = parse(msg, true)?;
    let BgpMessage::Open(o) = parsed else {
        return Err(DecodeError::BadType(OPEN));
    };
    let mut caps = Capabilities::default();
    let mut asn = o.my_as() as u32;
    for c in o.capabilities() {
        match c {
            BgpCapability::FourOctetAs(f) => {
                caps.four_octet_as = true;
                asn = f.asn4();
            }
            BgpCapability::MultiProtocolExtensions(m) => {
                if let Some(f) = Family::from_address_type(m.address_type()) {
                    if !caps.families.contains(&f) {
                        caps.families.push(f);
                    }
                }
            }
            BgpCapability::RouteRefresh | BgpCapability::CiscoRouteRefresh => {
                caps.route_refresh = true
            }
            BgpCapability::GracefulRestartCapability(g) => {
                caps.graceful_restart = Some(GracefulRestart {
                    restarting: g.restart(),
                    restart_time: g.time(),
                    families: g
                        .address_families()
                        .iter()
                        .filter_map(|a| {
                            Family::from_address_type(a.address_type())
                                .map(|f| (f, a.forwarding_state()))
                        })
                        .collect(),
                })
            }
            _ => {}
        }
    }
    if caps.families.is_empty() {
        caps.families.push(Family::Ipv4);
    }
    Ok(Message::Open(Open {
        asn,
        hold_time: o.hold_time(),
        router_id: o.bgp_id(),
        caps,
    }))
}

/// RFC 7606 before the parser sees the message (`rfc7606::sanitize_attributes`): the
/// message to parse, with the attributes it took out removed, and how RFC 7606
/// handled them.
fn sanitize_update(
    msg: &[u8],
    session: Session,
) -> Result<(Vec<u8>, Option<ErrorHandling>), DecodeError> {
    let malformed = || DecodeError::MalformedAttributeList;
    let body = &msg[HEADER_LEN..];
    let wlen = u16::from_be_bytes([body[0], body[1]]) as usize;
    if 2 + wlen + 2 > body.len() {
        return Err(malformed());
    }
    let at = 2 + wlen;
    let alen = u16::from_be_bytes([body[at], body[at + 1]]) as usize;
    let attrs = body.get(at + 2..at + 2 + alen).ok_or_else(malformed)?;
    let Some((kept, handling)) = rfc7606::sanitize_attributes(attrs, session.four_octet_as)? else {
        return Ok((msg.to_vec(), None));
    };
    let mut out = msg[..HEADER_LEN + at].to_vec();
    out.extend_from_slice(&(kept.len() as u16).to_be_bytes());
    out.extend_from_slice(&kept);
    out.extend_from_slice(&body[at + 2 + alen..]);
    finish(&mut out);
    Ok((out, Some(handling)))
}

fn decode_update(msg: &[u8], session: Session) -> Result<Message, DecodeError> {
    let (clean, mut handling) = sanitize_update(msg, session)?;
    let msg = &clean[..];
    // Anything else malformed is skipped and listed by the parser (RFC 7606 below).
    let (parsed, ctx) = parse(msg, session.four_octet_as)?;
    let BgpMessage::Update(u) = parsed else {
        return Err(DecodeError::BadType(UPDATE));
    };
    use netgauze_bgp_pkt::wire::deserializer::path_attribute::PathAttributeParsingError as E;
    for e in ctx.parsing_errors().path_attr_errors() {
        handling = handling.max(Some(match e {
            E::MpReachErrorError(_) | E::MpUnreachErrorError(_) => ErrorHandling::SessionReset,
            _ => ErrorHandling::TreatAsWithdraw,
        }));
    }
    if handling == Some(ErrorHandling::SessionReset) {
        return Err(DecodeError::MalformedAttributeList);
    }
    let mut out = Update {
        end_of_rib: u.end_of_rib().and_then(Family::from_address_type),
        ..Update::default()
    };
    for w in u.withdraw_routes() {
        out.withdrawn.push(IpNet::V4(w.network().address()));
    }
    for n in u.nlri() {
        out.announced.push(IpNet::V4(n.network().address()));
    }
    let mut seen = (false, false, false); // ORIGIN, AS_PATH, NEXT_HOP
    for a in u.path_attributes() {
        match a.value() {
            PathAttributeValue::Origin(o) => {
                seen.0 = true;
                out.attrs.origin = *o as u8;
            }
            PathAttributeValue::AsPath(p) => {
                seen.1 = true;
                let (path, len) = flatten_as_path(p);
                out.attrs.as_path = path;
                out.attrs.as_path_len = len;
            }
            PathAttributeValue::NextHop(n) => {
                seen.2 = true;
                out.attrs.next_hop = Some(n.next_hop());
            }
            PathAttributeValue::MultiExitDiscriminator(m) => out.attrs.med = Some(m.metric()),
            PathAttributeValue::LocalPreference(l) => out.attrs.local_pref = Some(l.metric()),
            PathAttributeValue::Communities(c) => {
                out.attrs.communities = c.communities().iter().map(|c| c.value()).collect()
            }
            PathAttributeValue::Originator(o) => out.attrs.originator_id = Some(o.id()),
            PathAttributeValue::ClusterList(c) => {
                out.attrs.cluster_list = c.cluster_list().iter().map(|c| c.id()).collect()
            }
            PathAttributeValue::MpReach(MpReach::Ipv4Unicast { next_hop, nlri, .. }) => {
                out.attrs.mp_next_hop = Some(*next_hop);
                out.announced
                    .extend(nlri.iter().map(|n| IpNet::V4(n.network().address())));
            }
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                next_hop_global,
                nlri,
                ..
            }) => {
                out.attrs.mp_next_hop = Some(IpAddr::V6(*next_hop_global));
                out.announced
                    .extend(nlri.iter().map(|n| IpNet::V6(n.network().address())));
            }
            PathAttributeValue::MpUnreach(MpUnreach::Ipv4Unicast { nlri }) => out
                .withdrawn
                .extend(nlri.iter().map(|n| IpNet::V4(n.network().address()))),
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri }) => out
                .withdrawn
                .extend(nlri.iter().map(|n| IpNet::V6(n.network().address()))),
            _ => {}
        }
    }
    // RFC 7606 §3 (d) and §7: a missing mandatory attribute or a malformed one makes the
    // announcements withdrawals (NEXT_HOP is mandatory only with IPv4 body NLRI).
    let missing =
        !out.announced.is_empty() && (!seen.0 || !seen.1 || (!u.nlri().is_empty() && !seen.2));
    if missing {
        handling = handling.max(Some(ErrorHandling::TreatAsWithdraw));
    }
    if handling == Some(ErrorHandling::TreatAsWithdraw) {
        let announced = std::mem::take(&mut out.announced);
        out.withdrawn.extend(announced);
    }
    out.error_handling = handling;
    Ok(Message::Update(out))
}

fn flatten_as_path(p: &AsPath) -> (Vec<u32>, u32) {
    let mut path = Vec::new();
    let mut len = 0u32;
    let mut add = |ty: AsPathSegmentType, ases: &mut dyn Iterator<Item = u32>| {
        let before = path.len();
        path.extend(ases);
        len += match ty {
            AsPathSegmentType::AsSet => 1,
            _ => (path.len() - before) as u32,
        };
    };
    match p {
        AsPath::As2PathSegments(s) => s.iter().for_each(|s| {
            add(
                s.segment_type(),
                &mut s.as_numbers().iter().map(|&a| a as u32),
            )
        }),
        AsPath::As4PathSegments(s) => s
            .iter()
            .for_each(|s| add(s.segment_type(), &mut s.as_numbers().iter().copied())),
    }
    (path, len)
}

fn header(out: &mut Vec<u8>, ty: u8) {
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&[0, 0, ty]);
}

fn finish(out: &mut [u8]) {
    let len = out.len() as u16;
    out[16..18].copy_from_slice(&len.to_be_bytes());
}

pub fn keepalive() -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    header(&mut out, KEEPALIVE);
    finish(&mut out);
    out
}

pub fn notification(n: &Notification) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 2 + n.data.len());
    header(&mut out, NOTIFICATION);
    out.push(n.code);
    out.push(n.subcode);
    let room = MAX_LEN - HEADER_LEN - 2;
    out.extend_from_slice(&n.data[..n.data.len().min(room)]);
    finish(&mut out);
    out
}

pub fn route_refresh(f: Family) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 4);
    header(&mut out, ROUTE_REFRESH);
    let (afi, safi) = f.afi_safi();
    out.extend_from_slice(&afi.to_be_bytes());
    out.extend_from_slice(&[0, safi]);
    finish(&mut out);
    out
}

pub fn open(o: &Open) -> Vec<u8> {
    let mut caps = vec![BgpCapability::FourOctetAs(FourOctetAsCapability::new(
        o.asn,
    ))];
    for f in &o.caps.families {
        caps.push(BgpCapability::MultiProtocolExtensions(
            MultiProtocolExtensionsCapability::new(f.address_type()),
        ));
    }
    if o.caps.route_refresh {
        caps.push(BgpCapability::RouteRefresh);
    }
    if let Some(gr) = &o.caps.graceful_restart {
        caps.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(
                gr.restarting,
                false,
                gr.restart_time,
                gr.families
                    .iter()
                    .map(|&(f, fwd)| GracefulRestartAddressFamily::new(fwd, f.address_type()))
                    .collect::<Vec<_>>(),
            ),
        ));
    }
    let my_as = u16::try_from(o.asn).unwrap_or(AS_TRANS);
    let params: Vec<_> = caps
        .into_iter()
        .map(|c| BgpOpenMessageParameter::new_capabilities([c]))
        .collect();
    write(BgpMessage::Open(BgpOpenMessage::new(
        my_as,
        o.hold_time,
        o.router_id,
        params,
    )))
}

fn write(m: BgpMessage) -> Vec<u8> {
    let mut out = Vec::new();
    m.write(&mut Cursor::new(&mut out))
        .expect("a message we built is always writable");
    out
}

/// An attribute with its flags; the length is written in 2 bytes (extended length)
/// whenever it may exceed 255 (netgauze writes what the flag says).
fn attr(optional: bool, transitive: bool, v: PathAttributeValue) -> PathAttribute {
    let extended = match &v {
        PathAttributeValue::MpReach(_) | PathAttributeValue::MpUnreach(_) => true,
        PathAttributeValue::AsPath(AsPath::As4PathSegments(s)) => {
            s.iter()
                .map(|s| 2 + 4 * s.as_numbers().len())
                .sum::<usize>()
                > 255
        }
        PathAttributeValue::Communities(c) => 4 * c.communities().len() > 255,
        PathAttributeValue::ClusterList(c) => 4 * c.cluster_list().len() > 255,
        _ => false,
    };
    PathAttribute::from(optional, transitive, false, extended, v)
        .expect("attribute flags are fixed per type")
}

/// The attributes of our own announcements (without next hop / NLRI).
fn common_attrs(a: &PathAttrs, ibgp: bool) -> Vec<PathAttribute> {
    let origin = match a.origin {
        0 => Origin::IGP,
        1 => Origin::EGP,
        _ => Origin::Incomplete,
    };
    let mut v = vec![
        attr(false, true, PathAttributeValue::Origin(origin)),
        attr(
            false,
            true,
            PathAttributeValue::AsPath(AsPath::As4PathSegments(if a.as_path.is_empty() {
                Vec::new().into()
            } else {
                vec![As4PathSegment::new(
                    AsPathSegmentType::AsSequence,
                    a.as_path.clone(),
                )]
                .into()
            })),
        ),
    ];
    if let Some(m) = a.med {
        v.push(attr(
            true,
            false,
            PathAttributeValue::MultiExitDiscriminator(MultiExitDiscriminator::new(m)),
        ));
    }
    if ibgp {
        v.push(attr(
            false,
            true,
            PathAttributeValue::LocalPreference(LocalPreference::new(a.local_pref.unwrap_or(100))),
        ));
    }
    if !a.communities.is_empty() {
        let c: Vec<Community> = a.communities.iter().map(|&c| Community::new(c)).collect();
        v.push(attr(
            true,
            true,
            PathAttributeValue::Communities(Communities::new(c)),
        ));
    }
    if let Some(o) = a.originator_id {
        v.push(attr(
            true,
            false,
            PathAttributeValue::Originator(Originator::new(o)),
        ));
    }
    if !a.cluster_list.is_empty() {
        let c: Vec<ClusterId> = a.cluster_list.iter().map(|&c| ClusterId::new(c)).collect();
        v.push(attr(
            true,
            false,
            PathAttributeValue::ClusterList(ClusterList::new(c)),
        ));
    }
    v
}

/// Prefixes per UPDATE: an IPv4 /32 takes 5 bytes, an IPv6 /128 17; with attributes of
/// up to ~1 KB (long AS paths, cluster lists) this stays under 4096 bytes.
const V4_PER_MESSAGE: usize = 500;
const V6_PER_MESSAGE: usize = 150;

/// UPDATEs announcing `prefixes` (one family) with `attrs` and next hop `next_hop`.
pub fn announce(
    prefixes: &[IpNet],
    attrs: &PathAttrs,
    next_hop: IpAddr,
    ibgp: bool,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let (v4, v6) = split_nlri(prefixes);
    for chunk in v4.chunks(V4_PER_MESSAGE) {
        let mut attrs_v = common_attrs(attrs, ibgp);
        match next_hop {
            IpAddr::V4(nh) => {
                attrs_v.push(attr(
                    false,
                    true,
                    PathAttributeValue::NextHop(NextHop::new(nh)),
                ));
                out.push(write(BgpMessage::Update(BgpUpdateMessage::new(
                    Vec::new(),
                    attrs_v,
                    chunk.to_vec(),
                ))));
            }
            IpAddr::V6(_) => {
                out.push(mp_update(
                    attrs_v,
                    PathAttributeValue::MpReach(MpReach::Ipv4Unicast {
                        next_hop,
                        next_hop_local: None,
                        nlri: chunk.to_vec().into(),
                    }),
                ));
            }
        }
    }
    for chunk in v6.chunks(V6_PER_MESSAGE) {
        let global = match next_hop {
            IpAddr::V6(a) => a,
            // An IPv4 next hop for IPv6 routes: the IPv4-mapped form (RFC 4291 §2.5.5.2).
            IpAddr::V4(a) => a.to_ipv6_mapped(),
        };
        out.push(mp_update(
            common_attrs(attrs, ibgp),
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                next_hop_global: global,
                next_hop_local: None,
                nlri: chunk.to_vec().into(),
            }),
        ));
    }
    out
}

/// An UPDATE whose routes are all in its MP_REACH / MP_UNREACH attribute `mp`.
fn mp_update(mut attrs: Vec<PathAttribute>, mp: PathAttributeValue) -> Vec<u8> {
    attrs.push(attr(true, false, mp));
    write(BgpMessage::Update(BgpUpdateMessage::new(
        Vec::new(),
        attrs,
        Vec::new(),
    )))
}

/// UPDATEs withdrawing `prefixes`.
pub fn withdraw(prefixes: &[IpNet]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let (v4, v6) = split_nlri(prefixes);
    for chunk in v4.chunks(V4_PER_MESSAGE) {
        out.push(write(BgpMessage::Update(BgpUpdateMessage::new(
            chunk.to_vec(),
            Vec::new(),
            Vec::new(),
        ))));
    }
    for chunk in v6.chunks(V6_PER_MESSAGE) {
        out.push(mp_update(
            Vec::new(),
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast {
                nlri: chunk.to_vec().into(),
            }),
        ));
    }
    out
}

/// The End-of-RIB marker for a family (RFC 4724 §2).
pub fn end_of_rib(f: Family) -> Vec<u8> {
    match f {
        Family::Ipv4 => write(BgpMessage::Update(BgpUpdateMessage::new(
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ))),
        Family::Ipv6 => mp_update(
            Vec::new(),
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast {
                nlri: Vec::new().into(),
            }),
        ),
    }
}

/// `prefixes` as NLRI, per family.
fn split_nlri(prefixes: &[IpNet]) -> (Vec<Ipv4UnicastAddress>, Vec<Ipv6UnicastAddress>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for p in prefixes {
        match p {
            IpNet::V4(n) => v4.extend(v4_nlri(*n)),
            IpNet::V6(n) => v6.extend(v6_nlri(*n)),
        }
    }
    (v4, v6)
}

/// Multicast and class E networks are not unicast NLRI: they are left out, never
/// replaced by something else.
fn v4_nlri(n: Ipv4Net) -> Option<Ipv4UnicastAddress> {
    Some(Ipv4UnicastAddress::new(
        None,
        Ipv4Unicast::from_net(n.trunc()).ok()?,
    ))
}

fn v6_nlri(n: Ipv6Net) -> Option<Ipv6UnicastAddress> {
    Some(Ipv6UnicastAddress::new(
        None,
        Ipv6Unicast::from_net(n.trunc()).ok()?,
    ))
}
