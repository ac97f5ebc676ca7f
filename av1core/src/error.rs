//! Errors returned by av1core. Match on the variant; the message is for people.

use std::path::PathBuf;

/// Result with av1core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by av1core. Every variant that concerns a file names it and the
/// operation that failed, so a message stored in a queue is enough to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A libav* call failed.
    #[error("{op} failed on {}", path.display())]
    Ffmpeg {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// A file-system operation failed.
    #[error("{op} failed on {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An SVT-AV1 call returned an error code.
    #[error("SVT-AV1 {function}() returned {code:#x}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Svt { function: &'static str, code: u32, detail: Option<String> },
    /// libopus refused a call.
    #[error("Opus {op} failed")]
    Opus {
        op: &'static str,
        #[source]
        source: opus::Error,
    },
    /// The input is empty.
    #[error("{} is empty (0 bytes)", path.display())]
    EmptyFile { path: PathBuf },
    /// The input has no video stream to encode.
    #[error("no video stream in {}", path.display())]
    NoVideoStream { path: PathBuf },
    /// The input uses something this program cannot handle.
    #[error("unsupported input {}: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    /// The input is damaged beyond what decoding tolerates.
    #[error("corrupt input {}: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    /// A setting or table is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The output did not pass verification; each problem is listed.
    #[error("verification of {} failed: {}", path.display(), problems.join("; "))]
    Verify { path: PathBuf, problems: Vec<String> },
    /// A worker thread of the pipeline panicked (a bug, reported instead of unwinding).
    #[error("internal error in the {stage} stage: {message}")]
    Internal { stage: &'static str, message: String },
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
    /// A stage of the pipeline ended because another one stopped first: a consequence,
    /// never the cause — `transcode` reports the other stage's error instead, so callers
    /// meet it only if no stage said why.
    #[error("the {stage} stage stopped because another stage stopped")]
    Stopped { stage: &'static str },
}

impl Error {
    pub(crate) fn ffmpeg<'a>(
        op: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(ffmpeg_next::Error) -> Error + 'a {
        move |source| Error::Ffmpeg { op, path: path.to_path_buf(), source }
    }

    /// A disk that takes no writes now — full, over quota, or read-only — whichever
    /// layer noticed it: not the file's fault, so the job waits (for room, for the disk,
    /// or for another machine) instead of failing.
    pub fn is_unwritable_disk(&self) -> bool {
        match self {
            Error::Io { source, .. } => unwritable_disk(source),
            Error::Ffmpeg { source: ffmpeg_next::Error::Other { errno }, .. } => {
                matches!(*errno, libc::ENOSPC | libc::EDQUOT | libc::EROFS)
            }
            _ => false,
        }
    }

    /// The same error with `/proc/self/fd/N` (how a file held open is read by
    /// libavformat) replaced by the file's name in the library, for people.
    pub fn naming(self, names: &[(&std::path::Path, &std::path::Path)]) -> Error {
        let rename = |path: PathBuf| {
            names.iter().find(|(fd, _)| path == *fd).map(|(_, real)| real.to_path_buf()).unwrap_or(path)
        };
        match self {
            Error::Ffmpeg { op, path, source } => Error::Ffmpeg { op, path: rename(path), source },
            Error::Io { op, path, source } => Error::Io { op, path: rename(path), source },
            Error::EmptyFile { path } => Error::EmptyFile { path: rename(path) },
            Error::NoVideoStream { path } => Error::NoVideoStream { path: rename(path) },
            Error::Unsupported { path, what } => Error::Unsupported { path: rename(path), what },
            Error::Corrupt { path, what } => Error::Corrupt { path: rename(path), what },
            Error::Verify { path, problems } => Error::Verify { path: rename(path), problems },
            other => other,
        }
    }

    pub(crate) fn io<'a>(
        op: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error + 'a {
        move |source| Error::Io { op, path: path.to_path_buf(), source }
    }
}

/// Full, over quota, or read-only (see [`Error::is_unwritable_disk`]).
pub fn unwritable_disk(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{QuotaExceeded, ReadOnlyFilesystem, StorageFull};
    matches!(e.kind(), StorageFull | QuotaExceeded | ReadOnlyFilesystem)
}

/// The whole chain of an error on one line (`outer: cause: root cause`): what the
/// queue stores for a failed file.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}
