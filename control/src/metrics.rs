//! Prometheus metrics and health probes: a writer for the Prometheus text exposition
//! format (version 0.0.4) and a tiny HTTP/1.1 server that serves `GET /metrics`,
//! `GET /livez` and `GET /readyz` for scrapers and orchestrators.
//!
//! Both are hand-written on purpose. The format is a few lines of escaping rules, and
//! the server answers three fixed GET routes with `Connection: close`: reading one
//! request head, bounded in size and time, and writing one response is all it does. A
//! client library or hyper would be a large dependency tree for that, and the server
//! runs on its own current-thread runtime ([`spawn_server`]), like the BGP speaker,
//! so it never competes with the poll-mode workers.
//!
//! ```text
//! let mut e = Exposition::new();
//! e.family("vrouter_rx_packets_total", "Frames received.", Kind::Counter)
//!     .sample(&[("worker", "0")], 1027u64)
//!     .sample(&[("worker", "1")], 998u64);
//! e.family("vrouter_fib_routes", "Routes in the FIB.", Kind::Gauge)
//!     .sample(&[], 1076806u64);
//! let text = e.finish();
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ---------------------------------------------------------------------------------
// Exposition format
// ---------------------------------------------------------------------------------

/// A metric family's type (the `# TYPE` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (reset on restart). Named with a `_total` suffix by convention.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets (`_bucket{le=…}`), `_sum` and `_count` (see `histogram`).
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample's value; built from the integer and float types with `From`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Unsigned(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Unsigned(v.into())
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Unsigned(v as u64)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Signed(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Signed(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

/// Writes the Prometheus text exposition format (version 0.0.4).
///
/// [`family`](Self::family) declares a family (its `# HELP` and `# TYPE` lines) and
/// selects it; [`sample`](Self::sample) adds a sample to the selected family. Declaring
/// a family again selects it again: its samples stay grouped under its one pair of
/// `# HELP` / `# TYPE` lines, families in the order they were first declared.
///
/// Names are the caller's: metric names must match `[a-zA-Z_:][a-zA-Z0-9_:]*`, counters
/// end in `_total`, label names match `[a-zA-Z_][a-zA-Z0-9_]*` without a leading `__`
/// (checked by `debug_assert!`). Label values and help texts are escaped here.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
    by_name: HashMap<String, usize>,
    current: Option<usize>,
}

#[derive(Debug)]
struct Family {
    name: String,
    kind: Kind,
    /// `# HELP`, `# TYPE` and the samples so far, each line ending in `\n`.
    text: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the family `name` (or selects it again if already declared) and makes
    /// it the one [`sample`](Self::sample) adds to.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Self {
        debug_assert!(valid_metric_name(name), "invalid metric name {name:?}");
        debug_assert!(
            kind != Kind::Counter || name.ends_with("_total"),
            "counter {name:?} should end in _total"
        );
        if let Some(&i) = self.by_name.get(name) {
            debug_assert_eq!(
                self.families[i].kind, kind,
                "family {name:?} declared again with another type"
            );
            self.current = Some(i);
            return self;
        }
        let mut text = String::with_capacity(64 + name.len() * 2 + help.len());
        text.push_str("# HELP ");
        text.push_str(name);
        text.push(' ');
        escape_into(&mut text, help, false);
        text.push_str("\n# TYPE ");
        text.push_str(name);
        text.push(' ');
        text.push_str(kind.as_str());
        text.push('\n');
        let i = self.families.len();
        self.families.push(Family {
            name: name.to_owned(),
            kind,
            text,
        });
        self.by_name.insert(name.to_owned(), i);
        self.current = Some(i);
        self
    }

    /// Adds a sample (`name{labels} value`) to the selected family. Label values are
    /// escaped; labels are written in the order given.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) -> &mut Self {
        self.sample_named("", labels, value)
    }

    /// A sample of the selected family named with a suffix (`_bucket`, `_sum`,
    /// `_count` of a histogram).
    pub fn sample_named(
        &mut self,
        suffix: &str,
        labels: &[(&str, &str)],
        value: impl Into<Value>,
    ) -> &mut Self {
        let Some(i) = self.current else {
            debug_assert!(false, "Exposition::sample before any family");
            return self;
        };
        let Family { name, text, .. } = &mut self.families[i];
        text.push_str(name);
        text.push_str(suffix);
        if !labels.is_empty() {
            text.push('{');
            for (k, (label, value)) in labels.iter().enumerate() {
                debug_assert!(valid_label_name(label), "invalid label name {label:?}");
                debug_assert!(
                    labels[..k].iter().all(|(l, _)| l != label),
                    "label {label:?} given twice"
                );
                if k > 0 {
                    text.push(',');
                }
                text.push_str(label);
                text.push_str("=\"");
                escape_into(text, value, true);
                text.push('"');
            }
            text.push('}');
        }
        text.push(' ');
        write_value(text, value.into());
        text.push('\n');
        self
    }

    /// The exposition text: every family's lines, in the order first declared.
    pub fn finish(self) -> String {
        let len = self.families.iter().map(|f| f.text.len()).sum();
        let mut out = String::with_capacity(len);
        for f in &self.families {
            out.push_str(&f.text);
        }
        out
    }
}

