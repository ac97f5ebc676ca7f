//! Who may call what, decided on the front thread from the request line and headers
//! alone — before a byte of the body is read or the request is queued anywhere.
//!
//! - Two roles: the **admin** token (`AV1_TOKEN`: everything) and the **worker** token
//!   (`AV1_WORKER_TOKEN`: register, claim, config, heartbeats, transfers and job
//!   endings). The admin token also lets workers in, so one-token setups keep working.
//! - Browsers cannot be turned against the master. A browser never adds the Bearer
//!   token by itself, so a request with a valid token comes from the token's holder;
//!   without one (only the page's files and `/healthz`, or every call under
//!   `--insecure-no-token`) the `Host` must be one the master answers to (an IP
//!   address, `localhost`, or a name in `ALLOWED_HOSTS`: no DNS rebinding) and an
//!   `Origin`, when sent, the master itself (no cross-site request). Every
//!   state-changing call carries `Content-Type: application/json` (a form or a
//!   `no-cors` fetch cannot), and the open routes take no body.
//! - A refused request is answered with `Connection: close` and its body left unread.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use av1_proto::urls::Access;
use tiny_http::{Method, Request};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Register, claim, config, heartbeats, transfers, job endings.
    Worker,
    /// Everything.
    Admin,
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `/healthz` and the page's own files (they hold no data).
    Nobody,
    Role(Role),
}

/// The tokens the master accepts. `Debug` never shows them.
#[derive(Clone)]
pub struct Tokens {
    /// `None` only with `--insecure-no-token`: everyone is admin.
    admin: Option<String>,
    worker: Option<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |t: &Option<String>| if t.is_some() { "<redacted>" } else { "none" };
        f.debug_struct("Tokens")
            .field("admin", &shown(&self.admin))
            .field("worker", &shown(&self.worker))
            .finish()
    }
}

impl Tokens {
    pub fn new(admin: Option<String>, worker: Option<String>) -> Tokens {
        Tokens { admin, worker }
    }

    /// The admin token (for the local worker), if any.
    pub fn admin(&self) -> Option<&str> {
        self.admin.as_deref()
    }

    /// Whether requests must carry a token (not under `--insecure-no-token`).
    pub fn required(&self) -> bool {
        self.admin.is_some()
    }

    /// The role the request's `Authorization: Bearer` token gives (compared in
    /// constant time), if any.
    pub fn role_of(&self, request: &Request) -> Option<Role> {
        let Some(admin) = &self.admin else { return Some(Role::Admin) };
        let given = request
            .headers()
            .iter()
            .filter(|h| h.field.equiv("Authorization"))
            .find_map(|h| h.value.as_str().strip_prefix("Bearer ").map(str::trim))?;
        let same = |t: &str| constant_time_eq::constant_time_eq(given.as_bytes(), t.as_bytes());
        if same(admin) {
            Some(Role::Admin)
        } else if self.worker.as_deref().is_some_and(same) {
            Some(Role::Worker)
        } else {
            None
        }
    }
}

/// What `method path` asks of its caller.
/// (The routes and who may call them are written once, in [`av1_proto::urls`].)
pub fn need(method: &Method, path: &str) -> Need {
    match av1_proto::urls::access(crate::http::method(method), path) {
        Access::Anyone => Need::Nobody,
        Access::Worker => Need::Role(Role::Worker),
        Access::Admin => Need::Role(Role::Admin),
    }
}

/// The host names (besides IP addresses and `localhost`) the master answers to.
#[derive(Debug, Clone, Default)]
pub struct Hosts(Vec<String>);

impl Hosts {
    /// From `ALLOWED_HOSTS` (comma-separated names: a LAN name, a reverse proxy's).
    pub fn new(names: &[String]) -> Hosts {
        Hosts(names.iter().map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect())
    }

    /// A name from `ALLOWED_HOSTS` (with or without a port).
    fn named(&self, authority: &str) -> bool {
        self.0.contains(&host_name(authority))
    }

    fn allows(&self, host: &str) -> bool {
        let name = host_name(host);
        name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" || self.0.contains(&name)
    }
}

/// `example.org:8090` → `example.org`; `[::1]:8090` → `::1`.
fn host_name(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    a.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(a.clone(), |(h, _)| h.to_owned())
}

