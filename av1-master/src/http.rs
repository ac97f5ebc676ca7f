//! HTTP plumbing on `tiny_http`: the listener, bounded request bodies, bearer-token
//! checks in constant time, query strings, JSON replies.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use tiny_http::{Header, Request, Response, Server};

/// Largest request body accepted (JSON calls; uploads will stream separately).
pub const MAX_BODY: u64 = 1 << 20;

/// A connection whose client sends nothing (or takes nothing we write) for this long is
/// closed; workers call every few seconds, event streams only write.
pub const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Binds `addr` (accepted connections inherit TCP_NODELAY).
pub fn listen(addr: SocketAddr) -> anyhow::Result<Arc<Server>> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    // No socket timeouts on the listener: Linux applies SO_RCVTIMEO to accept(), and
    // tiny_http stops accepting on the first error (the master went deaf after 30 idle
    // seconds). Accepted connections get them instead (our patch of tiny_http), and
    // slow clients can hold at most the bulk lane meanwhile (api::serve).
    tiny_http::set_connection_timeout(Some(CONNECTION_TIMEOUT));
    // No Nagle delay: a reply written in two parts (headers, body) must not wait for
    // the client's delayed ACK (40 ms on Linux). Accepted sockets inherit it.
    rustix::net::sockopt::set_tcp_nodelay(&listener, true).context("setting TCP_NODELAY")?;
    let server =
        Server::from_listener(listener, None).map_err(|e| anyhow::anyhow!("starting the server: {e}"))?;
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
        Reply::json(status, &serde_json::json!({ "error": message.into() }))
    }

    pub fn text(status: u16, body: String) -> Reply {
        Reply { status, body: body.into_bytes(), content_type: "text/plain; version=0.0.4; charset=utf-8" }
    }
}

/// Sends `reply` (a client that went away is not our problem).
pub fn send(request: Request, reply: Reply) {
    let header = Header::from_bytes("Content-Type", reply.content_type).expect("static header");
    let nosniff = Header::from_bytes("X-Content-Type-Options", "nosniff").expect("static header");
    let response = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(header)
        .with_header(nosniff);
    let _ = request.respond(response);
}

/// Whether the request carries `Authorization: Bearer TOKEN` (compared in constant time).
pub fn authorized(request: &Request, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    request.headers().iter().any(|h| {
        h.field.equiv("Authorization")
            && h.value.as_str().strip_prefix("Bearer ").is_some_and(|given| {
                constant_time_eq::constant_time_eq(given.trim().as_bytes(), token.as_bytes())
            })
    })
}

/// The request body, refused (413) beyond `limit` bytes.
pub fn body(request: &mut Request, limit: u64) -> Result<Vec<u8>, Reply> {
    if request.body_length().is_some_and(|n| n as u64 > limit) {
        return Err(Reply::error(413, format!("request body over {limit} bytes")));
    }
    let mut buf = Vec::new();
    request
        .as_reader()
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Reply::error(400, format!("reading the body: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(Reply::error(413, format!("request body over {limit} bytes")));
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