/// Escapes `\` and newline (help texts), and `"` too in label values.
fn escape_into(out: &mut String, s: &str, label_value: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label_value => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Integers as they are; floats in the shortest form that reads back the same (an
/// exponent when very large or small), and `NaN`, `+Inf`, `-Inf` as Prometheus spells
/// them.
fn write_value(out: &mut String, v: Value) {
    // Writing to a String cannot fail.
    let _ = match v {
        Value::Unsigned(n) => write!(out, "{n}"),
        Value::Signed(n) => write!(out, "{n}"),
        Value::Float(x) if x.is_nan() => write!(out, "NaN"),
        Value::Float(x) if x.is_infinite() => {
            write!(out, "{}", if x > 0.0 { "+Inf" } else { "-Inf" })
        }
        Value::Float(x) if x != 0.0 && !(1e-6..1e15).contains(&x.abs()) => write!(out, "{x:e}"),
        Value::Float(x) => write!(out, "{x}"),
    };
}

fn valid_metric_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !name.starts_with("__")
}

// ---------------------------------------------------------------------------------
// HTTP server
// ---------------------------------------------------------------------------------

/// What the server asks the daemon. Every call runs on a blocking thread
/// (`spawn_blocking`) under a time limit, so an implementation may block briefly, e.g.
/// to ask another thread over a std channel; a call that panics or does not answer in
/// time is an error response (500 / 503), never the server's end.
pub trait HealthSource: Send + Sync + 'static {
    /// The body of `GET /metrics`, in the text exposition format ([`Exposition`]).
    fn metrics(&self) -> String;
    /// `GET /livez`: the process makes progress (else it should be restarted).
    fn live(&self) -> bool;
    /// `GET /readyz`: the node forwards and its control plane is up.
    fn ready(&self) -> bool;
    /// Why it is not ready, if it can say (the body of a 503 from `/readyz`).
    fn not_ready_reason(&self) -> Option<String> {
        None
    }
}

/// The most bytes read for a request head (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The most connections handled at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Limits {
    /// To receive the whole request head.
    head: Duration,
    /// For one call into the [`HealthSource`].
    source: Duration,
    /// For the whole connection.
    connection: Duration,
    /// After the response, to read what the client still sends before closing (so that
    /// unread input does not turn our close into a reset that loses the response).
    linger: Duration,
}

const LIMITS: Limits = Limits {
    head: Duration::from_secs(5),
    source: Duration::from_secs(5),
    connection: Duration::from_secs(20),
    linger: Duration::from_secs(1),
};

/// Serves `GET /metrics`, `/livez` and `/readyz` on `listener`, one task per
/// connection, one request per connection. Never returns.
pub async fn serve(listener: TcpListener, source: Arc<dyn HealthSource>) {
    serve_with(listener, source, LIMITS).await
}

/// Binds `addr` (an error names it) and serves on it ([`serve`]) from a thread named
/// `metrics` running a current-thread runtime. Returns the bound address (port 0 picks
/// one) and the thread, which runs until the process ends.
pub fn spawn_server(
    addr: SocketAddr,
    source: Arc<dyn HealthSource>,
) -> io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .thread_name("metrics-source")
        .build()?;
    let listener = rt
        .block_on(TcpListener::bind(addr))
        .map_err(|e| io::Error::new(e.kind(), format!("metrics listener on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || rt.block_on(serve(listener, source)))?;
    Ok((local, thread))
}

async fn serve_with(listener: TcpListener, source: Arc<dyn HealthSource>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, or a connection aborted before accept: retry soon.
                warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!("metrics: {peer}: too many connections, closed");
            continue;
        };
        let source = source.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(limits.connection, connection(stream, source, limits)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!("metrics: {peer}: {e}"),
                Err(_) => debug!("metrics: {peer}: connection timed out"),
            }
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    source: Arc<dyn HealthSource>,
    limits: Limits,
) -> io::Result<()> {
    let response = match tokio::time::timeout(limits.head, read_head(&mut stream)).await {
        Err(_) => Response::text(408, "request timeout\n"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Head::Closed)) => return Ok(()),
        Ok(Ok(Head::Bad(status))) => Response::text(status, "bad request\n"),
        Ok(Ok(Head::Request(req))) => respond(&req, &source, limits.source).await,
    };
    stream.write_all(&response.encode()).await?;
    stream.shutdown().await?;
    let _ = tokio::time::timeout(limits.linger, async {
        let mut sink = [0u8; 1024];
        let mut left = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    })
    .await;
    Ok(())
}

