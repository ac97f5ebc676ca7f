//! HTTP plumbing on `tiny_http`: the listener (bounded connections), bounded request
//! bodies, refusals that leave the body unread, query strings, JSON replies.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use tiny_http::{Header, Request, Response, Server};

/// The route of a request (its path without the query string).
pub fn route(request: &Request) -> Result<av1_proto::urls::Route, av1_proto::urls::NoRoute> {
    let path = request.url().split('?').next().unwrap_or_default();
    av1_proto::urls::Route::parse(method(request.method()), path)
}

/// The protocol's name of a method.
pub fn method(m: &tiny_http::Method) -> av1_proto::urls::Method {
    use av1_proto::urls::Method as M;
    match m {
        tiny_http::Method::Get => M::Get,
        tiny_http::Method::Head => M::Head,
        tiny_http::Method::Post => M::Post,
        tiny_http::Method::Put => M::Put,
        _ => M::Other,
    }
}

/// The reply to an error of the library, with the status of its kind
/// ([`av1_proto::ErrorKind::of`]); the caller reads the outer message, the log keeps
/// the whole chain (a database's own words stay here).
pub fn failed(e: &av1_library::Error) -> Reply {
    tracing::warn!("{}", av1_library::error::chain(e));
    Reply::error(av1_proto::ErrorKind::of(e).status(), e.to_string())
}

/// Largest request body accepted for JSON calls (uploads stream through `transfer`).
pub const MAX_BODY: u64 = 1 << 20;

/// A connection whose client sends nothing (or takes nothing we write) for this long is
/// closed; workers call every few seconds, event streams only write.
pub const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Raises the soft limit of open files to the hard one (systemd and many container
/// runtimes start services at 1024), so connections, the queue's files and transfers
/// have room; [`listen`] sizes its connection limits from the result.
pub fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!("could not raise the open-files limit: {e}");
        }
    }
}

/// Most connections open at once overall: each takes two descriptors; a quarter of
/// the open-files limit (at least 256) stays for the queue's files, transfers and the
/// encoder, and never more than 4096.
fn max_connections() -> usize {
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1 << 20);
    let files = usize::try_from(files).unwrap_or(usize::MAX);
    (files.saturating_sub((files / 4).max(256)) / 2).clamp(16, 4096)
}

/// Connections open at once: `total` (default: from the open-files limit) and from one
/// client address.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub total: Option<usize>,
    pub per_address: usize,
}

/// The certificate chain and key HTTPS is served with (PEM).
pub struct Tls(tiny_http::SslConfig);

impl Tls {
    /// Reads `TLS_CERT` and `TLS_KEY` (both or neither): `None` serves plain HTTP.
    pub fn read(cert: Option<&Path>, key: Option<&Path>) -> anyhow::Result<Option<Tls>> {
        let (Some(cert), Some(key)) = (cert, key) else { return Ok(None) };
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        Ok(Some(Tls(tiny_http::SslConfig { certificate: read(cert)?, private_key: read(key)? })))
    }
}

/// Binds `addr` (accepted connections inherit TCP_NODELAY), serving HTTPS with `tls`.
pub fn listen(addr: SocketAddr, limits: Limits, tls: Option<Tls>) -> anyhow::Result<Arc<Server>> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    // No socket timeouts on the listener: Linux applies SO_RCVTIMEO to accept(), and
    // tiny_http stops accepting on the first error (the master went deaf after 30 idle
    // seconds). Accepted connections get them instead (our patch of tiny_http), and
    // slow clients can hold at most the bulk lane meanwhile (api::serve).
    tiny_http::set_connection_timeout(Some(CONNECTION_TIMEOUT));
    let total = limits.total.unwrap_or_else(max_connections);
    tiny_http::set_connection_limits(total, limits.per_address);
    tracing::info!("at most {total} connections at once, {} from one address", limits.per_address);
    // No Nagle delay: a reply written in two parts (headers, body) must not wait for
    // the client's delayed ACK (40 ms on Linux). Accepted sockets inherit it.
    rustix::net::sockopt::set_tcp_nodelay(&listener, true).context("setting TCP_NODELAY")?;
    // With TLS, the handshake happens on the connection's own thread at its first read
    // (rustls), never in the accept loop.
    let server = Server::from_listener(listener, tls.map(|t| t.0))
        .map_err(|e| anyhow::anyhow!("starting the server (TLS_CERT/TLS_KEY?): {e}"))?;
    Ok(Arc::new(server))
}

/// A reply: status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

impl Reply {
    pub fn json(status: u16, value: &impl Serialize) -> Reply {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Reply { status, body, content_type: "application/json" }
    }

    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, &av1_proto::ErrorReply { error: message.into() })
    }

    pub fn text(status: u16, body: String) -> Reply {
        Reply { status, body: body.into_bytes(), content_type: "text/plain; version=0.0.4; charset=utf-8" }
    }
}

/// Sends `reply` (a client that went away is not our problem).
pub fn send(request: Request, reply: Reply) {
    let header = Header::from_bytes("Content-Type", reply.content_type).expect("static header");
    let nosniff = Header::from_bytes("X-Content-Type-Options", "nosniff").expect("static header");
    // The page loads nothing from elsewhere, runs no inline script, and is never framed.
    let csp = Header::from_bytes("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
        .expect("static header");
    let response = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(header)
        .with_header(nosniff)
        .with_header(csp);
    let _ = request.respond(response);
}

/// Answers a request refused before its body was read: the body stays unread (no
/// thread spends time draining it) and the connection closes after the reply.
pub fn refuse(mut request: Request, reply: Reply) {
    request.discard_body();
    let header = |k: &str, v: &str| Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header");
    let response = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", reply.content_type))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("Connection", "close"));
    let _ = request.respond(response);
}

/// How long a JSON body may take to arrive, all of it (each read has its own
/// [`CONNECTION_TIMEOUT`] too): a client trickling bytes cannot hold a thread longer.
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// The request body, refused (413) beyond `limit` bytes and (408) when it takes
/// longer than [`BODY_DEADLINE`].
pub fn body(request: &mut Request, limit: u64) -> Result<Vec<u8>, Reply> {
    if request.body_length().is_some_and(|n| n as u64 > limit) {
        return Err(Reply::error(413, format!("request body over {limit} bytes")));
    }
    let start = std::time::Instant::now();
    let mut buf = Vec::new();
    let mut piece = [0u8; 16 << 10];
    let reader = request.as_reader();
    loop {
        if start.elapsed() > BODY_DEADLINE {
            return Err(Reply::error(408, format!("the body took longer than {BODY_DEADLINE:?}")));
        }
        match std::io::Read::read(reader, &mut piece) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Reply::error(400, format!("reading the body: {e}"))),
        }
        if buf.len() as u64 > limit {
            return Err(Reply::error(413, format!("request body over {limit} bytes")));
        }
    }
    Ok(buf)
}

/// Path and decoded query pairs of a request URL.
pub fn split_url(url: &str) -> (&str, Vec<(String, String)>) {
    match url.split_once('?') {
        Some((path, query)) => (path, form_urlencoded::parse(query.as_bytes()).into_owned().collect()),
        None => (url, Vec::new()),
    }
}
