//! vrouterd's log: `[log] level` (an `EnvFilter` directive such as
//! `info,control::speaker=debug`; `RUST_LOG` wins when set) and `format` (`text`, or
//! `json`: one object per line), plain text off a terminal; the level can be changed
//! while running (`vrouterctl log level`, or a reload of the file).

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default = "default_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_level() -> String {
    "info".into()
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: default_level(),
            format: LogFormat::Text,
        }
    }
}

/// A level directive, checked: an error names what is wrong.
pub fn parse_level(directive: &str) -> Result<EnvFilter, String> {
    if directive.trim().is_empty() {
        return Err("log level: empty (say e.g. \"info\" or \"info,control=debug\")".into());
    }
    EnvFilter::builder()
        .parse(directive)
        .map_err(|e| format!("log level {directive:?}: {e}"))
}

/// The running filter and what it was made from.
struct Live {
    handle: reload::Handle<EnvFilter, Registry>,
    level: std::sync::Mutex<String>,
}

static LIVE: OnceLock<Live> = OnceLock::new();

type Sub = Box<dyn tracing::Subscriber + Send + Sync>;

/// The subscriber: filtered by `level` (an invalid one: info), to `writer`, ANSI
/// colours only when `ansi`, JSON lines with `LogFormat::Json`; and the handle that
/// changes its level.
pub fn subscriber<W>(
    level: &str,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> (Sub, reload::Handle<EnvFilter, Registry>)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = parse_level(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let base = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let sub: Sub = match format {
        LogFormat::Json => Box::new(base.with(fmt.json().with_ansi(false))),
        LogFormat::Text => Box::new(base.with(fmt.with_ansi(ansi))),
    };
    (sub, handle)
}

/// Install the process's subscriber (once; later calls are no-ops): `RUST_LOG` when
/// set, else the setting's level.
pub fn init(settings: &LogSettings) {
    use std::io::IsTerminal;
    let level = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| settings.level.clone());
    let ansi = std::io::stderr().is_terminal();
    let (sub, handle) = subscriber(&level, settings.format, ansi, std::io::stderr);
    if tracing::subscriber::set_global_default(sub).is_ok() {
        let _ = LIVE.set(Live {
            handle,
            level: std::sync::Mutex::new(level),
        });
    }
}

/// The level now in force ("" when no subscriber of ours is installed).
pub fn level() -> String {
    LIVE.get()
        .map(|l| l.level.lock().unwrap().clone())
        .unwrap_or_default()
}

/// Change the level while running; returns the previous one.
pub fn set_level(directive: &str) -> Result<String, String> {
    let filter = parse_level(directive)?;
    let live = LIVE
        .get()
        .ok_or("this process's log is not vrouterd's own (no level to change)")?;
    live.handle
        .reload(filter)
        .map_err(|e| format!("log level: {e}"))?;
    let mut l = live.level.lock().unwrap();
    Ok(std::mem::replace(&mut *l, directive.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(
        settings: &LogSettings,
        ansi: bool,
        f: impl FnOnce(&reload::Handle<EnvFilter, Registry>),
    ) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let (sub, handle) = subscriber(&settings.level, settings.format, ansi, move || out.clone());
        tracing::subscriber::with_default(sub, || f(&handle));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn logs_are_plain_off_a_terminal_and_json_on_request() {
        let text = LogSettings::default();
        let warn = |_: &reload::Handle<EnvFilter, Registry>| {
            tracing::warn!(peer = "10.0.0.2", "session down");
        };
        let plain = logged(&text, false, warn);
        assert!(
            plain.contains("session down") && !plain.contains('\x1b'),
            "{plain}"
        );
        assert!(
            logged(&text, true, warn).contains('\x1b'),
            "colours on a terminal"
        );
        let json = LogSettings {
            format: LogFormat::Json,
            ..LogSettings::default()
        };
        let line = logged(&json, true, warn);
        let v: serde_json::Value = serde_json::from_str(line.trim()).expect(&line);
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["fields"]["message"], "session down");
        assert_eq!(v["fields"]["peer"], "10.0.0.2");
    }

    #[test]
    fn the_level_changes_while_running() {
        let warn_only = LogSettings {
            level: "warn".into(),
            ..LogSettings::default()
        };
        let text = logged(&warn_only, false, |h| {
            tracing::info!("before");
            h.reload(parse_level("info").unwrap()).unwrap();
            tracing::info!("after");
        });
        assert!(!text.contains("before") && text.contains("after"), "{text}");
        assert!(parse_level("info,control=debug").is_ok());
        let e = parse_level("info,control=loud").unwrap_err();
        assert!(e.contains("loud"), "{e}");
        assert!(parse_level(" ").is_err());
    }
}