enum Head {
    /// Closed before sending a byte.
    Closed,
    /// Not a request we can read: the status to answer.
    Bad(u16),
    Request(Request),
}

async fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(if len == 0 {
                Head::Closed
            } else {
                Head::Bad(400)
            });
        }
        len += n;
        match parse_head(&buf[..len]) {
            Parsed::Complete(req) => return Ok(Head::Request(req)),
            Parsed::Invalid => return Ok(Head::Bad(400)),
            Parsed::Incomplete if len == MAX_HEAD => return Ok(Head::Bad(431)),
            Parsed::Incomplete => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    method: String,
    /// The target's path, without query or fragment.
    path: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Incomplete,
    Invalid,
    Complete(Request),
}

/// Parses a request head (HTTP/1.0 or 1.1: request line, header lines, empty line;
/// CRLF or bare LF line ends) from the bytes received so far. Answers `Invalid` as soon
/// as what has arrived cannot begin a valid head. Header values are not interpreted.
fn parse_head(buf: &[u8]) -> Parsed {
    let mut rest = buf;
    // A server should ignore empty lines before the request line (RFC 9112, 2.2).
    while let [b'\r', b'\n', r @ ..] | [b'\n', r @ ..] = rest {
        rest = r;
    }
    let Some((line, mut rest)) = next_line(rest) else {
        // Not a line yet: garbage (a TLS hello, binary) fails now rather than at the
        // size or time limit.
        let bad = rest
            .iter()
            .any(|&c| c != b'\r' && !(0x20..0x7f).contains(&c));
        return if bad {
            Parsed::Invalid
        } else {
            Parsed::Incomplete
        };
    };
    let Some(req) = parse_request_line(line) else {
        return Parsed::Invalid;
    };
    loop {
        let Some((line, r)) = next_line(rest) else {
            return Parsed::Incomplete;
        };
        if line.is_empty() {
            return Parsed::Complete(req);
        }
        if !valid_header_line(line) {
            return Parsed::Invalid;
        }
        rest = r;
    }
}

/// The next line without its LF or CRLF, and what follows it.
fn next_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b'\n')?;
    let line = &b[..i];
    Some((line.strip_suffix(b"\r").unwrap_or(line), &b[i + 1..]))
}

fn parse_request_line(line: &[u8]) -> Option<Request> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(is_tchar)
        || !(version == "HTTP/1.1" || version == "HTTP/1.0")
        || target.is_empty()
        || !target.bytes().all(|c| c.is_ascii_graphic())
    {
        return None;
    }
    let path = if target.starts_with('/') || target == "*" {
        target
    } else {
        // Absolute form (`http://host/path`), which a server must accept too.
        let (_, after) = target.split_once("://")?;
        after.find('/').map_or("/", |i| &after[i..])
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    Some(Request {
        method: method.to_owned(),
        path: path.to_owned(),
    })
}

