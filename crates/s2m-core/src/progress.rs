//! Progress reporting without printing: library code calls a [`Progress`] observer and the
//! application decides how to show it (the `sketch2medi` CLI draws indicatif bars; tests and
//! library callers pass [`NoProgress`]).
//!
//! A long call reports one or more stages in sequence: [`Progress::start`] opens a stage with
//! its name and number of units, [`Progress::inc`] counts finished units, [`Progress::finish`]
//! closes it. Every method has a no-op default, so an observer implements only what it shows.
//! Observers are shared with worker threads (rayon), hence `Send + Sync`.

/// An observer of a long-running library call.
pub trait Progress: Send + Sync {
    /// A new stage named `stage` with `total` units of work begins.
    fn start(&self, stage: &str, total: u64) {
        let _ = (stage, total);
    }

    /// `n` more units of the current stage are done.
    fn inc(&self, n: u64) {
        let _ = n;
    }

    /// The current stage is done.
    fn finish(&self) {}
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoProgress;

impl Progress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Progress for Log {
        fn start(&self, stage: &str, total: u64) {
            self.0
                .lock()
                .unwrap()
                .push(format!("start {stage} {total}"));
        }
        fn inc(&self, n: u64) {
            self.0.lock().unwrap().push(format!("inc {n}"));
        }
    }

    fn work(p: &dyn Progress) {
        p.start("stage", 2);
        p.inc(1);
        p.inc(1);
        p.finish();
    }

    #[test]
    fn observers_see_the_calls_they_implement_and_defaults_do_nothing() {
        work(&NoProgress);
        let log = Log::default();
        work(&log);
        assert_eq!(*log.0.lock().unwrap(), ["start stage 2", "inc 1", "inc 1"]);
    }
}
