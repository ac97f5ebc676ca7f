//! TLS between workers and their master (issue 13 item 11). A master serves HTTPS with
//! a certificate made in the test; curl, an independent client, checks what it presents;
//! a plain-HTTP request gets no HTTP answer; a worker that does not trust the
//! certificate claims nothing and says why; a worker given it (`TLS_CA`) finishes a
//! file in file-distribution mode, so the film, the token and the result all cross the
//! wire encrypted. A master with TLS and a worker of its own (`--local-worker`)
//! finishes its library too.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod support;
use av1_testkit::process::url_of;
use support::*;

/// A self-signed certificate for `localhost` and its key, as PEM files in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("master.crt"), dir.join("master.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A client that trusts exactly `cert`.
fn trusting(cert: &Path) -> ureq::Agent {
    let pem = std::fs::read(cert).unwrap();
    let root = ureq::tls::Certificate::from_pem(&pem).unwrap();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .tls_config(
            ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[root])).build(),
        )
        .build()
        .into()
}

fn stats_over(agent: &ureq::Agent, url: &str) -> serde_json::Value {
    let mut r = agent
        .get(format!("{url}/api/v1/stats"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

/// curl's exit code and output for `args` (no ~/.curlrc, no CA bundle from the
/// environment).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .args(["-q", "-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (scripts/deps.sh test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn workers_reach_a_tls_master_only_through_its_certificate() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "One.mp4", 1);
    let original = std::fs::read(lib.join("One.mp4")).unwrap();
    let (cert, key) = certificate(d.path());

    let mut c = master_command(&lib, &d.path().join("master.sqlite"), 0);
    c.env("TLS_CERT", &cert).env("TLS_KEY", &key);
    let master = Proc::spawn(c);
    let line = master.wait_for("listening on https://");
    let port = url_of(&line.replace("https://", "http://")).rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}");

    // An independent client: the certificate is the one made here, and only it opens.
    let (code, body) = curl(&["--cacert", cert.to_str().unwrap(), &format!("{url}/healthz")]);
    assert_eq!((code, body.trim()), (0, "ok"), "curl with the certificate");
    let (code, said) = curl(&[&format!("{url}/healthz")]);
    assert_eq!(code, 60, "curl without the certificate must fail to verify it: {said}");
    // The certificate names localhost, not 127.0.0.1.
    let by_ip = format!("https://127.0.0.1:{port}/healthz");
    let (code, said) = curl(&["--cacert", cert.to_str().unwrap(), &by_ip]);
    assert_eq!(code, 60, "a name the certificate does not hold must be refused: {said}");

    // Plain HTTP on the TLS port: no HTTP answer, the connection ends.
    let mut plain = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let ended = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP was answered: {:?}", String::from_utf8_lossy(&answer));
    assert!(ended.is_ok(), "the connection must end, not hang: {ended:?}");

    let agent = trusting(&cert);
    let start = Instant::now();
    while stats_over(&agent, &url)["pending"] != 1 {
        assert!(start.elapsed() < Duration::from_secs(60), "the first scan");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A worker that trusts only the public authorities: nothing claimed, and it says why.
    let mut stranger = worker(&url, "stranger", d.path(), &[("FILE_DISTRIBUTION_MODE", "true")]);
    let said = stranger.wait_for_within("master unreachable", Duration::from_secs(30));
    stranger.kill();
    let said = said.expect("the worker without TLS_CA must report the master unreachable");
    assert!(said.to_lowercase().contains("certificate"), "{said}");
    let s = stats_over(&agent, &url);
    assert_eq!((s["pending"].as_u64(), s["running"].as_u64()), (Some(1), Some(0)), "{s}");

    // A worker given the certificate: the file is downloaded, encoded, uploaded, replaced.
    let _w = worker(
        &url,
        "trusted",
        d.path(),
        &[("FILE_DISTRIBUTION_MODE", "true"), ("TLS_CA", cert.to_str().unwrap())],
    );
    let start = Instant::now();
    let s = loop {
        let s = stats_over(&agent, &url);
        if s["pending"] == 0 && s["running"] == 0 {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the file to finish: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((s["done"].as_u64(), s["failed"].as_u64()), (Some(1), Some(0)), "{s}");
    assert_av1(&lib.join("One.mkv"));
    assert_eq!(std::fs::read(lib.join("One.mp4.bak")).unwrap(), original, "the backup is the original");
    drop(master);
}

#[test]
fn a_tls_master_with_a_local_worker_finishes_its_library() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "Local.mkv", 1);
    let (cert, key) = certificate(d.path());
    let mut c = master_command(&lib, &d.path().join("master.sqlite"), 0);
    c.env("TLS_CERT", &cert).env("TLS_KEY", &key).arg("--local-worker");
    let master = Proc::spawn(c);
    let line = master.wait_for("listening on https://");
    let port = url_of(&line.replace("https://", "http://")).rsplit(':').next().unwrap().to_owned();
    let (url, agent) = (format!("https://localhost:{port}"), trusting(&cert));
    let start = Instant::now();
    let s = loop {
        let s = stats_over(&agent, &url);
        if s["done"] == 1 {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the local worker to finish: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(s["failed"].as_u64(), Some(0), "{s}");
    assert_av1(&lib.join("Local.mkv"));
    drop(master);
}
