//! Crash-safe replacement of an original by its verified result, in one function.
//!
//! ```text
//! result verified at .Movie.mkv.av1-verified (same directory, fsynced, owner/mode of the original)
//!   ─▶ the original is still what was encoded (size, mtime, inode)? the name is free?
//!   ─▶ record the replacement in the queue (durable)                 pause point replace:recorded
//!   ─▶ testing mode: hard link Movie.mp4 → Movie.mp4.bak (never over an existing file)
//!                                                                      pause point replace:backup
//!   ─▶ rename .Movie.mkv.av1-verified → Movie.mkv (never over a file that is not the original)
//!   ─▶ fsync the directory                                             pause point replace:renamed
//!   ─▶ Movie.mkv is the result (inode, size)? then remove Movie.mp4 if it is still the
//!      original, fsync                                                 pause point replace:source-removed
//!   ─▶ one transaction: the file is done under its new name, the record goes
//! ```
//!
//! A crash anywhere leaves the original or the verified result in place, never neither,
//! and the record says which: at start-up [`recover`] finishes every recorded
//! replacement whose result is intact and undoes the others; a replacement that fails
//! part-way at run time is settled by [`recover_file`], which touches its own record
//! only.
//!
//! Names are never followed: the result is held open ([`Staged`]) and every stamp is
//! of the name itself (`lstat`), so a symbolic link planted at the source, the staged
//! name, the target or the backup is a changed file, never a way to reach another one.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::names;
use super::queue::{Done, Outcome, PendingReplacement, Queue};
use super::staged::Staged;
use crate::error::{Error, Result};
use av1core::os::{self, Stamp};

/// How results replace originals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Keep the original as `<name>.bak` (`TESTING_MODE`).
    pub testing_mode: bool,
    /// Owner and group for results (`PUID`/`PGID`) instead of the original's.
    pub owner: Option<(u32, u32)>,
}

/// What the encode says about the result, stored with it.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeFacts {
    pub encoder: String,
    pub fps: f64,
    /// Seconds.
    pub elapsed: f64,
    /// The encoder settings used (JSON), recorded with the result.
    pub settings: Option<String>,
}

/// The name the result of `source` takes: `Movie.mkv`, or the source's own name when
/// that already is the same file (`Movie.MKV` on a case-insensitive file system).
pub fn target_of(source: &Path) -> PathBuf {
    let target = names::target_for(source);
    match (Stamp::of_link(&target), Stamp::of_link(source)) {
        (Ok(t), Ok(s)) if target != source && t.dev == s.dev && t.ino == s.ino => source.to_path_buf(),
        _ => target,
    }
}

/// Puts the verified result `staged` (held open, in the same directory, named by
/// [`names::staged_for`]) in place of `source`, for the running queue file `file_id`,
/// and records it done. `encoded` is the stamp the source had when it was encoded: a
/// source that changed since is not replaced. On error the original is untouched
/// (or, past the record, [`recover_file`] finishes or undoes it).
pub fn replace(
    queue: &mut Queue,
    file_id: i64,
    source: &Path,
    encoded: Stamp,
    staged: &Staged,
    facts: &EncodeFacts,
    opts: &Options,
) -> Result<Done> {
    let target = target_of(source);
    let source_meta = std::fs::symlink_metadata(source)
        .map_err(|e| Error::SourceChanged { path: source.into(), what: format!("cannot read it: {e}") })?;
    let source_stamp = Stamp::from_metadata(&source_meta);
    if (source_stamp.size, source_stamp.mtime_ns, source_stamp.ino)
        != (encoded.size, encoded.mtime_ns, encoded.ino)
    {
        return Err(Error::SourceChanged {
            path: source.into(),
            what: "it is not the file that was encoded".into(),
        });
    }
    if target != source && std::fs::symlink_metadata(&target).is_ok() {
        return Err(Error::NameClash { target, source_file: source.into() });
    }
    let backup = if opts.testing_mode { backup_to_make(queue, file_id, source, source_stamp)? } else { None };

    // Owner, mode and fsync through the descriptor: never a link's target.
    let file = staged.file();
    if let Err(e) = os::copy_ownership(file, &source_meta, opts.owner) {
        tracing::warn!(file = %target.display(), "could not give the result the original's owner: {e}");
    }
    file.sync_all().map_err(Error::io("syncing the result", staged.path()))?;
    let staged_stamp = staged.stamp()?;
    os::sync_dir(os::parent(staged.path()))?;
    if !staged.still_named() {
        return Err(Error::SourceChanged {
            path: staged.path().into(),
            what: "the name no longer holds the result that was checked".into(),
        });
    }

    let rec = PendingReplacement {
        file_id,
        source: source.into(),
        source_size: source_stamp.size,
        source_mtime_ns: source_stamp.mtime_ns,
        source_ino: source_stamp.ino,
        staged: staged.path().into(),
        staged_size: staged_stamp.size,
        staged_ino: staged_stamp.ino,
        target: target.clone(),
        backup: backup.clone(),
        done: Done {
            path: target,
            size: staged_stamp.size,
            mtime_ns: staged_stamp.mtime_ns,
            original_path: source.into(),
            original_size: source_stamp.size,
            encoder: facts.encoder.clone(),
            fps: facts.fps,
            elapsed: facts.elapsed,
            backup,
            settings: facts.settings.clone(),
        },
    };
    queue.begin_replacement(&rec)?;
    crate::pause_point(crate::Pause::ReplaceRecorded);
    match put_in_place(queue, &rec) {
        Err(e @ Error::NameClash { .. }) => {
            // Nothing was renamed: undo the backup made for it, keep the original.
            undo_backup(&rec);
            if staged.still_named() {
                let _ = std::fs::remove_file(staged.path());
            }
            queue.abandon_replacement(file_id, &Outcome::Failed { error: e.to_string() })?;
            Err(e)
        }
        other => other,
    }
}

