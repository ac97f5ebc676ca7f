//! The API: `/healthz`, `/metrics` and `/api/v1/*`. Every route but `/healthz` and the
//! page's files needs a token, the worker's or the admin's ([`crate::auth`]), checked
//! on the front thread before anything of the body is read. URLs carry ids and words,
//! never paths.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use av1_library::queue::{Heartbeat, LeaseReply, ListQuery, Outcome, Queue, Sort, Status, WorkerInfo};
use av1_proto::admin::{
    Cancelling, Control, ControlDone, FadeOut, FadedOut, FilesPage, ScanQueued, WorkerStatus, Workers,
};
use av1_proto::urls::{NoRoute, Route};
use av1_proto::worker::{
    ClaimReply, ClaimRequest, ConfigReply, EndCall, EndReply, HeartbeatReply, HeartbeatRequest, JobEnd,
    Registered,
};
use serde::Deserialize;
use tiny_http::{Request, Server};

use crate::http::{self, Reply};
use crate::state::State;
use crate::views::{now_ms, statistics, workers};

/// How much of what workers send the master keeps.
mod limits {
    /// Bytes of a name (worker, host, encoder, version).
    pub const NAME: usize = 200;
    /// Bytes of a message (error, detail) kept; the rest is cut.
    pub const MESSAGE: usize = 8192;
    /// Bytes of the encoder settings (JSON) recorded with a result.
    pub const SETTINGS: usize = 16384;

    /// Cuts `s` to at most `max` bytes (on a character boundary), marking the cut.
    pub fn cut(s: &mut String, max: usize) {
        if s.len() > max {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push_str(" […]");
        }
    }
}

/// Requests that may take long — transfers, result checks, bodies tiny_http has not
/// read already (over 1 KiB, or chunked) — wait for the bulk lane, so that slow or
/// hostile clients can hold at most that lane while heartbeats, claims and the page go
/// on being answered. `None` when the lane is full (the request was answered 503).
fn to_bulk_lane(request: Request, bulk: &crossbeam_channel::Sender<Request>) -> Option<Request> {
    let transfer = matches!(
        http::route(&request),
        Ok(Route::Source(_) | Route::Upload(_) | Route::End(_, EndCall::Complete))
    );
    // tiny_http reads bodies up to 1 KiB before handing the request over, except after
    // `Expect: 100-continue`; an upgraded connection is a raw socket.
    let header = |name: &'static str| request.headers().iter().any(|h| h.field.equiv(name));
    let unread_body = match request.body_length() {
        Some(n) => n > 1024 || (n > 0 && header("Expect")),
        None => header("Transfer-Encoding"),
    } || request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Connection") && h.value.as_str().to_ascii_lowercase().contains("upgrade"));
    if !(transfer || unread_body) {
        return Some(request);
    }
    // A queued request costs no thread; only a long wait list is refused.
    match bulk.send_timeout(request, Duration::from_secs(2)) {
        Ok(()) => None,
        Err(
            crossbeam_channel::SendTimeoutError::Timeout(r)
            | crossbeam_channel::SendTimeoutError::Disconnected(r),
        ) => {
            http::send(r, Reply::error(503, "busy with transfers and checks: try again shortly"));
            None
        }
    }
}

/// One front HTTP thread: its own queue connection, requests until [`State::stop`]; long ones
/// go to the bulk lane ([`serve_bulk`]), event streams to their own thread.
pub fn serve(server: &Server, state: &Arc<State>, bulk: &crossbeam_channel::Sender<Request>) {
    let mut queue = None;
    while !state.stop.load(Ordering::Relaxed) {
        let request = match server.recv_timeout(Duration::from_millis(500)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("accepting a request: {e}");
                continue;
            }
        };
        // Who may do what, before the body is read or the request queued anywhere.
        if let Some((status, message)) = crate::auth::refuse(&request, &state.hosts, &state.tokens) {
            http::refuse(request, Reply::error(status, message));
            continue;
        }
        let events = http::route(&request) == Ok(Route::Events);
        let Some(request) = (if events { Some(request) } else { to_bulk_lane(request, bulk) }) else {
            continue;
        };
        if events {
            let state = Arc::clone(state);
            let spawned = std::thread::Builder::new()
                .name("events".into())
                .spawn(move || crate::ui::events(request, &state));
            if let Err(e) = spawned {
                tracing::warn!("starting an event stream: {e}");
            }
            continue;
        }
        serve_one(request, &mut queue, state);
    }
}

