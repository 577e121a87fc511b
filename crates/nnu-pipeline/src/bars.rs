//! The progress of the tools that run cases one after the other (`nnu-predict`, `nnu-preprocess`): one
//! terminal progress bar per case, shown once its work runs (a case that is already done leaves no empty
//! bar), or a line every 30 s without a terminal (Slurm and Kubernetes logs). Cargo feature `progress`
//! (indicatif).

use crate::cases::Case;
use crate::cli::LogProgress;
use crate::run::CaseProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The [`CaseProgress`] of a tool: the current case's bar and the log lines.
pub struct CaseBars {
    style: ProgressStyle,
    bar: Option<(String, ProgressBar)>,
    log: LogProgress,
}

impl CaseBars {
    /// Bars drawn with the indicatif `template`.
    pub fn new(template: &str) -> Self {
        CaseBars {
            style: ProgressStyle::with_template(template)
                .expect("static template")
                .progress_chars("=> "),
            bar: None,
            log: LogProgress::new(std::time::Duration::from_secs(30)),
        }
    }
}

impl CaseProgress for CaseBars {
    fn tiles(&mut self, case: &Case, done: usize, total: usize) {
        let bar = match &self.bar {
            Some((name, bar)) if *name == case.name => bar,
            _ => {
                let bar = ProgressBar::hidden()
                    .with_style(self.style.clone())
                    .with_prefix(case.name.clone());
                &self.bar.insert((case.name.clone(), bar)).1
            }
        };
        if bar.is_hidden() && !self.log.enabled() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        self.log.update(&case.name, done, total);
    }

    fn end(&mut self, _: &Case, ok: bool) {
        match self.bar.take() {
            Some((_, bar)) if ok => bar.finish_and_clear(),
            Some((_, bar)) => bar.abandon(),
            None => {}
        }
    }
}
