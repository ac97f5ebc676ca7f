//! The one mapping from what went wrong to an HTTP status. The master answers every
//! error through it ([`ErrorKind::of`] for the library's errors), and the worker reads
//! statuses back through it, so "507 means the master's disk is full" is written once.

/// What went wrong, as far as the caller needs to know to act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or asks for something invalid: do not send it again.
    BadRequest,
    /// No token, or not one we know.
    Unauthorized,
    /// A token without the right for this call, or a request from a page elsewhere.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The caller took too long to send its request.
    Timeout,
    /// Not the job's current lease, or a file in a state that does not allow it.
    Conflict,
    /// The source changed or went since the job was handed out.
    Gone,
    TooLarge,
    /// A byte range the file does not have.
    RangeNotSatisfiable,
    /// Too busy now (queue database locked, every slot taken): try again later.
    Unavailable,
    /// The library's disk takes no writes (full, over quota, read-only): the job waits.
    DiskFull,
    /// Our fault.
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Timeout => 408,
            ErrorKind::Conflict => 409,
            ErrorKind::Gone => 410,
            ErrorKind::TooLarge => 413,
            ErrorKind::RangeNotSatisfiable => 416,
            ErrorKind::Unavailable => 503,
            ErrorKind::DiskFull => 507,
            ErrorKind::Internal => 500,
        }
    }

    /// The kind of an error of the library: a refused setting is the request's fault,
    /// a full disk and a changed source are nobody's, a busy database is for later.
    pub fn of(e: &av1_library::Error) -> ErrorKind {
        use av1_library::Error;
        match e {
            Error::Config(_) | Error::Media(av1core::Error::Config(_)) => ErrorKind::BadRequest,
            _ if e.is_unwritable_disk() => ErrorKind::DiskFull,
            Error::SourceChanged { .. } => ErrorKind::Gone,
            _ if e.is_busy() => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    /// A status the caller should not send again unchanged (a 4xx but for a timeout, a
    /// conflict — which callers handle — and too many requests).
    pub fn is_final(status: u16) -> bool {
        (400..500).contains(&status) && !matches!(status, 408 | 409 | 429)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn library_errors_map_to_what_the_caller_can_do() {
        let path = PathBuf::from("/m/a.mkv");
        let full = av1_library::Error::NoSpace { path: path.clone(), needed: 2, available: 1 };
        assert_eq!(ErrorKind::of(&full).status(), 507);
        let changed = av1_library::Error::SourceChanged { path: path.clone(), what: "size".into() };
        assert_eq!(ErrorKind::of(&changed).status(), 410);
        assert_eq!(ErrorKind::of(&av1_library::Error::Config("no".into())).status(), 400);
        let read_only = std::io::Error::from_raw_os_error(30); // EROFS
        let io = av1_library::Error::Media(av1core::Error::Io { op: "writing", path, source: read_only });
        assert_eq!(ErrorKind::of(&io), ErrorKind::DiskFull);
        assert_eq!(ErrorKind::of(&av1_library::Error::from(av1core::Error::Cancelled)).status(), 500);
        assert!(ErrorKind::is_final(400) && ErrorKind::is_final(410) && !ErrorKind::is_final(409));
        assert!(!ErrorKind::is_final(429) && !ErrorKind::is_final(503));
    }
}
