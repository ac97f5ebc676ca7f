//! What the API and the event stream both show: the statistics and the workers, read
//! from the queue and the master's state.

use av1_library::queue::Queue;
use av1_proto::admin::{Stats, WorkerStatus, WorkerView};

use crate::state::State;

/// The statistics (also what the event stream sends).
pub fn statistics(queue: &Queue, state: &State) -> av1_library::Result<Stats> {
    let c = queue.counts(&state.roots)?;
    let saved = c.original_bytes.saturating_sub(c.output_bytes);
    let ratio = if c.original_bytes > 0 { c.output_bytes as f64 / c.original_bytes as f64 } else { 1.0 };
    // The library's throughput is the sum of the workers' (each: its file's bytes times
    // the share of frames it encodes per second).
    let rate: f64 = workers(queue, state)
        .unwrap_or_default()
        .iter()
        .filter(|w| w.status == WorkerStatus::Encoding)
        .filter_map(|w| w.row.progress.as_ref()?.bytes_per_second())
        .sum();
    let eta = (rate > 0.0).then(|| (c.pending_bytes as f64 / rate) as u64);
    let projected = c.library_bytes.saturating_sub(c.pending_bytes) + (c.pending_bytes as f64 * ratio) as u64;
    Ok(Stats {
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
        eta_seconds: eta,
        skipped_by_reason: c.skipped_by_reason,
        scanner: state.scanner.state(),
    })
}

/// The workers with a `status`: offline when not heard from for longer than a lease,
/// else what they said they do (idle, downloading, encoding, uploading).
pub fn workers(queue: &Queue, state: &State) -> av1_library::Result<Vec<WorkerView>> {
    let now = now_ms();
    Ok(queue
        .workers()?
        .into_iter()
        .map(|row| {
            let offline = now - row.last_seen > state.lease_timeout.as_millis() as i64;
            let status = if offline { WorkerStatus::Offline } else { row.phase.into() };
            let file_name = row
                .file_id
                .and_then(|id| queue.file_path(id).ok().flatten())
                .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()));
            WorkerView { row, status, file_name }
        })
        .collect())
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