/// The backup testing mode makes for `source`, or `None` when the true original is
/// already kept (the source is our own earlier result and its backup exists). An
/// existing `NAME.bak` that is not such a backup is never overwritten: an error.
fn backup_to_make(
    queue: &Queue,
    file_id: i64,
    source: &Path,
    source_stamp: Stamp,
) -> Result<Option<PathBuf>> {
    let (recorded, output) = queue.backup_info(file_id)?;
    let ours = output == Some((source_stamp.size, source_stamp.mtime_ns));
    if ours && recorded.as_deref().is_some_and(|b| std::fs::symlink_metadata(b).is_ok()) {
        return Ok(None);
    }
    let backup = names::backup_for(source);
    if std::fs::symlink_metadata(&backup).is_ok() {
        return Err(Error::NameClash { target: backup, source_file: source.into() });
    }
    Ok(Some(backup))
}

/// After a failed rename: a backup made by this replacement goes (a hard link of the
/// original) or moves back (when the original was moved to it).
fn undo_backup(rec: &PendingReplacement) {
    let Some(backup) = &rec.backup else { return };
    if Stamp::of_link(backup).is_ok_and(|b| b.ino == rec.source_ino) {
        if exists(&rec.source) {
            let _ = std::fs::remove_file(backup);
        } else {
            let _ = os::rename_no_replace(backup, &rec.source);
        }
    }
}

/// The steps after the record, each one skipped when a previous run already did it.
fn put_in_place(queue: &mut Queue, rec: &PendingReplacement) -> Result<Done> {
    let dir = os::parent(&rec.target);
    if let Some(backup) = &rec.backup {
        if !exists(backup) && source_intact(rec) {
            match std::fs::hard_link(&rec.source, backup) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                // File systems without hard links: move the original instead.
                Err(_) => os::rename_no_replace(&rec.source, backup)
                    .map_err(Error::io("moving the original to its backup", backup))?,
            }
            os::sync_dir(dir)?;
        }
        crate::pause_point(crate::Pause::ReplaceBackup);
    }
    // Only our result moves: a name holding anything else stays where it is.
    if Stamp::of_link(&rec.staged).is_ok_and(|s| s.ino == rec.staged_ino && s.size == rec.staged_size) {
        let renamed = if rec.target == rec.source {
            std::fs::rename(&rec.staged, &rec.target)
        } else {
            os::rename_no_replace(&rec.staged, &rec.target)
        };
        match renamed {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::NameClash { target: rec.target.clone(), source_file: rec.source.clone() })
            }
            Err(e) => return Err(Error::io("renaming the result into place", &rec.target)(e)),
        }
        os::sync_dir(dir)?;
        crate::pause_point(crate::Pause::ReplaceRenamed);
    }
    // Nothing is removed unless the result is really there.
    let in_place = result_in_place(rec);
    if !in_place {
        return Err(Error::SourceChanged {
            path: rec.target.clone(),
            what: "the verified result is not at its place; the original is left as it is".into(),
        });
    }
    if rec.target != rec.source {
        if source_intact(rec) {
            match std::fs::remove_file(&rec.source) {
                Ok(()) => {
                    os::sync_dir(dir)?;
                    crate::pause_point(crate::Pause::ReplaceSourceRemoved);
                }
                Err(e) => tracing::warn!("could not remove the original {}: {e}", rec.source.display()),
            }
        } else if exists(&rec.source) {
            tracing::warn!("{} changed after it was encoded: left in place", rec.source.display());
        }
    }
    queue.complete_replacement(rec.file_id, &rec.done)?;
    Ok(rec.done.clone())
}

