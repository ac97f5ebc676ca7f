//! The API: `/healthz`, `/metrics` and `/api/v1/*`. Every route but `/healthz` needs the
//! token when one is set. URLs carry ids and words, never paths.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use av1core::library::queue::{ListQuery, Queue, Sort, Status};
use serde::Serialize;
use tiny_http::{Method, Request, Server};

use crate::http::{self, Reply};
use crate::scanner::Scanner;

/// What every HTTP thread shares.
pub struct State {
    pub db: PathBuf,
    pub roots: Vec<PathBuf>,
    pub token: Option<String>,
    pub scanner: Arc<Scanner>,
}

/// Set by the signal handler: the HTTP threads finish their request and return.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// One HTTP thread: its own queue connection, requests until [`STOP`].
pub fn serve(server: &Server, state: &State) {
    let mut queue = None;
    while !STOP.load(Ordering::Relaxed) {
        let request = match server.recv_timeout(Duration::from_millis(500)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("accepting a request: {e}");
                continue;
            }
        };
        if queue.is_none() {
            match Queue::open(&state.db) {
                Ok(q) => queue = Some(q),
                Err(e) => {
                    http::send(request, Reply::error(503, format!("queue unavailable: {e}")));
                    continue;
                }
            }
        }
        let q = queue.as_mut().expect("opened above");
        handle(request, q, state);
    }
}

fn handle(mut request: Request, queue: &mut Queue, state: &State) {
    let url = request.url().to_owned();
    let (path, query) = http::split_url(&url);
    let method = request.method().clone();
    if path == "/healthz" {
        return http::send(request, Reply::text(200, "ok\n".into()));
    }
    if !http::authorized(&request, state.token.as_deref()) {
        return http::send(
            request,
            Reply::error(401, "missing or wrong token (Authorization: Bearer TOKEN)"),
        );
    }
    // Bodies are read (and bounded) before anything else, so an oversized one is
    // refused whatever the route.
    let _body = match http::body(&mut request, http::MAX_BODY) {
        Ok(b) => b,
        Err(reply) => return http::send(request, reply),
    };
    let reply = match (&method, path) {
        (Method::Get, "/metrics") => metrics(queue, state),
        (Method::Get, "/api/v1/stats") => stats(queue, state),
        (Method::Get, "/api/v1/files") => files(queue, &query),
        (Method::Post, "/api/v1/scan") => {
            let queued = state.scanner.trigger();
            Reply::json(202, &serde_json::json!({ "queued": queued, "scanner": state.scanner.state() }))
        }
        (_, "/metrics" | "/api/v1/stats" | "/api/v1/files" | "/api/v1/scan") => {
            Reply::error(405, format!("{method} is not allowed here"))
        }
        _ => Reply::error(404, format!("no such endpoint: {path}")),
    };
    http::send(request, reply);
}

/// `GET /api/v1/stats`.
#[derive(Debug, Serialize)]
struct Stats {
    total: u64,
    pending: u64,
    running: u64,
    done: u64,
    skipped: u64,
    failed: u64,
    cancelled: u64,
    /// Bytes the done files saved.
    bytes_saved: u64,
    /// Percent of their original size.
    percent_saved: f64,
    /// Bytes of the library as it is now.
    library_bytes: u64,
    /// The library's size once every pending file is done, if they shrink like the
    /// done ones did.
    projected_library_bytes: u64,
    /// Seconds until the queue is empty, from the workers' combined throughput (none
    /// yet: workers come with the next step).
    eta_seconds: Option<u64>,
    skipped_by_reason: Vec<(String, u64)>,
    scanner: crate::scanner::ScanState,
}

