//! The names of the files in a library: which are videos, which are ours (temporary
//! and staged results, backups), and what a result and a backup are called.

use std::path::{Path, PathBuf};

/// Extensions the scanner takes as video (compared without case).
pub const VIDEO_EXTENSIONS: &[&str] =
    &["mkv", "mp4", "m4v", "avi", "mov", "ts", "m2ts", "wmv", "webm", "mpg", "mpeg", "flv"];

/// Suffix of a verified result waiting in the target directory to replace its original.
pub const STAGED_SUFFIX: &str = ".av1-verified";
/// Suffix of the backup kept in testing mode.
pub const BACKUP_SUFFIX: &str = ".bak";

/// A video file by its extension.
pub fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(e)))
}

/// A temporary or staged file this program writes: hidden, with one of our suffixes.
pub fn is_ours(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    name.starts_with('.')
        && (name.ends_with(av1core::transcode::TEMP_SUFFIX) || name.ends_with(STAGED_SUFFIX))
}

/// What the result of `source` is called: the same name with `.mkv`.
pub fn target_for(source: &Path) -> PathBuf {
    source.with_extension("mkv")
}

/// Where the verified result waits beside `target`: `.Movie.mkv.av1-verified`.
pub fn staged_for(target: &Path) -> PathBuf {
    hidden_sibling(target, STAGED_SUFFIX)
}

/// Where a worker's result for the job under `lease` waits beside `target` (shared
/// storage): `.Movie.mkv.1f2e3d4c.av1-verified`. The lease in the name keeps a late
/// worker whose lease ran out from writing over the next one's result; master and
/// worker both derive it, so no path travels in a request.
pub fn staged_for_lease(target: &Path, lease: &str) -> PathBuf {
    let tag: String = lease.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    hidden_sibling(target, &format!(".{tag}{STAGED_SUFFIX}"))
}

/// Removes what a worker may have written beside `source` under `lease` (its result,
/// finished or partial): once the lease has ended, these files are nobody's.
pub fn remove_lease_files(source: &Path, lease: &str) {
    let staged = staged_for_lease(&target_for(source), lease);
    let _ = std::fs::remove_file(av1core::transcode::temp_path(&staged));
    let _ = std::fs::remove_file(&staged);
}

/// The backup of `source` in testing mode: `Movie.mp4.bak`.
pub fn backup_for(source: &Path) -> PathBuf {
    let mut name = source.file_name().unwrap_or_default().to_os_string();
    name.push(BACKUP_SUFFIX);
    source.with_file_name(name)
}

fn hidden_sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_video(Path::new("/a/Movie.MKV")));
        assert!(is_video(Path::new("b.m2ts")));
        assert!(!is_video(Path::new("Movie.mkv.bak")));
        assert!(!is_video(Path::new("notes.txt")));
        let target = target_for(Path::new("/lib/Movie.mp4"));
        assert_eq!(target, Path::new("/lib/Movie.mkv"));
        let staged = staged_for(&target);
        assert_eq!(staged, Path::new("/lib/.Movie.mkv.av1-verified"));
        assert!(is_ours(&staged));
        assert!(is_ours(&av1core::transcode::temp_path(&staged)));
        assert!(!is_ours(Path::new("/lib/.hidden.mkv")));
        assert_eq!(backup_for(Path::new("/lib/Movie.mkv")), Path::new("/lib/Movie.mkv.bak"));
        let leased = staged_for_lease(&target, "1f2e3d4c5b6a/../x");
        assert_eq!(leased, Path::new("/lib/.Movie.mkv.1f2e3d4c.av1-verified"));
        assert!(is_ours(&leased));
    }
}
