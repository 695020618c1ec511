//! The metrics module: exposition text (byte-exact, escaping, a round trip through an
//! independent parser of the text format) and the HTTP server over real sockets.

use control::metrics::{spawn_server, Exposition, HealthSource, Kind, CONTENT_TYPE};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------
// Exposition
// ---------------------------------------------------------------------------------

#[test]
fn exposition_byte_exact() {
    let mut e = Exposition::new();
    e.family(
        "vrouter_rx_packets_total",
        "Frames received.",
        Kind::Counter,
    )
    .sample(&[("worker", "0"), ("port", "eth0")], 1027u64)
    .sample(&[("worker", "1"), ("port", "eth0")], 998u64);
    e.family("vrouter_fib_routes", "Routes in the FIB.", Kind::Gauge)
        .sample(&[], 1_076_806u64);
    e.family("vrouter_load", "Busy fraction.", Kind::Gauge)
        .sample(&[("worker", "0")], 0.25)
        .sample(&[("worker", "1")], -1i64);
    // Selecting a family again keeps its samples under its one HELP / TYPE.
    e.family(
        "vrouter_rx_packets_total",
        "Frames received.",
        Kind::Counter,
    )
    .sample(&[("worker", "2"), ("port", "eth0")], 0u64);
    e.family("vrouter_empty", "No samples yet.", Kind::Gauge);

    let want = "\
# HELP vrouter_rx_packets_total Frames received.
# TYPE vrouter_rx_packets_total counter
vrouter_rx_packets_total{worker=\"0\",port=\"eth0\"} 1027
vrouter_rx_packets_total{worker=\"1\",port=\"eth0\"} 998
vrouter_rx_packets_total{worker=\"2\",port=\"eth0\"} 0
# HELP vrouter_fib_routes Routes in the FIB.
# TYPE vrouter_fib_routes gauge
vrouter_fib_routes 1076806
# HELP vrouter_load Busy fraction.
# TYPE vrouter_load gauge
vrouter_load{worker=\"0\"} 0.25
vrouter_load{worker=\"1\"} -1
# HELP vrouter_empty No samples yet.
# TYPE vrouter_empty gauge
";
    assert_eq!(e.finish(), want);
    assert_eq!(Exposition::new().finish(), "");
}

#[test]
fn exposition_escaping() {
    let mut e = Exposition::new();
    e.family(
        "a_total",
        "Help with a \\ backslash,\na newline and \"quotes\" kept.",
        Kind::Counter,
    )
    .sample(
        &[("v", "back\\slash \"quoted\"\nnext line, {braces}=é")],
        1u64,
    );
    e.family("b", "", Kind::Gauge)
        .sample(&[("empty", ""), ("literal", "\\n")], f64::NAN)
        .sample(&[("x", "1")], f64::INFINITY)
        .sample(&[("x", "2")], f64::NEG_INFINITY);
    let want = r#"# HELP a_total Help with a \\ backslash,\na newline and "quotes" kept.
# TYPE a_total counter
a_total{v="back\\slash \"quoted\"\nnext line, {braces}=é"} 1
# HELP b 
# TYPE b gauge
b{empty="",literal="\\n"} NaN
b{x="1"} +Inf
b{x="2"} -Inf
"#;
    assert_eq!(e.finish(), want);
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "invalid metric name")]
fn exposition_rejects_bad_names() {
    Exposition::new().family("vrouter-rx", "", Kind::Gauge);
}

/// One family as the independent parser reads it.
#[derive(Debug, Default, PartialEq)]
struct ParsedFamily {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<(Vec<(String, String)>, f64)>,
}

/// A parser of the text format written from its specification, sharing nothing with the
/// writer. Checks: HELP and TYPE at most once per family, TYPE before the family's
/// samples, every sample of a declared counter or gauge family, a family's lines
/// contiguous, label syntax and escapes, values that parse. Returns families in order.
fn parse(text: &str) -> Result<Vec<(String, ParsedFamily)>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut order: Vec<String> = Vec::new();
    let mut fams: HashMap<String, ParsedFamily> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut last: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let err = |m: &str| format!("line {}: {m}: {line:?}", n + 1);
        let (name, fam_line) = if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            (
                name.to_owned(),
                Line::Help(unescape(help, false).map_err(|e| err(&e))?),
            )
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE without type"))?;
            (name.to_owned(), Line::Type(kind.to_owned()))
        } else if line.starts_with('#') || line.trim().is_empty() {
            continue;
        } else {
            let (name, labels, value) = parse_sample(line).map_err(|e| err(&e))?;
            (name, Line::Sample(labels, value))
        };
        if !name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        }) || name.is_empty()
        {
            return Err(err("bad metric name"));
        }
        if last.as_deref() != Some(name.as_str()) {
            if finished.contains(&name) {
                return Err(err("family's lines not contiguous"));
            }
            if let Some(prev) = last.take() {
                finished.insert(prev);
            }
            last = Some(name.clone());
        }
        let fam = fams.entry(name.clone()).or_insert_with(|| {
            order.push(name.clone());
            ParsedFamily::default()
        });
        match fam_line {
            Line::Help(h) => {
                if fam.help.replace(h).is_some() {
                    return Err(err("second HELP"));
                }
            }
            Line::Type(k) => {
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&&*k) {
                    return Err(err("unknown type"));
                }
                if fam.kind.is_some() || !fam.samples.is_empty() {
                    return Err(err("TYPE again or after samples"));
                }
                fam.kind = Some(k);
            }
            Line::Sample(labels, value) => {
                if !matches!(fam.kind.as_deref(), Some("counter" | "gauge")) {
                    return Err(err("sample of no declared counter or gauge family"));
                }
                fam.samples.push((labels, value));
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|n| {
            let f = fams.remove(&n).unwrap();
            (n, f)
        })
        .collect())
}