/// What start-up did with one interrupted replacement.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovered {
    /// The verified result is in place.
    Finished(Done),
    /// Undone: the original stays, the file is queued again or failed.
    RolledBack { source: PathBuf, why: String },
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The source's name still holds the file that was encoded.
fn source_intact(rec: &PendingReplacement) -> bool {
    Stamp::of_link(&rec.source)
        .is_ok_and(|s| (s.size, s.mtime_ns, s.ino) == (rec.source_size, rec.source_mtime_ns, rec.source_ino))
}

/// The target's name holds the verified result.
fn result_in_place(rec: &PendingReplacement) -> bool {
    Stamp::of_link(&rec.target).is_ok_and(|t| t.ino == rec.staged_ino && t.size == rec.staged_size)
}

/// Finishes or undoes every replacement a crash interrupted. Call at start-up, before
/// anything else touches the library (and before any thread that could be replacing).
pub fn recover(queue: &mut Queue) -> Result<Vec<Recovered>> {
    let mut out = Vec::new();
    for rec in queue.pending_replacements()? {
        out.push(recover_one(queue, &rec)?);
    }
    Ok(out)
}

/// Finishes or undoes the recorded replacement of `file_id` only (`None` when it has
/// none): what a replacement that failed part-way calls while other files may be
/// being replaced on other threads.
pub fn recover_file(queue: &mut Queue, file_id: i64) -> Result<Option<Recovered>> {
    match queue.pending_replacements()?.into_iter().find(|r| r.file_id == file_id) {
        Some(rec) => recover_one(queue, &rec).map(Some),
        None => Ok(None),
    }
}

