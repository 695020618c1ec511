//! RFC 7606's first pass over an UPDATE's path attributes, before the parser sees them:
//! what is taken out (flags in conflict with the type, wrong lengths, repeats) and how
//! that is handled, per attribute (`ErrorHandling::of_malformed`, §7's table).

use super::error::{DecodeError, ErrorHandling};

/// Walk an UPDATE's attribute list: take out attributes whose flags conflict with their
/// type's (§3 c) or whose length is wrong for it (§7), and repeated ones (§3 g: the
/// first is kept). `None`: nothing taken out; else the attributes kept and how RFC 7606
/// handled what was taken out. A list that does not add up, or an attribute calling
/// for a session reset, is a session error (§4, §5.3); an unrecognised well-known
/// attribute is NOTIFICATION 3/2 (RFC 4271 §6.3).
pub fn sanitize_attributes(
    attrs: &[u8],
    four_octet_as: bool,
) -> Result<Option<(Vec<u8>, ErrorHandling)>, DecodeError> {
    let malformed = || DecodeError::MalformedAttributeList;
    let mut kept = Vec::with_capacity(attrs.len());
    let mut seen = [false; 256];
    let mut handling: Option<ErrorHandling> = None;
    let mut i = 0;
    while i < attrs.len() {
        if i + 3 > attrs.len() {
            return Err(malformed());
        }
        let (flags, ty) = (attrs[i], attrs[i + 1]);
        let (hdr, len) = if flags & 0x10 != 0 {
            if i + 4 > attrs.len() {
                return Err(malformed());
            }
            (4, u16::from_be_bytes([attrs[i + 2], attrs[i + 3]]) as usize)
        } else {
            (3, attrs[i + 2] as usize)
        };
        let end = i + hdr + len;
        if end > attrs.len() {
            return Err(malformed());
        }
        let value = &attrs[i + hdr..end];
        let expected = expected_flags(ty);
        if expected.is_none() && flags & OPTIONAL == 0 {
            // RFC 4271 §6.3: a well-known attribute we do not know.
            return Err(DecodeError::UnrecognizedWellKnown(attrs[i..end].to_vec()));
        }
        // RFC 7606 §3 (c): Optional or Transitive bits in conflict with the type's.
        let flags_ok = expected.is_none_or(|f| flags & (OPTIONAL | TRANSITIVE) == f);
        let well_formed = flags_ok
            && match ty {
                1 => len == 1 && value[0] <= 2,
                2 => as_path_ok(value, if four_octet_as { 4 } else { 2 }),
                3 | 4 | 5 | 9 => len == 4,
                6 => len == 0,
                7 => len == if four_octet_as { 8 } else { 6 },
                8 | 10 => len % 4 == 0,
                _ => true,
            };
        let repeated = seen[ty as usize] && ty != 14 && ty != 15;
        seen[ty as usize] = true;
        if !well_formed {
            handling = handling.max(Some(ErrorHandling::of_malformed(ty)));
        } else if repeated {
            handling = handling.max(Some(ErrorHandling::Discard));
        } else {
            kept.extend_from_slice(&attrs[i..end]);
        }
        i = end;
    }
    match handling {
        None => Ok(None),
        Some(ErrorHandling::SessionReset) => Err(malformed()),
        Some(h) => Ok(Some((kept, h))),
    }
}
const OPTIONAL: u8 = 0x80;
const TRANSITIVE: u8 = 0x40;

/// The Optional and Transitive bits an attribute we recognise must carry (RFC 4271
/// §5: the well-known ones 0x40; RFC 4271, 4456, 4760: optional non-transitive 0x80;
/// RFC 4271, 1997, 4360, 6793, 8092: optional transitive 0xC0). `None`: a type we do
/// not recognise.
pub fn expected_flags(ty: u8) -> Option<u8> {
    Some(match ty {
        1 | 2 | 3 | 5 | 6 => TRANSITIVE,
        4 | 9 | 10 | 14 | 15 => OPTIONAL,
        7 | 8 | 16 | 17 | 18 | 32 => OPTIONAL | TRANSITIVE,
        _ => return None,
    })
}

/// AS_PATH segments that add up (type 1..=4, count, `width`-byte ASes).
fn as_path_ok(mut v: &[u8], width: usize) -> bool {
    while !v.is_empty() {
        if v.len() < 2 || !(1..=4).contains(&v[0]) || v[1] == 0 {
            return false;
        }
        let n = 2 + v[1] as usize * width;
        if v.len() < n {
            return false;
        }
        v = &v[n..];
    }
    true
}
