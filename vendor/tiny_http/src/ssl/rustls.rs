use crate::connection::Connection;
use crate::util::refined_tcp_stream::Stream as RefinedStream;
use std::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// A wrapper around an owned Rustls connection and corresponding stream.
///
/// Uses an internal Mutex to permit disparate reader & writer threads to access the stream independently.
pub(crate) struct RustlsStream(
    Arc<Mutex<rustls::StreamOwned<rustls::ServerConnection, Connection>>>,
);

impl RustlsStream {
    pub(crate) fn peer_addr(&mut self) -> std::io::Result<Option<SocketAddr>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .sock
            .peer_addr()
    }

    pub(crate) fn shutdown(&mut self, how: Shutdown) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .sock
            .shutdown(how)
    }
}

impl Clone for RustlsStream {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl Read for RustlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut stream = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if stream.conn.is_handshaking() {
            handshake(&mut stream)?;
        }
        stream.read(buf)
    }
}

/// PATCH (av1): how long a client has for the whole TLS handshake, from the first read
/// of its connection (a client sending its hello a byte at a time cannot hold the
/// connection's thread and slot longer).
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Completes the handshake within [`HANDSHAKE_DEADLINE`] (each read waits at most for
/// the time left), then restores the connection's own read timeout.
fn handshake(s: &mut rustls::StreamOwned<rustls::ServerConnection, Connection>) -> std::io::Result<()> {
    let deadline = Instant::now() + HANDSHAKE_DEADLINE;
    while s.conn.is_handshaking() {
        while s.conn.wants_write() {
            s.conn.write_tls(&mut s.sock)?;
        }
        if !s.conn.is_handshaking() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(ErrorKind::TimedOut, "the TLS handshake took too long"));
        }
        s.sock.set_read_timeout(Some(left))?;
        if s.conn.read_tls(&mut s.sock)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        if let Err(e) = s.conn.process_new_packets() {
            // The alert that says why goes out before the connection ends.
            let _ = s.conn.write_tls(&mut s.sock);
            return Err(std::io::Error::new(ErrorKind::InvalidData, e));
        }
    }
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock)?;
    }
    s.sock.set_read_timeout(crate::connection_timeout())
}

impl Write for RustlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .flush()
    }
}

pub(crate) struct RustlsContext(Arc<rustls::ServerConfig>);

impl RustlsContext {
    // PATCH (av1): rustls 0.23 (the version ureq uses, with ring as its provider) in
    // place of 0.20; PEM read with rustls-pki-types; a key that cannot be read is an
    // error, not a panic.
    pub(crate) fn from_pem(
        certificates: Vec<u8>,
        private_key: Zeroizing<Vec<u8>>,
    ) -> Result<Self, Box<dyn Error + Send + Sync>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certificate_chain = CertificateDer::pem_slice_iter(&certificates)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("reading the certificate chain: {e}"))?;
        if certificate_chain.is_empty() {
            return Err("Couldn't extract certificate chain from config.".into());
        }
        let private_key = PrivateKeyDer::from_pem_slice(&private_key)
            .map_err(|e| format!("reading the private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls_conf = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certificate_chain, private_key)?;
        Ok(Self(Arc::new(tls_conf)))
    }

    pub(crate) fn accept(
        &self,
        stream: Connection,
    ) -> Result<RustlsStream, Box<dyn Error + Send + Sync + 'static>> {
        let connection = rustls::ServerConnection::new(self.0.clone())?;
        Ok(RustlsStream(Arc::new(Mutex::new(
            rustls::StreamOwned::new(connection, stream),
        ))))
    }
}

impl From<RustlsStream> for RefinedStream {
    fn from(stream: RustlsStream) -> Self {
        Self::Https(stream)
    }
}
