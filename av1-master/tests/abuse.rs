//! API abuse against a running master: missing and wrong tokens, stale and foreign
//! leases, replayed calls, malformed and oversized bodies, ids that look like paths,
//! garbage on the socket, and very many connections — idle ones, busy ones and ones
//! that never send the body they announce. Each gets the right status, changes
//! nothing it should not, and the master keeps answering. The counts are printed
//! (RELIABILITY.md quotes them).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use av1_testkit::net::{connect_from, loopback};
use serde_json::{json, Value};
use support::*;

/// What a request may get instead of a status: the master closed the connection (or
/// kept it open 3 s) without an answer. Counted apart from statuses.
const NO_ANSWER: u16 = 0;

/// A raw HTTP/1.1 request on a new connection; the status, or [`NO_ANSWER`].
fn raw(addr: &str, request: &[u8]) -> u16 {
    raw_from(loopback(1), addr, request)
}

/// [`raw`] from the local address `from`.
fn raw_from(from: std::net::IpAddr, addr: &str, request: &[u8]) -> u16 {
    let mut s = connect_from(from, addr);
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

fn send(url: &str, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> u16 {
    let a = agent();
    let full = format!("{url}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let r = match method {
        "GET" => {
            let mut rb = a.get(&full);
            if let Some(h) = &auth {
                rb = rb.header("Authorization", h);
            }
            rb.call()
        }
        _ => {
            let mut rb = if method == "PUT" { a.put(&full) } else { a.post(&full) };
            if let Some(h) = &auth {
                rb = rb.header("Authorization", h);
            }
            rb = rb.header("Content-Type", "application/json").header("X-Lease", "not-a-lease");
            rb.send(body.unwrap_or_default())
        }
    };
    r.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Requests by kind, with what each got; every request has exactly one right answer
/// (a status, or [`NO_ANSWER`] where closing is the right answer), and every wrong one
/// is listed at the end.
#[derive(Default)]
struct Tally {
    kinds: BTreeMap<String, (u32, BTreeMap<String, u32>)>,
    wrong: Vec<String>,
}

fn answer(status: u16) -> String {
    if status == NO_ANSWER {
        "no answer".into()
    } else {
        status.to_string()
    }
}

impl Tally {
    fn expect(&mut self, kind: &str, got: u16, want: u16, what: &str) {
        let e = self.kinds.entry(kind.to_owned()).or_default();
        e.0 += 1;
        *e.1.entry(answer(got)).or_default() += 1;
        if got != want {
            self.wrong.push(format!("{kind}: {what} got {}, must get {}", answer(got), answer(want)));
        }
    }
}

#[test]
fn abuse_gets_the_right_answers_and_the_master_stays_up() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "One.mp4", 1);
    clip(&lib, "Two.mkv", 1);
    let before = hashes(&lib);
    let db = d.path().join("master.sqlite");
    let (mut m, url) = master(&lib, &db);
    let addr = url.trim_start_matches("http://").to_owned();
    settle(&url, "the scan", |s| s["pending"] == 2);
    let mut t = Tally::default();

    // 1. Tokens: none, wrong, empty, in the query string.
    let endpoints: &[(&str, &str)] = &[
        ("GET", "/api/v1/stats"),
        ("GET", "/api/v1/files"),
        ("GET", "/api/v1/workers"),
        ("GET", "/api/v1/config"),
        ("GET", "/api/v1/events"),
        ("GET", "/metrics"),
        ("POST", "/api/v1/scan"),
        ("POST", "/api/v1/workers/register"),
        ("POST", "/api/v1/jobs/claim"),
        ("POST", "/api/v1/jobs/1/heartbeat"),
        ("POST", "/api/v1/jobs/1/complete"),
        ("POST", "/api/v1/files/1/delete"),
        ("GET", "/api/v1/jobs/1/source"),
        ("PUT", "/api/v1/jobs/1/result?offset=0"),
    ];
    for (method, path) in endpoints {
        for token in [None, Some("wrong"), Some(""), Some("process-tests-but-longer")] {
            t.expect("no or wrong token", send(&url, method, path, token, Some(b"{}")), 401, path);
        }
        let q = if path.contains('?') { "&" } else { "?" };
        let in_query = send(&url, method, &format!("{path}{q}token={TOKEN}"), None, Some(b"{}"));
        t.expect("no or wrong token", in_query, 401, path);
    }

    // 2. Malformed bodies where JSON is expected.
    let bodies: &[&[u8]] = &[
        b"{",
        b"null",
        b"[]",
        b"\"text\"",
        b"{\"worker_id\": \"seven\"}",
        b"{\"lease\": 5}",
        &[0xff, 0xfe, 0, 1, 2],
    ];
    for path in [
        "/api/v1/workers/register",
        "/api/v1/jobs/claim",
        "/api/v1/jobs/1/heartbeat",
        "/api/v1/jobs/1/complete",
        "/api/v1/jobs/1/fail",
        "/api/v1/workers/1/fade-out",
    ] {
        for body in bodies {
            let got = send(&url, "POST", path, Some(TOKEN), Some(body));
            t.expect("malformed body", got, 400, path);
        }
    }

    // 3. Oversized bodies: sent without announcing their size (chunked: read until
    //    they pass 1 MiB, the rest drained, then 413), and only announced (refused at
    //    once, unread).
    let over = format!("{:x}\r\n{}\r\n0\r\n\r\n", (1 << 20) + 10, " ".repeat((1 << 20) + 10));
    let chunked = format!("POST /api/v1/jobs/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{over}");
    t.expect("oversized body", raw(&addr, chunked.as_bytes()), 413, "1 MiB + 10 sent, chunked");
    for path in ["/api/v1/jobs/claim", "/api/v1/workers/register"] {
        for (length, auth) in [("10000000000", true), ("10000000000000", true), ("10000000000000", false)] {
            let auth = if auth { format!("Authorization: Bearer {TOKEN}\r\n") } else { String::new() };
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            );
            // (10 TB announced once aborted the whole master: tiny_http allocated it to drain it.)
            let want = if auth.is_empty() { 401 } else { 413 };
            t.expect("oversized body", raw(&addr, head.as_bytes()), want, "10 GB / 10 TB announced");
        }
    }

    // 4. Ids that look like paths, or are not ids.
    for id in
        ["..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "-1", "0", "1.5", "99999999999999999999999", "1%00", "one"]
    {
        for (method, what) in [("POST", "retry"), ("POST", "delete"), ("GET", "source")] {
            let path = if what == "source" {
                format!("/api/v1/jobs/{id}/source")
            } else {
                format!("/api/v1/files/{id}/{what}")
            };
            let got = send(&url, method, &path, Some(TOKEN), Some(b"{}"));
            // Only a decimal id names a resource (0 is one that does not exist); a
            // download without its X-Lease is refused before the id is looked up.
            let want = if what == "source" && id == "0" { 400 } else { 404 };
            t.expect("path-like or invalid id", got, want, &path);
        }
    }
    let traversal = raw(
        &addr,
        format!("GET /api/v1/jobs/../../../etc/passwd/source HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    t.expect("path-like or invalid id", traversal, 404, "raw ../");

    // 5. Leases: stale, foreign, replayed.
    let reg = |name: &str| -> i64 {
        let (s, r) = call(
            &url,
            "POST",
            "/api/v1/workers/register",
            Some(json!({ "name": name, "host": "h", "cores": 2 })),
        );
        assert_eq!(s, 200, "{r}");
        r["worker_id"].as_i64().unwrap()
    };
    let (w1, w2) = (reg("abuser-1"), reg("abuser-2"));
    let claim = |w: i64| -> Value {
        let (s, r) = call(&url, "POST", "/api/v1/jobs/claim", Some(json!({ "worker_id": w })));
        assert_eq!(s, 200, "{r}");
        r
    };
    let (c1, c2) = (claim(w1), claim(w2));
    let (id1, lease1) = (c1["job"]["file_id"].as_i64().unwrap(), c1["lease"].as_str().unwrap().to_owned());
    let (id2, lease2) = (c2["job"]["file_id"].as_i64().unwrap(), c2["lease"].as_str().unwrap().to_owned());
    let beat = |id: i64, lease: &str| {
        call(
            &url,
            "POST",
            &format!("/api/v1/jobs/{id}/heartbeat"),
            Some(json!({ "lease": lease, "phase": "encoding" })),
        )
        .0
    };
    t.expect("stale, foreign or replayed lease", beat(id1, &lease2), 409, "foreign lease");
    t.expect(
        "stale, foreign or replayed lease",
        beat(id1, "0123456789abcdef0123456789abcdef"),
        409,
        "made-up lease",
    );
    t.expect("stale, foreign or replayed lease", beat(id1, &lease1), 200, "own lease");
    let complete = json!({ "lease": lease2, "size": 10, "blake3": "00".repeat(32), "frames": 1, "encoder": "x", "fps": 1.0, "elapsed": 1.0 });
    let got = call(&url, "POST", &format!("/api/v1/jobs/{id1}/complete"), Some(complete)).0;
    t.expect("stale, foreign or replayed lease", got, 409, "complete with a foreign lease");
    let fail = |id: i64, lease: &str| {
        call(
            &url,
            "POST",
            &format!("/api/v1/jobs/{id}/release"),
            Some(json!({ "lease": lease, "detail": "abuse test" })),
        )
        .0
    };
    t.expect("stale, foreign or replayed lease", fail(id2, &lease2), 200, "release");
    t.expect("stale, foreign or replayed lease", fail(id2, &lease2), 409, "replayed release");
    t.expect("stale, foreign or replayed lease", beat(id2, &lease2), 409, "heartbeat after release");
    let complete = json!({ "lease": lease2, "size": 10, "blake3": "00".repeat(32), "frames": 1, "encoder": "x", "fps": 1.0, "elapsed": 1.0 });
    let got = call(&url, "POST", &format!("/api/v1/jobs/{id2}/complete"), Some(complete)).0;
    t.expect("stale, foreign or replayed lease", got, 409, "complete after release");
    // A completion whose result does not exist / does not match.
    let complete = json!({ "lease": lease1, "size": 10, "blake3": "00".repeat(32), "frames": 1, "encoder": "x", "fps": 1.0, "elapsed": 1.0 });
    let (got, r) = call(&url, "POST", &format!("/api/v1/jobs/{id1}/complete"), Some(complete.clone()));
    // The call is taken (200) and the attempt ends without a replacement.
    t.expect("wrong result", got, 200, "a result that is not there");
    assert_ne!(r["status"], "done", "{r}");
    let replay = call(&url, "POST", &format!("/api/v1/jobs/{id1}/complete"), Some(complete)).0;
    t.expect("stale, foreign or replayed lease", replay, 409, "replayed completion");
    // Transfers with a foreign lease.
    let source = raw(&addr, format!("GET /api/v1/jobs/{id1}/source HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nX-Lease: {lease2}\r\nConnection: close\r\n\r\n").as_bytes());
    t.expect("stale, foreign or replayed lease", source, 409, "download with a foreign lease");
    let upload = raw(&addr, format!("PUT /api/v1/jobs/{id1}/result?offset=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nX-Lease: {lease2}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd").as_bytes());
    t.expect("stale, foreign or replayed lease", upload, 409, "upload with a foreign lease");

    // 6. Garbage on the socket.
    let mut rng = fastrand::Rng::with_seed(3);
    for n in [1usize, 100, 10_000, 200_000] {
        let mut junk = vec![0u8; n];
        rng.fill(&mut junk);
        // Not a request line: the connection is closed without an answer.
        t.expect("garbage on the socket", raw(&addr, &junk), NO_ANSWER, &format!("{n} random bytes"));
    }
    let long_header =
        format!("GET /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: {}\r\n\r\n", "a".repeat(100_000));
    t.expect("garbage on the socket", raw(&addr, long_header.as_bytes()), NO_ANSWER, "100 KB header");
    t.expect("garbage on the socket", raw(&addr, b"GET /\r\n\r\n"), 400, "HTTP/0.9");

    // 7. Many connections: idle ones, ones that never send their announced body, and
    //    a crowd of clients at once; the master keeps answering short calls. Each kind
    //    of abuser comes from its own loopback address (the master allows 64
    //    connections per address: beyond, they are closed as soon as accepted).
    let idle: Vec<TcpStream> = (0..300).map(|_| connect_from(loopback(2), &addr)).collect();
    let slow: Vec<TcpStream> = (0..80)
        .map(|_| {
            let mut s = connect_from(loopback(3), &addr);
            let head = format!("POST /api/v1/jobs/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{");
            let _ = s.write_all(head.as_bytes());
            s
        })
        .collect();
    // Small bodies announced with `Expect: 100-continue` and never sent (tiny_http does
    // not read those ahead), with and without the token.
    let expecting: Vec<TcpStream> = (0..40)
        .map(|k| {
            let mut s = connect_from(loopback(4), &addr);
            let auth = if k % 2 == 0 { format!("Authorization: Bearer {TOKEN}\r\n") } else { String::new() };
            let head = format!("POST /api/v1/jobs/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 20\r\n\r\n");
            let _ = s.write_all(head.as_bytes());
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // A live job (2 s leases in tests) for a heartbeat under load.
    let c3 = claim(w1);
    let (id3, lease3) = (c3["job"]["file_id"].as_i64().unwrap(), c3["lease"].as_str().unwrap().to_owned());
    let start = Instant::now();
    t.expect(
        "many connections",
        send(&url, "GET", "/api/v1/stats", Some(TOKEN), None),
        200,
        "stats under load",
    );
    t.expect("many connections", beat(id3, &lease3), 200, "a heartbeat under load");
    assert!(start.elapsed() < Duration::from_secs(3), "short calls waited {:?}", start.elapsed());
    // 200 clients on 10 addresses, 5 calls each.
    let crowd: Vec<_> = (0..200)
        .map(|k| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let stats = format!("GET /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
                (0..5).map(|_| raw_from(loopback(10 + (k % 10) as u8), &addr, stats.as_bytes())).collect::<Vec<_>>()
            })
        })
        .collect();
    for h in crowd {
        for got in h.join().unwrap() {
            t.expect("many connections", got, 200, "one of 1000 concurrent stats");
        }
    }
    drop(idle);
    drop(slow);
    drop(expecting);

    // The master is up, its database sound, the library untouched.
    assert!(m.child.try_wait().unwrap().is_none(), "the master died");
    t.expect("after", send(&url, "GET", "/healthz", None, None), 200, "healthz");
    m.stop(Duration::from_secs(10));
    let c = rusqlite::Connection::open(&db).unwrap();
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(hashes(&lib), before, "the library changed");
    let mut total = 0;
    eprintln!("{:<34} {:>8}  answers", "abuse", "requests");
    for (kind, (n, statuses)) in &t.kinds {
        total += n;
        eprintln!("{kind:<34} {n:>8}  {statuses:?}");
    }
    eprintln!("{:<34} {total:>8}", "total");
    assert!(t.wrong.is_empty(), "{} wrong answers:\n{}", t.wrong.len(), t.wrong.join("\n"));
}

/// A worker's upload is chunked (its size is not announced). When the master answers it
/// without reading the body (a stale lease, no lease), the unread chunks must not stay
/// on the connection: the client's next call on it would be parsed from the middle of
/// the body and refused (a worker's release once got "400" this way and the job was
/// dropped). The answer closes the connection instead; the next call goes on a new one.
#[test]
fn an_upload_answered_unread_leaves_nothing_on_the_connection() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "One.mp4", 1);
    let (_m, url) = master(&lib, &d.path().join("master.sqlite"));
    let addr = url.trim_start_matches("http://").to_owned();
    settle(&url, "the scan", |s| s["pending"] == 1);
    // Lines, as a binary result has: the rest of it parses as a (bad) request line.
    let body = "not a request\r\n".repeat(7000);
    for (lease, want) in [("X-Lease: not-a-lease\r\n", "409"), ("", "400")] {
        // The upload, then (pipelined, as a kept-alive connection would carry it) a call.
        let upload = format!(
            "PUT /api/v1/jobs/1/result?offset=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n{lease}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        let next =
            format!("GET /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("{upload}{next}").as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        let statuses: Vec<&str> =
            answer.lines().filter(|l| l.starts_with("HTTP/1.1 ")).map(|l| &l[9..12]).collect();
        // The pipelined call is either answered properly or not at all, and a client
        // is told not to send another on this connection.
        assert!(statuses == [want] || statuses == [want, "200"], "{answer}");
        let head = answer.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase();
        assert!(head.contains("\r\nconnection: close"), "{answer}");
    }

    // A worker's upload asks first (Expect: 100-continue): a refusal comes back as its
    // status and the chunk (here 64 MiB, more than the sockets buffer) is never sent.
    let a = agent();
    let big = vec![0u8; 64 << 20];
    let started = Instant::now();
    let r = a
        .put(format!("{url}/api/v1/jobs/1/result?offset=0"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("X-Lease", "not-a-lease")
        .header("Expect", "100-continue")
        .send(ureq::SendBody::from_reader(&mut big.as_slice()))
        .expect("a refused upload is answered, not reset");
    assert_eq!(r.status().as_u16(), 409);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
