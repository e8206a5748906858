//! The progress line on stderr: redrawn in place once a second on a terminal, a plain line
//! every five seconds otherwise (CI logs), nothing with `--quiet`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A progress line.
pub struct Line {
    quiet: bool,
    tty: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl Line {
    /// A line, silent when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Line {
            quiet,
            tty: std::io::stderr().is_terminal(),
            last: None,
            drawn: false,
        }
    }

    /// Shows `text` if it is time to.
    pub fn show(&mut self, text: &str) {
        if self.quiet {
            return;
        }
        let every = if self.tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{text}");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    /// Ends the line so that what follows starts on a fresh one.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}
