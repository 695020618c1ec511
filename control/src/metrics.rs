//! Prometheus metrics and health probes: a writer for the Prometheus text exposition
//! format (version 0.0.4) and a tiny HTTP/1.1 server that serves `GET /metrics`,
//! `GET /livez` and `GET /readyz` for scrapers and orchestrators.
//!
//! The writer is hand-written: the format is a few lines of escaping rules. The
//! server is hyper's HTTP/1 connection (already linked in through tonic) with one
//! request per connection and a three-way match for routing; it runs on its own
//! current-thread runtime ([`spawn_server`]), like the BGP speaker, so it never
//! competes with the poll-mode workers. Why hyper and not the hand-written server it
//! replaced: docs/decisions.md, "Metrics server on axum, measured".
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

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
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

/// The most bytes buffered for a request head (hyper's smallest read buffer limit);
/// a longer head is answered 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most connections handled at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Limits {
    /// To receive the whole request head; past it hyper closes the connection.
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

/// One request on `stream` through hyper's HTTP/1 parser (it answers a malformed head
/// 400 and one over [`MAX_HEAD`] 431 itself), then a lingering close, whatever hyper
/// made of the request: the stream is lent to hyper, not given.
async fn connection(
    mut stream: TcpStream,
    source: Arc<dyn HealthSource>,
    limits: Limits,
) -> Result<(), hyper::Error> {
    let service = service_fn(move |req: Request<Incoming>| {
        let source = source.clone();
        async move { Ok::<_, Infallible>(respond(&req, &source, limits.source).await) }
    });
    let served = http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(&mut stream), service)
        .await;
    // Already shut down when hyper closed cleanly; the error then says nothing new.
    let _ = stream.shutdown().await;
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
    served
}

/// A response that closes the connection (one request per connection).
fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn text(status: StatusCode, body: &str) -> Response<String> {
    reply(status, "text/plain; charset=utf-8", body.to_owned())
}

#[derive(Clone, Copy)]
enum Route {
    Metrics,
    Live,
    Ready,
}

async fn respond<B>(
    req: &Request<B>,
    source: &Arc<dyn HealthSource>,
    limit: Duration,
) -> Response<String> {
    let route = match req.uri().path() {
        "/metrics" => Route::Metrics,
        "/livez" => Route::Live,
        "/readyz" => Route::Ready,
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if req.method() != Method::GET {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    match route {
        Route::Metrics => match call(source, limit, |s| s.metrics()).await {
            Ok(body) => reply(StatusCode::OK, CONTENT_TYPE, body),
            Err(Failed::Panicked) => text(StatusCode::INTERNAL_SERVER_ERROR, "metrics failed\n"),
            Err(Failed::TimedOut) => text(StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n"),
        },
        Route::Live => match call(source, limit, |s| s.live()).await {
            Ok(true) => text(StatusCode::OK, "ok\n"),
            _ => text(StatusCode::SERVICE_UNAVAILABLE, "not live\n"),
        },
        Route::Ready => match call(source, limit, |s| (s.ready(), s.not_ready_reason())).await {
            Ok((true, None)) => text(StatusCode::OK, "ok\n"),
            Ok((_, Some(why))) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("not ready: {why}\n"),
            ),
            _ => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
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

    /// The time limits, shortened: a client that sends no whole head is closed on
    /// without a response; a source that does not answer in time gets 503.
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

        let started = std::time::Instant::now();
        let r = fetch(addr, b"GET /metrics HTTP/1.1\r\n").await;
        assert_eq!(r, "");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let r = fetch(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(r.ends_with("\r\n\r\nmetrics unavailable\n"), "{r}");
        let r = fetch(addr, b"GET /livez HTTP/1.1\r\n\r\n").await;
        assert!(r.ends_with("\r\n\r\nnot live\n"), "{r}");
        let r = fetch(addr, b"GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    }
}
