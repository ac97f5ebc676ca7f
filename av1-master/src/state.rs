//! What every HTTP thread shares: the master's settings, its scanner, the transfers'
//! counters, and the stop flag the signal handler raises.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use av1_library::queue::FileOrder;

use crate::scanner::Scanner;

/// What every HTTP thread shares.
pub struct State {
    pub db: PathBuf,
    pub roots: Vec<PathBuf>,
    pub tokens: crate::auth::Tokens,
    pub hosts: crate::auth::Hosts,
    pub scanner: Arc<Scanner>,
    /// A lease not renewed within this is given back to the queue.
    pub lease_timeout: Duration,
    pub order: FileOrder,
    /// How results are checked and placed.
    pub policy: av1_library::deliver::Policy,
    pub transfers: crate::transfer::Transfers,
    /// Raised by the signal handler: the HTTP threads finish their request and return.
    pub stop: AtomicBool,
    /// Event streams open now (each holds a thread).
    pub streams: AtomicUsize,
    /// Changes whenever the encoder settings or tables do.
    pub config_version: String,
}
