//! The scanner in the background: at start, every `interval`, and when asked
//! (`POST /api/v1/scan`); one scan at a time, a request during a scan queues one more.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use av1_library::{names, queue::Queue, scan};
use crossbeam_channel::{bounded, Sender, TrySendError};

pub use av1_proto::admin::ScanState;

pub struct Scanner {
    trigger: Sender<()>,
    state: Arc<Mutex<ScanState>>,
}

impl Scanner {
    /// Starts the scanner thread; the first scan begins at once.
    pub fn start(
        db: PathBuf,
        roots: Vec<PathBuf>,
        settings: av1core::Settings,
        interval: Option<Duration>,
    ) -> Scanner {
        let (trigger, requests) = bounded::<()>(1);
        let state = Arc::new(Mutex::new(ScanState::default()));
        let shared = state.clone();
        let _ = trigger.try_send(());
        std::thread::Builder::new()
            .name("scanner".into())
            .spawn(move || {
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
                loop {
                    let asked = match interval {
                        Some(every) => requests.recv_timeout(every).map_err(|e| e.is_disconnected()),
                        None => requests.recv().map_err(|_| true),
                    };
                    if asked == Err(true) {
                        return;
                    }
                    set(&shared, |s| s.running = true);
                    let result = Queue::open(&db).and_then(|mut q| {
                        let report = scan::scan(&mut q, &roots, &settings, threads, &|_| {})?;
                        remove_orphans(&q, &report.ours)?;
                        Ok(report)
                    });
                    let finished = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    match result {
                        Ok(report) => {
                            tracing::info!(
                                "scan: {} files, {} new, {} changed, {} unchanged, {} pruned, {} unreadable",
                                report.found,
                                report.new,
                                report.changed,
                                report.unchanged,
                                report.pruned,
                                report.unreadable
                            );
                            for p in &report.problems {
                                tracing::warn!("scan: {p}");
                            }
                            set(&shared, |s| {
                                s.last = Some(report);
                                s.last_error = None;
                            });
                        }
                        Err(e) => {
                            tracing::error!("scan failed: {e}");
                            set(&shared, |s| s.last_error = Some(av1core::error::chain(&e)));
                        }
                    }
                    set(&shared, |s| {
                        s.running = false;
                        s.scans += 1;
                        s.last_finished = Some(finished);
                    });
                }
            })
            .expect("spawning the scanner thread");
        Scanner { trigger, state }
    }

    /// Asks for a scan; false when one is already waiting to start.
    pub fn trigger(&self) -> bool {
        !matches!(self.trigger.try_send(()), Err(TrySendError::Full(_)))
    }

    pub fn state(&self) -> ScanState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Removes our temporary files that belong to no live lease and no pending
/// replacement (a worker or the master died while writing them). The leases are read
/// after the walk that found the files, so a file written under a lease granted since
/// cannot be among them.
fn remove_orphans(queue: &Queue, ours: &[PathBuf]) -> av1_library::Result<()> {
    let mut live = std::collections::HashSet::new();
    for (path, lease) in queue.live_leases()? {
        let staged = names::staged_for_lease(&names::target_for(&path), &lease);
        live.insert(av1core::transcode::temp_path(&staged));
        live.insert(staged);
    }
    for r in queue.pending_replacements()? {
        live.insert(r.staged);
    }
    for p in ours.iter().filter(|p| !live.contains(*p)) {
        match std::fs::remove_file(p) {
            Ok(()) => tracing::info!("removed an orphaned temporary file: {}", p.display()),
            Err(e) => tracing::warn!("could not remove {}: {e}", p.display()),
        }
    }
    Ok(())
}

fn set(state: &Mutex<ScanState>, f: impl FnOnce(&mut ScanState)) {
    if let Ok(mut s) = state.lock() {
        f(&mut s);
    }
}
