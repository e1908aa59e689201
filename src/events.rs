//! The `--events jsonl` stream of `tune` and `resume`: one JSON object per line, documented in
//! `docs/events.md`. The schema is stable: fields are only ever added, and `v` changes if a
//! field's meaning does.

use crate::dimension::DimScores;
use serde::Serialize;

/// Version of the event schema.
pub const EVENTS_VERSION: u32 = 1;

/// One event of a tuning run.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        /// `naive`, `icl` or `tuned`.
        method: String,
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
        #[serde(skip_serializing_if = "Option::is_none")]
        gap_closed: Option<DimScores>,
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
        /// Final status.
        status: String,
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
        /// Stable code: model_not_found, not_gguf, bad_model, out_of_memory, region_unknown,
        /// database, cancelled, engine, invalid_input, internal.
        code: String,
        /// Human-readable message.
        message: String,
    },
}

/// Serializes an event as one JSON line with the schema version.
pub fn to_line(e: &Event) -> String {
    let mut v = serde_json::to_value(e).expect("events serialize");
    if let Some(o) = v.as_object_mut() {
        o.insert("v".into(), EVENTS_VERSION.into());
    }
    v.to_string()
}
