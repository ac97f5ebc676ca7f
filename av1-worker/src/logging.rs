//! The log both programs write to standard error: one event, one line. A file name
//! holding a newline (any byte but `/` and NUL may be in one) cannot start a line of
//! its own and so pass for another event: line breaks inside an event are written as
//! `\n` and `\r`.

use std::io::{IsTerminal, Write};

/// Sets up `tracing` for the process: `RUST_LOG` (default `info`), standard error,
/// colours on a terminal, one line per event.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(|| OneLine(std::io::stderr()))
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Writes each formatted event (one `write` of the whole line, as `tracing-subscriber`
/// does) with its inner line breaks escaped.
pub struct OneLine<W: Write>(pub W);

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.push(b),
            }
        }
        if body.len() < buf.len() {
            out.push(b'\n');
        }
        self.0.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_a_newline_stays_on_its_line() {
        let mut out = OneLine(Vec::new());
        out.write_all(b"INFO done: /lib/a\nERROR forged.mkv\n").unwrap();
        out.write_all(b"INFO next\n").unwrap();
        assert_eq!(out.0, b"INFO done: /lib/a\\nERROR forged.mkv\nINFO next\n");
    }
}
