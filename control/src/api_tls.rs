//! Mutual TLS for the API's TCP listener (rustls through tonic): the server presents
//! the node's certificate and accepts only clients whose certificate the configured CA
//! signed; `vrouterctl` presents its own and checks the server's against its CA. The
//! unix socket needs none of this (mode 0600, root only).

use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The server's side: its certificate chain and key, and the CA of its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: PathBuf,
}

/// A client's side: its certificate and key, and the CA of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

/// Read a file holding a secret (a private key, a password): refused when group or
/// others may read it, as ssh refuses a loose key.
pub fn read_secret(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {shown}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what} {shown}: mode {mode:o} lets others read it (chmod 600)"
        ));
    }
    std::fs::read(path).map_err(|e| format!("{what} {shown}: {e}"))
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!("{what} {}: not a PEM file", path.display()));
    }
    Ok(pem)
}

/// The server's TLS settings, read and checked: every file present, the key private,
/// and the whole set accepted by rustls (a key that does not match its certificate, or
/// a CA file with no certificate, is an error here, not at the first connection).
pub fn server_tls(f: &ServerTlsFiles) -> Result<ServerTlsConfig, String> {
    let cert = read_pem("cert_file", &f.cert_file)?;
    let key = read_secret("key_file", &f.key_file)?;
    let ca = read_pem("client_ca_file", &f.client_ca_file)?;
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(false);
    tonic::transport::Server::builder()
        .tls_config(config.clone())
        .map_err(|e| {
            format!(
                "api TLS ({}, {}, {}): {}",
                f.cert_file.display(),
                f.key_file.display(),
                f.client_ca_file.display(),
                error_chain(&e)
            )
        })?;
    Ok(config)
}

/// A client's TLS settings; `domain` is the server's name or address as its
/// certificate names it.
pub fn client_tls(f: &ClientTlsFiles, domain: &str) -> Result<ClientTlsConfig, String> {
    let cert = read_pem("--tls-cert", &f.cert_file)?;
    let key = read_secret("--tls-key", &f.key_file)?;
    let ca = read_pem("--tls-ca", &f.ca_file)?;
    Ok(ClientTlsConfig::new()
        .domain_name(domain)
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key)))
}

/// An error with its causes (tonic's own text is often only "transport error").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
