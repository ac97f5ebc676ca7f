//! File distribution: workers that cannot see the library download the source and
//! upload the result over HTTP, both resumable, both checked by size and BLAKE3, with
//! constant memory whatever the file size. The lease travels in the `X-Lease` header;
//! the URL names the job by id only.
//!
//! - `GET /api/v1/jobs/{id}/source` (optionally `Range: bytes=N-`): the original, with
//!   `X-Size` and `X-Blake3` (computed once per file version and kept in memory).
//! - `GET /api/v1/jobs/{id}/result`: `{"received": N}`, how much of the upload is here.
//! - `PUT /api/v1/jobs/{id}/result?offset=N`: appends the body at N (409 if N is not
//!   what is here), written beside the original under the lease's hidden name; the
//!   `complete` call then has the master check and place it as for shared storage.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

use av1_library::names;
use av1_library::queue::{Outcome, Queue};
use av1core::os::{self, Stamp};
use tiny_http::{Header, Request, Response};

use crate::http::{self, Reply};

/// What the transfers share: the sources' hashes, and the bytes moved since the start.
#[derive(Default)]
pub struct Transfers {
    hashes: Hashes,
    downloaded: AtomicU64,
    uploaded: AtomicU64,
}

impl Transfers {
    /// Bytes sent to workers (sources) and received from them (results) since the start.
    pub fn totals(&self) -> (u64, u64) {
        (self.downloaded.load(Relaxed), self.uploaded.load(Relaxed))
    }
}

/// File versions whose hash is kept in memory.
const MAX_HASHES: usize = 4096;

/// BLAKE3 of source files, by (path, size, mtime): one read per file version.
#[derive(Default)]
struct Hashes(Mutex<HashMap<(PathBuf, u64, i64), String>>);

impl Hashes {
    /// The hash of `file` (the source `path` held open, stamped `st`), read through
    /// the descriptor the first time.
    fn get(&self, path: &Path, mut file: &std::fs::File, st: Stamp) -> std::io::Result<String> {
        let key = (path.to_path_buf(), st.size, st.mtime_ns);
        if let Some(h) = self.0.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(h);
        }
        file.seek(SeekFrom::Start(0))?;
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(file)?;
        let hash = hasher.finalize().to_hex().to_string();
        if let Ok(mut m) = self.0.lock() {
            // Bounded: past this many file versions, start again (a hash is only a
            // read of the file away).
            if m.len() >= MAX_HASHES {
                m.clear();
            }
            m.insert(key, hash.clone());
        }
        Ok(hash)
    }
}

fn header_u64(request: &Request, name: &'static str) -> Option<u64> {
    request.headers().iter().find(|h| h.field.equiv(name)).and_then(|h| h.value.as_str().trim().parse().ok())
}

fn lease_of(request: &Request) -> Option<String> {
    request.headers().iter().find(|h| h.field.equiv("X-Lease")).map(|h| h.value.as_str().trim().to_owned())
}

