//! BGP errors as the protocol names them: the NOTIFICATION's error code and subcode
//! (RFC 4271 §4.5 and §6, names as in the IANA "BGP Error (Notification) Codes"
//! registry), the reasons a message fails to decode, and the one mapping from such a
//! reason (netgauze's parse errors included) to the NOTIFICATION to send.
//!
//! RFC 7606's answer to a malformed UPDATE attribute is an [`ErrorHandling`].

use netgauze_bgp_pkt::notification as ng;
use netgauze_bgp_pkt::notification::BgpNotificationMessage;
use netgauze_bgp_pkt::wire::deserializer::BgpMessageParsingError;
use std::fmt;

/// An enum of wire values with their registry names.
macro_rules! registry {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $value:literal => $text:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $(#[doc = $text] $variant = $value,)+
        }

        impl $name {
            pub fn from_u8(value: u8) -> Option<$name> {
                match value {
                    $($value => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The name in the IANA registry.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

registry! {
    /// NOTIFICATION error codes.
    ErrorCode {
        MessageHeader = 1 => "Message Header Error",
        Open = 2 => "OPEN Message Error",
        Update = 3 => "UPDATE Message Error",
        HoldTimerExpired = 4 => "Hold Timer Expired",
        Fsm = 5 => "Finite State Machine Error",
        Cease = 6 => "Cease",
        RouteRefresh = 7 => "ROUTE-REFRESH Message Error",
        SendHoldTimerExpired = 8 => "Send Hold Timer Expired",
    }
}

registry! {
    /// Message Header Error subcodes (RFC 4271 §6.1).
    HeaderError {
        Unspecific = 0 => "Unspecific",
        ConnectionNotSynchronized = 1 => "Connection Not Synchronized",
        BadMessageLength = 2 => "Bad Message Length",
        BadMessageType = 3 => "Bad Message Type",
    }
}

registry! {
    /// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492, RFC 9234).
    OpenError {
        Unspecific = 0 => "Unspecific",
        UnsupportedVersionNumber = 1 => "Unsupported Version Number",
        BadPeerAs = 2 => "Bad Peer AS",
        BadBgpIdentifier = 3 => "Bad BGP Identifier",
        UnsupportedOptionalParameter = 4 => "Unsupported Optional Parameter",
        UnacceptableHoldTime = 6 => "Unacceptable Hold Time",
        UnsupportedCapability = 7 => "Unsupported Capability",
        RoleMismatch = 11 => "Role Mismatch",
    }
}

registry! {
    /// UPDATE Message Error subcodes (RFC 4271 §6.3).
    UpdateError {
        Unspecific = 0 => "Unspecific",
        MalformedAttributeList = 1 => "Malformed Attribute List",
        UnrecognizedWellKnownAttribute = 2 => "Unrecognized Well-known Attribute",
        MissingWellKnownAttribute = 3 => "Missing Well-known Attribute",
        AttributeFlagsError = 4 => "Attribute Flags Error",
        AttributeLengthError = 5 => "Attribute Length Error",
        InvalidOriginAttribute = 6 => "Invalid ORIGIN Attribute",
        InvalidNextHopAttribute = 8 => "Invalid NEXT_HOP Attribute",
        OptionalAttributeError = 9 => "Optional Attribute Error",
        InvalidNetworkField = 10 => "Invalid Network Field",
        MalformedAsPath = 11 => "Malformed AS_PATH",
    }
}

registry! {
    /// Finite State Machine Error subcodes (RFC 6608).
    FsmError {
        Unspecified = 0 => "Unspecified Error",
        UnexpectedInOpenSent = 1 => "Receive Unexpected Message in OpenSent State",
        UnexpectedInOpenConfirm = 2 => "Receive Unexpected Message in OpenConfirm State",
        UnexpectedInEstablished = 3 => "Receive Unexpected Message in Established State",
    }
}

registry! {
    /// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
    CeaseError {
        MaximumPrefixesReached = 1 => "Maximum Number of Prefixes Reached",
        AdministrativeShutdown = 2 => "Administrative Shutdown",
        PeerDeconfigured = 3 => "Peer De-configured",
        AdministrativeReset = 4 => "Administrative Reset",
        ConnectionRejected = 5 => "Connection Rejected",
        OtherConfigurationChange = 6 => "Other Configuration Change",
        ConnectionCollisionResolution = 7 => "Connection Collision Resolution",
        OutOfResources = 8 => "Out of Resources",
        HardReset = 9 => "Hard Reset",
        BfdDown = 10 => "BFD Down",
    }
}

registry! {
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313).
    RouteRefreshError {
        InvalidMessageLength = 1 => "Invalid Message Length",
    }
}

/// A NOTIFICATION's error: its code and, for codes that have them, the subcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BgpError {
    MessageHeader(HeaderError),
    Open(OpenError),
    Update(UpdateError),
    HoldTimerExpired,
    Fsm(FsmError),
    Cease(CeaseError),
    RouteRefresh(RouteRefreshError),
    SendHoldTimerExpired,
}

impl BgpError {
    pub fn code(self) -> ErrorCode {
        match self {
            BgpError::MessageHeader(_) => ErrorCode::MessageHeader,
            BgpError::Open(_) => ErrorCode::Open,
            BgpError::Update(_) => ErrorCode::Update,
            BgpError::HoldTimerExpired => ErrorCode::HoldTimerExpired,
            BgpError::Fsm(_) => ErrorCode::Fsm,
            BgpError::Cease(_) => ErrorCode::Cease,
            BgpError::RouteRefresh(_) => ErrorCode::RouteRefresh,
            BgpError::SendHoldTimerExpired => ErrorCode::SendHoldTimerExpired,
        }
    }

    /// The subcode on the wire (0 for codes without subcodes).
    pub fn subcode(self) -> u8 {
        match self {
            BgpError::MessageHeader(s) => s as u8,
            BgpError::Open(s) => s as u8,
            BgpError::Update(s) => s as u8,
            BgpError::Fsm(s) => s as u8,
            BgpError::Cease(s) => s as u8,
            BgpError::RouteRefresh(s) => s as u8,
            BgpError::HoldTimerExpired | BgpError::SendHoldTimerExpired => 0,
        }
    }

    /// The error a received code and subcode stand for (None: not in the registry).
    pub fn from_wire(code: u8, subcode: u8) -> Option<BgpError> {
        Some(match ErrorCode::from_u8(code)? {
            ErrorCode::MessageHeader => BgpError::MessageHeader(HeaderError::from_u8(subcode)?),
            ErrorCode::Open => BgpError::Open(OpenError::from_u8(subcode)?),
            ErrorCode::Update => BgpError::Update(UpdateError::from_u8(subcode)?),
            ErrorCode::Fsm => BgpError::Fsm(FsmError::from_u8(subcode)?),
            ErrorCode::Cease => BgpError::Cease(CeaseError::from_u8(subcode)?),
            ErrorCode::RouteRefresh => BgpError::RouteRefresh(RouteRefreshError::from_u8(subcode)?),
            ErrorCode::HoldTimerExpired if subcode == 0 => BgpError::HoldTimerExpired,
            ErrorCode::SendHoldTimerExpired if subcode == 0 => BgpError::SendHoldTimerExpired,
            ErrorCode::HoldTimerExpired | ErrorCode::SendHoldTimerExpired => return None,
        })
    }

    fn subcode_name(self) -> Option<&'static str> {
        match self {
            BgpError::MessageHeader(s) => Some(s.name()),
            BgpError::Open(s) => Some(s.name()),
            BgpError::Update(s) => Some(s.name()),
            BgpError::Fsm(s) => Some(s.name()),
            BgpError::Cease(s) => Some(s.name()),
            BgpError::RouteRefresh(s) => Some(s.name()),
            BgpError::HoldTimerExpired | BgpError::SendHoldTimerExpired => None,
        }
    }
}

/// "UPDATE Message Error / Malformed AS_PATH"; "Hold Timer Expired".
impl fmt::Display for BgpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subcode_name() {
            Some(sub) => write!(f, "{} / {sub}", self.code()),
            None => write!(f, "{}", self.code()),
        }
    }
}

