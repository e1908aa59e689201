//! culturetune's defaults for a tuning run, chosen by the sweep in docs/tuning.md. Every
//! other place (the command line's help, the app's Tune screen,
//! [`crate::tuning::TuneConfig::new`]) takes them from here.

use crate::optim::Strategy;
use crate::soft_prompt::{AnswerAnchor, Placement};

/// Candidates evaluated by `tune`.
pub const BUDGET: usize = 288;
/// Candidates per DE generation.
pub const POPULATION: usize = 12;
/// Search dimensions d.
pub const DIMS: usize = 100;
/// Soft-prompt rows beyond the anchor text's own.
pub const EXTRA_ROWS: usize = 0;
/// Scale of the projection A.
pub const A_SCALE: f64 = 1.0;
/// Respondents in the panel.
pub const PANEL: usize = 1;
/// Seed of the projection and the optimizer.
pub const SEED: u64 = 2013;
/// Where the rows go.
pub const PLACEMENT: Placement = Placement::Answer;
/// What the answer-side rows start from.
pub const ANCHOR: AnswerAnchor = AnswerAnchor::Opening;
/// The optimizer.
pub const STRATEGY: Strategy = Strategy::Shade;
/// The training survey.
pub const SURVEY: &str = crate::survey::TRAINING_SURVEY_ID;
/// Candidates evaluated by each of `reach`'s searches.
pub const REACH_BUDGET: usize = 36;
/// Largest budget: a million candidates is days of work for the default model.
pub const MAX_BUDGET: usize = 1_000_000;

/// Regions whose naive answers calibrate the constants by default: all six dimensions
/// published, spread over the world's cultural clusters (Anglo, Germanic, Nordic, Eastern
/// European, East Asian, South Asian, Latin American, Arab, African).
pub const CALIBRATION_REGIONS: [&str; 12] = [
    "USA", "GBR", "GER", "SWE", "RUS", "JPN", "CHI", "IND", "BRA", "MEX", "ARA", "AFW",
];