/// `GET /api/v1/jobs/{id}/source`.
pub fn source(request: Request, queue: &mut Queue, transfers: &Transfers, id: i64) {
    let Some(lease) = lease_of(&request) else {
        return http::send(request, Reply::error(400, "X-Lease missing"));
    };
    let job = match queue.leased(id, &lease) {
        Ok(Some(job)) => job,
        Ok(None) => return http::send(request, Reply::error(409, "not the current lease of this job")),
        Err(e) => return http::send(request, http::failed(&e)),
    };
    // Opened once, beneath its library root, never through a link; everything below
    // (stamp, hash, bytes sent) comes from this descriptor.
    let mut file = match os::open_beneath(&job.root, &job.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            let error = format!("{}: {e}; not served", job.path.display());
            tracing::warn!(file = id, "{error}");
            if let Err(e) = queue.finish(&job, &Outcome::Failed { error: error.clone() }) {
                tracing::warn!(file = id, "{e}");
            }
            return http::send(request, Reply::error(410, "the source is not a regular file in the library"));
        }
        Err(e) => return http::send(request, Reply::error(410, format!("the source cannot be read: {e}"))),
    };
    // Checked before hashing (a first download reads the whole file for its hash), and
    // the hash must be of the version handed out.
    let now = match file.metadata() {
        Ok(m) => Stamp::from_metadata(&m),
        Err(e) => return http::send(request, Reply::error(410, format!("the source cannot be read: {e}"))),
    };
    if (now.size, now.mtime_ns) != (job.size, job.mtime_ns) {
        // The next claim hands out what it is now; this worker gives the job back.
        if let Err(e) = queue.restamp(id, now.size, now.mtime_ns) {
            tracing::warn!(file = id, "{e}");
        }
        return http::send(request, Reply::error(410, "the source changed since it was handed out"));
    }
    let size = now.size;
    let hash = match transfers.hashes.get(&job.path, &file, now) {
        Ok(hash) => hash,
        Err(e) => return http::send(request, Reply::error(410, format!("the source cannot be read: {e}"))),
    };
    if file.metadata().map(|m| Stamp::from_metadata(&m)).ok() != Some(now) {
        return http::send(request, Reply::error(410, "the source changed while it was being hashed"));
    }
    let start = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .and_then(|h| {
            h.value.as_str().strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).map(str::to_owned)
        })
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    if start > size {
        return http::send(request, Reply::error(416, format!("range starts after the end ({size} bytes)")));
    }
    if file.seek(SeekFrom::Start(start)).is_err() {
        return http::send(request, Reply::error(500, "seek failed"));
    }
    let header = |k: &str, v: String| Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("ASCII header");
    let mut headers = vec![
        header("X-Size", size.to_string()),
        header("X-Blake3", hash),
        header("Accept-Ranges", "bytes".into()),
        header("Content-Type", "application/octet-stream".into()),
    ];
    let status = if start > 0 {
        headers.push(header("Content-Range", format!("bytes {start}-{}/{size}", size.saturating_sub(1))));
        206
    } else {
        200
    };
    let len = (size - start) as usize;
    transfers.downloaded.fetch_add(size - start, Relaxed);
    av1_library::pause_point(av1_library::Pause::MasterSending);
    let response = Response::new(status.into(), headers, file.take(size - start), Some(len), None);
    let _ = request.respond(response);
}

/// `GET /api/v1/jobs/{id}/result`: how many bytes of the upload the master has.
pub fn received(request: Request, queue: &Queue, id: i64) {
    let Some(lease) = lease_of(&request) else {
        return http::send(request, Reply::error(400, "X-Lease missing"));
    };
    let reply = match queue.leased(id, &lease) {
        Ok(Some(job)) => {
            let staged = names::staged_for_lease(&names::target_for(&job.path), &lease);
            // Beneath the root, not followed: a link planted there is not an upload
            // (the next chunk at offset 0 removes it).
            let n = os::open_beneath(&job.root, &staged)
                .and_then(|f| os::require_regular(&f))
                .map_or(0, |m| m.len());
            Reply::json(200, &av1_proto::worker::Received { received: n })
        }
        Ok(None) => Reply::error(409, "not the current lease of this job"),
        Err(e) => http::failed(&e),
    };
    http::send(request, reply);
}

/// 507 when the library's disk takes no writes (full, over quota, read-only: the worker
/// gives the job back for later), 500 for any other write error.
fn write_error(what: &str, e: &std::io::Error) -> Reply {
    let full = av1core::error::unwritable_disk(e);
    Reply::error(if full { 507 } else { 500 }, format!("{what}: {e}"))
}

/// An upload starts only when the library's disk has room for the whole result (its
/// announced `X-Result-Size`, else the largest it may become) and a margin (507
/// otherwise: the worker gives the job back for later), so uploads cannot fill the disk
/// the originals live on.
fn reserve_room(staged: &Path, announced: Option<u64>, limit: u64) -> Result<(), Reply> {
    let needed = match announced {
        Some(n) => n + (64 << 10),
        None => av1_library::job::space_needed(limit),
    };
    match av1core::os::free_space(av1core::os::parent(staged)) {
        Ok(free) if free < needed => Err(Reply::error(
            507,
            format!("the library's disk has {free} bytes free, {needed} needed for this result"),
        )),
        _ => Ok(()),
    }
}

