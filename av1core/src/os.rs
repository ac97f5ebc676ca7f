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
    /// The stamp of what `path` names, following symbolic links.
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        std::fs::metadata(path).map(|m| Stamp::from_metadata(&m))
    }

    /// The stamp of the name itself (`lstat`): a symbolic link is not the file it
    /// points to. Use it wherever a name is compared with a file we hold.
    pub fn of_link(path: &Path) -> std::io::Result<Stamp> {
        std::fs::symlink_metadata(path).map(|m| Stamp::from_metadata(&m))
    }

    pub fn from_metadata(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        // Saturating: absurd dates (before 1677, after 2262) must not overflow.
        let mtime_ns = m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec());
        Stamp { size: m.size(), mtime_ns, dev: m.dev(), ino: m.ino() }
    }
}

/// Opens `path` without following a symbolic link in its last component (`O_NOFOLLOW`;
/// a link there is `ELOOP`) and without blocking on a FIFO (`O_NONBLOCK`, no effect on
/// regular files), then requires a regular file with one link (`fstat`): what a
/// planted symlink, hard link, FIFO or device would otherwise turn into a read or a
/// write elsewhere. Read-only, or read-write when `write`. Everything but a missing
/// file or an I/O failure is `InvalidInput` saying what was found.
pub fn open_regular(path: &Path, write: bool) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => invalid("a symbolic link, not a file of ours"),
            _ => e,
        })?;
    require_regular(&file)?;
    Ok(file)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned())
}

/// Creates `path` as a new, empty file (`O_CREAT|O_EXCL|O_NOFOLLOW`: never an existing
/// name, never through a link), read-write, with `mode` (less the umask).
pub fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// How [`open_beneath_as`] opens the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
    /// Created new (`O_CREAT|O_EXCL`), read-write, with this mode (less the umask).
    CreateNew(u32),
}

/// Opens the library file `path` for reading, resolving it beneath `root` (its library
/// root, canonical) without following any symbolic link on the way — neither a
/// directory swapped for a link nor the file itself — and requires a regular file
/// (hard links are fine: users link downloads into libraries). `openat2` with
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it (5.6+), else a walk
/// component by component with `O_NOFOLLOW`. Whatever is not such a file is
/// `InvalidInput` saying why; a missing one is `NotFound`. A root that is itself a
/// single video file (`path == root`) is opened with `O_NOFOLLOW`.
pub fn open_beneath(root: &Path, path: &Path) -> std::io::Result<File> {
    open_beneath_as(root, path, Access::Read)
}

/// [`open_beneath`], for reading, writing or creating (files of ours beside a source).
pub fn open_beneath_as(root: &Path, path: &Path, access: Access) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let rel = path.strip_prefix(root).map_err(|_| invalid("not beneath its library root"))?;
    let (flags, mode) = match access {
        Access::Read => (OFlags::RDONLY, Mode::empty()),
        Access::ReadWrite => (OFlags::RDWR, Mode::empty()),
        Access::CreateNew(m) => (OFlags::RDWR | OFlags::CREATE | OFlags::EXCL, Mode::from_raw_mode(m)),
    };
    let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = if rel.as_os_str().is_empty() {
        if access != Access::Read {
            return Err(invalid("the library root itself"));
        }
        open_no_follow(path)?
    } else {
        let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&dir, rel, flags, mode, how) {
            Ok(fd) => File::from(fd),
            // No openat2 (before 5.6), or a seccomp filter that refuses it (older
            // container runtimes answer EPERM).
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM | rustix::io::Errno::INVAL) => {
                walk_beneath(dir, rel, flags, mode)?
            }
            Err(e) => return Err(beneath_error(e)),
        }
    };
    let m = file.metadata()?;
    if !m.file_type().is_file() {
        return Err(invalid("not a regular file"));
    }
    Ok(file)
}

fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => invalid("a symbolic link"),
            _ => e,
        })
}

fn beneath_error(e: rustix::io::Errno) -> std::io::Error {
    use rustix::io::Errno;
    match e {
        Errno::LOOP | Errno::NOTDIR => invalid("a symbolic link on its way from the library root"),
        Errno::XDEV => invalid("outside its library root"),
        e => e.into(),
    }
}

