//! `vrouterctl watch`: route and endpoint events as they happen, and how the stream
//! ended in words (never a transport's own error).

use super::table::status_message;
use crate::api::pb;

type Client = pb::vrouter_client::VrouterClient<tonic::transport::Channel>;

/// What is said when the daemon goes away under a watcher.
pub const CLOSED: &str = "vrouterd closed the stream (stopped?)";

/// Print events until the stream ends; its end is always an error (a non-zero exit).
pub async fn watch(c: &mut Client, target: &str, json: bool) -> Result<(), String> {
    let mut stream = c
        .watch(pb::WatchRequest {})
        .await
        .map_err(status_message)?
        .into_inner();
    if !json {
        // On stderr: stdout carries only events.
        eprintln!("connected to vrouterd at {target}; watching (Ctrl-C to stop)");
    }
    loop {
        match stream.message().await {
            Ok(Some(ev)) if json => {
                println!("{}", serde_json::to_string(&ev).expect("serialises"))
            }
            Ok(Some(ev)) => println!("{}", event_text(&ev)),
            Ok(None) => return Err(end_message(None)),
            Err(s) => return Err(end_message(Some(s))),
        }
    }
}

/// Why the stream ended: the daemon's own word when it sent one (a watcher that fell
/// behind), else that it closed (an h2 or transport error means it stopped).
pub fn end_message(end: Option<tonic::Status>) -> String {
    use tonic::Code;
    match end {
        None => CLOSED.into(),
        Some(s)
            if matches!(
                s.code(),
                Code::Unknown | Code::Internal | Code::Unavailable | Code::Cancelled
            ) && !s.message().contains("datastore") =>
        {
            CLOSED.into()
        }
        Some(s) => status_message(s),
    }
}

/// One event as a line: `route add 10.65.0.5/32 connected via MAC out pod1`.
pub fn event_text(ev: &pb::Event) -> String {
    match &ev.what {
        Some(pb::event::What::Route(r)) => {
            let route = r.route.clone().unwrap_or_default();
            let mut line = format!("route {} {} {}", r.op, route.prefix, route.source);
            // An endpoint's route before its MAC is known has an empty next hop: no
            // bare "via" then, only where it goes.
            let hops: Vec<&str> = route
                .next_hops
                .iter()
                .map(String::as_str)
                .filter(|h| !h.is_empty())
                .collect();
            if !hops.is_empty() {
                line.push_str(&format!(" via {}", hops.join(",")));
            }
            if !route.out.is_empty() {
                line.push_str(&format!(" out {}", route.out.join(",")));
            }
            line
        }
        Some(pb::event::What::Endpoint(e)) => {
            let ep = e.endpoint.clone().unwrap_or_default();
            format!("endpoint {} {} {}", e.op, ep.name, ep.addresses.join(","))
        }
        None => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_daemon_is_said_plainly() {
        assert_eq!(end_message(None), CLOSED);
        let h2 = tonic::Status::internal("h2 protocol error: error reading a body from connection");
        assert_eq!(end_message(Some(h2)), CLOSED);
        let unknown = tonic::Status::unknown("h2 protocol error: stream no longer needed");
        assert_eq!(end_message(Some(unknown)), CLOSED);
        let lag = tonic::Status::data_loss("watcher fell behind: 3");
        assert_eq!(end_message(Some(lag)), "watcher fell behind: 3");
    }

    #[test]
    fn a_connected_route_has_no_empty_via() {
        let ev = |hops: &[&str], out: &[&str]| pb::Event {
            what: Some(pb::event::What::Route(pb::RouteEvent {
                op: "add".into(),
                route: Some(pb::Route {
                    prefix: "10.65.0.5/32".into(),
                    source: if hops.is_empty() { "connected" } else { "bgp" }.into(),
                    next_hops: hops.iter().map(|h| h.to_string()).collect(),
                    out: out.iter().map(|h| h.to_string()).collect(),
                    ..Default::default()
                }),
            })),
            ..Default::default()
        };
        assert_eq!(
            event_text(&ev(&[], &["pod1"])),
            "route add 10.65.0.5/32 connected out pod1"
        );
        assert_eq!(
            event_text(&ev(&[""], &["(unresolved)"])),
            "route add 10.65.0.5/32 bgp out (unresolved)"
        );
        assert_eq!(
            event_text(&ev(&["10.0.0.2"], &[])),
            "route add 10.65.0.5/32 bgp via 10.0.0.2"
        );
    }
}
