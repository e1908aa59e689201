//! The `--events jsonl` stream of `tune` and `resume`: one JSON object per line, documented in
//! `docs/events.md`. The schema is stable: fields are only ever added, and `v` changes if a
//! field's meaning does.

use crate::dimension::DimScores;
use crate::error_code::ErrorCode;
use crate::labels::{MethodLabel, RunStatus};
use serde::{Deserialize, Serialize};

/// Version of the event schema.
pub const EVENTS_VERSION: u32 = 1;

/// One event of a tuning run.
// A few events carry index maps (a fixed-size `DimScores` of half a kilobyte); events are sent
// a few times per generation, so their size does not matter and boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run exists and work begins (also on resume).
    Started {
        /// Run id.
        run: i64,
        /// Region code.
        region: String,
        /// Training survey.
        survey: String,
        /// Held-out survey.
        heldout_survey: String,
        /// Evaluation budget.
        max_evals: Option<usize>,
        /// Whether this continues an earlier run.
        resumed: bool,
    },
    /// Progress of a preparatory step (calibration).
    Progress {
        /// Run id (None before the run exists).
        run: Option<i64>,
        /// What is being done.
        stage: String,
        /// Units done.
        done: usize,
        /// Units in all.
        total: usize,
    },
    /// A method was evaluated on a survey.
    Evaluation {
        /// Run id.
        run: i64,
        /// Which prompt was measured.
        method: MethodLabel,
        /// Survey id.
        survey: String,
        /// The indices.
        indices: DimScores,
        /// L1 loss.
        loss: f64,
        /// Mean loss per dimension used.
        loss_mean: f64,
        /// Dimensions used.
        dims_used: usize,
        /// Mean digit mass.
        digit_mass: f64,
        /// Tuned only: per dimension, the share of the naive prompt's distance to the target
        /// that this method closed on the same survey (see `scoring::gap_closed`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gap_closed: Option<DimScores>,
        /// Population runs with the items objective: the fit of each item's answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        items: Option<crate::item_fit::ItemFit>,
    },
    /// A generation of the search finished (and was checkpointed).
    Generation {
        /// Run id.
        run: i64,
        /// Generation number (0 = initial population).
        generation: usize,
        /// Evaluations spent.
        evals: usize,
        /// Budget, if any.
        max_evals: Option<usize>,
        /// Best loss so far.
        best_loss: f64,
        /// Mean loss of the population.
        mean_loss: f64,
        /// Indices of the best candidate.
        best_scores: DimScores,
        /// Seconds of search so far (across resumes).
        elapsed_s: f64,
        /// Estimated seconds left (None without a budget).
        eta_s: Option<f64>,
    },
    /// The run stopped: `done`, `cancelled` or `failed`.
    Finished {
        /// Run id.
        run: i64,
        /// Final status (`done` or `cancelled`).
        status: RunStatus,
        /// Best training loss found.
        best_loss: Option<f64>,
        /// Evaluations spent.
        evals: usize,
        /// Seconds of search (across resumes).
        elapsed_s: f64,
    },
    /// Something failed; `code` is stable, `message` is for people.
    Error {
        /// Run id, when one exists.
        run: Option<i64>,
        /// Stable code.
        code: ErrorCode,
        /// Human-readable message.
        message: String,
    },
}

/// Reads one JSON line of the stream (the `v` field is ignored).
pub fn from_line(line: &str) -> Result<Event, serde_json::Error> {
    serde_json::from_str(line)
}

/// Serializes an event as one JSON line with the schema version.
pub fn to_line(e: &Event) -> String {
    let mut v = serde_json::to_value(e).expect("events serialize");
    if let Some(o) = v.as_object_mut() {
        o.insert("v".into(), EVENTS_VERSION.into());
    }
    v.to_string()
}
