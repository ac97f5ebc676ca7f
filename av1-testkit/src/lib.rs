//! What the tests and benchmarks of every crate share, written once: fixtures made
//! with the `ffmpeg` program ([`media`]), the independent checks of a result by
//! `ffmpeg`/`ffprobe` — never by our own code ([`media::check_av1`]), child processes
//! killed or stopped on cue ([`process::Proc`]), a small client of the master's API
//! ([`api`]), file snapshots and hashes ([`files`]), queue readers ([`queue`]) and
//! sockets from other loopback addresses ([`net`]).
//!
//! A dev-dependency only: nothing here ships. It depends on none of our crates, so
//! every crate's tests can use it.
#![allow(clippy::missing_panics_doc)] // a fixture that cannot be made fails the test

pub mod api;
pub mod files;
pub mod media;
pub mod net;
pub mod process;
pub mod queue;

pub use api::{agent, call, settle, stats, try_stats, TOKEN};
pub use files::{hash, hashes, snapshot, tree};
pub use media::{assert_av1, check_av1, clip, clip_sized, duration, ffmpeg, probe};
pub use process::Proc;