fn stats(queue: &Queue, state: &State) -> Reply {
    let c = match queue.counts(&state.roots) {
        Ok(c) => c,
        Err(e) => return Reply::error(500, e.to_string()),
    };
    let saved = c.original_bytes.saturating_sub(c.output_bytes);
    let ratio = if c.original_bytes > 0 { c.output_bytes as f64 / c.original_bytes as f64 } else { 1.0 };
    let projected = c.library_bytes.saturating_sub(c.pending_bytes) + (c.pending_bytes as f64 * ratio) as u64;
    Reply::json(
        200,
        &Stats {
            total: c.total,
            pending: c.pending,
            running: c.running,
            done: c.done,
            skipped: c.skipped,
            failed: c.failed,
            cancelled: c.cancelled,
            bytes_saved: saved,
            percent_saved: if c.original_bytes > 0 {
                100.0 * saved as f64 / c.original_bytes as f64
            } else {
                0.0
            },
            library_bytes: c.library_bytes,
            projected_library_bytes: projected,
            eta_seconds: None,
            skipped_by_reason: c.skipped_by_reason,
            scanner: state.scanner.state(),
        },
    )
}

/// `GET /api/v1/files?status=&q=&sort=name|size|status|savings|queue&order=asc|desc&page=&per_page=`.
fn files(queue: &Queue, query: &[(String, String)]) -> Reply {
    let mut q = ListQuery::default();
    for (k, v) in query {
        let bad = |what: &str| Reply::error(400, format!("{k}={v:?}: {what}"));
        match k.as_str() {
            "status" if v.is_empty() => {}
            "status" => match Status::parse(v) {
                Some(s) => q.status = Some(s),
                None => return bad("not a status"),
            },
            "q" => q.search = Some(v.clone()),
            "sort" => match v.parse::<Sort>() {
                Ok(s) => q.sort = s,
                Err(e) => return bad(&e.to_string()),
            },
            "order" => q.descending = v == "desc",
            "page" => match v.parse::<u32>() {
                Ok(p) if p >= 1 => q.page = p,
                _ => return bad("a page number from 1"),
            },
            "per_page" => match v.parse::<u32>() {
                Ok(n) if (1..=500).contains(&n) => q.per_page = n,
                _ => return bad("1 to 500"),
            },
            _ => return bad("unknown parameter"),
        }
    }
    match queue.page(&q) {
        Ok(page) => Reply::json(
            200,
            &serde_json::json!({ "total": page.total, "page": q.page, "per_page": q.per_page, "files": page.rows }),
        ),
        Err(e) => Reply::error(500, e.to_string()),
    }
}

/// `GET /metrics`, Prometheus text format.
fn metrics(queue: &Queue, state: &State) -> Reply {
    let c = match queue.counts(&state.roots) {
        Ok(c) => c,
        Err(e) => return Reply::error(500, e.to_string()),
    };
    let mut out = String::new();
    out.push_str("# HELP av1_files Files in the queue by status.\n# TYPE av1_files gauge\n");
    for (status, n) in [
        ("pending", c.pending),
        ("running", c.running),
        ("done", c.done),
        ("skipped", c.skipped),
        ("failed", c.failed),
        ("cancelled", c.cancelled),
    ] {
        out.push_str(&format!("av1_files{{status=\"{status}\"}} {n}\n"));
    }
    out.push_str(
        "# HELP av1_bytes_saved_total Bytes saved by replaced files.\n# TYPE av1_bytes_saved_total counter\n",
    );
    out.push_str(&format!("av1_bytes_saved_total {}\n", c.original_bytes.saturating_sub(c.output_bytes)));
    out.push_str("# HELP av1_library_bytes Bytes of the library now.\n# TYPE av1_library_bytes gauge\n");
    out.push_str(&format!("av1_library_bytes {}\n", c.library_bytes));
    let scan = state.scanner.state();
    out.push_str("# HELP av1_scans_total Library scans finished.\n# TYPE av1_scans_total counter\n");
    out.push_str(&format!("av1_scans_total {}\n", scan.scans));
    out.push_str("# HELP av1_scan_running Whether a scan is running.\n# TYPE av1_scan_running gauge\n");
    out.push_str(&format!("av1_scan_running {}\n", u8::from(scan.running)));
    Reply::text(200, out)
}