/// A NOTIFICATION (RFC 4271 §4.5) as on the wire: a received one may carry a code or
/// subcode we do not know, so the numbers are kept; [`Notification::error`] names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(error: BgpError, data: impl Into<Vec<u8>>) -> Notification {
        Notification {
            code: error.code() as u8,
            subcode: error.subcode(),
            data: data.into(),
        }
    }

    /// The error it reports (None: a code or subcode outside the registry).
    pub fn error(&self) -> Option<BgpError> {
        BgpError::from_wire(self.code, self.subcode)
    }
}

/// The error's names when known, its numbers otherwise ("Cease / subcode 0").
impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.error(), ErrorCode::from_u8(self.code)) {
            (Some(e), _) => e.fmt(f),
            (None, Some(code)) => write!(f, "{code} / subcode {}", self.subcode),
            (None, None) => write!(f, "error code {} / subcode {}", self.code, self.subcode),
        }
    }
}

/// Why a received message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The marker is not all ones.
    NotSynchronized,
    /// The header's length field (as received) is out of range for the message type.
    BadLength([u8; 2]),
    /// Fewer bytes than a message header says (a caller's framing error).
    Truncated,
    BadType(u8),
    /// An OPEN of another version than 4.
    UnsupportedVersion(u8),
    /// An UPDATE's attribute list does not add up, or its MP_REACH / MP_UNREACH is
    /// malformed (RFC 7606 §4, §5.3): a session reset.
    MalformedAttributeList,
    /// An attribute flagged well-known (Optional bit clear) of a type we do not know
    /// (RFC 4271 §6.3): the attribute as received, the NOTIFICATION's data.
    UnrecognizedWellKnown(Vec<u8>),
    /// netgauze refused the message.
    Parser(BgpMessageParsingError),
}

