//! A library of video files: find them ([`scan`]), keep their state ([`queue`]), work
//! on one ([`job`]), and put verified results in place of the originals ([`replace`]);
//! the master checks a worker's result with [`deliver`] before replacing; a result is
//! held open from its check to its rename ([`staged`]).
//! The standalone mode and the master both drive these; none of them prints.

pub mod deliver;
pub mod job;
pub mod names;
pub mod queue;
pub mod replace;
pub mod scan;
pub mod staged;

/// Test hook for crash tests: when the environment variable `AV1_PAUSE_AT` names this
/// point (comma-separated list), logs `paused at NAME` and waits until the process is
/// killed, so a test can kill it exactly there — or, with `AV1_PAUSE_SECONDS=N`, waits
/// N seconds once and goes on (for tests that restart something else meanwhile).
/// Costs one environment lookup.
pub fn pause_point(name: &str) {
    static PAUSED_ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if std::env::var("AV1_PAUSE_AT").is_ok_and(|v| v.split(',').any(|p| p == name)) {
        let seconds = std::env::var("AV1_PAUSE_SECONDS").ok().and_then(|s| s.parse::<u64>().ok());
        if seconds.is_some() && PAUSED_ONCE.swap(true, std::sync::atomic::Ordering::SeqCst) {
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
}
