//! Our programs as real child processes: their log read line by line, killed (SIGKILL)
//! or stopped (SIGTERM) on cue.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped, with its stderr lines forwarded to a channel
/// (and echoed, indented, to the test's output).
pub struct Proc {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub started: Instant,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Proc {
    pub fn spawn(c: Command) -> Proc {
        Proc::spawn_quiet(c, false)
    }

    /// `quiet`: the lines are not echoed (long runs).
    pub fn spawn_quiet(mut c: Command, quiet: bool) -> Proc {
        let mut child = c.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("starting a program");
        let stderr = child.stderr.take().expect("its stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !quiet {
                    eprintln!("  | {line}");
                }
                let _ = tx.send(line);
            }
        });
        Proc { child, lines, started: Instant::now() }
    }

    /// The first line holding `needle`, within 90 s (else the test fails).
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_within(needle, Duration::from_secs(90))
            .unwrap_or_else(|| panic!("never saw {needle:?}"))
    }

    pub fn wait_for_within(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if line.contains(needle) {
                return Some(line);
            }
        }
        None
    }

    /// Whether a line holding `needle` arrived since the last look (does not wait).
    pub fn saw(&self, needle: &str) -> bool {
        let mut seen = false;
        while let Ok(line) = self.lines.try_recv() {
            seen |= line.contains(needle);
        }
        seen
    }

    /// Waits for the end; its exit status and the lines not read yet.
    pub fn finish(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("waiting for a program");
        let rest: Vec<String> = self.lines.iter().collect();
        (status, rest.join("\n"))
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; SIGKILL if still there after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

/// Runs `c` with `AV1_PAUSE_AT=point` (a build with the `fault-injection` feature),
/// waits until it says it is there, and SIGKILLs it.
pub fn kill_at(mut c: Command, point: &str) {
    let mut p = Proc::spawn({
        c.env("AV1_PAUSE_AT", point);
        c
    });
    let reached = p.wait_for_within(&format!("paused at {point}"), Duration::from_secs(60)).is_some();
    p.kill();
    assert!(reached, "{point} was not reached");
}

/// Starts a master (`c`) and waits until it says where it listens; it and its base URL
/// (`http://ADDR` or `https://ADDR`). `quiet`: its log is not echoed.
pub fn start_listening(c: Command, quiet: bool) -> (Proc, String) {
    let p = Proc::spawn_quiet(c, quiet);
    let line = p.wait_for("listening on ");
    (p, url_of(&line))
}

/// The base URL in a master's `listening on SCHEME://ADDR …` line.
pub fn url_of(listening_line: &str) -> String {
    let rest = listening_line.split("listening on ").nth(1).unwrap_or_default();
    rest.split_whitespace().next().unwrap_or_default().to_owned()
}
