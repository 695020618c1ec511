//! calicoctl's plain text tables, and replies printed as a table or as JSON.

/// calicoctl's SINCE column: the time of day today, the date before.
pub fn since(unix: u64) -> String {
    if unix == 0 {
        return "-".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (day, secs) = (unix / 86_400, unix % 86_400);
    if day == now / 86_400 {
        format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        // The date part of the datastore's RFC 3339 stamp (one civil-date routine).
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
        datastore::member::rfc3339_at(t)[..10].to_string()
    }
}

/// `1d02h03m04s`-style, as gobgp's uptime.
pub fn duration_text(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m{s:02}s")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// A plain text table with calicoctl's borders.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = || {
        let mut s = String::from("+");
        for w in &width {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let row = |cells: &[String]| {
        let mut s = String::from("|");
        for (w, c) in width.iter().zip(cells) {
            s.push_str(&format!(" {c:<w$} |"));
        }
        s.push('\n');
        s
    };
    let mut out = line();
    out.push_str(&row(&header
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()));
    out.push_str(&line());
    for r in rows {
        out.push_str(&row(r));
    }
    out.push_str(&line());
    out
}

/// How replies are printed: `-o table|wide|json|yaml` (`--json` is `-o json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// calicoctl's bordered tables.
    #[default]
    Table,
    /// Tables with more columns (where a command has them).
    Wide,
    /// The API's reply as JSON.
    Json,
    /// The API's reply as YAML; Calico resources (pools, policies) in Calico's shape.
    Yaml,
}

impl Output {
    /// Machine-readable (JSON or YAML): no prose, no tables.
    pub fn structured(self) -> bool {
        matches!(self, Output::Json | Output::Yaml)
    }
}

/// A reply: pretty JSON or YAML, else its text (`text` gets whether `-o wide`).
pub fn print_as<T: serde::Serialize>(out: Output, v: &T, text: impl FnOnce(&T, bool) -> String) {
    match out {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(v).expect("replies serialise")
        ),
        Output::Yaml => print!(
            "{}",
            serde_yaml_ng::to_string(v).expect("replies serialise")
        ),
        Output::Table => print!("{}", text(v, false)),
        Output::Wide => print!("{}", text(v, true)),
    }
}

/// A reply with one text form (wide is the table).
pub fn print<T: serde::Serialize>(out: Output, v: &T, text: impl FnOnce(&T) -> String) {
    print_as(out, v, |v, _| text(v))
}

/// What to say of an API error.
pub fn status_message(s: tonic::Status) -> String {
    // A transport failure's cause says why (a TLS alert: the node refused this
    // client's certificate); tonic's own message is only "transport error".
    let why = std::error::Error::source(&s)
        .map(crate::api_tls::error_chain)
        .map(|c| c.strip_prefix(s.message()).unwrap_or(&c).to_string())
        .map(|c| {
            if c.starts_with(": ") {
                c
            } else {
                format!(": {c}")
            }
        })
        .filter(|c| c != ": ")
        .unwrap_or_default();
    match s.code() {
        // vrouterd answered that its datastore is away: say that, not that it is.
        tonic::Code::Unavailable if s.message().contains("datastore") => s.message().to_string(),
        tonic::Code::Unavailable if s.message().contains("transport") => {
            format!("vrouterd stopped answering: {}{why}", s.message())
        }
        _ => format!("{}{why}", s.message()),
    }
}
