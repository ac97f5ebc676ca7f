//! Progress on a terminal as `indicatif` bars, otherwise as `tracing` log lines.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use av1_library::job::Phase;
use av1_library::queue::{Job, Outcome};
use av1core::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How often progress is logged when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// The current file: frames, percent, fps, ETA, projected size.
pub struct FileBar {
    bar: Option<ProgressBar>,
    last_log: Instant,
}

impl FileBar {
    pub fn new(total_frames: u64, multi: Option<&MultiProgress>) -> FileBar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total_frames.max(1));
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} frames  {msg}",
                )
                .expect("static template"),
            );
            match multi {
                Some(m) => m.add(b),
                None => b,
            }
        });
        FileBar { bar, last_log: Instant::now() }
    }

    pub fn update(&mut self, p: &Progress) {
        let eta = p.eta.map(|d| format!("ETA {}", fmt_duration(d))).unwrap_or_default();
        let size = p.projected_size.map(|s| format!("~{}", bytes(s))).unwrap_or_default();
        let msg = format!("{:.1}% {:.2} fps {eta} {size}", p.percent, p.fps);
        match &self.bar {
            Some(b) => {
                b.set_length(p.total_frames.max(1));
                b.set_position(p.frames);
                b.set_message(msg);
            }
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                tracing::info!(frames = p.frames, total = p.total_frames, "{msg}");
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The whole run (files, bytes, saved so far, ETA) above the current file's bar.
pub struct LibraryBars {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    file: Option<FileBar>,
    files_total: usize,
    files_ended: usize,
    bytes_ended: u64,
    saved: i64,
    current_size: u64,
}

impl LibraryBars {
    pub fn new(files_total: usize, bytes_total: u64) -> LibraryBars {
        let multi = std::io::stderr().is_terminal().then(MultiProgress::new);
        let overall = multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(bytes_total.max(1)));
            b.set_style(
                ProgressStyle::with_template(
                    "library {wide_bar:.cyan} {binary_bytes}/{binary_total_bytes} ETA {eta}  {msg}",
                )
                .expect("static template"),
            );
            b
        });
        let bars = LibraryBars {
            multi,
            overall,
            file: None,
            files_total,
            files_ended: 0,
            bytes_ended: 0,
            saved: 0,
            current_size: 0,
        };
        bars.refresh();
        bars
    }

    fn refresh(&self) {
        if let Some(o) = &self.overall {
            o.set_message(format!(
                "{}/{} files, saved {}",
                self.files_ended,
                self.files_total,
                signed_bytes(self.saved)
            ));
        }
    }

    /// A line above the bars (or a log line).
    pub fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => tracing::info!("{line}"),
        }
    }

    pub fn start(&mut self, job: &Job) {
        self.current_size = job.size;
        self.println(&format!(
            "[{}/{}] {} ({})",
            self.files_ended + 1,
            self.files_total.max(self.files_ended + 1),
            job.path.display(),
            bytes(job.size)
        ));
    }

    pub fn phase(&mut self, phase: Phase<'_>) {
        match phase {
            Phase::Probing | Phase::Replacing => {}
            Phase::Encoding(p) => {
                let file = self.file.get_or_insert_with(|| FileBar::new(p.total_frames, self.multi.as_ref()));
                file.update(p);
                if let Some(o) = &self.overall {
                    o.set_position(self.bytes_ended + (self.current_size as f64 * p.percent / 100.0) as u64);
                }
            }
        }
    }

    pub fn end(&mut self, job: &Job, outcome: &Outcome) {
        if let Some(f) = self.file.take() {
            f.finish();
            if let Some(m) = &self.multi {
                if let Some(b) = &f.bar {
                    m.remove(b);
                }
            }
        }
        let requeued = matches!(outcome, Outcome::Requeued { .. });
        if !requeued {
            self.files_ended += 1;
            self.bytes_ended += job.size;
        } else {
            self.files_total = self.files_total.saturating_sub(1);
        }
        if let Outcome::Done(d) = outcome {
            self.saved += d.original_size as i64 - d.size as i64;
        }
        if let Some(o) = &self.overall {
            o.set_position(self.bytes_ended);
            if requeued {
                o.set_length(o.length().unwrap_or(0).saturating_sub(job.size).max(1));
            }
        }
        self.refresh();
        self.println(&format!("    {}", describe(outcome)));
    }

    pub fn finish(&self) {
        if let Some(o) = &self.overall {
            o.finish_and_clear();
        }
    }
}

/// One line for a job's outcome.
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done(d) => {
            let saved = 100.0 * (1.0 - d.size as f64 / d.original_size.max(1) as f64);
            format!(
                "done: {} -> {} ({saved:.1}% smaller) at {:.1} fps -> {}{}",
                bytes(d.original_size),
                bytes(d.size),
                d.fps,
                d.path.display(),
                d.backup.as_ref().map(|b| format!(", original kept as {}", b.display())).unwrap_or_default()
            )
        }
        Outcome::Skipped { reason, detail } => format!("skipped ({}): {detail}", reason.as_str()),
        Outcome::Failed { error } => format!("failed: {error}"),
        Outcome::Requeued { detail } => format!("left pending: {detail}"),
        Outcome::Cancelled { detail } => format!("cancelled: {detail}"),
    }
}

pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

fn signed_bytes(n: i64) -> String {
    if n < 0 {
        format!("-{}", bytes(n.unsigned_abs()))
    } else {
        bytes(n as u64)
    }
}