impl DecodeError {
    /// The NOTIFICATION that tells the peer (RFC 4271 §6).
    pub fn notification(&self) -> Notification {
        use BgpError::*;
        match self {
            DecodeError::NotSynchronized => {
                Notification::new(MessageHeader(HeaderError::ConnectionNotSynchronized), [])
            }
            DecodeError::BadLength(field) => {
                Notification::new(MessageHeader(HeaderError::BadMessageLength), *field)
            }
            DecodeError::Truncated => {
                Notification::new(MessageHeader(HeaderError::BadMessageLength), [])
            }
            DecodeError::BadType(ty) => {
                Notification::new(MessageHeader(HeaderError::BadMessageType), [*ty])
            }
            // The data is the largest version we support (§6.2).
            DecodeError::UnsupportedVersion(_) => {
                Notification::new(Open(OpenError::UnsupportedVersionNumber), [0, 4])
            }
            DecodeError::MalformedAttributeList => {
                Notification::new(Update(UpdateError::MalformedAttributeList), [])
            }
            DecodeError::UnrecognizedWellKnown(attr) => Notification::new(
                Update(UpdateError::UnrecognizedWellKnownAttribute),
                attr.clone(),
            ),
            DecodeError::Parser(e) => from_netgauze(BgpNotificationMessage::from(e.clone())),
        }
    }
}

