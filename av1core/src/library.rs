//! A library of video files: find them ([`scan`]), keep their state ([`queue`]), work
//! on one ([`job`]), and put verified results in place of the originals ([`replace`]);
//! the master checks a worker's result with [`deliver`] before replacing.
//! The standalone mode and the master both drive these; none of them prints.

pub mod deliver;
pub mod job;
pub mod names;
pub mod queue;
pub mod replace;
pub mod scan;

/// Test hook for crash tests: when the environment variable `AV1_PAUSE_AT` names this
/// point (comma-separated list), logs `paused at NAME` and waits until the process is
/// killed, so a test can kill it exactly there. Costs one environment lookup.
pub fn pause_point(name: &str) {
    if std::env::var("AV1_PAUSE_AT").is_ok_and(|v| v.split(',').any(|p| p == name)) {
        tracing::warn!("AV1_PAUSE_AT: paused at {name}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
