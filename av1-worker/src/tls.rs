//! How a worker reaches its master: `http://`, or `https://` with rustls trusting either the public certificate authorities
//! (Mozilla's list, built in) or exactly the certificates of `TLS_CA` (a master's own
//! self-signed certificate, a home CA). docs/tls.md says how to set it up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// Whom a worker trusts to be its master over `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The public certificate authorities (a master behind a proxy with a public
    /// certificate).
    Public,
    /// Exactly the certificates in this PEM file.
    Certificates(PathBuf),
    /// The master this worker runs inside (`--local-worker`): reached at the very
    /// address it listens on (which no other process can hold while it runs), so its
    /// certificate, which need not name that address, is not checked.
    OwnProcess,
}

/// Refuses, at start, a master URL that is neither `http://` nor `https://`.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("MASTER_URL must start with http:// or https://, not {url:?}");
    }
    Ok(())
}

/// The TLS settings for `trust` (read and checked at start: a missing or empty
/// certificate file is an error now, not at the first request).
pub fn config(trust: &Trust) -> anyhow::Result<TlsConfig> {
    let builder = TlsConfig::builder();
    Ok(match trust {
        Trust::Public => builder.root_certs(RootCerts::WebPki).build(),
        Trust::Certificates(path) => {
            builder.root_certs(RootCerts::new_with_certs(&certificates(path)?)).build()
        }
        Trust::OwnProcess => builder.disable_verification(true).build(),
    })
}

/// The certificates in the PEM file `path` (at least one).
fn certificates(path: &Path) -> anyhow::Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading TLS_CA {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.with_context(|| format!("reading TLS_CA {}", path.display()))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        bail!("TLS_CA {} holds no certificate (PEM, BEGIN CERTIFICATE)", path.display());
    }
    Ok(certs)
}

/// An HTTP client for the master: statuses are answers (not errors), `connect` bounds
/// connecting, `global` a whole call.
pub fn agent(tls: &TlsConfig, connect: Duration, global: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls.clone())
        .timeout_connect(Some(connect))
        .timeout_global(Some(global))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_certificate_files_are_checked_at_start() {
        assert!(check_url("http://master:8090").is_ok());
        assert!(check_url("https://master:8090").is_ok());
        assert!(check_url("ftp://master").is_err());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = config(&Trust::Certificates(empty)).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
        assert!(config(&Trust::Certificates(dir.path().join("missing.pem"))).is_err());
    }
}