/// One bulk-lane thread: requests from the front threads until [`State::stop`].
pub fn serve_bulk(requests: &crossbeam_channel::Receiver<Request>, state: &State) {
    let mut queue = None;
    while !state.stop.load(Ordering::Relaxed) {
        if let Ok(request) = requests.recv_timeout(Duration::from_millis(500)) {
            serve_one(request, &mut queue, state);
        }
    }
}

fn serve_one(request: Request, queue: &mut Option<Queue>, state: &State) {
    if queue.is_none() {
        match Queue::open(&state.db) {
            Ok(q) => *queue = Some(q),
            Err(e) => return http::send(request, Reply::error(503, format!("queue unavailable: {e}"))),
        }
    }
    let q = queue.as_mut().expect("opened above");
    handle(request, q, state);
}

fn handle(mut request: Request, queue: &mut Queue, state: &State) {
    let url = request.url().to_owned();
    let (path, query) = http::split_url(&url);
    let route = http::route(&request);
    // The page itself holds no data: every number comes from the API, behind the token.
    // Past these the front thread has let the caller in (crate::auth::refuse).
    // Transfers stream (constant memory, no body limit but the file's own).
    match route {
        Ok(Route::Healthz) => return http::send(request, Reply::text(200, "ok\n".into())),
        Ok(Route::Asset(page)) => return http::send(request, crate::ui::asset(page)),
        Ok(Route::Source(id)) => return crate::transfer::source(request, queue, &state.transfers, id),
        Ok(Route::ResultState(id)) => return crate::transfer::received(request, queue, id),
        Ok(Route::Upload(id)) => {
            return crate::transfer::upload(request, queue, &state.transfers, id, &query)
        }
        _ => {}
    }
    // Bodies are read (and bounded) before anything else, so an oversized one is
    // refused whatever the route.
    let body = match http::body(&mut request, http::MAX_BODY) {
        Ok(b) => b,
        // Refused part-read: the rest must not be taken for the next request.
        Err(reply) => return http::refuse(request, reply),
    };
    let reply = match route {
        Ok(route) => answer(route, queue, state, &query, &body),
        Err(NoRoute::MethodNotAllowed) => {
            Reply::error(405, format!("{} is not allowed here", request.method()))
        }
        Err(NoRoute::NotFound) => Reply::error(404, format!("no such endpoint: {path}")),
    };
    http::send(request, reply);
}

/// The reply to a request of `route` (those answered without reading a body aside).
fn answer(route: Route, queue: &mut Queue, state: &State, query: &[(String, String)], body: &[u8]) -> Reply {
    match route {
        Route::Metrics => metrics(queue, state),
        Route::Stats => stats(queue, state),
        Route::Files => files(queue, query),
        Route::Scan => {
            let queued = state.scanner.trigger();
            Reply::json(202, &ScanQueued { queued, scanner: state.scanner.state() })
        }
        Route::Workers => match workers(queue, state) {
            Ok(workers) => Reply::json(200, &Workers { workers, now: now_ms() }),
            Err(e) => http::failed(&e),
        },
        Route::Register => register(queue, state, body),
        Route::Config => Reply::json(
            200,
            &ConfigReply { version: state.config_version.clone(), settings: state.policy.settings.clone() },
        ),
        Route::Claim => claim(queue, state, body),
        Route::Heartbeat(id) => heartbeat(queue, state, id, body),
        Route::End(id, EndCall::Complete) => complete(queue, state, id, body),
        Route::End(id, call) => end_job(queue, id, call, body),
        Route::Cancel(id) => match queue.request_cancel(id) {
            Ok(true) => Reply::json(200, &Cancelling { cancelling: id }),
            Ok(false) => {
                not_applicable(queue, id, "nothing to cancel: the file is neither pending nor running")
            }
            Err(e) => http::failed(&e),
        },
        Route::FadeOut(id) => fade_out(queue, id, body),
        Route::Control(id, c) => control(queue, id, c),
        // Answered before a body is read (handle), or on their own thread (serve).
        Route::Healthz
        | Route::Asset(_)
        | Route::Source(_)
        | Route::ResultState(_)
        | Route::Upload(_)
        | Route::Events => Reply::error(500, "answered elsewhere"),
    }
}

