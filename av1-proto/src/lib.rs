//! The protocol between the master and its workers and browsers, `/api/v1`: every
//! request and reply body as a type ([`worker`] for the calls a worker makes, [`admin`]
//! for the page and its users), the URLs ([`urls`]) and the one mapping from error kinds
//! to HTTP statuses ([`status`]). The master serialises these types and the worker
//! deserialises them, so a field renamed on one side breaks the build, not a run.
//!
//! Layering: this crate stands on [`av1_library`] and [`av1core`] for the things the
//! protocol carries (a job, an outcome, a skip reason, the encoder settings) and on
//! serde; it does no I/O — no sockets, no files, no database.

pub mod admin;
pub mod status;
pub mod urls;
pub mod worker;

pub use av1_library::queue::WorkerPhase;
pub use status::ErrorKind;

/// Every error reply's body: `{"error": "…"}`, the message for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorReply {
    pub error: String,
}