/// `openat2`'s guarantee on kernels without it: each directory opened with
/// `O_NOFOLLOW | O_DIRECTORY` from the one before, `..` refused.
fn walk_beneath(
    root: rustix::fd::OwnedFd,
    rel: &Path,
    last_flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    use std::path::Component;
    let parts: Vec<_> = rel.components().collect();
    let mut dir = root;
    for (i, part) in parts.iter().enumerate() {
        let Component::Normal(name) = part else { return Err(invalid("outside its library root")) };
        let last = i + 1 == parts.len();
        let (flags, mode) = if last {
            (last_flags, mode)
        } else {
            (OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
        };
        let fd = rustix::fs::openat(&dir, *name, flags, mode).map_err(beneath_error)?;
        if last {
            return Ok(File::from(fd));
        }
        dir = fd;
    }
    Err(invalid("an empty path"))
}

/// A regular file with exactly one name (`fstat` of the open descriptor), else
/// `InvalidInput` saying what it is.
pub fn require_regular(file: &File) -> std::io::Result<std::fs::Metadata> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    let what = if !m.file_type().is_file() {
        Some("not a regular file".to_owned())
    } else if m.nlink() != 1 {
        Some(format!("a file with {} names (hard links), not one", m.nlink()))
    } else {
        None
    };
    match what {
        Some(what) => Err(invalid(&what)),
        None => Ok(m),
    }
}

/// The name under which libraries that want a path (libavformat) open the very file
/// behind `file`, whatever happens to its name meanwhile: `/proc/self/fd/N`.
pub fn fd_path(file: &File) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Whether `path` (not followed) still names the file `file` has open.
pub fn names_file(path: &Path, file: &File) -> bool {
    match (Stamp::of_link(path), file.metadata()) {
        (Ok(name), Ok(m)) => {
            let held = Stamp::from_metadata(&m);
            (name.dev, name.ino) == (held.dev, held.ino)
        }
        _ => false,
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
    fn open_regular_refuses_links_fifos_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let e = open_regular(&link, false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(create_new(&link, 0o600).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"secret");

        let fifo = dir.path().join("fifo");
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        mknodat(CWD, &fifo, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        let e = open_regular(&fifo, false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");

        let hard = dir.path().join("hard");
        std::fs::hard_link(&outside, &hard).unwrap();
        let e = open_regular(&hard, true).unwrap_err();
        assert!(e.to_string().contains("2 names"), "{e}");

        let plain = dir.path().join("plain");
        let f = create_new(&plain, 0o600).unwrap();
        assert!(names_file(&plain, &f));
        assert!(!names_file(&outside, &f));
        assert_eq!(std::fs::read(fd_path(&f)).unwrap(), b"");
        assert!(open_regular(&plain, true).is_ok());
    }

    #[test]
    fn open_beneath_refuses_every_way_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lib");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("Films")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("a.mp4"), "secret").unwrap();
        std::fs::write(root.join("Films/a.mp4"), "film").unwrap();
        let ok = open_beneath(&root, &root.join("Films/a.mp4")).unwrap();
        assert_eq!(std::fs::read(fd_path(&ok)).unwrap(), b"film");

        // The file swapped for a link, then the directory above it.
        std::fs::remove_file(root.join("Films/a.mp4")).unwrap();
        std::os::unix::fs::symlink(outside.join("a.mp4"), root.join("Films/a.mp4")).unwrap();
        let e = open_beneath(&root, &root.join("Films/a.mp4")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        std::fs::rename(root.join("Films"), dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("Films")).unwrap();
        let e = open_beneath(&root, &root.join("Films/a.mp4")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        assert!(open_beneath(&root, &outside.join("a.mp4")).is_err());
        assert!(open_beneath(&root, &root.join("../outside/a.mp4")).is_err());
        // The fallback walk refuses the same.
        let rootfd = |r: &Path| {
            use rustix::fs::{Mode, OFlags};
            rustix::fs::open(r, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap()
        };
        let read = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW;
        let none = rustix::fs::Mode::empty();
        assert!(walk_beneath(rootfd(&root), Path::new("Films/a.mp4"), read, none).is_err());
        assert!(walk_beneath(rootfd(&root), Path::new("../outside/a.mp4"), read, none).is_err());
        std::fs::create_dir(root.join("TV")).unwrap();
        std::fs::write(root.join("TV/b.mkv"), "tv").unwrap();
        let f = walk_beneath(rootfd(&root), Path::new("TV/b.mkv"), read, none).unwrap();
        assert_eq!(std::fs::read(fd_path(&f)).unwrap(), b"tv");

        // A FIFO does not hang the caller.
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        mknodat(CWD, root.join("TV/c.ts"), FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        let e = open_beneath(&root, &root.join("TV/c.ts")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");

        // Created beneath the root, never through the swapped directory.
        let made = open_beneath_as(&root, &root.join("TV/.new"), Access::CreateNew(0o600)).unwrap();
        assert!(made.metadata().unwrap().is_file());
        assert!(
            open_beneath_as(&root, &root.join("TV/.new"), Access::CreateNew(0o600)).is_err(),
            "exclusive"
        );
        assert!(open_beneath_as(&root, &root.join("Films/.new"), Access::CreateNew(0o600)).is_err());
        assert!(!outside.join(".new").exists());
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