/// `GET /api/v1/stats`.
fn stats(queue: &Queue, state: &State) -> Reply {
    match statistics(queue, state) {
        Ok(v) => Reply::json(200, &v),
        Err(e) => http::failed(&e),
    }
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
            &FilesPage { total: page.total, page: q.page, per_page: q.per_page, files: page.rows },
        ),
        Err(e) => http::failed(&e),
    }
}

/// `GET /metrics`, Prometheus text format.
fn metrics(queue: &Queue, state: &State) -> Reply {
    let c = match queue.counts(&state.roots) {
        Ok(c) => c,
        Err(e) => return http::failed(&e),
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
    let ws = workers(queue, state).unwrap_or_default();
    out.push_str("# HELP av1_workers Registered workers by status.\n# TYPE av1_workers gauge\n");
    for status in WorkerStatus::ALL {
        let n = ws.iter().filter(|w| w.status == status).count();
        out.push_str(&format!("av1_workers{{status=\"{}\"}} {n}\n", status.as_str()));
    }
    let fps: f64 = ws
        .iter()
        .filter(|w| w.status == WorkerStatus::Encoding)
        .filter_map(|w| w.row.progress.as_ref()?.fps)
        .sum();
    out.push_str(
        "# HELP av1_encode_fps Frames per second encoded by all workers now.\n# TYPE av1_encode_fps gauge\n",
    );
    out.push_str(&format!("av1_encode_fps {fps:.2}\n"));
    let (down, up) = state.transfers.totals();
    out.push_str("# HELP av1_transfer_bytes_total Bytes sent to and received from workers.\n# TYPE av1_transfer_bytes_total counter\n");
    out.push_str(&format!("av1_transfer_bytes_total{{direction=\"download\"}} {down}\n"));
    out.push_str(&format!("av1_transfer_bytes_total{{direction=\"upload\"}} {up}\n"));
    let scan = state.scanner.state();
    out.push_str("# HELP av1_scans_total Library scans finished.\n# TYPE av1_scans_total counter\n");
    out.push_str(&format!("av1_scans_total {}\n", scan.scans));
    out.push_str("# HELP av1_scan_running Whether a scan is running.\n# TYPE av1_scan_running gauge\n");
    out.push_str(&format!("av1_scan_running {}\n", u8::from(scan.running)));
    Reply::text(200, out)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::error(400, format!("malformed JSON body: {e}")))
}

