//! The worker's pieces that other programs embed: `remote`, the loop that works for a
//! master (`av1-master --local-worker` runs it in its own process), and `logging`,
//! the one-event-one-line log both programs write, and `tls`, how it reaches its
//! master.

pub mod logging;
pub mod remote;
pub mod tls;
