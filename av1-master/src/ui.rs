//! The web page: three files embedded in the binary (no CDN, no outside request), and
//! the event stream that keeps it live (`GET /api/v1/events`, Server-Sent Events).

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use av1_library::queue::Queue;
use tiny_http::Request;

use crate::http::{self, Reply};
use crate::state::State;

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// `/`, `/app.js`, `/app.css`.
pub fn asset(path: &str) -> Reply {
    let (body, content_type) = match path {
        "/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "/app.css" => (APP_CSS, "text/css; charset=utf-8"),
        // `/`, `/index.html` (av1_proto::urls::Route::Asset)
        _ => (INDEX, "text/html; charset=utf-8"),
    };
    Reply { status: 200, body: body.as_bytes().to_vec(), content_type }
}

/// Event streams open at once ([`State::streams`]): each holds an HTTP thread.
const MAX_STREAMS: usize = 6;

/// How often the stream looks for changes, and sends an update anyway.
const TICK: Duration = Duration::from_millis(500);
const EVERY: Duration = Duration::from_secs(3);

/// `GET /api/v1/events`: `data: {"stats", "workers", "files_changed"}` events, sent when
/// something changed (checked twice a second) and every 3 s anyway.
pub fn events(request: Request, state: &State) {
    if state.streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
        state.streams.fetch_sub(1, Ordering::SeqCst);
        return http::send(request, Reply::error(503, "too many live pages; close one"));
    }
    let queue = match Queue::open(&state.db) {
        Ok(q) => q,
        Err(e) => {
            state.streams.fetch_sub(1, Ordering::SeqCst);
            return http::send(request, Reply::error(503, e.to_string()));
        }
    };
    // Written straight to the connection, flushed after every event (the server's own
    // chunked writer would hold small events back).
    let mut out = request.into_writer();
    let mut stream = Stream {
        queue,
        state,
        pending: Vec::new(),
        sent_at: None,
        revision: String::new(),
        last: String::new(),
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n";
    let mut buf = vec![0u8; 64 << 10];
    let result = (|| -> std::io::Result<()> {
        out.write_all(head.as_bytes())?;
        out.flush()?;
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    })();
    let _ = result;
    state.streams.fetch_sub(1, Ordering::SeqCst);
}

struct Stream<'a> {
    queue: Queue,
    state: &'a State,
    pending: Vec<u8>,
    sent_at: Option<Instant>,
    revision: String,
    last: String,
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            if self.state.stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            if self.sent_at.is_some() {
                std::thread::sleep(TICK);
            }
            let stats = crate::views::statistics(&self.queue, self.state).map_err(std::io::Error::other)?;
            let workers = crate::views::workers(&self.queue, self.state).map_err(std::io::Error::other)?;
            let revision = self.queue.revision().map_err(std::io::Error::other)?;
            let files_changed = revision != self.revision;
            let event = av1_proto::admin::Event { stats, workers, files_changed };
            let body = serde_json::to_string(&event).map_err(std::io::Error::other)?;
            let due = self.sent_at.is_none_or(|t| t.elapsed() >= EVERY);
            if files_changed || body != self.last || due {
                self.pending = format!("data: {body}\n\n").into_bytes();
                self.revision = revision;
                self.last = body;
                self.sent_at = Some(Instant::now());
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}
