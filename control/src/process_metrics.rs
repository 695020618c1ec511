//! The process series every Prometheus exporter has, named and meant as in the official
//! clients' process collector (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`), read from /proc; and a `<prefix>_build_info` gauge.

use crate::metrics::{Exposition, Kind};
use std::io;

/// What /proc says about this process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    /// Seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// The fields of /proc/PID/stat this module uses, in clock ticks and pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
    vsize: u64,
    rss_pages: u64,
}

/// Parse /proc/PID/stat. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so the fields are counted from the last ')'.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here: utime is field 14, so index 11.
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let num = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(Stat {
        utime: num(11)?,
        stime: num(12)?,
        starttime: num(19)?,
        vsize: num(20)?,
        rss_pages: num(21)?,
    })
}

/// The boot time (seconds since the epoch) from /proc/stat's `btime` line.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {what}"))
}

/// Read this process's figures.
pub fn read() -> io::Result<ProcessStats> {
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat")?)
        .ok_or_else(|| invalid("/proc/self/stat"))?;
    let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat")?)
        .ok_or_else(|| invalid("btime in /proc/stat"))?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as u64;
    let open_fds = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    Ok(ProcessStats {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: stat.rss_pages * page,
        virtual_bytes: stat.vsize,
        open_fds,
        max_fds: limit.current.unwrap_or(u64::MAX),
        start_time_seconds: boot as f64 + stat.starttime as f64 / ticks,
    })
}

/// Append the process families (when /proc can be read: otherwise none, rather than
/// zeros that would read as figures) and `<prefix>_build_info` with `labels`.
pub fn write(x: &mut Exposition, prefix: &str, labels: &[(&str, &str)]) {
    if let Ok(p) = read() {
        let families: [(&str, &str, Kind, f64); 6] = [
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                Kind::Counter,
                p.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Kind::Gauge,
                p.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Kind::Gauge,
                p.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                Kind::Gauge,
                p.open_fds as f64,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                Kind::Gauge,
                p.max_fds as f64,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                Kind::Gauge,
                p.start_time_seconds,
            ),
        ];
        for (name, help, kind, value) in families {
            x.family(name, help, kind);
            x.sample(&[], value);
        }
    }
    x.family(
        &format!("{prefix}_build_info"),
        "Always 1; the labels say which build is running.",
        Kind::Gauge,
    );
    x.sample(labels, 1u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with a space and a ')' inside, as a process may name itself.
        let line = "4242 (vr outerd) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 3 0 12345 987654321 2048 18446744073709551615 1 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 250,
                stime: 50,
                starttime: 12345,
                vsize: 987654321,
                rss_pages: 2048,
            })
        );
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn boot_time_is_read_from_btime() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1764800000\nprocesses 5\n"),
            Some(1_764_800_000)
        );
        assert_eq!(parse_boot_time("cpu  1 2 3\n"), None);
    }

    #[test]
    fn this_process_reads_as_itself() {
        let _file = std::fs::File::open("/proc/self/stat").unwrap(); // one fd at least
        let p = read().unwrap();
        assert!(p.resident_bytes > 1 << 20, "{p:?}");
        assert!(p.virtual_bytes >= p.resident_bytes, "{p:?}");
        assert!(p.open_fds >= 1 && p.open_fds <= p.max_fds, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Started before now, and not before this test binary could have been built.
        assert!(
            p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0,
            "{p:?} now {now}"
        );
        assert!(p.cpu_seconds >= 0.0);
    }

    #[test]
    fn the_families_are_written_with_the_build_labels() {
        let mut x = Exposition::new();
        write(
            &mut x,
            "vrouter",
            &[("version", "1.2.3"), ("profile", "debug")],
        );
        let text = x.finish();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
        }
        assert!(
            text.contains("vrouter_build_info{version=\"1.2.3\",profile=\"debug\"} 1"),
            "{text}"
        );
    }
}
