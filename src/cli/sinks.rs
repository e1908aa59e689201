//! The two ways `tune` and `resume` report a job: JSON lines (`--events jsonl`), or a
//! progress bar over the search with notes above it.

use crate::events::{to_line, Event};
use crate::tuning::job::JobSink;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::ops::ControlFlow;

/// `--events jsonl`: every event as one line on stdout; notes on stderr.
pub struct JsonLines<'a> {
    /// Where the lines go.
    pub out: &'a mut dyn Write,
    /// Why writing failed (the job was stopped then).
    pub failed: Option<std::io::Error>,
}

impl JobSink for JsonLines<'_> {
    fn event(&mut self, e: &Event) -> ControlFlow<()> {
        let written = writeln!(self.out, "{}", to_line(e)).and_then(|()| self.out.flush());
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(err) => {
                self.failed.get_or_insert(err);
                ControlFlow::Break(())
            }
        }
    }

    fn note(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

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
