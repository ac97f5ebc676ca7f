//! The log both programs write to standard error: one event, one line. A file name
//! holding a newline (any byte but `/` and NUL may be in one) cannot start a line of
//! its own and so pass for another event: control characters inside an event are
//! written escaped (`\n`, `\r`, `\x1b`…; the escape character is kept only for the
//! colours of a terminal).

use std::io::{IsTerminal, Write};

/// Sets up `tracing` for the process: `RUST_LOG` (default `info`), standard error,
/// colours on a terminal, one line per event.
pub fn init() {
    let terminal = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(move || OneLine { out: std::io::stderr(), colours: terminal })
        .with_ansi(terminal)
        .init();
}

/// Writes each formatted event (one `write` of the whole line, as `tracing-subscriber`
/// does) with its inner line breaks escaped.
pub struct OneLine<W: Write> {
    pub out: W,
    /// Keep the escape character (the formatter's colours on a terminal).
    pub colours: bool,
}

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.push(b),
                0x1b if self.colours => out.push(b),
                0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                _ => out.push(b),
            }
        }
        if body.len() < buf.len() {
            out.push(b'\n');
        }
        self.out.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_a_newline_stays_on_its_line() {
        let mut out = OneLine { out: Vec::new(), colours: false };
        out.write_all(b"INFO done: /lib/a\nERROR forged.mkv\n").unwrap();
        out.write_all(b"INFO next \x1b[2J\x07\n").unwrap();
        assert_eq!(out.out, b"INFO done: /lib/a\\nERROR forged.mkv\nINFO next \\x1b[2J\\x07\n");
    }
}
