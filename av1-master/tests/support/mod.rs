//! What the master's process tests share: the master and worker binaries started as
//! real child processes with test settings; the rest (fixtures, processes, the API
//! client, the independent checks) is av1-testkit's.
#![allow(dead_code)] // each test file uses its own part of it

use std::path::{Path, PathBuf};
use std::process::Command;

pub use av1_testkit::*;

pub fn master_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_av1-master"))
}

pub fn worker_bin() -> PathBuf {
    let p = master_bin().with_file_name("av1-worker");
    assert!(p.exists(), "{} is built with the workspace (cargo test --workspace)", p.display());
    p
}

/// The master's command line for a library: testing mode, fast settings, a 2 s lease.
pub fn master_command(lib: &Path, db: &Path, port: u16) -> Command {
    let mut c = Command::new(master_bin());
    c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("AV1_TOKEN", TOKEN).env_remove("MEDIA_DIRS");
    c.env_remove("TLS_CERT").env_remove("TLS_KEY").env_remove("LOCAL_WORKER");
    c.env_remove("AV1_PAUSE_AT").env_remove("AV1_PAUSE_SECONDS");
    c.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--lease-timeout",
        "2",
        "--testing-mode",
        "--preset",
        "12",
        "--crf",
        "40",
        "--db",
    ])
    .arg(db)
    .arg(lib);
    c
}

/// Starts a master and waits until it listens; returns it and its base URL.
pub fn start_master(c: Command) -> (Proc, String) {
    av1_testkit::process::start_listening(c, false)
}

pub fn master(lib: &Path, db: &Path) -> (Proc, String) {
    start_master(master_command(lib, db, 0))
}

pub fn master_on(lib: &Path, db: &Path, port: u16) -> (Proc, String) {
    start_master(master_command(lib, db, port))
}

/// A worker's command line: its state under `state/worker-NAME`, fast settings.
pub fn worker_command(url: &str, name: &str, state: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(worker_bin());
    c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("AV1_TOKEN", TOKEN).env_remove("MASTER_URL");
    c.env_remove("TLS_CA").env_remove("PATH_MAP").env_remove("FILE_DISTRIBUTION_MODE");
    c.env_remove("AV1_PAUSE_AT").env_remove("AV1_PAUSE_SECONDS");
    c.env("WORKER_STATE", state.join(format!("worker-{name}")));
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.args(["--preset", "12", "--poll", "0.2", "--name", name, url]);
    c
}

pub fn worker(url: &str, name: &str, state: &Path, extra_env: &[(&str, &str)]) -> Proc {
    Proc::spawn(worker_command(url, name, state, extra_env))
}
