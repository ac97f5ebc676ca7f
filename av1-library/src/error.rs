//! Errors returned by av1-library: the media pipeline's own ([`av1core::Error`]) and
//! what only a library of files can meet — its queue database, a name taken by
//! another file, a full disk, a source that changed under a job. Match on the variant;
//! the message is for people.

use std::path::{Path, PathBuf};

pub use av1core::error::{chain, unwritable_disk};

/// Result with av1-library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by av1-library. Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The media pipeline (probe, plan, transcode, verify) or a file operation failed.
    #[error(transparent)]
    Media(#[from] av1core::Error),
    /// The queue database refused an operation.
    #[error("queue database: {op} failed")]
    Database {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// A setting or a request the library refuses (a sort order, a worker name).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The result's name is taken by a file that is not the original: never overwritten.
    #[error("{} exists and is not the original {}: not overwriting it", target.display(), source_file.display())]
    NameClash { target: PathBuf, source_file: PathBuf },
    /// Not enough free space to start or finish a job.
    #[error("not enough free space in {}: {needed} bytes needed, {available} available", path.display())]
    NoSpace { path: PathBuf, needed: u64, available: u64 },
    /// The source changed or disappeared while it was being worked on.
    #[error("{} changed or disappeared during the job: {what}", path.display())]
    SourceChanged { path: PathBuf, what: String },
}

impl Error {
    /// A disk that takes no writes now — full, over quota, or read-only — whichever
    /// layer noticed it: not the file's fault, so the job waits (for room, for the disk,
    /// or for another machine) instead of failing.
    pub fn is_unwritable_disk(&self) -> bool {
        match self {
            Error::NoSpace { .. } => true,
            Error::Media(e) => e.is_unwritable_disk(),
            _ => false,
        }
    }

    /// The queue database was locked by another connection for longer than its busy
    /// timeout: worth trying again later.
    pub fn is_busy(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        matches!(self, Error::Database { source, .. }
            if matches!(source.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked)))
    }

    /// The cancel flag stopped the pipeline.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Media(av1core::Error::Cancelled))
    }

    pub(crate) fn db(op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Database { op, source }
    }

    pub(crate) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
        move |source| Error::Media(av1core::Error::Io { op, path: path.to_path_buf(), source })
    }

    pub(crate) fn internal(stage: &'static str, message: impl ToString) -> Error {
        Error::Media(av1core::Error::Internal { stage, message: message.to_string() })
    }

    pub(crate) fn unsupported(path: &Path, what: impl Into<String>) -> Error {
        Error::Media(av1core::Error::Unsupported { path: path.into(), what: what.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_disk_is_seen_through_the_media_layer() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(Error::io("writing", Path::new("/x"))(full).is_unwritable_disk());
        let read_only = std::io::Error::from_raw_os_error(libc::EROFS);
        assert!(Error::io("writing", Path::new("/x"))(read_only).is_unwritable_disk());
        assert!(Error::NoSpace { path: "/x".into(), needed: 1, available: 0 }.is_unwritable_disk());
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!Error::io("writing", Path::new("/x"))(denied).is_unwritable_disk());
        assert!(!Error::Config("x".into()).is_unwritable_disk());
        let locked = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None); // SQLITE_BUSY
        assert!(Error::db("claiming")(locked).is_busy());
        let broken = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(11), None); // SQLITE_CORRUPT
        assert!(!Error::db("claiming")(broken).is_busy());
    }

    #[test]
    fn the_chain_reads_through_a_wrapped_media_error() {
        let e = Error::io("renaming", Path::new("/m/a.mkv"))(std::io::Error::other("boom"));
        assert_eq!(chain(&e), "renaming failed on /m/a.mkv: boom");
        assert!(Error::from(av1core::Error::Cancelled).is_cancelled());
    }
}
