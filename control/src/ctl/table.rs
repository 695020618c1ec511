//! calicoctl's plain text tables, and replies printed as a table or as JSON.

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

/// A reply: pretty JSON with `--json`, else its text.
pub fn print<T: serde::Serialize>(json: bool, v: &T, text: impl FnOnce(&T) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(v).expect("replies serialise")
        );
    } else {
        print!("{}", text(v));
    }
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
