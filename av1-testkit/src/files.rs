//! Snapshots and hashes of a library, to tell what changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The regular files directly in `dir`, by name, with their bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("reading the directory")
        .map(|e| e.expect("a directory entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("a file")))
        .collect()
}

/// Every file under `dir`, hidden ones included, by its path below `dir`, with its bytes.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a file");
            (p.strip_prefix(dir).expect("below dir").to_path_buf(), bytes)
        })
        .collect()
}

/// Every file under `dir` (recursively), with its BLAKE3 hash.
pub fn hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    walk(dir).into_iter().map(|p| (p.clone(), hash(&p))).collect()
}

/// BLAKE3 of a file, hex.
pub fn hash(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path).expect("opening a file to hash")).expect("reading it");
    h.finalize().to_hex().to_string()
}

/// Every non-directory under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("reading a directory").map(|e| e.expect("a directory entry")) {
            if e.file_type().expect("a file type").is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
