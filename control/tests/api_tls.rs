//! The API's TCP listener takes only mutually authenticated TLS: a client with a
//! certificate from the configured CA is answered; one from another CA, one with no
//! certificate, and plain HTTP/2 are refused; the listener refuses to start with a key
//! others may read or with files that do not belong together.
//! Certificates come from tests/e2e/make-certs.sh (openssl, installed by setup.sh).

use control::api::{self, pb, Call, ClientTlsFiles, ServeConfig, ServerTlsFiles, TcpServe};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn certs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/make-certs.sh");
    let out = std::process::Command::new(&script)
        .arg(dir.path().join("pki"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (openssl is needed)", script.display()));
    assert!(
        out.status.success(),
        "make-certs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pki = dir.path().join("pki");
    (dir, pki)
}

fn server_files(pki: &Path) -> ServerTlsFiles {
    ServerTlsFiles {
        cert_file: pki.join("server.pem"),
        key_file: pki.join("server.key"),
        client_ca_file: pki.join("ca.pem"),
    }
}

fn client_files(pki: &Path, name: &str) -> ClientTlsFiles {
    ClientTlsFiles {
        cert_file: pki.join(format!("{name}.pem")),
        key_file: pki.join(format!("{name}.key")),
        ca_file: pki.join("ca.pem"),
    }
}

/// Serve with the given TLS files; a thread answers GetStats with a recognisable figure.
fn serve(dir: &Path, tls: ServerTlsFiles) -> std::io::Result<api::Api> {
    let (tx, rx) = crossbeam_channel::unbounded::<Call>();
    std::thread::spawn(move || {
        for call in rx {
            if let Call::GetStats(_, reply) = call {
                let _ = reply.send(Ok(pb::Stats {
                    routes4: 4242,
                    ..Default::default()
                }));
            }
        }
    });
    api::spawn(
        &ServeConfig {
            socket: dir.join("api.sock"),
            tcp: Some(TcpServe {
                addr: "127.0.0.1:0".parse().unwrap(),
                tls,
            }),
        },
        tx,
    )
}

async fn stats(target: &str, tls: Option<&ClientTlsFiles>) -> Result<u64, String> {
    let mut c = api::connect_with(target, tls).await?;
    c.get_stats(pb::StatsRequest {})
        .await
        .map(|r| r.into_inner().routes4)
        .map_err(control::ctl::status_message)
}

/// Whether a raw channel to the endpoint gets a call answered.
async fn answers(endpoint: tonic::transport::Endpoint) -> bool {
    match endpoint.connect().await {
        Ok(ch) => pb::vrouter_client::VrouterClient::new(ch)
            .get_stats(pb::StatsRequest {})
            .await
            .is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn only_clients_of_the_configured_ca_are_answered() {
    let (dir, pki) = certs();
    let api = serve(dir.path(), server_files(&pki)).expect("serves with its TLS files");
    let addr = api.tcp_addr.unwrap();
    let target = format!("https://127.0.0.1:{}", addr.port());

    assert_eq!(
        stats(&target, Some(&client_files(&pki, "client"))).await,
        Ok(4242)
    );
    let rogue = stats(&target, Some(&client_files(&pki, "rogue"))).await;
    let e = rogue.expect_err("a certificate from another CA was answered");
    // TLS 1.3 checks the client's certificate after the client's handshake is done:
    // the client sees the connection closed (hyper does not surface the alert).
    assert!(
        e.contains("connection closed") || e.contains("UnknownCA"),
        "{e}"
    );

    // TLS without a client certificate (the server's CA trusted, nothing presented).
    let ca = std::fs::read(pki.join("ca.pem")).unwrap();
    let anonymous = tonic::transport::Endpoint::from_shared(target.clone())
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .domain_name("127.0.0.1")
                .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
        )
        .unwrap();
    let answered = answers(anonymous).await;
    assert!(!answered, "a client with no certificate was answered");

    // Plain HTTP/2 to the TLS port, and http:// asked of the client.
    let plain = format!("http://127.0.0.1:{}", addr.port());
    let answered = answers(tonic::transport::Endpoint::from_shared(plain).unwrap()).await;
    assert!(!answered, "plain HTTP/2 was answered");
    let e = stats(&format!("http://127.0.0.1:{}", addr.port()), None)
        .await
        .unwrap_err();
    assert!(e.contains("mutual TLS only"), "{e}");
    let e = stats(&target, None).await.unwrap_err();
    assert!(e.contains("--tls-cert"), "{e}");

    // The unix socket is unchanged.
    let via_unix = dir.path().join("api.sock");
    assert_eq!(stats(via_unix.to_str().unwrap(), None).await, Ok(4242));
    drop(api);
}

#[test]
fn the_listener_refuses_to_start_with_bad_files() {
    let (dir, pki) = certs();
    let refused = |tls: ServerTlsFiles| match serve(dir.path(), tls) {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    };
    // A key others may read.
    let loose = pki.join("loose.key");
    std::fs::copy(pki.join("server.key"), &loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = refused(ServerTlsFiles {
        key_file: loose,
        ..server_files(&pki)
    });
    assert!(e.contains("chmod 600"), "{e}");
    // A key that is not the certificate's.
    let e = refused(ServerTlsFiles {
        key_file: pki.join("client.key"),
        ..server_files(&pki)
    });
    assert!(e.contains("api TLS"), "{e}");
    // A missing CA file; a CA file that is not PEM.
    let e = refused(ServerTlsFiles {
        client_ca_file: pki.join("nothing.pem"),
        ..server_files(&pki)
    });
    assert!(
        e.contains("client_ca_file") && e.contains("nothing.pem"),
        "{e}"
    );
    std::fs::write(pki.join("junk.pem"), "not a certificate").unwrap();
    let e = refused(ServerTlsFiles {
        client_ca_file: pki.join("junk.pem"),
        ..server_files(&pki)
    });
    assert!(e.contains("not a PEM file"), "{e}");
    // Nothing was left listening or bound: the socket path is free for a good start.
    assert!(serve(dir.path(), server_files(&pki)).is_ok());
}