enum Line {
    Help(String),
    Type(String),
    Sample(Vec<(String, String)>, f64),
}

type Sample = (String, Vec<(String, String)>, f64);

fn parse_sample(line: &str) -> Result<Sample, String> {
    let end = line.find(['{', ' ']).ok_or("no value")?;
    let name = line[..end].to_owned();
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let label = &rest[..eq];
            let mut cs = label.chars();
            if !cs
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                || !cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("bad label name {label:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            // The value runs to the first unescaped quote.
            let mut close = None;
            let mut escaped = false;
            for (i, c) in rest.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        close = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let close = close.ok_or("unterminated label value")?;
            labels.push((label.to_owned(), unescape(&rest[..close], true)?));
            rest = &rest[close + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err("expected , or } after a label".into());
            }
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before value")?;
    let mut fields = rest.split(' ');
    let value = match fields.next().ok_or("no value")? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| "bad timestamp")?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok((name, labels, value))
}

fn unescape(s: &str, label_value: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if label_value => out.push('"'),
                other => return Err(format!("bad escape \\{other:?}")),
            },
            '"' if label_value => return Err("unescaped quote".into()),
            '\n' => return Err("raw newline".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[test]
fn exposition_round_trip() {
    let awkward = [
        "",
        "plain",
        "\\",
        "\"",
        "\n",
        "\\n",
        "\\\"",
        "a\\\\b\"\"c\n\nd",
        "{x=\"y\"} 3",
        "# HELP",
        "é ü 中文 🦀",
        " leading and trailing ",
        "tab\there",
    ];
    type Family = (
        &'static str,
        String,
        Kind,
        Vec<(Vec<(String, String)>, f64)>,
    );
    let mut want: Vec<Family> = Vec::new();
    for (i, help) in awkward.iter().enumerate() {
        let (name, kind) = if i % 2 == 0 {
            (format!("rt_family_{i}_total"), Kind::Counter)
        } else {
            (format!("rt:family_{i}"), Kind::Gauge)
        };
        let name: &'static str = Box::leak(name.into_boxed_str());
        let mut samples = Vec::new();
        for (j, v) in awkward.iter().enumerate().skip(i % 3) {
            let labels = vec![
                ("v".to_owned(), (*v).to_owned()),
                ("_j".to_owned(), j.to_string()),
            ];
            let value = match (kind, j % 4) {
                (Kind::Counter, _) => (i * 1000 + j) as f64,
                (Kind::Gauge, 0) => -0.125 * j as f64,
                (Kind::Gauge, 1) => 1e300,
                (Kind::Gauge, 2) => 3.0e-9,
                (Kind::Gauge, _) => f64::INFINITY,
                (Kind::Histogram, _) => unreachable!("histograms: control::histogram's tests"),
            };
            samples.push((labels, value));
        }
        samples.push((Vec::new(), 7.0));
        want.push((name, (*help).to_owned(), kind, samples));
    }

    // Interleave: each family declared, then the samples dealt round-robin across
    // families, re-selecting each family every time.
    let mut e = Exposition::new();
    for (name, help, kind, _) in &want {
        e.family(name, help, *kind);
    }
    let most = want.iter().map(|f| f.3.len()).max().unwrap();
    for k in 0..most {
        for (name, help, kind, samples) in &want {
            if let Some((labels, value)) = samples.get(k) {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                e.family(name, help, *kind);
                match kind {
                    Kind::Counter => e.sample(&labels, *value as u64),
                    Kind::Gauge => e.sample(&labels, *value),
                    Kind::Histogram => unreachable!("not generated"),
                };
            }
        }
    }
    let text = e.finish();
    let got = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    assert_eq!(got.len(), want.len());
    for ((gname, g), (name, help, kind, samples)) in got.iter().zip(&want) {
        assert_eq!(gname, name);
        assert_eq!(g.help.as_deref(), Some(help.as_str()));
        let k = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        assert_eq!(g.kind.as_deref(), Some(k));
        assert_eq!(&g.samples, samples, "{name}");
    }

    // The parser itself refuses what it should.
    for bad in [
        "x 1\n",
        "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx 2\n",
        "# TYPE x gauge\nx{a=\"b\\q\"} 1\n",
        "# TYPE x gauge\nx{a=\"b} 1\n",
        "# TYPE x gauge\nx one\n",
        "# HELP x a\n# HELP x a\n",
        "# TYPE x gauge\nx 1",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------

/// Answers metrics from another thread over a std channel (as the daemon would ask its
/// workers), so the server must call it off the runtime.
struct Fake {
    live: AtomicBool,
    ready: AtomicBool,
    ask: Mutex<mpsc::Sender<mpsc::Sender<String>>>,
    panic: AtomicBool,
}

impl Fake {
    fn new() -> Arc<Self> {
        let (tx, rx) = mpsc::channel::<mpsc::Sender<String>>();
        std::thread::spawn(move || {
            for reply in rx {
                let mut e = Exposition::new();
                e.family("fake_requests_total", "Requests \"served\".", Kind::Counter)
                    .sample(&[("path", "/metrics")], 1u64);
                let _ = reply.send(e.finish());
            }
        });
        Arc::new(Fake {
            live: AtomicBool::new(true),
            ready: AtomicBool::new(false),
            ask: Mutex::new(tx),
            panic: AtomicBool::new(false),
        })
    }
}

impl HealthSource for Fake {
    fn metrics(&self) -> String {
        if self.panic.load(Ordering::SeqCst) {
            panic!("fake source fails on purpose");
        }
        let (tx, rx) = mpsc::channel();
        self.ask.lock().unwrap().send(tx).unwrap();
        rx.recv().unwrap()
    }
    fn live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

fn start() -> (SocketAddr, Arc<Fake>) {
    let fake = Fake::new();
    let (addr, _thread) = spawn_server("127.0.0.1:0".parse().unwrap(), fake.clone()).unwrap();
    assert_ne!(addr.port(), 0);
    (addr, fake)
}

#[derive(Debug)]
struct Reply {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `raw` (then half-closes if `eof`) and reads to the server's close: all the
/// server sent.
fn send(addr: SocketAddr, raw: &[u8], eof: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).unwrap();
    if eof {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    bytes
}

/// The response to `raw`, with a status line and headers, closing the connection.
fn exchange_head(addr: SocketAddr, raw: &[u8], eof: bool) -> Reply {
    let text = String::from_utf8(send(addr, raw, eof)).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap().to_owned();
    assert!(
        version == "HTTP/1.1" || version == "HTTP/1.0",
        "{status_line}"
    );
    let status = parts.next().unwrap().parse().unwrap();
    assert!(!parts.next().unwrap_or("").is_empty(), "reason phrase");
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(": ").expect("a header");
            (n.to_owned(), v.to_owned())
        })
        .collect();
    let reply = Reply {
        version,
        status,
        headers,
        body: body.to_owned(),
    };
    assert_eq!(reply.header("Connection"), Some("close"), "{reply:?}");
    reply
}

/// [`exchange_head`], and a body as long as its `Content-Length` says.
fn exchange(addr: SocketAddr, raw: &[u8], eof: bool) -> Reply {
    let reply = exchange_head(addr, raw, eof);
    assert_eq!(
        reply.header("Content-Length"),
        Some(reply.body.len().to_string().as_str()),
        "{reply:?}"
    );
    reply
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    let r = exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n").as_bytes(),
        false,
    );
    assert_eq!(r.version, "HTTP/1.1");
    r
}

#[test]
fn http_metrics() {
    let (addr, _) = start();
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(CONTENT_TYPE));
    assert_eq!(
        r.body,
        "# HELP fake_requests_total Requests \"served\".\n\
         # TYPE fake_requests_total counter\n\
         fake_requests_total{path=\"/metrics\"} 1\n"
    );
    parse(&r.body).unwrap();
    // A query string is ignored; HTTP/1.0 is answered too, in its version.
    assert_eq!(get(addr, "/metrics?name[]=x").status, 200);
    let r = exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n", false);
    assert_eq!((r.version.as_str(), r.status), ("HTTP/1.0", 200));
    assert_eq!(r.header("Content-Type"), Some(CONTENT_TYPE));
}

#[test]
fn http_livez() {
    let (addr, fake) = start();
    let r = get(addr, "/livez");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    fake.live.store(false, Ordering::SeqCst);
    let r = get(addr, "/livez");
    assert_eq!((r.status, r.body.as_str()), (503, "not live\n"));
}

#[test]
fn http_readyz() {
    let (addr, fake) = start();
    let r = get(addr, "/readyz");
    assert_eq!((r.status, r.body.as_str()), (503, "not ready\n"));
    fake.ready.store(true, Ordering::SeqCst);
    let r = get(addr, "/readyz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
}

#[test]
fn http_not_found() {
    let (addr, _) = start();
    for path in ["/", "/metric", "/metrics/", "/livez/x", "*"] {
        assert_eq!(get(addr, path).status, 404, "{path}");
    }
}

#[test]
fn http_method_not_allowed() {
    let (addr, _) = start();
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "X-CUSTOM"] {
        let r = exchange(
            addr,
            format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
                .as_bytes(),
            false,
        );
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("Allow"), Some("GET"));
    }
    // HEAD: the same head, and no body (RFC 9110, 9.3.2).
    let r = exchange_head(addr, b"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n", false);
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET")));
    assert_eq!(r.body, "");
    // A body sent in chunks, and a CONNECT, then the server still answers.
    let r = exchange(
        addr,
        b"POST /livez HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        false,
    );
    assert_eq!(r.status, 405);
    let r = exchange(
        addr,
        b"CONNECT node:9100 HTTP/1.1\r\nHost: node:9100\r\n\r\n",
        false,
    );
    assert!(matches!(r.status, 400 | 404), "{r:?}");
    assert_eq!(get(addr, "/livez").status, 200);
}