/// The upload's file, ready for the bytes at `offset`: created new at offset 0
/// (`O_CREAT|O_EXCL|O_NOFOLLOW`), else opened without following a link and required to
/// be a regular file with one name holding exactly `offset` bytes. Anything planted
/// under the name (a link, a hard link, a FIFO) is removed, never written through.
fn open_upload(root: &Path, staged: &Path, offset: u64) -> Result<std::fs::File, Reply> {
    let resume = |have: u64| {
        Reply::error(409, format!("the master has {have} bytes, not {offset}: resume from there"))
    };
    if offset == 0 {
        match std::fs::symlink_metadata(staged) {
            Ok(m) if m.file_type().is_file() && m.len() > 0 => return Err(resume(m.len())),
            Ok(_) => {
                let _ = std::fs::remove_file(staged);
            }
            Err(_) => {}
        }
        // Created beneath the root: a directory above swapped for a link is refused.
        return os::open_beneath_as(root, staged, os::Access::CreateNew(0o600)).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => resume(0),
            _ => write_error("cannot write the result", &e),
        });
    }
    let opened = os::open_beneath_as(root, staged, os::Access::ReadWrite);
    let file = match opened.and_then(|f| os::require_regular(&f).map(|_| f)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(resume(0)),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            tracing::warn!(file = %staged.display(), "not our upload ({e}): removed");
            let _ = std::fs::remove_file(staged);
            return Err(resume(0));
        }
        Err(e) => return Err(write_error("cannot write the result", &e)),
    };
    let have = file.metadata().map(|m| m.len()).unwrap_or(0);
    if have != offset {
        return Err(resume(have));
    }
    Ok(file)
}

/// `PUT /api/v1/jobs/{id}/result?offset=N`.
pub fn upload(
    mut request: Request,
    queue: &Queue,
    transfers: &Transfers,
    id: i64,
    query: &[(String, String)],
) {
    let reply = (|| {
        let lease = lease_of(&request).ok_or_else(|| Reply::error(400, "X-Lease missing"))?;
        let offset: u64 = query
            .iter()
            .find(|(k, _)| k == "offset")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| Reply::error(400, "offset=N missing"))?;
        let job = match queue.leased(id, &lease) {
            Ok(Some(job)) => job,
            Ok(None) => return Err(Reply::error(409, "not the current lease of this job")),
            Err(e) => return Err(http::failed(&e)),
        };
        let staged = names::staged_for_lease(&names::target_for(&job.path), &lease);
        // A result is worth keeping only when smaller than the original.
        let limit = job.size;
        let length = request.body_length().map(|n| n as u64);
        if offset > limit || length.is_some_and(|n| offset.checked_add(n).is_none_or(|end| end > limit)) {
            return Err(Reply::error(
                413,
                format!("a result must be smaller than the original ({limit} bytes)"),
            ));
        }
        if offset == 0 {
            let announced = header_u64(&request, "X-Result-Size");
            if announced.is_some_and(|n| n > limit) {
                return Err(Reply::error(
                    413,
                    format!("a result must be smaller than the original ({limit} bytes)"),
                ));
            }
            reserve_room(&staged, announced, limit)?;
        }
        let mut file = open_upload(&job.root, &staged, offset)?;
        file.seek(SeekFrom::Start(offset)).map_err(|e| Reply::error(500, e.to_string()))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = offset;
        let reader = request.as_reader();
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                // A cut connection keeps what arrived; the worker resumes from there.
                Err(_) => break,
            };
            total += n as u64;
            transfers.uploaded.fetch_add(n as u64, Relaxed);
            if total > limit {
                let _ = file.set_len(offset);
                return Err(Reply::error(413, "the result would not be smaller than the original"));
            }
            file.write_all(&buf[..n]).map_err(|e| write_error("writing the result", &e))?;
        }
        file.sync_all().map_err(|e| write_error("syncing the result", &e))?;
        av1_library::pause_point(av1_library::Pause::MasterReceived);
        // The lease may have run out meanwhile (and its files been removed): then this
        // file is nobody's.
        if !matches!(queue.leased(id, &lease), Ok(Some(_))) {
            drop(file);
            let _ = std::fs::remove_file(&staged);
            return Err(Reply::error(409, "the lease ran out during the upload"));
        }
        Ok(Reply::json(200, &av1_proto::worker::Received { received: total }))
    })();
    match reply {
        Ok(reply) => http::send(request, reply),
        // Most refusals come before the body is read (and the body is chunked, which
        // nothing drains): the connection must close, or the client's next call on it
        // would be read from the middle of this body.
        Err(reply) => http::refuse(request, reply),
    }
}
