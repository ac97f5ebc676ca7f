//! Every URL of the master, both ways: the builders a client calls ([`register`],
//! [`heartbeat`], …) and [`Route::parse`], which the master's router and its
//! authorisation both read, so a route and who may call it are written once.

use crate::admin::Control;
use crate::worker::EndCall;

pub const HEALTHZ: &str = "/healthz";
pub const METRICS: &str = "/metrics";
pub const STATS: &str = "/api/v1/stats";
pub const FILES: &str = "/api/v1/files";
pub const EVENTS: &str = "/api/v1/events";
pub const SCAN: &str = "/api/v1/scan";
pub const WORKERS: &str = "/api/v1/workers";
pub const REGISTER: &str = "/api/v1/workers/register";
pub const CONFIG: &str = "/api/v1/config";
pub const CLAIM: &str = "/api/v1/jobs/claim";

pub fn heartbeat(job: i64) -> String {
    format!("/api/v1/jobs/{job}/heartbeat")
}

pub fn end(job: i64, call: EndCall) -> String {
    format!("/api/v1/jobs/{job}/{}", call.as_str())
}

/// `GET`: the source (file distribution); `Range: bytes=N-` resumes.
pub fn source(job: i64) -> String {
    format!("/api/v1/jobs/{job}/source")
}

/// `GET`: how much of the result the master holds.
pub fn result(job: i64) -> String {
    format!("/api/v1/jobs/{job}/result")
}

/// `PUT`: the result from byte `offset` on.
pub fn upload(job: i64, offset: u64) -> String {
    format!("/api/v1/jobs/{job}/result?offset={offset}")
}

pub fn cancel(file: i64) -> String {
    format!("/api/v1/files/{file}/cancel")
}

pub fn control(file: i64, c: Control) -> String {
    format!("/api/v1/files/{file}/{}", c.as_str())
}

pub fn fade_out(worker: i64) -> String {
    format!("/api/v1/workers/{worker}/fade-out")
}

/// The methods the master answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Other,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// No token: the health check and the page's own files (they hold no data).
    Anyone,
    /// The worker token (or the admin's): the calls of a job.
    Worker,
    /// The admin token: everything else, and any path that is not a route, so a caller
    /// without it learns nothing of what exists.
    Admin,
}

/// A request the master serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    /// `/`, `/index.html`, `/app.js`, `/app.css`.
    Asset(&'static str),
    Metrics,
    Stats,
    Files,
    Events,
    Scan,
    Workers,
    Register,
    Config,
    Claim,
    Heartbeat(i64),
    End(i64, EndCall),
    Source(i64),
    /// `GET`: how much of an upload is here.
    ResultState(i64),
    /// `PUT`: a piece of an upload.
    Upload(i64),
    Cancel(i64),
    Control(i64, Control),
    FadeOut(i64),
}

/// Why a request has no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// 404.
    NotFound,
    /// 405: the path exists, not with this method.
    MethodNotAllowed,
}

const ASSETS: [&str; 4] = ["/", "/index.html", "/app.js", "/app.css"];

impl Route {
    /// The route of `method path` (`path` without its query string).
    pub fn parse(method: Method, path: &str) -> Result<Route, NoRoute> {
        use Method::{Get, Head, Post, Put};
        if path == HEALTHZ {
            return Ok(Route::Healthz);
        }
        if let Some(asset) = ASSETS.iter().find(|a| **a == path) {
            return match method {
                Get | Head => Ok(Route::Asset(asset)),
                _ => Err(NoRoute::MethodNotAllowed),
            };
        }
        let fixed = match path {
            METRICS => Some((Get, Route::Metrics)),
            STATS => Some((Get, Route::Stats)),
            FILES => Some((Get, Route::Files)),
            EVENTS => Some((Get, Route::Events)),
            SCAN => Some((Post, Route::Scan)),
            WORKERS => Some((Get, Route::Workers)),
            REGISTER => Some((Post, Route::Register)),
            CONFIG => Some((Get, Route::Config)),
            CLAIM => Some((Post, Route::Claim)),
            _ => None,
        };
        if let Some((wanted, route)) = fixed {
            return if method == wanted { Ok(route) } else { Err(NoRoute::MethodNotAllowed) };
        }
        let (kind, id, action) = by_id(path).ok_or(NoRoute::NotFound)?;
        let route = match (method, kind, action) {
            (Post, "jobs", "heartbeat") => Route::Heartbeat(id),
            (Post, "jobs", call) => Route::End(id, EndCall::parse(call).ok_or(NoRoute::NotFound)?),
            (Get, "jobs", "source") => Route::Source(id),
            (Get, "jobs", "result") => Route::ResultState(id),
            (Put, "jobs", "result") => Route::Upload(id),
            (Post, "files", "cancel") => Route::Cancel(id),
            (Post, "files", c) => Route::Control(id, Control::parse(c).ok_or(NoRoute::NotFound)?),
            (Post, "workers", "fade-out") => Route::FadeOut(id),
            _ => return Err(NoRoute::NotFound),
        };
        Ok(route)
    }

