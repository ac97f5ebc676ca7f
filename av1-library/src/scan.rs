//! The scanner: walks the library roots, probes new and changed video files in
//! parallel (a bounded rayon pool), plans them, and brings the queue up to date —
//! unchanged files (same path, size and mtime) are not probed again, files gone from
//! disk leave the queue, and our own temporary and staged files are reported apart.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::names;
use super::queue::{Examined, Queue, Summary, Verdict};
use crate::error::{chain, Error, Result};
use av1core::os::Stamp;
use av1core::plan::{Decision, Settings};
use av1core::probe::StreamKind;

/// A video file on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub path: PathBuf,
    pub root: PathBuf,
    pub stamp: Stamp,
}

/// What a walk of the roots found.
#[derive(Debug, Default)]
pub struct Walk {
    pub videos: Vec<Found>,
    /// Our temporary and staged files (`.NAME.av1-partial`, `.NAME.av1-verified`).
    pub ours: Vec<PathBuf>,
    /// Entries that could not be read or named (not UTF-8): reported, not queued.
    pub problems: Vec<String>,
}

/// The canonical form of each root; a root that does not exist is an error, so an
/// unmounted disk never looks like an empty library (and never prunes the queue).
pub fn canonical_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    roots
        .iter()
        .map(|r| {
            let c = std::fs::canonicalize(r).map_err(Error::io("opening the library root", r))?;
            Ok(c)
        })
        .collect()
}

/// Finds the video files under `roots` (canonical, see [`canonical_roots`]). A root
/// may also be a single video file.
pub fn walk(roots: &[PathBuf]) -> Walk {
    let mut w = Walk::default();
    for root in roots {
        for entry in walkdir::WalkDir::new(root).follow_links(false) {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    w.problems.push(e.to_string());
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            if names::is_ours(path) {
                w.ours.push(path.to_path_buf());
                continue;
            }
            if !names::is_video(path) {
                continue;
            }
            if path.to_str().is_none() {
                w.problems.push(format!("{}: the name is not UTF-8; not queued", path.display()));
                continue;
            }
            match entry.metadata() {
                Ok(m) => w.videos.push(Found {
                    path: path.to_path_buf(),
                    root: root.clone(),
                    stamp: Stamp::from_metadata(&m),
                }),
                Err(e) => w.problems.push(format!("{}: {e}", path.display())),
            }
        }
    }
    w
}

/// Probes and plans one file: what the queue stores about it. The file is opened
/// beneath its root (no link on the way, a regular file: a FIFO cannot hang the scan)
/// and probed through that descriptor.
pub fn examine(found: &Found, settings: &Settings) -> Examined {
    let mut summary = Summary::default();
    let probed = av1core::os::open_beneath(&found.root, &found.path)
        .map_err(Error::io("opening it beneath its library root", &found.path))
        .and_then(|file| {
            let fd = av1core::os::fd_path(&file);
            let mut info =
                av1core::probe(&fd).map_err(|e| e.naming(&[(fd.as_path(), found.path.as_path())]))?;
            info.path = found.path.clone();
            Ok(info)
        });
    let verdict = match probed {
        Err(e) => Verdict::Unreadable { error: chain(&e) },
        Ok(info) => {
            summary.container = Some(info.container.clone());
            summary.duration = Some(info.duration);
            if let Some((s, v)) = info.video() {
                summary.video_codec = Some(s.codec.clone());
                summary.width = Some(v.width);
                summary.height = Some(v.height);
                summary.hdr = Some(info.hdr.kind.to_string());
            }
            let audio: Vec<&str> = info
                .streams
                .iter()
                .filter(|s| s.kind == StreamKind::Audio)
                .map(|s| s.codec.as_str())
                .collect();
            summary.audio = Some(if audio.is_empty() { "none".into() } else { audio.join(", ") });
            match av1core::plan(&info, settings) {
                Err(e) => Verdict::Unreadable { error: chain(&e) },
                Ok(Decision::Skip { reason, detail }) => Verdict::Skip { reason, detail },
                Ok(Decision::Encode(plan)) => {
                    summary.crf = Some(plan.video.crf);
                    summary.audio = Some(plan.audio_summary());
                    Verdict::Encode
                }
            }
        }
    };
    Examined {
        path: found.path.clone(),
        root: found.root.clone(),
        size: found.stamp.size,
        mtime_ns: found.stamp.mtime_ns,
        summary,
        verdict,
    }
}

/// Probes `files` on at most `threads` threads (0 = one per core), calling
/// `on_examined` after each.
pub fn examine_all(
    files: &[Found],
    settings: &Settings,
    threads: usize,
    on_examined: &(dyn Fn(&Examined) + Sync),
) -> Result<Vec<Examined>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("probe-{i}"))
        .build()
        .map_err(|e| Error::internal("scan", e))?;
    Ok(pool.install(|| {
        files
            .par_iter()
            .map(|f| {
                let e = examine(f, settings);
                on_examined(&e);
                e
            })
            .collect()
    }))
}

/// What a scan changed.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Video files on disk.
    pub found: usize,
    pub new: usize,
    pub changed: usize,
    pub unchanged: usize,
    /// Queue entries whose file is gone.
    pub pruned: usize,
    /// New or changed files that could not be probed (queued as failed).
    pub unreadable: usize,
    /// Our temporary files found in the library (the caller decides which are orphans).
    pub ours: Vec<PathBuf>,
    pub problems: Vec<String>,
}

/// Brings the queue up to date with `roots` (canonical).
pub fn scan(
    queue: &mut Queue,
    roots: &[PathBuf],
    settings: &Settings,
    threads: usize,
    on_examined: &(dyn Fn(&Examined) + Sync),
) -> Result<ScanReport> {
    let walk = walk(roots);
    let mut report = ScanReport {
        found: walk.videos.len(),
        ours: walk.ours,
        problems: walk.problems,
        ..ScanReport::default()
    };
    let mut todo = Vec::new();
    let mut seen = HashSet::new();
    let mut gone = Vec::new();
    for root in roots {
        let known = queue.known_under(root)?;
        for f in walk.videos.iter().filter(|f| &f.root == root) {
            seen.insert(f.path.clone());
            match known.get(&f.path) {
                Some(k) if k.size == f.stamp.size && k.mtime_ns == f.stamp.mtime_ns => report.unchanged += 1,
                Some(_) => {
                    report.changed += 1;
                    todo.push(f.clone());
                }
                None => {
                    report.new += 1;
                    todo.push(f.clone());
                }
            }
        }
        let here = walk.videos.iter().filter(|f| &f.root == root).count();
        if here == 0 && !known.is_empty() {
            // An unmounted disk leaves an empty mount point: keep the queue as it is.
            report.problems.push(format!(
                "{} holds no video file any more ({} queued): not pruning; is it mounted?",
                root.display(),
                known.len()
            ));
            continue;
        }
        // Gone: no longer a regular file under its name (deleted, or become a link).
        gone.extend(known.iter().filter(|(p, _)| !seen.contains(*p) && !regular(p)).map(|(_, k)| k.id));
    }
    let examined = examine_all(&todo, settings, threads, on_examined)?;
    report.unreadable = examined.iter().filter(|e| matches!(e.verdict, Verdict::Unreadable { .. })).count();
    crate::pause_point(crate::Pause::ScanRecording);
    queue.upsert_all(&examined)?;
    report.pruned = queue.prune(&gone)?;
    Ok(report)
}

fn regular(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file())
}
