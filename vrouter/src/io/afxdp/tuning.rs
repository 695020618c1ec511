//! What the kernel lets an AF_XDP socket choose, as `[afxdp]` in the configuration: the
//! depth of the fill rings, the RX batch, the frames sent per TX kick, need_wakeup, and
//! preferred busy polling (with the NAPI settings of the uplinks it relies on). The
//! defaults are what `fwdbench --afxdp-variant` measured best on veth (docs/decisions.md,
//! "AF_XDP options"); the others are there to measure again on other hosts and NICs.

use super::xsk::Socket;
use serde::{Deserialize, Serialize};

/// setsockopt(SOL_XDP, XDP_MAX_TX_SKB_BUDGET): frames sent per kick in copy mode.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tuning {
    /// Frames kept in an uplink's fill ring (64..=2048).
    pub uplink_fill: usize,
    /// Frames kept in a pod's fill ring (64..=2048). A TX kick in copy mode runs the
    /// receiving pod's stack inside the syscall, so a loop can take long; a pod's TCP
    /// burst must not empty its ring meanwhile (measured: 512 frames lost ~35k segments
    /// in 3 s of iperf3, 2048 none).
    pub pod_fill: usize,
    /// Frames taken from one RX ring per burst (1..=64).
    pub rx_batch: usize,
    /// Frames the kernel sends per TX kick in copy mode (32..=4096; 32 where the kernel
    /// lacks the option).
    pub tx_skb_budget: u32,
    /// Bind with XDP_USE_NEED_WAKEUP and kick only when the kernel asks.
    pub need_wakeup: bool,
    /// SO_BUSY_POLL (µs, 0: off). When on, an empty RX ring is polled with a recvfrom,
    /// which runs the device's NAPI in the worker.
    pub busy_poll_us: u32,
    /// SO_BUSY_POLL_BUDGET (0: the kernel's default, 8).
    pub busy_poll_budget: u16,
    /// SO_PREFER_BUSY_POLL: the device's softirq leaves its NAPI to the busy poller.
    pub prefer_busy_poll: bool,
    /// Written to each uplink's /sys/class/net/IF/napi_defer_hard_irqs when given.
    pub napi_defer_hard_irqs: Option<u32>,
    /// Written to each uplink's /sys/class/net/IF/gro_flush_timeout (ns) when given.
    pub gro_flush_timeout_ns: Option<u64>,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            uplink_fill: MAX_FILL,
            pod_fill: MAX_FILL,
            rx_batch: crate::burst::BURST,
            tx_skb_budget: 256,
            need_wakeup: false,
            busy_poll_us: 0,
            busy_poll_budget: 0,
            prefer_busy_poll: false,
            napi_defer_hard_irqs: None,
            gro_flush_timeout_ns: None,
        }
    }
}

/// The deepest fill ring: the UMEM is sized for it (`frames_needed`).
pub const MAX_FILL: usize = 2048;