    /// Who may call it.
    pub fn access(self) -> Access {
        match self {
            Route::Healthz | Route::Asset(_) => Access::Anyone,
            Route::Register
            | Route::Config
            | Route::Claim
            | Route::Heartbeat(_)
            | Route::End(..)
            | Route::Source(_)
            | Route::ResultState(_)
            | Route::Upload(_) => Access::Worker,
            Route::Metrics
            | Route::Stats
            | Route::Files
            | Route::Events
            | Route::Scan
            | Route::Workers
            | Route::Cancel(_)
            | Route::Control(..)
            | Route::FadeOut(_) => Access::Admin,
        }
    }
}

/// Who may call `method path`: a path that is no route needs the admin token.
pub fn access(method: Method, path: &str) -> Access {
    Route::parse(method, path).map_or(Access::Admin, Route::access)
}

/// `/api/v1/{kind}/{id}/{action}` with a decimal id.
fn by_id(path: &str) -> Option<(&str, i64, &str)> {
    let mut parts = path.strip_prefix("/api/v1/")?.split('/');
    let (kind, id, action) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((kind, id.parse().ok()?, action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Method::{Get, Head, Other, Post, Put};

    /// Every route: the URL a client builds, the method, what parses back, and who
    /// may call it.
    #[test]
    fn every_route_parses_back_with_its_access() {
        let table: Vec<(Method, String, Route, Access)> = vec![
            (Get, HEALTHZ.into(), Route::Healthz, Access::Anyone),
            (Post, HEALTHZ.into(), Route::Healthz, Access::Anyone),
            (Get, "/".into(), Route::Asset("/"), Access::Anyone),
            (Head, "/app.js".into(), Route::Asset("/app.js"), Access::Anyone),
            (Get, "/app.css".into(), Route::Asset("/app.css"), Access::Anyone),
            (Get, METRICS.into(), Route::Metrics, Access::Admin),
            (Get, STATS.into(), Route::Stats, Access::Admin),
            (Get, FILES.into(), Route::Files, Access::Admin),
            (Get, EVENTS.into(), Route::Events, Access::Admin),
            (Post, SCAN.into(), Route::Scan, Access::Admin),
            (Get, WORKERS.into(), Route::Workers, Access::Admin),
            (Post, REGISTER.into(), Route::Register, Access::Worker),
            (Get, CONFIG.into(), Route::Config, Access::Worker),
            (Post, CLAIM.into(), Route::Claim, Access::Worker),
            (Post, heartbeat(7), Route::Heartbeat(7), Access::Worker),
            (Get, source(7), Route::Source(7), Access::Worker),
            (Get, result(7), Route::ResultState(7), Access::Worker),
            (Put, result(7), Route::Upload(7), Access::Worker),
            (Post, cancel(7), Route::Cancel(7), Access::Admin),
            (Post, fade_out(7), Route::FadeOut(7), Access::Admin),
        ];
        let ends = EndCall::ALL.map(|c| (Post, end(7, c), Route::End(7, c), Access::Worker));
        let controls = Control::ALL.map(|c| (Post, control(7, c), Route::Control(7, c), Access::Admin));
        for (method, url, route, who) in table.into_iter().chain(ends).chain(controls) {
            assert_eq!(Route::parse(method, &url), Ok(route), "{method:?} {url}");
            assert_eq!(route.access(), who, "{url}");
            assert_eq!(access(method, &url), who, "{url}");
        }
        assert_eq!(upload(7, 5), "/api/v1/jobs/7/result?offset=5");
    }

    #[test]
    fn wrong_methods_and_unknown_paths_are_refused_and_need_the_admin() {
        for (method, path) in
            [(Get, CLAIM), (Put, REGISTER), (Post, STATS), (Other, METRICS), (Post, "/app.js")]
        {
            assert_eq!(Route::parse(method, path), Err(NoRoute::MethodNotAllowed), "{method:?} {path}");
            assert_eq!(access(method, path), Access::Admin, "{path}");
        }
        for (method, path) in [
            (Post, "/api/v1/jobs/3/unknown"),
            (Get, "/api/v1/jobs/3/heartbeat"),
            (Post, "/api/v1/jobs/-3/fail"),
            (Post, "/api/v1/jobs/3/fail/x"),
            (Post, "/api/v1/jobs//fail"),
            (Post, "/api/v1/jobs/99999999999999999999/fail"),
            (Post, "/api/v1/files/3/explode"),
            (Get, "/etc/passwd"),
            (Get, "/api/v2/stats"),
        ] {
            assert_eq!(Route::parse(method, path), Err(NoRoute::NotFound), "{method:?} {path}");
            assert_eq!(access(method, path), Access::Admin, "{path}");
        }
    }
}
