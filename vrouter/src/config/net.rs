//! Prefixes as the configuration spells them (`10.244.0.0/16`), with errors that say
//! what is wrong: ipnet's own reads "invalid IP address syntax" for a length of 33.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use std::net::IpAddr;

/// Parse `ADDRESS/LENGTH`; an error names the part that is wrong.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse() {
        return Ok(net);
    }
    let Some((addr, len)) = s.split_once('/') else {
        return Err(format!("{s:?}: not a prefix (ADDRESS/LENGTH)"));
    };
    let max = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => 32,
        Ok(IpAddr::V6(_)) => 128,
        Err(e) => return Err(format!("{s:?}: address {addr:?}: {e}")),
    };
    Err(match len.parse::<u32>() {
        Ok(l) if l > max => format!("{s:?}: prefix length {l} is longer than {max}"),
        _ => format!("{s:?}: prefix length {len:?} is not a number from 0 to {max}"),
    })
}

/// `deserialize_with` for one prefix.
pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    let s = String::deserialize(d)?;
    parse_net(&s).map_err(serde::de::Error::custom)
}

/// `deserialize_with` for a list of prefixes.
pub fn many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_net(s).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(
            parse_net("10.244.0.0/16").unwrap(),
            "10.244.0.0/16".parse::<IpNet>().unwrap()
        );
        let e = parse_net("10.244.0.0/33").unwrap_err();
        assert!(e.contains("prefix length 33 is longer than 32"), "{e}");
        let e = parse_net("fd00::/129").unwrap_err();
        assert!(e.contains("prefix length 129 is longer than 128"), "{e}");
        let e = parse_net("10.244.0.0/x").unwrap_err();
        assert!(e.contains("prefix length \"x\" is not a number"), "{e}");
        let e = parse_net("10.244.0.300/16").unwrap_err();
        assert!(e.contains("address \"10.244.0.300\""), "{e}");
        assert!(parse_net("10.244.0.0")
            .unwrap_err()
            .contains("ADDRESS/LENGTH"));
    }
}
