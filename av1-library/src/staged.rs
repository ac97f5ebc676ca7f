//! A verified result waiting beside its original under our hidden name
//! (`.Movie.mkv.av1-verified`), held open from its check to its rename.
//!
//! The name is opened once, without following a symbolic link, and must be a regular
//! file with one name; from then on everything goes through that descriptor — size,
//! hash, verification (libavformat reads `/proc/self/fd/N`), owner, mode, fsync — so a
//! link or another file planted under the name later is never read, changed or put in
//! place. The name is used once more, for the rename, and only after checking it still
//! names the file we hold.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use av1core::os::{self, Stamp};

/// An open staged result (see the module documentation).
#[derive(Debug)]
pub struct Staged {
    file: File,
    path: PathBuf,
}

impl Staged {
    /// Opens the staged result at `path`, beneath the library `root` (no symbolic link
    /// on the way, not even a directory swapped for one): a regular file with one
    /// name. Anything else is [`Error::Io`] naming what was found.
    pub fn open(root: &Path, path: &Path) -> Result<Staged> {
        let file = os::open_beneath(root, path)
            .and_then(|f| os::require_regular(&f).map(|_| f))
            .map_err(Error::io("opening the result", path))?;
        Ok(Staged { file, path: path.to_path_buf() })
    }

    /// The hidden name it was opened under.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Size, mtime, device and inode of the file held (`fstat`).
    pub fn stamp(&self) -> Result<Stamp> {
        let m = self.file.metadata().map_err(Error::io("reading metadata", &self.path))?;
        Ok(Stamp::from_metadata(&m))
    }

    /// A path that opens the file held, not whatever the name holds now.
    pub fn fd_path(&self) -> PathBuf {
        os::fd_path(&self.file)
    }

    /// BLAKE3 of the whole file held, read through the descriptor.
    pub fn hash(&self) -> Result<blake3::Hash> {
        let mut reader = &self.file;
        reader.seek(SeekFrom::Start(0)).map_err(Error::io("reading the result", &self.path))?;
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(reader).map_err(Error::io("reading the result", &self.path))?;
        Ok(hasher.finalize())
    }

    /// Whether the hidden name still names the file held (not a link, not a swap).
    pub fn still_named(&self) -> bool {
        os::names_file(&self.path, &self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_planted_under_the_name_is_refused_and_a_swap_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"not ours").unwrap();
        let name = dir.path().join(".Movie.mkv.av1-verified");
        std::os::unix::fs::symlink(&outside, &name).unwrap();
        let e = Staged::open(dir.path(), &name).unwrap_err();
        assert!(e.to_string().contains("opening the result"), "{e}");
        assert!(crate::error::chain(&e).contains("symbolic link"), "{}", crate::error::chain(&e));

        std::fs::remove_file(&name).unwrap();
        std::fs::write(&name, b"result").unwrap();
        let staged = Staged::open(dir.path(), &name).unwrap();
        assert_eq!(staged.hash().unwrap(), blake3::hash(b"result"));
        assert_eq!(std::fs::read(staged.fd_path()).unwrap(), b"result");
        assert!(staged.still_named());
        // The name swapped for a link: the descriptor still reads our file.
        std::fs::remove_file(&name).unwrap();
        std::os::unix::fs::symlink(&outside, &name).unwrap();
        assert!(!staged.still_named());
        assert_eq!(staged.hash().unwrap(), blake3::hash(b"result"));
        assert_eq!(staged.stamp().unwrap().size, 6);
    }
}
