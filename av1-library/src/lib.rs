//! A library of video files: find them ([`scan`]), keep their state ([`queue`]), work
//! on one ([`job`]), and put verified results in place of the originals ([`replace`]);
//! the master checks a worker's result with [`deliver`] before replacing; a result is
//! held open from its check to its rename ([`staged`]).
//! The standalone mode and the master both drive these; none of them prints.
//!
//! Layering: this crate stands on [`av1core`] (the media pipeline) and SQLite; it
//! knows nothing of HTTP, of the wire protocol or of command lines.

pub mod deliver;
pub mod error;
pub mod fault;
pub mod job;
pub mod names;
pub mod queue;
pub mod replace;
pub mod scan;
pub mod staged;

pub use error::{Error, Result};
pub use fault::{pause_point, Pause};