impl From<DecodeError> for Notification {
    fn from(e: DecodeError) -> Notification {
        e.notification()
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotSynchronized => f.write_str("marker not all ones"),
            DecodeError::BadLength(l) => {
                write!(f, "bad message length {}", u16::from_be_bytes(*l))
            }
            DecodeError::Truncated => f.write_str("message shorter than its header says"),
            DecodeError::BadType(t) => write!(f, "bad message type {t}"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported BGP version {v}"),
            DecodeError::MalformedAttributeList => f.write_str("malformed attribute list"),
            DecodeError::UnrecognizedWellKnown(a) => write!(
                f,
                "unrecognized well-known attribute type {}",
                a.get(1).copied().unwrap_or(0)
            ),
            DecodeError::Parser(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}

/// netgauze's choice of NOTIFICATION for its parse errors, in our terms.
fn from_netgauze(n: BgpNotificationMessage) -> Notification {
    use BgpError as E;
    use BgpNotificationMessage as N;
    let (error, data) = match n {
        N::MessageHeaderError(e) => match e {
            ng::MessageHeaderError::Unspecific { value } => {
                (E::MessageHeader(HeaderError::Unspecific), value)
            }
            ng::MessageHeaderError::ConnectionNotSynchronized { value } => (
                E::MessageHeader(HeaderError::ConnectionNotSynchronized),
                value,
            ),
            ng::MessageHeaderError::BadMessageLength { value } => {
                (E::MessageHeader(HeaderError::BadMessageLength), value)
            }
            ng::MessageHeaderError::BadMessageType { value } => {
                (E::MessageHeader(HeaderError::BadMessageType), value)
            }
        },
        N::OpenMessageError(e) => {
            use ng::OpenMessageError as O;
            let (sub, value) = match e {
                O::Unspecific { value } => (OpenError::Unspecific, value),
                O::UnsupportedVersionNumber { value } => {
                    (OpenError::UnsupportedVersionNumber, value)
                }
                O::BadPeerAs { value } => (OpenError::BadPeerAs, value),
                O::BadBgpIdentifier { value } => (OpenError::BadBgpIdentifier, value),
                O::UnsupportedOptionalParameter { value } => {
                    (OpenError::UnsupportedOptionalParameter, value)
                }
                O::UnacceptableHoldTime { value } => (OpenError::UnacceptableHoldTime, value),
                O::UnsupportedCapability { value } => (OpenError::UnsupportedCapability, value),
                O::RoleMismatch { value } => (OpenError::RoleMismatch, value),
            };
            (E::Open(sub), value)
        }
        N::UpdateMessageError(e) => {
            use ng::UpdateMessageError as U;
            let (sub, value) = match e {
                U::Unspecific { value } => (UpdateError::Unspecific, value),
                U::MalformedAttributeList { value } => (UpdateError::MalformedAttributeList, value),
                U::UnrecognizedWellKnownAttribute { value } => {
                    (UpdateError::UnrecognizedWellKnownAttribute, value)
                }
                U::MissingWellKnownAttribute { value } => {
                    (UpdateError::MissingWellKnownAttribute, value)
                }
                U::AttributeFlagsError { value } => (UpdateError::AttributeFlagsError, value),
                U::AttributeLengthError { value } => (UpdateError::AttributeLengthError, value),
                U::InvalidOriginAttribute { value } => (UpdateError::InvalidOriginAttribute, value),
                U::InvalidNextHopAttribute { value } => {
                    (UpdateError::InvalidNextHopAttribute, value)
                }
                U::OptionalAttributeError { value } => (UpdateError::OptionalAttributeError, value),
                U::InvalidNetworkField { value } => (UpdateError::InvalidNetworkField, value),
                U::MalformedAsPath { value } => (UpdateError::MalformedAsPath, value),
            };
            (E::Update(sub), value)
        }
        // netgauze keeps a subcode here that the registry does not define: kept as sent.
        N::HoldTimerExpiredError(ng::HoldTimerExpiredError::Unspecific { sub_code, value }) => {
            return Notification {
                code: ErrorCode::HoldTimerExpired as u8,
                subcode: sub_code,
                data: value.into(),
            }
        }
        N::FiniteStateMachineError(e) => {
            use ng::FiniteStateMachineError as F;
            let (sub, value) = match e {
                F::Unspecific { value } => (FsmError::Unspecified, value),
                F::ReceiveUnexpectedMessageInOpenSentState { value } => {
                    (FsmError::UnexpectedInOpenSent, value)
                }
                F::ReceiveUnexpectedMessageInOpenConfirmState { value } => {
                    (FsmError::UnexpectedInOpenConfirm, value)
                }
                F::ReceiveUnexpectedMessageInEstablishedState { value } => {
                    (FsmError::UnexpectedInEstablished, value)
                }
            };
            (E::Fsm(sub), value)
        }
        N::CeaseError(e) => {
            use ng::CeaseError as C;
            let (sub, value) = match e {
                C::MaximumNumberOfPrefixesReached { value } => {
                    (CeaseError::MaximumPrefixesReached, value)
                }
                C::AdministrativeShutdown { value } => (CeaseError::AdministrativeShutdown, value),
                C::PeerDeConfigured { value } => (CeaseError::PeerDeconfigured, value),
                C::AdministrativeReset { value } => (CeaseError::AdministrativeReset, value),
                C::ConnectionRejected { value } => (CeaseError::ConnectionRejected, value),
                C::OtherConfigurationChange { value } => {
                    (CeaseError::OtherConfigurationChange, value)
                }
                C::ConnectionCollisionResolution { value } => {
                    (CeaseError::ConnectionCollisionResolution, value)
                }
                C::OutOfResources { value } => (CeaseError::OutOfResources, value),
                C::HardReset { value } => (CeaseError::HardReset, value),
                C::BfdDown { value } => (CeaseError::BfdDown, value),
            };
            (E::Cease(sub), value)
        }
        N::RouteRefreshError(ng::RouteRefreshError::InvalidMessageLength { value }) => (
            E::RouteRefresh(RouteRefreshError::InvalidMessageLength),
            value,
        ),
    };
    Notification::new(error, data)
}

/// How a malformed UPDATE is handled (RFC 7606 §2), from the mildest approach to the
/// strongest; an UPDATE with several malformed attributes gets the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorHandling {
    /// "Attribute discard": the attribute is dropped, the rest of the UPDATE used.
    Discard,
    /// "Treat-as-withdraw": the UPDATE's announcements are withdrawals.
    TreatAsWithdraw,
    /// The session is reset with a NOTIFICATION (Malformed Attribute List).
    SessionReset,
}

impl ErrorHandling {
    /// What a malformed attribute of this type calls for: RFC 7606 §7's rules, one row
    /// per attribute.
    ///
    /// | type | attribute | §7 | handling |
    /// |---|---|---|---|
    /// | 1 | ORIGIN | 7.1 | treat-as-withdraw |
    /// | 2 | AS_PATH | 7.2 | treat-as-withdraw |
    /// | 3 | NEXT_HOP | 7.3 | treat-as-withdraw |
    /// | 4 | MULTI_EXIT_DISC | 7.4 | treat-as-withdraw |
    /// | 5 | LOCAL_PREF | 7.5 | treat-as-withdraw (from eBGP it is ignored anyway) |
    /// | 6 | ATOMIC_AGGREGATE | 7.6 | attribute discard |
    /// | 7 | AGGREGATOR | 7.7 | attribute discard |
    /// | 8 | COMMUNITIES | 7.8 | treat-as-withdraw |
    /// | 9 | ORIGINATOR_ID | 7.9 | treat-as-withdraw |
    /// | 10 | CLUSTER_LIST | 7.10 | treat-as-withdraw |
    /// | 14, 15 | MP_REACH / MP_UNREACH_NLRI | 7.11 (§5.3) | session reset: the prefixes are unknown |
    /// | 16 | EXTENDED COMMUNITIES | 7.14 | treat-as-withdraw |
    /// | 17, 18 | AS4_PATH / AS4_AGGREGATOR | 7.13 (RFC 6793 §6) | attribute discard |
    /// | 32 | LARGE_COMMUNITY | (RFC 8092 §6) | treat-as-withdraw |
    /// | other | unrecognized optional | §3 | treat-as-withdraw |
    pub fn of_malformed(attribute_type: u8) -> ErrorHandling {
        match attribute_type {
            6 | 7 | 17 | 18 => ErrorHandling::Discard,
            14 | 15 => ErrorHandling::SessionReset,
            _ => ErrorHandling::TreatAsWithdraw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_the_registry_names() {
        assert_eq!(
            BgpError::Update(UpdateError::MalformedAsPath).to_string(),
            "UPDATE Message Error / Malformed AS_PATH"
        );
        assert_eq!(
            BgpError::Cease(CeaseError::PeerDeconfigured).to_string(),
            "Cease / Peer De-configured"
        );
        assert_eq!(BgpError::HoldTimerExpired.to_string(), "Hold Timer Expired");
        assert_eq!(
            BgpError::Fsm(FsmError::UnexpectedInOpenSent).to_string(),
            "Finite State Machine Error / Receive Unexpected Message in OpenSent State"
        );
        let unknown_sub = Notification {
            code: 6,
            subcode: 0,
            data: Vec::new(),
        };
        assert_eq!(unknown_sub.to_string(), "Cease / subcode 0");
        let unknown = Notification {
            code: 42,
            subcode: 1,
            data: Vec::new(),
        };
        assert_eq!(unknown.to_string(), "error code 42 / subcode 1");
    }

    #[test]
    fn codes_and_subcodes_are_the_wire_values() {
        let cases = [
            (BgpError::MessageHeader(HeaderError::BadMessageType), 1, 3),
            (BgpError::Open(OpenError::UnacceptableHoldTime), 2, 6),
            (BgpError::Update(UpdateError::MalformedAsPath), 3, 11),
            (BgpError::HoldTimerExpired, 4, 0),
            (BgpError::Fsm(FsmError::UnexpectedInEstablished), 5, 3),
            (
                BgpError::Cease(CeaseError::ConnectionCollisionResolution),
                6,
                7,
            ),
            (
                BgpError::RouteRefresh(RouteRefreshError::InvalidMessageLength),
                7,
                1,
            ),
            (BgpError::SendHoldTimerExpired, 8, 0),
        ];
        for (e, code, sub) in cases {
            assert_eq!((e.code() as u8, e.subcode()), (code, sub), "{e}");
            assert_eq!(BgpError::from_wire(code, sub), Some(e));
        }
        // Every value both ways.
        for code in 0..=255 {
            for sub in 0..=255 {
                if let Some(e) = BgpError::from_wire(code, sub) {
                    assert_eq!((e.code() as u8, e.subcode()), (code, sub));
                }
            }
        }
        assert_eq!(BgpError::from_wire(4, 1), None);
        assert_eq!(BgpError::from_wire(3, 7), None, "deprecated subcode");
    }

    #[test]
    fn decode_errors_map_to_their_notifications() {
        let n = |e: DecodeError| {
            let n = Notification::from(e);
            (n.error(), n.data)
        };
        use BgpError::*;
        assert_eq!(
            n(DecodeError::NotSynchronized),
            (
                Some(MessageHeader(HeaderError::ConnectionNotSynchronized)),
                vec![]
            )
        );
        assert_eq!(
            n(DecodeError::BadLength([0x13, 0x88])),
            (
                Some(MessageHeader(HeaderError::BadMessageLength)),
                vec![0x13, 0x88]
            )
        );
        assert_eq!(
            n(DecodeError::Truncated),
            (Some(MessageHeader(HeaderError::BadMessageLength)), vec![])
        );
        assert_eq!(
            n(DecodeError::BadType(9)),
            (Some(MessageHeader(HeaderError::BadMessageType)), vec![9])
        );
        assert_eq!(
            n(DecodeError::UnsupportedVersion(3)),
            (Some(Open(OpenError::UnsupportedVersionNumber)), vec![0, 4])
        );
        assert_eq!(
            n(DecodeError::MalformedAttributeList),
            (Some(Update(UpdateError::MalformedAttributeList)), vec![])
        );
    }

    /// netgauze's errors map as its own serialiser writes them (what this crate used to
    /// do: write one and read the bytes back).
    #[test]
    fn netgauze_notifications_map_as_netgauze_writes_them() {
        use netgauze_parse_utils::WritablePdu;
        let v = || -> Box<[u8]> { vec![1, 2].into() };
        let all = [
            N::MessageHeaderError(ng::MessageHeaderError::Unspecific { value: v() }),
            N::MessageHeaderError(ng::MessageHeaderError::BadMessageType { value: v() }),
            N::OpenMessageError(ng::OpenMessageError::UnsupportedCapability { value: v() }),
            N::OpenMessageError(ng::OpenMessageError::RoleMismatch { value: v() }),
            N::UpdateMessageError(ng::UpdateMessageError::MalformedAsPath { value: v() }),
            N::UpdateMessageError(ng::UpdateMessageError::InvalidNextHopAttribute { value: v() }),
            N::UpdateMessageError(ng::UpdateMessageError::OptionalAttributeError { value: v() }),
            N::HoldTimerExpiredError(ng::HoldTimerExpiredError::Unspecific {
                sub_code: 0,
                value: v(),
            }),
            N::FiniteStateMachineError(ng::FiniteStateMachineError::Unspecific { value: v() }),
            N::CeaseError(ng::CeaseError::PeerDeConfigured { value: v() }),
            N::CeaseError(ng::CeaseError::BfdDown { value: v() }),
            N::RouteRefreshError(ng::RouteRefreshError::InvalidMessageLength { value: v() }),
        ];
        use BgpNotificationMessage as N;
        for n in all {
            let mut bytes = Vec::new();
            netgauze_bgp_pkt::BgpMessage::Notification(n.clone())
                .write(&mut std::io::Cursor::new(&mut bytes))
                .unwrap();
            let ours = from_netgauze(n);
            assert_eq!(
                (ours.code, ours.subcode, &ours.data[..]),
                (bytes[19], bytes[20], &bytes[21..])
            );
            assert!(ours.error().is_some(), "{ours:?}");
        }
    }

    #[test]
    fn rfc7606_handling_per_attribute() {
        use ErrorHandling::*;
        // One row per line of the table on `of_malformed` (RFC 7606 §7).
        let rows = [
            (1, TreatAsWithdraw),
            (2, TreatAsWithdraw),
            (3, TreatAsWithdraw),
            (4, TreatAsWithdraw),
            (5, TreatAsWithdraw),
            (6, Discard),
            (7, Discard),
            (8, TreatAsWithdraw),
            (9, TreatAsWithdraw),
            (10, TreatAsWithdraw),
            (14, SessionReset),
            (15, SessionReset),
            (16, TreatAsWithdraw),
            (17, Discard),
            (18, Discard),
            (32, TreatAsWithdraw),
            (99, TreatAsWithdraw),
        ];
        for (ty, want) in rows {
            assert_eq!(ErrorHandling::of_malformed(ty), want, "attribute type {ty}");
        }
        assert!(ErrorHandling::Discard < ErrorHandling::TreatAsWithdraw);
        assert!(ErrorHandling::TreatAsWithdraw < ErrorHandling::SessionReset);
    }
}
