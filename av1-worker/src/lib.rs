//! The worker's pieces that other programs embed: `remote`, the loop that works for a
//! master, from plain settings (`RemoteConfig`; `av1-master --local-worker` runs it in
//! its own process); `cli`, the flag groups both programs flatten (the encoder
//! settings); `logging`, the one-event-one-line log both programs write; and `tls`, how
//! a worker reaches its master.
//!
//! Layering: stands on av1-proto, av1-library and av1core; the master depends on it,
//! never the reverse.

pub mod cli;
pub mod logging;
pub mod remote;
pub mod tls;
