//! The default way `tune` and `resume` report a job: a progress bar over the search with
//! notes above it (`--events jsonl` is `tuning::job::JsonLines`).

use crate::events::Event;
use crate::tuning::job::JobSink;
use indicatif::{ProgressBar, ProgressStyle};
use std::ops::ControlFlow;

/// The default output: a progress bar over the search's evaluations; notes above it.
#[derive(Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl JobSink for Progress {
    fn event(&mut self, e: &Event) -> ControlFlow<()> {
        match e {
            Event::Started { max_evals, .. } => {
                let bar = ProgressBar::new(max_evals.unwrap_or(0) as u64);
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} gen {msg} [{bar:30}] {pos}/{len} evals, ETA {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                self.bar = Some(bar);
            }
            Event::Generation {
                generation,
                evals,
                best_loss,
                mean_loss,
                ..
            } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*evals as u64);
                    bar.set_message(format!(
                        "{generation} best {best_loss:.1} mean {mean_loss:.1}"
                    ));
                }
            }
            Event::Finished { .. } | Event::Error { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn note(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}