/// `name: value`: a token name directly before the colon (no whitespace, no obs-fold),
/// a value without control characters other than tab.
fn valid_header_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&c| c == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    !name.is_empty()
        && name.iter().all(|&c| is_tchar(c))
        && value
            .iter()
            .all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7f))
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: u16, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            _ => "Service Unavailable",
        };
        let allow = if self.status == 405 {
            "Allow: GET\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}\
             Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

#[derive(Clone, Copy)]
enum Route {
    Metrics,
    Live,
    Ready,
}

async fn respond(req: &Request, source: &Arc<dyn HealthSource>, limit: Duration) -> Response {
    let route = match req.path.as_str() {
        "/metrics" => Route::Metrics,
        "/livez" => Route::Live,
        "/readyz" => Route::Ready,
        _ => return Response::text(404, "not found\n"),
    };
    if req.method != "GET" {
        return Response::text(405, "method not allowed\n");
    }
    match route {
        Route::Metrics => match call(source, limit, |s| s.metrics()).await {
            Ok(body) => Response {
                status: 200,
                content_type: CONTENT_TYPE,
                body,
            },
            Err(Failed::Panicked) => Response::text(500, "metrics failed\n"),
            Err(Failed::TimedOut) => Response::text(503, "metrics unavailable\n"),
        },
        Route::Live => match call(source, limit, |s| s.live()).await {
            Ok(true) => Response::text(200, "ok\n"),
            _ => Response::text(503, "not live\n"),
        },
        Route::Ready => match call(source, limit, |s| (s.ready(), s.not_ready_reason())).await {
            Ok((true, None)) => Response::text(200, "ok\n"),
            Ok((_, Some(why))) => Response {
                status: 503,
                content_type: "text/plain; charset=utf-8",
                body: format!("not ready: {why}\n"),
            },
            _ => Response::text(503, "not ready\n"),
        },
    }
}

enum Failed {
    Panicked,
    TimedOut,
}

/// Runs `f` on a blocking thread, at most `limit` long (the thread is left to finish).
async fn call<T: Send + 'static>(
    source: &Arc<dyn HealthSource>,
    limit: Duration,
    f: fn(&dyn HealthSource) -> T,
) -> Result<T, Failed> {
    let source = source.clone();
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(move || f(&*source))).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(Failed::Panicked),
        Err(_) => Err(Failed::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> Parsed {
        Parsed::Complete(Request {
            method: method.into(),
            path: path.into(),
        })
    }

    #[test]
    fn names() {
        for ok in ["a", "_", ":", "vrouter_rx_total", "a:b_c9", "A"] {
            assert!(valid_metric_name(ok), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a b", "é", "a.b"] {
            assert!(!valid_metric_name(bad), "{bad}");
        }
        for ok in ["a", "_a", "worker", "peer_2"] {
            assert!(valid_label_name(ok), "{ok}");
        }
        for bad in ["", "__name__", "a:b", "1a", "a-b"] {
            assert!(!valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn values() {
        let cases: [(Value, &str); 12] = [
            (0u64.into(), "0"),
            (u64::MAX.into(), "18446744073709551615"),
            ((-3i64).into(), "-3"),
            (1.0.into(), "1"),
            (0.5.into(), "0.5"),
            ((-0.25).into(), "-0.25"),
            (1e300.into(), "1e300"),
            (1.5e-7.into(), "1.5e-7"),
            (123456.789.into(), "123456.789"),
            (f64::NAN.into(), "NaN"),
            (f64::INFINITY.into(), "+Inf"),
            (f64::NEG_INFINITY.into(), "-Inf"),
        ];
        for (v, want) in cases {
            let mut s = String::new();
            write_value(&mut s, v);
            assert_eq!(s, want);
            if let Value::Float(x) = v {
                if x.is_finite() {
                    assert_eq!(s.parse::<f64>().unwrap(), x);
                }
            }
        }
    }

    #[test]
    fn heads() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            req("GET", "/metrics")
        );
        assert_eq!(parse_head(b"GET /livez HTTP/1.0\n\n"), req("GET", "/livez"));
        assert_eq!(
            parse_head(b"\r\nGET /readyz?verbose=1 HTTP/1.1\r\nA: b\tc\r\n\r\nbody"),
            req("GET", "/readyz")
        );
        assert_eq!(
            parse_head(b"GET http://node:9100/metrics HTTP/1.1\r\n\r\n"),
            req("GET", "/metrics")
        );
        assert_eq!(
            parse_head(b"GET http://node HTTP/1.1\r\n\r\n"),
            req("GET", "/")
        );
        assert_eq!(parse_head(b"POST /x HTTP/1.1\r\n\r\n"), req("POST", "/x"));
        // Header values may hold obs-text.
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n"),
            req("GET", "/")
        );

        for partial in [
            &b""[..],
            b"GE",
            b"GET /metrics HTTP/1.1",
            b"GET /metrics HTTP/1.1\r",
            b"GET /metrics HTTP/1.1\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            assert_eq!(parse_head(partial), Parsed::Incomplete, "{partial:?}");
        }

        for bad in [
            &b"\x16\x03\x01\x02\x00"[..],
            b"GET /\x00",
            b"garbage\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 x\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET /metrics http/1.1\r\n\r\n",
            b"G(T /metrics HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
        ] {
            assert_eq!(
                parse_head(bad),
                Parsed::Invalid,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    struct Slow;
    impl HealthSource for Slow {
        fn metrics(&self) -> String {
            std::thread::sleep(Duration::from_millis(500));
            String::new()
        }
        fn live(&self) -> bool {
            std::thread::sleep(Duration::from_millis(500));
            true
        }
        fn ready(&self) -> bool {
            true
        }
    }

    async fn fetch(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The time limits, shortened: a client that sends no head gets 408; a source that
    /// does not answer in time gets 503.
    #[tokio::test]
    async fn time_limits() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            head: Duration::from_millis(200),
            source: Duration::from_millis(100),
            connection: Duration::from_secs(5),
            linger: Duration::from_millis(100),
        };
        tokio::spawn(serve_with(listener, Arc::new(Slow), limits));

        let r = fetch(addr, b"GET /metrics HTTP/1.1\r\n").await;
        assert!(r.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{r}");
        let r = fetch(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(r.ends_with("\r\n\r\nmetrics unavailable\n"), "{r}");
        let r = fetch(addr, b"GET /livez HTTP/1.1\r\n\r\n").await;
        assert!(r.ends_with("\r\n\r\nnot live\n"), "{r}");
        let r = fetch(addr, b"GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    }
}