#[test]
fn http_garbage() {
    let (addr, _) = start();
    for raw in [
        &b"garbage\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n",
        b"\x00\x00\x00\x00",
    ] {
        let r = exchange(addr, raw, false);
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(raw));
    }
    // A head cut short by the client's end of stream: closed without a response
    // (hyper answers nothing to a client that has gone).
    for raw in [&b"GET /metrics HTTP/1.1\r\nHost: x\r\n"[..], b"GE"] {
        assert_eq!(send(addr, raw, true), b"");
    }
    // More than 8 KiB without the end of the head.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() < 10_000 {
        big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert_eq!(exchange(addr, &big, false).status, 431);
    // Connections closed without a byte, or reset mid-head.
    for _ in 0..3 {
        drop(TcpStream::connect(addr).unwrap());
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /met").unwrap();
    }
    // The server still answers.
    assert_eq!(get(addr, "/livez").status, 200);
}

/// One header of 100 KB, and a head that never ends: 431, and the server answers on.
#[test]
fn http_huge_header() {
    let (addr, _) = start();
    let mut raw = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    raw.resize(raw.len() + 100_000, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    let r = exchange(addr, &raw, false);
    assert_eq!(r.status, 431);
    let mut endless = TcpStream::connect(addr).unwrap();
    endless
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    endless.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    // The server stops reading at 8 KiB and answers; writing on fails or is dropped.
    for _ in 0..64 {
        if endless.write_all(&[b'x'; 1024]).is_err() {
            break;
        }
    }
    assert_eq!(get(addr, "/metrics").status, 200);
}

/// Clients that send half a head and wait do not hold up the others; each is closed
/// once the head's time limit (5 s) has passed.
#[test]
fn http_slow_clients() {
    let (addr, _) = start();
    let slow: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
            s
        })
        .collect();
    let started = std::time::Instant::now();
    for path in ["/metrics", "/livez", "/readyz"] {
        let r = get(addr, path);
        assert!(matches!(r.status, 200 | 503), "{path}: {r:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered in {:?} beside slow clients",
        started.elapsed()
    );
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut rest = Vec::new();
        // Closed (end of stream or reset) within the limit, not left open.
        let _ = s.read_to_end(&mut rest);
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(get(addr, "/livez").status, 200);
}

#[test]
fn http_source_panics() {
    let (addr, fake) = start();
    fake.panic.store(true, Ordering::SeqCst);
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 500);
    fake.panic.store(false, Ordering::SeqCst);
    assert_eq!(get(addr, "/metrics").status, 200);
}

#[test]
fn http_concurrent_clients() {
    let (addr, _) = start();
    let clients: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let path = ["/metrics", "/livez", "/readyz", "/nope"][i % 4];
                get(addr, path).status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [&[200; 8][..], &[404; 4], &[503; 4]].concat());
}

#[test]
fn spawn_server_bind_error_names_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = spawn_server(addr, Fake::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}
