//! The crash tests' hook: named points where a test can hold a program (`AV1_PAUSE_AT`)
//! and SIGKILL it exactly there. Compiled in only with the `fault-injection` feature,
//! which the test suites turn on through their dev-dependencies; in users' binaries
//! [`pause_point`] is an empty function and [`check_environment`] refuses a request for
//! it, so a test run against a build without the hook fails at once and says why.

/// Where a program can be held. The names on the right are what `AV1_PAUSE_AT` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// The scanner is about to record a batch of probed files.
    ScanRecording,
    /// A standalone job is encoding (first progress report).
    JobEncoding,
    /// The replacement is recorded in the queue; nothing renamed yet.
    ReplaceRecorded,
    /// The original's backup (`NAME.bak`) exists.
    ReplaceBackup,
    /// The result has its final name; the original's old name is still there.
    ReplaceRenamed,
    /// The original's old name is gone; the queue not yet told.
    ReplaceSourceRemoved,
    /// The master has given a job to a worker.
    MasterClaimed,
    /// The master is about to send a source to a worker.
    MasterSending,
    /// The master has received a whole result.
    MasterReceived,
    /// The master is about to verify a worker's result.
    MasterVerifying,
    /// A worker holds a fresh claim.
    WorkerClaimed,
    /// A worker has downloaded its source.
    WorkerDownloaded,
    /// A worker is encoding (first progress report).
    WorkerEncoding,
    /// A worker has uploaded one chunk of its result.
    WorkerUploadedChunk,
    /// A worker is about to hand in its result.
    WorkerDelivering,
    /// A worker's result was answered by the master.
    WorkerDelivered,
}

impl Pause {
    /// Every point, in the order a job meets them.
    pub const ALL: [Pause; 16] = [
        Pause::ScanRecording,
        Pause::JobEncoding,
        Pause::ReplaceRecorded,
        Pause::ReplaceBackup,
        Pause::ReplaceRenamed,
        Pause::ReplaceSourceRemoved,
        Pause::MasterClaimed,
        Pause::MasterSending,
        Pause::MasterReceived,
        Pause::MasterVerifying,
        Pause::WorkerClaimed,
        Pause::WorkerDownloaded,
        Pause::WorkerEncoding,
        Pause::WorkerUploadedChunk,
        Pause::WorkerDelivering,
        Pause::WorkerDelivered,
    ];

    /// The point's name in `AV1_PAUSE_AT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pause::ScanRecording => "scan:recording",
            Pause::JobEncoding => "job:encoding",
            Pause::ReplaceRecorded => "replace:recorded",
            Pause::ReplaceBackup => "replace:backup",
            Pause::ReplaceRenamed => "replace:renamed",
            Pause::ReplaceSourceRemoved => "replace:source-removed",
            Pause::MasterClaimed => "master:claimed",
            Pause::MasterSending => "master:sending",
            Pause::MasterReceived => "master:received",
            Pause::MasterVerifying => "master:verifying",
            Pause::WorkerClaimed => "worker:claimed",
            Pause::WorkerDownloaded => "worker:downloaded",
            Pause::WorkerEncoding => "worker:encoding",
            Pause::WorkerUploadedChunk => "worker:uploaded-chunk",
            Pause::WorkerDelivering => "worker:delivering",
            Pause::WorkerDelivered => "worker:delivered",
        }
    }
}

impl std::str::FromStr for Pause {
    type Err = String;
    fn from_str(s: &str) -> Result<Pause, String> {
        Pause::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Pause::ALL.iter().map(|p| p.as_str()).collect();
            format!("AV1_PAUSE_AT: no pause point {s:?} (there are: {})", names.join(", "))
        })
    }
}

/// Called once at start by each program: `AV1_PAUSE_AT` must name known points, and
/// only a build with the `fault-injection` feature may be asked to pause.
pub fn check_environment() -> Result<(), String> {
    let Ok(points) = std::env::var("AV1_PAUSE_AT") else { return Ok(()) };
    if !cfg!(feature = "fault-injection") {
        return Err("AV1_PAUSE_AT is set, but this build has no pause points \
                    (they are compiled in with --features av1-library/fault-injection, as the tests do)"
            .into());
    }
    points.split(',').try_for_each(|p| p.parse::<Pause>().map(drop))
}

/// With `AV1_PAUSE_AT` naming this point (comma-separated list): logs `paused at NAME`
/// and waits until the process is killed — or, with `AV1_PAUSE_SECONDS=N`, waits N
/// seconds once and goes on (for tests that restart something else meanwhile).
#[cfg(feature = "fault-injection")]
pub fn pause_point(at: Pause) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static PAUSED_ONCE: AtomicBool = AtomicBool::new(false);
    let name = at.as_str();
    if !std::env::var("AV1_PAUSE_AT").is_ok_and(|v| v.split(',').any(|p| p == name)) {
        return;
    }
    let seconds = std::env::var("AV1_PAUSE_SECONDS").ok().and_then(|s| s.parse::<u64>().ok());
    if seconds.is_some() && PAUSED_ONCE.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::warn!("AV1_PAUSE_AT: paused at {name}");
    match seconds {
        Some(n) => std::thread::sleep(std::time::Duration::from_secs(n)),
        None => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn pause_point(_at: Pause) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_point() {
        for p in Pause::ALL {
            assert_eq!(p.as_str().parse::<Pause>(), Ok(p));
        }
        let e = "replace:renamd".parse::<Pause>().unwrap_err();
        assert!(e.contains("replace:renamed"), "{e}");
    }
}