/// `POST /api/v1/workers/register` with a [`WorkerInfo`].
fn register(queue: &mut Queue, state: &State, body: &[u8]) -> Reply {
    let info: WorkerInfo = match parse(body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let long = [
        &info.host,
        info.encoder.as_ref().unwrap_or(&String::new()),
        info.version.as_ref().unwrap_or(&String::new()),
    ]
    .iter()
    .any(|s| s.len() > limits::NAME);
    if long {
        return Reply::error(400, format!("host, encoder and version are at most {} bytes", limits::NAME));
    }
    match queue.register_worker(&info) {
        Ok(worker_id) => Reply::json(
            200,
            &Registered {
                worker_id,
                lease_timeout_seconds: state.lease_timeout.as_secs_f64(),
                heartbeat_seconds: heartbeat_every(state.lease_timeout).as_secs_f64(),
                config_version: state.config_version.clone(),
            },
        ),
        Err(e) => http::failed(&e),
    }
}

/// How often workers should send heartbeats: several per lease.
pub fn heartbeat_every(lease: Duration) -> Duration {
    (lease / 6).clamp(Duration::from_millis(200), Duration::from_secs(10))
}

/// `POST /api/v1/jobs/claim` with a [`ClaimRequest`]: 200 and the job with its lease, or 204.
fn claim(queue: &mut Queue, state: &State, body: &[u8]) -> Reply {
    let c: ClaimRequest = match parse(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match queue.worker_exists(c.worker_id) {
        Ok(true) => {}
        Ok(false) => return Reply::error(404, format!("no worker {}: register again", c.worker_id)),
        Err(e) => return http::failed(&e),
    }
    match queue.claim_for(c.worker_id, state.order, state.lease_timeout, &c.exclude) {
        Ok(Some(claimed)) => {
            av1_library::pause_point(av1_library::Pause::MasterClaimed);
            Reply::json(200, &ClaimReply { claimed, config_version: state.config_version.clone() })
        }
        Ok(None) => Reply { status: 204, body: Vec::new(), content_type: "application/json" },
        Err(e) => http::failed(&e),
    }
}

fn stale() -> Reply {
    Reply::error(409, "not the current lease of this job: drop it")
}

/// `POST /api/v1/jobs/{id}/heartbeat` with a [`HeartbeatRequest`]; 409 for a lease that
/// is not the job's current one (nothing changes).
fn heartbeat(queue: &mut Queue, state: &State, id: i64, body: &[u8]) -> Reply {
    let b: HeartbeatRequest = match parse(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let beat = Heartbeat { phase: b.phase, progress: b.progress };
    match queue.heartbeat(id, &b.lease, state.lease_timeout, &beat) {
        Ok(LeaseReply::Renewed { cancel, expires }) => Reply::json(
            200,
            &HeartbeatReply { cancel, expires, config_version: state.config_version.clone() },
        ),
        Ok(LeaseReply::Stale) => stale(),
        Err(e) => http::failed(&e),
    }
}

/// `POST /api/v1/jobs/{id}/fail|skip|cancelled|release` ([`JobEnd`]); 409 for a lease
/// that is not the job's current one (nothing changes). What a worker makes the master
/// store is bounded: messages are cut (they are for people).
fn end_job(queue: &mut Queue, id: i64, call: EndCall, body: &[u8]) -> Reply {
    let (lease, end) = match JobEnd::from_body(call, body) {
        Ok(e) => e,
        Err(why) => return Reply::error(400, why),
    };
    let cut = |mut s: String| {
        limits::cut(&mut s, limits::MESSAGE);
        s
    };
    let outcome = match end {
        JobEnd::Fail { error } => Outcome::Failed { error: cut(error) },
        JobEnd::Skip { reason, detail } => Outcome::Skipped { reason, detail: cut(detail) },
        JobEnd::Cancelled => Outcome::Cancelled { detail: "cancelled on request".into() },
        // The worker cannot do this job (its mount, its disk): back to the queue.
        JobEnd::Release { detail } => Outcome::Requeued {
            detail: if detail.is_empty() { "given back by its worker".into() } else { cut(detail) },
        },
        JobEnd::Complete(_) => return Reply::error(500, "a result is checked by complete"),
    };
    match queue.finish_leased(id, &lease, &outcome) {
        Ok(true) => {
            // A partial upload (or a result beside the original) under this lease is
            // nobody's now.
            if let Ok(Some(path)) = queue.file_path(id) {
                av1_library::names::remove_lease_files(&path, &lease);
            }
            // Not the file's fault: a give-back does not use up one of its attempts.
            if call == EndCall::Release {
                if let Err(e) = queue.forgive_attempt(id) {
                    tracing::warn!(file = id, "{e}");
                }
            }
            Reply::json(200, &EndReply { status: outcome.status(), outcome: None })
        }
        Ok(false) => stale(),
        Err(e) => http::failed(&e),
    }
}

/// `POST /api/v1/workers/{id}/fade-out` with a [`FadeOut`].
fn fade_out(queue: &mut Queue, id: i64, body: &[u8]) -> Reply {
    let f: FadeOut = match parse(body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match queue.set_fade_out(id, f.fade_out) {
        Ok(true) => Reply::json(200, &FadedOut { worker_id: id, fade_out: f.fade_out }),
        Ok(false) => Reply::error(404, format!("no worker {id}")),
        Err(e) => http::failed(&e),
    }
}

/// `POST /api/v1/jobs/{id}/complete` with the lease and a
/// [`Delivered`](av1_library::deliver::Delivered): the master checks the result the
/// worker wrote beside the original (shared storage) or uploaded, and replaces the
/// original; 409 for a stale lease.
fn complete(queue: &mut Queue, state: &State, id: i64, body: &[u8]) -> Reply {
    let (lease, result) = match JobEnd::from_body(EndCall::Complete, body) {
        Ok((lease, JobEnd::Complete(result))) => (lease, result),
        Ok(_) => return Reply::error(500, "not a result"),
        Err(why) => return Reply::error(400, why),
    };
    if result.blake3.len() != 64 || !result.blake3.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Reply::error(400, "blake3 is 64 hexadecimal digits");
    }
    if result.encoder.len() > limits::NAME
        || result.settings.as_ref().is_some_and(|s| s.to_string().len() > limits::SETTINGS)
    {
        return Reply::error(400, "encoder or settings too long");
    }
    match av1_library::deliver::accept(queue, id, &lease, &result, &state.policy) {
        Ok(Some(outcome)) => {
            tracing::info!(file = id, "result: {outcome:?}");
            Reply::json(200, &EndReply { status: outcome.status(), outcome: Some(outcome) })
        }
        Ok(None) => stale(),
        // Always 500, which the worker retries: the job is the master's now (its check
        // stands between the lease and the replacement), so no answer may make the
        // worker drop the result it delivered.
        Err(e) => Reply::error(500, e.to_string()),
    }
}

/// `POST /api/v1/files/{id}/retry|skip|reencode|top|delete`: 200, or 409 when the file's
/// state does not allow it (a running file is changed only through its job).
fn control(queue: &mut Queue, id: i64, c: Control) -> Reply {
    let done = match c {
        Control::Retry => queue.retry(id),
        Control::Skip => queue.set_status(id, Status::Skipped, Some("skipped by hand")),
        Control::Reencode => queue.reencode(id),
        Control::Top => queue.push_to_top(id),
        Control::Delete => queue.remove(id),
    };
    match done {
        Ok(true) => Reply::json(200, &ControlDone { file_id: id, done: c }),
        Ok(false) => not_applicable(
            queue,
            id,
            &format!("{} does not apply to file {id} in its current state", c.as_str()),
        ),
        Err(e) => http::failed(&e),
    }
}

/// A control that changed nothing: 404 when there is no such file, else 409 `why`.
fn not_applicable(queue: &Queue, id: i64, why: &str) -> Reply {
    match queue.file_path(id) {
        Ok(None) => Reply::error(404, format!("no file {id}")),
        Ok(Some(_)) => Reply::error(409, why),
        Err(e) => http::failed(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_a_character_boundary_and_marked() {
        let mut s = "é".repeat(10); // 20 bytes
        limits::cut(&mut s, 5);
        assert_eq!(s, "éé […]", "never half a character");
        let mut short = "fine".to_owned();
        limits::cut(&mut short, 5);
        assert_eq!(short, "fine");
    }

    #[test]
    fn heartbeats_come_several_times_per_lease_within_bounds() {
        assert_eq!(heartbeat_every(Duration::from_secs(60)), Duration::from_secs(10));
        assert_eq!(heartbeat_every(Duration::from_secs(30)), Duration::from_secs(5));
        assert_eq!(heartbeat_every(Duration::from_millis(600)), Duration::from_millis(200));
        assert_eq!(heartbeat_every(Duration::from_secs(600)), Duration::from_secs(10));
    }

    #[test]
    fn library_errors_are_answered_with_their_kind_and_only_the_outer_message() {
        let full = av1_library::Error::NoSpace { path: "/m".into(), needed: 2, available: 1 };
        let r = http::failed(&full);
        assert_eq!(r.status, 507);
        let body: av1_proto::ErrorReply = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body.error, full.to_string());
        let broken = av1_library::Error::Database {
            op: "claiming",
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(11),
                Some("secret detail".into()),
            ),
        };
        let r = http::failed(&broken);
        assert_eq!(r.status, 500);
        assert!(
            !String::from_utf8_lossy(&r.body).contains("secret detail"),
            "the database's words stay in the log"
        );
    }
}
