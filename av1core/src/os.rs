//! The operating-system calls the library needs beyond `std`: process priority, free
//! space, directory fsync, rename without overwrite, ownership. Linux only, as the
//! product is; everything is a direct system call, never a child process.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// Lowers the priority of the calling thread and of every thread it starts afterwards
/// (Linux keeps nice and I/O priority per thread; new threads inherit them). Call it
/// before the pipeline starts, ideally first thing in `main`.
///
/// `nice` is 0..=19; `io_class` is 1 (realtime), 2 (best effort) or 3 (idle).
pub fn set_priority(nice: i32, io_class: u8) -> Result<()> {
    if !(0..=19).contains(&nice) {
        return Err(Error::Config(format!("NICE_LEVEL must be 0..=19, not {nice}")));
    }
    if !(1..=3).contains(&io_class) {
        return Err(Error::Config(format!("IONICE_CLASS must be 1, 2 or 3, not {io_class}")));
    }
    rustix::process::setpriority_process(None, nice).map_err(|e| os_error("setpriority", e))?;
    // ioprio value: class in the top 3 bits of 16, level (0 = highest within the
    // class; ignored for idle) below. Who = IOPRIO_WHO_PROCESS (1), id 0 = this thread.
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    let level = if io_class == 2 { 7 } else { 0 };
    let value = (libc::c_long::from(io_class) << IOPRIO_CLASS_SHIFT) | level;
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, value) };
    if rc != 0 {
        return Err(os_error("ioprio_set", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Current nice value and I/O priority class of the calling thread (for logs and tests).
pub fn priority() -> (i32, u8) {
    let nice = rustix::process::getpriority_process(None).unwrap_or(0);
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_get takes two integers and touches no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0 as libc::c_long) };
    let class = if rc < 0 { 0 } else { (rc >> 13) as u8 };
    (nice, class)
}

fn os_error(call: &'static str, e: impl Into<std::io::Error>) -> Error {
    Error::Io { op: call, path: "(process)".into(), source: e.into() }
}

/// Bytes available to an unprivileged user on the file system holding `path`.
pub fn free_space(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(|e| Error::io("statvfs", path)(e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(Error::io("opening the directory", dir))?;
    d.sync_all().map_err(Error::io("syncing the directory", dir))
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Renames `from` to `to` atomically, failing with `AlreadyExists` instead of replacing
/// an existing `to` (Linux `renameat2(RENAME_NOREPLACE)`). File systems without it
/// (NFS, SMB, many FUSE mounts answer EINVAL) get the same guarantee from `link(2)`,
/// which fails on an existing name, followed by removing the old name.
pub fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        other => other.map_err(Into::into),
    }
}

/// Size, modification time (ns since the epoch), device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub dev: u64,
    pub ino: u64,
}

impl Stamp {
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        std::fs::metadata(path).map(|m| Stamp::from_metadata(&m))
    }

    pub fn from_metadata(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        // Saturating: absurd dates (before 1677, after 2262) must not overflow.
        let mtime_ns = m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec());
        Stamp { size: m.size(), mtime_ns, dev: m.dev(), ino: m.ino() }
    }
}

/// Gives `file` the mode of `like` and either `like`'s owner and group or `ids`.
/// Changing the owner needs privileges; when they are missing and the owner would
/// change, the error is returned for the caller to log (the file is still usable).
pub fn copy_ownership(file: &File, like: &std::fs::Metadata, ids: Option<(u32, u32)>) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    file.set_permissions(std::fs::Permissions::from_mode(like.mode() & 0o7777))?;
    let (uid, gid) = ids.unwrap_or((like.uid(), like.gid()));
    let m = file.metadata()?;
    if m.uid() != uid || m.gid() != gid {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_no_replace_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        let e = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        std::fs::remove_file(&b).unwrap();
        rename_no_replace(&a, &b).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"a");
        assert!(!a.exists());
    }

    #[test]
    fn free_space_is_reported() {
        assert!(free_space(Path::new("/")).unwrap() > 0);
        assert!(free_space(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn priority_is_applied_to_new_threads() {
        // On a thread of its own, so the test runner's other threads keep theirs.
        std::thread::spawn(|| {
            set_priority(19, 3).unwrap();
            assert_eq!(priority(), (19, 3));
            let child = std::thread::spawn(priority).join().unwrap();
            assert_eq!(child, (19, 3));
            assert!(set_priority(20, 3).is_err());
            assert!(set_priority(5, 4).is_err());
        })
        .join()
        .unwrap();
    }
}