impl Tuning {
    /// Out-of-range values, named as in the file.
    pub fn validate(&self) -> Result<(), String> {
        let range = |name: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("afxdp.{name} = {v}: must be {lo}..={hi}"))
            }
        };
        range("uplink_fill", self.uplink_fill as u64, 64, MAX_FILL as u64)?;
        range("pod_fill", self.pod_fill as u64, 64, MAX_FILL as u64)?;
        range(
            "rx_batch",
            self.rx_batch as u64,
            1,
            crate::burst::BURST as u64,
        )?;
        range("tx_skb_budget", self.tx_skb_budget as u64, 32, 4096)?;
        range("busy_poll_us", self.busy_poll_us as u64, 0, 1_000_000)?;
        if self.busy_poll_us == 0 && (self.prefer_busy_poll || self.busy_poll_budget != 0) {
            return Err(
                "afxdp.prefer_busy_poll and afxdp.busy_poll_budget need afxdp.busy_poll_us > 0"
                    .into(),
            );
        }
        Ok(())
    }

    /// Set this socket's options. Returns the frames one kick sends, and whether the
    /// worker busy-polls it (an error: busy polling was asked and the kernel refused).
    pub fn apply(&self, socket: &Socket) -> (usize, std::io::Result<bool>) {
        let budget = self.tx_skb_budget as libc::c_int;
        let per_kick = if socket
            .set_option(libc::SOL_XDP, XDP_MAX_TX_SKB_BUDGET, budget, "")
            .is_ok()
        {
            budget as usize
        } else {
            32
        };
        (per_kick, self.busy_poll(socket))
    }

    fn busy_poll(&self, socket: &Socket) -> std::io::Result<bool> {
        if self.busy_poll_us == 0 {
            return Ok(false);
        }
        socket.set_option(
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            self.busy_poll_us as libc::c_int,
            "setting SO_BUSY_POLL",
        )?;
        if self.prefer_busy_poll {
            socket.set_option(
                libc::SOL_SOCKET,
                libc::SO_PREFER_BUSY_POLL,
                1,
                "setting SO_PREFER_BUSY_POLL",
            )?;
        }
        if self.busy_poll_budget != 0 {
            socket.set_option(
                libc::SOL_SOCKET,
                libc::SO_BUSY_POLL_BUDGET,
                self.busy_poll_budget as libc::c_int,
                "setting SO_BUSY_POLL_BUDGET (needs CAP_NET_ADMIN above 8)",
            )?;
        }
        Ok(true)
    }

    /// The uplink's NAPI settings preferred busy polling relies on (sysfs, in the
    /// current network namespace). They are the interface's, not ours: the values found
    /// are written back when the returned guard drops (at shutdown).
    pub fn apply_napi(&self, ifname: &str) -> std::io::Result<NapiRestore> {
        let settings = [
            (
                "napi_defer_hard_irqs",
                self.napi_defer_hard_irqs.map(u64::from),
            ),
            ("gro_flush_timeout", self.gro_flush_timeout_ns),
        ];
        let mut restore = NapiRestore(Vec::new());
        for (file, value) in settings {
            if let Some(v) = value {
                let path = format!("/sys/class/net/{ifname}/{file}");
                let named = |e: std::io::Error| {
                    std::io::Error::new(e.kind(), format!("writing {path}: {e}"))
                };
                let old = std::fs::read_to_string(&path).map_err(named)?;
                std::fs::write(&path, v.to_string()).map_err(named)?;
                restore.0.push((path, old.trim().to_string()));
            }
        }
        Ok(restore)
    }
}

/// An uplink's NAPI settings as they were before [`Tuning::apply_napi`].
pub struct NapiRestore(Vec<(String, String)>);

impl Drop for NapiRestore {
    fn drop(&mut self) {
        for (path, old) in &self.0 {
            if let Err(e) = std::fs::write(path, old) {
                tracing::warn!(%path, error = %e, "could not restore");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ranges_are_named() {
        Tuning::default().validate().unwrap();
        let bad = Tuning {
            rx_batch: 65,
            ..Tuning::default()
        };
        assert!(bad.validate().unwrap_err().contains("afxdp.rx_batch = 65"));
        let bad = Tuning {
            uplink_fill: 4096,
            ..Tuning::default()
        };
        assert!(bad.validate().unwrap_err().contains("uplink_fill"));
        let bad = Tuning {
            prefer_busy_poll: true,
            ..Tuning::default()
        };
        assert!(bad.validate().unwrap_err().contains("busy_poll_us"));
    }

    #[test]
    fn napi_settings_are_written_and_restored() {
        // Any interface will do; the loopback exists in every namespace.
        let path = "/sys/class/net/lo/gro_flush_timeout";
        let Ok(before) = std::fs::read_to_string(path) else {
            panic!("{path} unreadable: sysfs is needed for this test");
        };
        let t = Tuning {
            gro_flush_timeout_ns: Some(123_000),
            ..Tuning::default()
        };
        match t.apply_napi("lo") {
            Ok(guard) => {
                assert_eq!(std::fs::read_to_string(path).unwrap().trim(), "123000");
                drop(guard);
                assert_eq!(std::fs::read_to_string(path).unwrap(), before);
            }
            // Not root: the write is refused and named.
            Err(e) => assert!(e.to_string().contains(path), "{e}"),
        }
        assert!(
            Tuning::default().apply_napi("no-such-if").is_ok(),
            "nothing asked"
        );
        let asked = Tuning {
            napi_defer_hard_irqs: Some(2),
            ..Tuning::default()
        };
        assert!(asked.apply_napi("no-such-if").is_err());
    }

    #[test]
    fn parses_from_toml_with_defaults() {
        let t: Tuning = toml::from_str("busy_poll_us = 20\nprefer_busy_poll = true\n").unwrap();
        assert_eq!(t.busy_poll_us, 20);
        assert!(t.prefer_busy_poll);
        assert_eq!(t.uplink_fill, MAX_FILL);
        assert!(toml::from_str::<Tuning>("busy_pol = 1\n").is_err());
    }
}
