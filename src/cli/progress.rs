//! The CLI's progress bars (indicatif, drawn on stderr and hidden when it is not a terminal):
//! the bar constructor, the templates the subcommands share, and [`StageBars`], which draws the
//! stages that library calls report through [`s2m_core::progress::Progress`].

use std::sync::Mutex;

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
pub fn progress_bar(steps: u64, start: u64) -> ProgressBar {
    let b = bar(steps, TRAINING);
    b.set_position(start);
    b
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
