//! NAT outgoing's ports and the kernel's: the node's own connections must never use a
//! port of the NAT range, or the uplink's XDP program would steer their replies to us.
//! The kernel picks a connection's local port from `ip_local_port_range` (32768–60999 by
//! default) less `ip_local_reserved_ports`; so while NAT is on, vrouterd adds the part of
//! the NAT range that overlaps the former to the latter (and takes it out again when NAT
//! goes off or vrouterd stops). Both files are per network namespace.

use crate::conntrack::snat::kernel_ports_clear;
use std::io;
use std::ops::RangeInclusive;
use std::path::PathBuf;

const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const RESERVED: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The NAT range's reservation in this network namespace.
#[derive(Debug)]
pub struct NatPorts {
    pub range: RangeInclusive<u16>,
    /// What `ip_local_reserved_ports` held before we added to it (Some: we did).
    before: Option<String>,
    pub on: bool,
    dir: PathBuf,
}

/// `lo-hi` ranges of a reserved-ports list ("1000,2000-2100"). None: unreadable.
pub fn parse_ports(text: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        if lo > hi {
            return None;
        }
        out.push((lo, hi));
    }
    Some(out)
}

/// The ports of `want` that `have` does not cover, as ranges.
fn uncovered(want: (u16, u16), have: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut gaps = Vec::new();
    let mut at = u32::from(want.0);
    let mut sorted = have.to_vec();
    sorted.sort_unstable();
    for (lo, hi) in sorted {
        let (lo, hi) = (u32::from(lo), u32::from(hi));
        if hi < at || lo > u32::from(want.1) {
            continue;
        }
        if lo > at {
            gaps.push((at as u16, (lo - 1) as u16));
        }
        at = at.max(hi + 1);
    }
    if at <= u32::from(want.1) {
        gaps.push((at as u16, want.1));
    }
    gaps
}

impl NatPorts {
    pub fn new(range: RangeInclusive<u16>) -> NatPorts {
        Self::at(range, PathBuf::from("/"))
    }

    /// The same over another root (tests).
    pub fn at(range: RangeInclusive<u16>, root: PathBuf) -> NatPorts {
        NatPorts {
            range,
            before: None,
            on: false,
            dir: root,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p.trim_start_matches('/'))
    }

    /// The kernel's ephemeral ports.
    pub fn kernel_range(&self) -> io::Result<(u16, u16)> {
        let text = std::fs::read_to_string(self.path(PORT_RANGE))?;
        let mut it = text.split_whitespace().map(|w| w.parse::<u16>());
        match (it.next(), it.next()) {
            (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Ok((lo, hi)),
            _ => Err(io::Error::other(format!(
                "{PORT_RANGE}: unreadable {text:?}"
            ))),
        }
    }

    /// NAT on: the kernel must keep off the range. Fails (and changes nothing) when the
    /// reservation cannot be made.
    pub fn reserve(&mut self) -> io::Result<()> {
        let (klo, khi) = self.kernel_range()?;
        let (lo, hi) = (*self.range.start(), *self.range.end());
        self.on = true;
        if kernel_ports_clear((klo, khi), &self.range) {
            return Ok(());
        }
        // Only the overlap with the kernel's ephemeral ports needs reserving.
        let (olo, ohi) = (lo.max(klo), hi.min(khi));
        let path = self.path(RESERVED);
        let before = std::fs::read_to_string(&path)?.trim().to_string();
        let have = parse_ports(&before)
            .ok_or_else(|| io::Error::other(format!("{RESERVED}: unreadable {before:?}")))?;
        let gaps = uncovered((olo, ohi), &have);
        if gaps.is_empty() {
            return Ok(());
        }
        let mut list: Vec<String> = (!before.is_empty())
            .then(|| before.clone())
            .into_iter()
            .collect();
        list.extend(gaps.iter().map(|(a, b)| format!("{a}-{b}")));
        let write = std::fs::write(&path, list.join(","));
        let now = std::fs::read_to_string(&path).unwrap_or_default();
        let covered = parse_ports(&now).is_some_and(|h| uncovered((olo, ohi), &h).is_empty());
        if write.is_err() || !covered {
            self.on = false;
            return Err(io::Error::other(format!(
                "NAT ports {lo}-{hi} overlap the kernel's ephemeral ports {klo}-{khi} and \
                 cannot be reserved in {RESERVED} ({}); narrow ip_local_port_range or \
                 [conntrack] nat_ports",
                write
                    .err()
                    .map_or("not taken".to_string(), |e| e.to_string())
            )));
        }
        self.before = Some(before);
        Ok(())
    }

    /// NAT off (or vrouterd stopping): the reservation we made goes.
    pub fn release(&mut self) {
        self.on = false;
        if let Some(before) = self.before.take() {
            // A newline, not nothing: an empty write never reaches the kernel.
            let _ = std::fs::write(self.path(RESERVED), format!("{before}\n"));
        }
    }
}

impl Drop for NatPorts {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(range: &str, reserved: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("proc/sys/net/ipv4");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ip_local_port_range"), range).unwrap();
        std::fs::write(dir.join("ip_local_reserved_ports"), reserved).unwrap();
        d
    }

    fn reserved(d: &tempfile::TempDir) -> String {
        std::fs::read_to_string(d.path().join("proc/sys/net/ipv4/ip_local_reserved_ports")).unwrap()
    }

    #[test]
    fn the_default_range_needs_no_reservation() {
        let d = root("32768\t60999\n", "\n");
        let mut n = NatPorts::at(61000..=65535, d.path().into());
        n.reserve().unwrap();
        assert!(n.on);
        assert_eq!(reserved(&d), "\n");
    }

    #[test]
    fn an_overlap_is_reserved_then_given_back() {
        let d = root("32768\t60999\n", "8080,50000-50100\n");
        let mut n = NatPorts::at(45000..=65535, d.path().into());
        n.reserve().unwrap();
        assert_eq!(reserved(&d), "8080,50000-50100,45000-49999,50101-60999");
        drop(n);
        assert_eq!(reserved(&d), "8080,50000-50100\n");
    }

    #[test]
    fn gaps_and_garbage() {
        assert_eq!(
            uncovered((10, 20), &[(12, 13), (15, 30)]),
            vec![(10, 11), (14, 14)]
        );
        assert_eq!(uncovered((10, 20), &[(0, 65535)]), vec![]);
        assert_eq!(parse_ports("1-2,x"), None);
        assert_eq!(parse_ports("5-4"), None);
        let d = root("garbage", "");
        assert!(NatPorts::at(45000..=65535, d.path().into())
            .reserve()
            .is_err());
    }
}