fn recover_one(queue: &mut Queue, rec: &PendingReplacement) -> Result<Recovered> {
    let staged_intact =
        Stamp::of_link(&rec.staged).is_ok_and(|s| s.size == rec.staged_size && s.ino == rec.staged_ino);
    let original_intact = source_intact(rec)
        || rec.backup.as_deref().is_some_and(|b| Stamp::of_link(b).is_ok_and(|s| s.ino == rec.source_ino));
    // Only our own result is ever removed: a name holding something else is left.
    let remove_staged = || {
        if staged_intact {
            let _ = std::fs::remove_file(&rec.staged);
        }
    };

    if result_in_place(rec) || (staged_intact && original_intact) {
        return match put_in_place(queue, rec) {
            Ok(done) => Ok(Recovered::Finished(done)),
            Err(e) => {
                undo_backup(rec);
                remove_staged();
                let why = format!("could not finish an interrupted replacement ({e}); queued again");
                queue.abandon_replacement(rec.file_id, &Outcome::Requeued { detail: why.clone() })?;
                Ok(Recovered::RolledBack { source: rec.source.clone(), why })
            }
        };
    }
    remove_staged();
    let (why, outcome) = if !staged_intact {
        let why = "the verified result disappeared before it was put in place; original untouched".to_owned();
        (why.clone(), Outcome::Failed { error: why })
    } else {
        let why = "the original changed during its replacement; queued again".to_owned();
        (why.clone(), Outcome::Requeued { detail: why })
    };
    queue.abandon_replacement(rec.file_id, &outcome)?;
    Ok(Recovered::RolledBack { source: rec.source.clone(), why })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Examined, FileOrder, Status, Summary, Verdict};
    use std::path::PathBuf;

    struct Lib {
        _dir: tempfile::TempDir,
        root: PathBuf,
        queue: Queue,
    }

    fn lib() -> Lib {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lib");
        std::fs::create_dir(&root).unwrap();
        let queue = Queue::open(&dir.path().join("q.sqlite")).unwrap();
        Lib { _dir: dir, root, queue }
    }

    /// Queues `name` with `content`, claims it, and stages `result` for it.
    fn staged(l: &mut Lib, name: &str, content: &[u8], result: &[u8]) -> (i64, PathBuf, PathBuf) {
        let source = l.root.join(name);
        std::fs::write(&source, content).unwrap();
        let st = Stamp::of(&source).unwrap();
        l.queue
            .upsert(&Examined {
                path: source.clone(),
                root: l.root.clone(),
                size: st.size,
                mtime_ns: st.mtime_ns,
                summary: Summary::default(),
                verdict: Verdict::Encode,
            })
            .unwrap();
        let job = l.queue.claim_next("t", FileOrder::Oldest, &[], &[]).unwrap().unwrap();
        let staged = names::staged_for(&names::target_for(&source));
        std::fs::write(&staged, result).unwrap();
        (job.file_id, source, staged)
    }

    fn facts() -> EncodeFacts {
        EncodeFacts { encoder: "test".into(), fps: 1.0, elapsed: 1.0, settings: None }
    }

    #[test]
    fn same_name_in_testing_mode_keeps_the_first_backup() {
        let mut l = lib();
        let (id, source, staged) = staged(&mut l, "Movie.mkv", b"original", b"result");
        let opts = Options { testing_mode: true, owner: None };
        let done = replace(
            &mut l.queue,
            id,
            &source,
            Stamp::of(&source).unwrap(),
            &Staged::open(&l.root, &staged).unwrap(),
            &facts(),
            &opts,
        )
        .unwrap();
        assert_eq!(done.path, source);
        assert_eq!(std::fs::read(&source).unwrap(), b"result");
        assert_eq!(std::fs::read(names::backup_for(&source)).unwrap(), b"original");
        assert!(!staged.exists());

        // Re-encoding the result: the backup still holds the true original.
        l.queue.requeue(Status::Done, &[]).unwrap();
        let job = l.queue.claim_next("t", FileOrder::Oldest, &[], &[]).unwrap().unwrap();
        std::fs::write(&staged, b"second").unwrap();
        replace(
            &mut l.queue,
            job.file_id,
            &source,
            Stamp::of(&source).unwrap(),
            &Staged::open(&l.root, &staged).unwrap(),
            &facts(),
            &opts,
        )
        .unwrap();
        assert_eq!(std::fs::read(&source).unwrap(), b"second");
        assert_eq!(std::fs::read(names::backup_for(&source)).unwrap(), b"original");
    }

    #[test]
    fn new_name_removes_the_original_after_the_rename() {
        let mut l = lib();
        let (id, source, staged) = staged(&mut l, "Movie.mp4", b"original", b"result");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o640)).unwrap();
        let done = replace(
            &mut l.queue,
            id,
            &source,
            Stamp::of(&source).unwrap(),
            &Staged::open(&l.root, &staged).unwrap(),
            &facts(),
            &Options::default(),
        )
        .unwrap();
        let target = l.root.join("Movie.mkv");
        assert_eq!(done.path, target);
        assert!(!source.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"result");
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
        let row = &l.queue.list(None).unwrap()[0];
        assert_eq!((row.status, row.path.clone()), (Status::Done, target));
        assert_eq!(row.original_path.as_deref(), Some(source.as_path()));
    }

    #[test]
    fn a_name_clash_is_an_error_and_overwrites_nothing() {
        let mut l = lib();
        let (id, source, staged) = staged(&mut l, "Movie.mp4", b"original", b"result");
        std::fs::write(l.root.join("Movie.mkv"), b"someone else's").unwrap();
        let e = replace(
            &mut l.queue,
            id,
            &source,
            Stamp::of(&source).unwrap(),
            &Staged::open(&l.root, &staged).unwrap(),
            &facts(),
            &Options::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::NameClash { .. }), "{e}");
        assert_eq!(std::fs::read(l.root.join("Movie.mkv")).unwrap(), b"someone else's");
        assert_eq!(std::fs::read(&source).unwrap(), b"original");
        let _ = std::fs::remove_file(&staged);
    }

    #[test]
    fn a_foreign_backup_name_or_a_changed_source_stops_the_replacement() {
        let mut l = lib();
        let (id, source, staged) = staged(&mut l, "Movie.mkv", b"original", b"result");
        let encoded = Stamp::of(&source).unwrap();
        let opts = Options { testing_mode: true, owner: None };
        std::fs::write(names::backup_for(&source), b"the user's own file").unwrap();
        let e = replace(
            &mut l.queue,
            id,
            &source,
            encoded,
            &Staged::open(&l.root, &staged).unwrap(),
            &facts(),
            &opts,
        )
        .unwrap_err();
        assert!(matches!(e, Error::NameClash { .. }), "{e}");
        assert_eq!(std::fs::read(names::backup_for(&source)).unwrap(), b"the user's own file");
        assert_eq!(std::fs::read(&source).unwrap(), b"original");

        std::fs::remove_file(names::backup_for(&source)).unwrap();
        std::fs::write(&source, b"a new download under the same name").unwrap();
        let e = replace(
            &mut l.queue,
            id,
            &source,
            encoded,
            &Staged::open(&l.root, &staged).unwrap(),
            &facts(),
            &opts,
        )
        .unwrap_err();
        assert!(matches!(e, Error::SourceChanged { .. }), "{e}");
        assert_eq!(std::fs::read(&source).unwrap(), b"a new download under the same name");
    }

    #[test]
    fn a_link_planted_at_the_staged_name_is_never_followed() {
        use std::os::unix::fs::PermissionsExt;
        let mut l = lib();
        let (id, source, staged) = staged(&mut l, "Movie.mp4", b"original", b"result");
        std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o644)).unwrap();
        let outside = l._dir.path().join("outside.conf");
        std::fs::write(&outside, b"not in the library").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
        let check_outside = || {
            assert_eq!(std::fs::read(&outside).unwrap(), b"not in the library");
            assert_eq!(std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::read(&source).unwrap(), b"original");
            assert!(!l.root.join("Movie.mkv").exists());
        };
        // Planted before the result is opened: refused at the open.
        std::fs::remove_file(&staged).unwrap();
        std::os::unix::fs::symlink(&outside, &staged).unwrap();
        assert!(Staged::open(&l.root, &staged).is_err());
        check_outside();

        // Swapped after it was opened and checked: the rename does not happen.
        std::fs::remove_file(&staged).unwrap();
        std::fs::write(&staged, b"result").unwrap();
        let held = Staged::open(&l.root, &staged).unwrap();
        std::fs::remove_file(&staged).unwrap();
        std::os::unix::fs::symlink(&outside, &staged).unwrap();
        let encoded = Stamp::of(&source).unwrap();
        let e =
            replace(&mut l.queue, id, &source, encoded, &held, &facts(), &Options::default()).unwrap_err();
        assert!(matches!(e, Error::SourceChanged { .. }), "{e}");
        check_outside();
        assert!(std::fs::symlink_metadata(&staged).unwrap().file_type().is_symlink());
    }

    #[test]
    fn runtime_recovery_touches_only_its_own_record() {
        let mut l = lib();
        let (a, source_a, staged_a) = staged(&mut l, "A.mp4", b"original a", b"result a");
        let (b, source_b, staged_b) = staged(&mut l, "B.mp4", b"original b", b"result b");
        for (id, source, staged) in [(a, &source_a, &staged_a), (b, &source_b, &staged_b)] {
            let s = Stamp::of(source).unwrap();
            let r = Stamp::of(staged).unwrap();
            let target = names::target_for(source);
            l.queue
                .begin_replacement(&PendingReplacement {
                    file_id: id,
                    source: source.clone(),
                    source_size: s.size,
                    source_mtime_ns: s.mtime_ns,
                    source_ino: s.ino,
                    staged: staged.clone(),
                    staged_size: r.size,
                    staged_ino: r.ino,
                    target: target.clone(),
                    backup: None,
                    done: Done {
                        path: target,
                        size: r.size,
                        mtime_ns: r.mtime_ns,
                        original_path: source.clone(),
                        original_size: s.size,
                        encoder: "t".into(),
                        fps: 1.0,
                        elapsed: 1.0,
                        backup: None,
                        settings: None,
                    },
                })
                .unwrap();
        }
        let rec = recover_file(&mut l.queue, b).unwrap();
        assert!(matches!(rec, Some(Recovered::Finished(_))), "{rec:?}");
        assert_eq!(std::fs::read(l.root.join("B.mkv")).unwrap(), b"result b");
        // A's replacement (another thread's, say) is left exactly as it was.
        assert_eq!(std::fs::read(&source_a).unwrap(), b"original a");
        assert_eq!(std::fs::read(&staged_a).unwrap(), b"result a");
        let left: Vec<i64> = l.queue.pending_replacements().unwrap().iter().map(|r| r.file_id).collect();
        assert_eq!(left, vec![a]);
        assert!(recover_file(&mut l.queue, b).unwrap().is_none());
    }

    #[test]
    fn recovery_finishes_what_a_crash_interrupted() {
        // Simulates a crash after each step by replaying the steps by hand.
        for step in 0..4 {
            let mut l = lib();
            let (id, source, staged) = staged(&mut l, "Movie.mp4", b"original", b"result");
            let target = l.root.join("Movie.mkv");
            let backup = names::backup_for(&source);
            let s = Stamp::of(&source).unwrap();
            let r = Stamp::of(&staged).unwrap();
            let done = Done {
                path: target.clone(),
                size: r.size,
                mtime_ns: r.mtime_ns,
                original_path: source.clone(),
                original_size: s.size,
                encoder: "t".into(),
                fps: 1.0,
                elapsed: 1.0,
                backup: Some(backup.clone()),
                settings: None,
            };
            l.queue
                .begin_replacement(&PendingReplacement {
                    file_id: id,
                    source: source.clone(),
                    source_size: s.size,
                    source_mtime_ns: s.mtime_ns,
                    source_ino: s.ino,
                    staged: staged.clone(),
                    staged_size: r.size,
                    staged_ino: r.ino,
                    target: target.clone(),
                    backup: Some(backup.clone()),
                    done,
                })
                .unwrap();
            if step >= 1 {
                std::fs::hard_link(&source, &backup).unwrap();
            }
            if step >= 2 {
                std::fs::rename(&staged, &target).unwrap();
            }
            if step >= 3 {
                std::fs::remove_file(&source).unwrap();
            }
            let rec = recover(&mut l.queue).unwrap();
            assert!(matches!(rec.as_slice(), [Recovered::Finished(_)]), "step {step}: {rec:?}");
            assert_eq!(std::fs::read(&target).unwrap(), b"result", "step {step}");
            assert_eq!(std::fs::read(&backup).unwrap(), b"original", "step {step}");
            assert!(!source.exists() && !staged.exists(), "step {step}");
            assert!(l.queue.pending_replacements().unwrap().is_empty());
            assert_eq!(l.queue.list(Some(Status::Done)).unwrap().len(), 1);
        }
    }

    #[test]
    fn recovery_rolls_back_when_the_original_changed() {
        let mut l = lib();
        let (id, source, staged) = staged(&mut l, "Movie.mkv", b"original", b"result");
        let s = Stamp::of(&source).unwrap();
        let r = Stamp::of(&staged).unwrap();
        let done = Done {
            path: source.clone(),
            size: r.size,
            mtime_ns: r.mtime_ns,
            original_path: source.clone(),
            original_size: s.size,
            encoder: "t".into(),
            fps: 1.0,
            elapsed: 1.0,
            backup: None,
            settings: None,
        };
        l.queue
            .begin_replacement(&PendingReplacement {
                file_id: id,
                source: source.clone(),
                source_size: s.size,
                source_mtime_ns: s.mtime_ns,
                source_ino: s.ino,
                staged: staged.clone(),
                staged_size: r.size,
                staged_ino: r.ino,
                target: source.clone(),
                backup: None,
                done,
            })
            .unwrap();
        std::fs::write(&source, b"the user's new version").unwrap();
        let rec = recover(&mut l.queue).unwrap();
        assert!(matches!(rec.as_slice(), [Recovered::RolledBack { .. }]), "{rec:?}");
        assert_eq!(std::fs::read(&source).unwrap(), b"the user's new version");
        assert!(!staged.exists());
        assert_eq!(l.queue.list(Some(Status::Pending)).unwrap().len(), 1);
    }
}
