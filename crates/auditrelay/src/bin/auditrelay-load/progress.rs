//! The progress line of a long phase (sending, waiting for deliveries, a replay): done / total,
//! the rate since the phase began and the time left, on stderr, which the summary also uses;
//! stdout stays for the JSON.
//!
//! On a terminal it is one line redrawn with `\r` four times a second and erased when the phase
//! ends, so what follows starts on a clean line. When stderr is not a terminal (a long run
//! logged with `2> run.log`), it is a plain line every ten seconds instead: the log shows how
//! far a run got without thousands of redraws.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// How often a terminal's line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);
/// How often a line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Shows a phase's progress until dropped (or [`Progress::finish`]ed).
pub struct Progress {
    task: JoinHandle<()>,
    /// Set, under stderr's lock, when the phase ends: a redraw already under way on another
    /// thread then cannot land after the line was erased.
    stopped: Arc<AtomicBool>,
    terminal: bool,
}

impl Progress {
    /// Shows how far `what` ("events delivered") has come towards `total`, reading `done` at
    /// each redraw.
    pub fn start(what: &'static str, total: u64, done: impl Fn() -> u64 + Send + 'static) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal { REDRAW } else { LOG_EVERY };
        let stopped = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stopped = Arc::clone(&stopped);
            async move {
                let started = Instant::now();
                let first = done();
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    ticks.tick().await;
                    let text = line(what, first, done(), total, started.elapsed());
                    let mut stderr = std::io::stderr().lock();
                    if stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    let _ = if terminal {
                        write!(stderr, "\r{text}\x1b[K")
                    } else {
                        writeln!(stderr, "{text}")
                    };
                    let _ = stderr.flush();
                }
            }
        });
        Self {
            task,
            stopped,
            terminal,
        }
    }

    /// Stops showing the progress and erases its line.
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        let mut stderr = std::io::stderr().lock();
        self.stopped.store(true, Ordering::Relaxed);
        self.task.abort();
        if self.terminal {
            let _ = write!(stderr, "\r\x1b[K");
            let _ = stderr.flush();
        }
    }
}

/// `  123,456 / 1,000,000 events delivered (12%), 45,678/s, 0:19 left`: the rate counts from
/// `first`, what was done when the phase began.
fn line(what: &str, first: u64, done: u64, total: u64, elapsed: Duration) -> String {
    let rate = done.saturating_sub(first) as f64 / elapsed.as_secs_f64().max(1e-3);
    let left = total.saturating_sub(done);
    let eta = if left == 0 {
        "0:00".to_owned()
    } else if rate > 0.0 {
        let secs = (left as f64 / rate).round() as u64;
        format!("{}:{:02}", secs / 60, secs % 60)
    } else {
        "?".to_owned()
    };
    format!(
        "  {:>11} / {} {what} ({:.0}%), {}/s, {eta} left",
        auditrelay::human::rounded(done as f64),
        auditrelay::human::rounded(total as f64),
        100.0 * done as f64 / total.max(1) as f64,
        auditrelay::human::rounded(rate)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_done_total_rate_and_time_left() {
        let text = line(
            "events delivered",
            100_000,
            300_000,
            1_000_000,
            Duration::from_secs(10),
        );
        assert_eq!(
            text,
            "      300,000 / 1,000,000 events delivered (30%), 20,000/s, 0:35 left"
        );
        let stalled = line("events sent", 5, 5, 10, Duration::from_secs(1));
        assert!(stalled.ends_with("0/s, ? left"), "{stalled}");
        let done = line("events sent", 0, 10, 10, Duration::from_secs(1));
        assert!(done.ends_with("0:00 left"), "{done}");
    }
}
