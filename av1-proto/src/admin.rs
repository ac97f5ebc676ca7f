//! What the web page and its users ask of the master: statistics, the file list, the
//! workers, a scan, and the controls over files and workers. Replies only, but for the
//! one body a control takes ([`FadeOut`]).

use av1_library::queue::FileRow;
use av1_library::queue::{WorkerPhase, WorkerRow};
use av1_library::scan::ScanReport;
use serde::{Deserialize, Serialize};

/// `GET /api/v1/stats` (and the `stats` of every [`Event`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub total: u64,
    pub pending: u64,
    pub running: u64,
    pub done: u64,
    pub skipped: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Bytes the done files saved.
    pub bytes_saved: u64,
    /// Percent of their original size.
    pub percent_saved: f64,
    /// Bytes of the library as it is now.
    pub library_bytes: u64,
    /// The library's size once every pending file is done, if they shrink like the
    /// done ones did.
    pub projected_library_bytes: u64,
    /// Seconds until the queue is empty at the workers' combined throughput (none while
    /// no worker encodes).
    pub eta_seconds: Option<u64>,
    pub skipped_by_reason: Vec<(String, u64)>,
    pub scanner: ScanState,
}

/// What the scanner is doing and what its last scan found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScanState {
    pub running: bool,
    pub scans: u64,
    pub last: Option<ScanReport>,
    pub last_error: Option<String>,
    /// Unix seconds.
    pub last_finished: Option<u64>,
}

/// `GET /api/v1/files`: one page of the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilesPage {
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
    pub files: Vec<FileRow>,
}

/// What a worker is doing as the page shows it: its phase, or offline when it has not
/// been heard from for longer than a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    Idle,
    Downloading,
    Encoding,
    Uploading,
    Offline,
}

impl WorkerStatus {
    pub const ALL: [WorkerStatus; 5] = [
        WorkerStatus::Idle,
        WorkerStatus::Downloading,
        WorkerStatus::Encoding,
        WorkerStatus::Uploading,
        WorkerStatus::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Idle => "idle",
            WorkerStatus::Downloading => "downloading",
            WorkerStatus::Encoding => "encoding",
            WorkerStatus::Uploading => "uploading",
            WorkerStatus::Offline => "offline",
        }
    }
}

impl From<WorkerPhase> for WorkerStatus {
    fn from(p: WorkerPhase) -> WorkerStatus {
        match p {
            WorkerPhase::Idle => WorkerStatus::Idle,
            WorkerPhase::Downloading => WorkerStatus::Downloading,
            WorkerPhase::Encoding => WorkerStatus::Encoding,
            WorkerPhase::Uploading => WorkerStatus::Uploading,
        }
    }
}

/// A worker in `GET /api/v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerView {
    #[serde(flatten)]
    pub row: WorkerRow,
    pub status: WorkerStatus,
    /// The name of the file it works on.
    pub file_name: Option<String>,
}

/// `GET /api/v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workers {
    pub workers: Vec<WorkerView>,
    /// The master's clock (Unix milliseconds), to read `last_seen` against.
    pub now: i64,
}

/// `POST /api/v1/scan`: 202.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanQueued {
    /// False when a scan was already waiting to start.
    pub queued: bool,
    pub scanner: ScanState,
}

/// `POST /api/v1/files/{id}/cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelling {
    pub cancelling: i64,
}

/// What a person can do to a file that is not running: the last segment of
/// `POST /api/v1/files/{id}/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Control {
    /// Queue it again (failed, skipped, cancelled).
    Retry,
    /// Leave it as it is.
    Skip,
    /// Encode it again even though it is AV1 now.
    Reencode,
    /// Next in the queue.
    Top,
    /// Forget it (the file itself stays).
    Delete,
}

impl Control {
    pub const ALL: [Control; 5] =
        [Control::Retry, Control::Skip, Control::Reencode, Control::Top, Control::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Control::Retry => "retry",
            Control::Skip => "skip",
            Control::Reencode => "reencode",
            Control::Top => "top",
            Control::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Control> {
        Control::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The answer to a [`Control`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlDone {
    pub file_id: i64,
    pub done: Control,
}

/// `POST /api/v1/workers/{id}/fade-out`: finish the current job, take no new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FadeOut {
    pub fade_out: bool,
}

/// The answer to a [`FadeOut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FadedOut {
    pub worker_id: i64,
    pub fade_out: bool,
}

/// One message of `GET /api/v1/events` (server-sent events).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub stats: Stats,
    pub workers: Vec<WorkerView>,
    /// The file list changed: the page asks for it again.
    pub files_changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_statuses_read_back() {
        for c in Control::ALL {
            assert_eq!(Control::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for s in WorkerStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for p in WorkerPhase::ALL {
            assert_eq!(WorkerStatus::from(p).as_str(), p.as_str());
        }
        assert!(serde_json::from_str::<FadeOut>(r#"{"fade_out":true,"x":1}"#).is_err());
    }
}