/// Why a request is refused before its body is read: `(status, message)`; `None` to
/// let it through.
pub fn refuse(request: &Request, hosts: &Hosts, tokens: &Tokens) -> Option<(u16, String)> {
    let header = |name: &str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    };
    let role = tokens.role_of(request);
    let path = request.url().split('?').next().unwrap_or_default();
    let method = request.method();
    let changes = !matches!(method, Method::Get | Method::Head | Method::Options);
    // A token's holder sent this (a browser never adds one by itself); without one,
    // the browser checks apply: reverse proxies and service names work with tokens.
    let by_holder = tokens.required() && role.is_some();
    if !by_holder {
        let host = header("Host");
        if let Some(host) = host.filter(|h| !hosts.allows(h)) {
            return Some((
                403,
                format!("this master does not answer to the host name {host:?} (ALLOWED_HOSTS)"),
            ));
        }
        if let Some(origin) = header("Origin") {
            let authority = origin.split_once("://").map(|(_, a)| a.trim_end_matches('/'));
            let same = authority
                .is_some_and(|a| host.is_some_and(|h| a.eq_ignore_ascii_case(h.trim())) || hosts.named(a));
            if !same {
                return Some((403, format!("requests from other sites ({origin}) are refused")));
            }
        }
    }
    match (need(method, path), role) {
        (Need::Nobody, _) => {
            let body = request.body_length().is_some_and(|n| n > 0)
                || header("Transfer-Encoding").is_some()
                || header("Expect").is_some();
            return body.then(|| (413, "this takes no request body".into()));
        }
        (Need::Role(_), None) => {
            return Some((401, "missing or wrong token (Authorization: Bearer TOKEN)".into()))
        }
        (Need::Role(needed), Some(has)) if has < needed => {
            return Some((
                403,
                "the worker token cannot do this: it needs the admin token (AV1_TOKEN)".into(),
            ))
        }
        _ => {}
    }
    let upload = *method == Method::Put;
    let json = header("Content-Type").is_some_and(|t| {
        t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if changes && !upload && !json {
        return Some((415, "state-changing calls must be sent as Content-Type: application/json".into()));
    }
    None
}

/// The admin token: `AV1_TOKEN` or `--token-file`, else the one kept in `state_dir`
/// (`token`, mode 0600), generated at first start. The second value says where a
/// generated or kept one is.
pub fn admin_token(
    given: Option<String>,
    file: Option<&Path>,
    state_dir: &Path,
) -> anyhow::Result<(String, Option<PathBuf>)> {
    if let Some(path) = file {
        let t = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        return Ok((checked(t.trim().to_owned(), &path.display().to_string())?, None));
    }
    if let Some(t) = given {
        return Ok((checked(t, "AV1_TOKEN")?, None));
    }
    let path = state_dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(t) => return Ok((checked(t.trim().to_owned(), &path.display().to_string())?, Some(path))),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("reading {}", path.display()))
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    let token = random_token()?;
    write_private(&path, &token)?;
    Ok((token, Some(path)))
}

fn checked(token: String, from: &str) -> anyhow::Result<String> {
    if token.is_empty() {
        bail!("the token from {from} is empty");
    }
    if token.bytes().any(|b| !b.is_ascii_graphic()) {
        bail!("the token from {from} must be printable ASCII without spaces");
    }
    Ok(token)
}

/// 32 bytes from the kernel's random source, as hex.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_private(path: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_right_role() {
        assert_eq!(need(&Method::Get, "/healthz"), Need::Nobody);
        assert_eq!(need(&Method::Get, "/app.js"), Need::Nobody);
        assert_eq!(need(&Method::Post, "/api/v1/jobs/claim"), Need::Role(Role::Worker));
        assert_eq!(need(&Method::Put, "/api/v1/jobs/3/result"), Need::Role(Role::Worker));
        assert_eq!(need(&Method::Post, "/api/v1/jobs/3/complete"), Need::Role(Role::Worker));
        for admin in
            ["/api/v1/files/3/cancel", "/api/v1/files/3/delete", "/api/v1/scan", "/api/v1/files/3/reencode"]
        {
            assert_eq!(need(&Method::Post, admin), Need::Role(Role::Admin), "{admin}");
        }
        assert_eq!(need(&Method::Get, "/api/v1/files"), Need::Role(Role::Admin));
        assert_eq!(need(&Method::Get, "/metrics"), Need::Role(Role::Admin));
        assert_eq!(need(&Method::Post, "/api/v1/jobs/3/unknown"), Need::Role(Role::Admin));
    }

    #[test]
    fn host_names() {
        let hosts = Hosts::new(&["Media.lan".into()]);
        assert!(hosts.allows("127.0.0.1:8090"));
        assert!(hosts.allows("[::1]:8090"));
        assert!(hosts.allows("localhost:8090"));
        assert!(hosts.allows("media.lan"));
        assert!(!hosts.allows("evil.example:8090"));
        assert!(!hosts.allows("media.lan.evil.example"));
    }

    #[test]
    fn tokens_are_generated_once_kept_private_and_never_shown() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let (t, at) = admin_token(None, None, d.path()).unwrap();
        assert_eq!(t.len(), 64);
        let at = at.unwrap();
        assert_eq!(std::fs::metadata(&at).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(admin_token(None, None, d.path()).unwrap().0, t, "kept across starts");
        assert_eq!(admin_token(Some("given".into()), None, d.path()).unwrap().0, "given");
        assert!(admin_token(Some(String::new()), None, d.path()).is_err());
        let shown = format!("{:?}", Tokens::new(Some(t.clone()), Some("w".into())));
        assert!(!shown.contains(&t) && shown.contains("redacted"), "{shown}");
    }
}
