//! The worker's pieces that other programs embed: `remote`, the loop that works for a
//! master (`av1-master --local-worker` runs it in its own process), and `logging`,
//! the one-event-one-line log both programs write.

pub mod logging;
pub mod remote;
