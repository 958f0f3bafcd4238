//! The CLI's progress bars (indicatif, drawn on stderr and hidden when it is not a terminal,
//! where the training commands print progress lines instead: [`TrainingBar`]): the bar
//! constructor, the templates the subcommands share, and [`StageBars`], which draws the
//! stages that library calls report through [`s2m_core::progress::Progress`].

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use s2m_core::progress::Progress;

/// indicatif's default bar.
pub const PLAIN: &str = "{wide_bar} {pos}/{len}";

/// Training commands: steps with the latest losses as the message.
pub const TRAINING: &str = "{elapsed_precise} {wide_bar} {pos}/{len} eta {eta} {msg}";

/// A bar of `len` units drawn with `template` (the default bar if the template is invalid).
pub fn bar(len: u64, template: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// A training bar over `steps` steps, already at `start` (a resumed run).
pub fn progress_bar(steps: u64, start: u64) -> TrainingBar {
    TrainingBar::new(steps, start, std::io::stderr().is_terminal())
}

/// Seconds between two progress lines when stderr is not a terminal.
pub const LINE_EVERY_S: u64 = 30;

/// The training commands' progress: a bar on a terminal; elsewhere (a log file, CI, `nohup`)
/// one line on stderr when the run starts, then at most one per [`LINE_EVERY_S`] seconds, and
/// at the last step: `step POS/LEN (ELAPSED): MESSAGE`.
pub struct TrainingBar {
    bar: ProgressBar,
    /// Print lines instead of drawing.
    lines: bool,
    started: Instant,
    last_line: Mutex<Option<Instant>>,
}

impl TrainingBar {
    /// A bar of `steps` at `start`; `terminal`: draw it (else print lines).
    pub fn new(steps: u64, start: u64, terminal: bool) -> Self {
        let b = bar(steps, TRAINING);
        b.set_position(start);
        Self {
            bar: b,
            lines: !terminal,
            started: Instant::now(),
            last_line: Mutex::new(None),
        }
    }

    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    /// The latest losses; on a non-terminal also the line, when one is due.
    pub fn set_message(&self, msg: String) {
        if let Some(line) = self.due_line(&msg) {
            eprintln!("{line}");
        }
        self.bar.set_message(msg);
    }

    /// The line to print for `msg` now, if one is due (never on a terminal).
    pub fn due_line(&self, msg: &str) -> Option<String> {
        if !self.lines {
            return None;
        }
        let now = Instant::now();
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let mut last = self.last_line.lock().ok()?;
        let due = match *last {
            None => true,
            Some(t) => now.duration_since(t).as_secs() >= LINE_EVERY_S || pos >= len,
        };
        if !due {
            return None;
        }
        *last = Some(now);
        let elapsed = now.duration_since(self.started).as_secs();
        Some(format!(
            "step {pos}/{len} ({:02}:{:02}:{:02}): {msg}",
            elapsed / 3600,
            elapsed / 60 % 60,
            elapsed % 60
        ))
    }

    pub fn finish(&self) {
        self.bar.finish();
    }
}

/// One bar per stage of a library call: [`Progress::start`] draws a new bar with the stage name
/// as its message, [`Progress::finish`] clears it.
pub struct StageBars {
    template: &'static str,
    current: Mutex<Option<ProgressBar>>,
}

impl StageBars {
    /// Stages drawn with `template` (`{msg}` shows the stage name).
    pub fn new(template: &'static str) -> Self {
        Self {
            template,
            current: Mutex::new(None),
        }
    }

    fn current(&self) -> Option<ProgressBar> {
        self.current.lock().ok().and_then(|c| c.clone())
    }
}

impl Progress for StageBars {
    fn start(&self, stage: &str, total: u64) {
        let b = bar(total, self.template);
        b.set_message(stage.to_string());
        if let Ok(mut c) = self.current.lock()
            && let Some(old) = c.replace(b)
        {
            old.finish_and_clear();
        }
    }

    fn inc(&self, n: u64) {
        if let Some(b) = self.current() {
            b.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.current.lock().ok().and_then(|mut c| c.take()) {
            b.finish_and_clear();
        }
    }
}

/// Prints what opening a run folder skipped or removed (one line each, on stderr).
pub fn print_resume_notes(report: &s2m_train::resume::ResumeReport) {
    for note in report.notes() {
        eprintln!("{note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_only_off_a_terminal_first_then_throttled_and_at_the_end() {
        let term = TrainingBar::new(10, 0, true);
        assert_eq!(term.due_line("L 1.0"), None);

        let log = TrainingBar::new(10, 3, false);
        log.set_position(4);
        let first = log.due_line("L 1.0").expect("the first line is printed");
        assert!(first.starts_with("step 4/10 (00:00:00): L 1.0"), "{first}");
        log.set_position(5);
        assert_eq!(log.due_line("L 0.9"), None, "within 30 s nothing more");
        log.set_position(10);
        let last = log.due_line("L 0.5").expect("the last step is printed");
        assert!(last.starts_with("step 10/10"), "{last}");
    }
}
