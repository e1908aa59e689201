//! Options shared by `tune` and `reach`: the model, the region and the soft-prompt space a
//! search runs in, and the configuration they make.

use super::engine_args::EngineArgs;
use crate::soft_prompt::{AnswerAnchor, Placement};
use crate::tuning::request::{defaults, TuneRequest};

/// The model, region and search space.
#[derive(Debug, clap::Args)]
pub struct SpaceArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Region (code or name) to tune toward (`reach`: whose persona and anchor the soft
    /// prompt starts from).
    #[arg(long, value_name = "CODE")]
    pub region: String,
    /// Population size of Differential Evolution.
    #[arg(long, default_value_t = defaults::POPULATION)]
    pub population: usize,
    /// Search dimensions d of the projection z -> A z.
    #[arg(long, default_value_t = defaults::DIMS)]
    pub dims: usize,
    /// Soft-prompt rows beyond the anchor text's own rows (the persona sentence for
    /// `--placement prefix`, the answer reminder for `answer`).
    #[arg(long, default_value_t = defaults::EXTRA_ROWS)]
    pub extra_rows: usize,
    /// Scale of the projection A: each entry has standard deviation a-scale x the embedding
    /// table's std / sqrt(dims). Larger values let the bounded search move further.
    #[arg(long, default_value_t = defaults::A_SCALE)]
    pub a_scale: f64,
    /// Where the soft prompt goes: `answer` (after each question, before the answer; the
    /// question prefixes are decoded once and cached, so candidates are cheap) or `prefix`
    /// (in place of the persona sentence; the method of Masoud et al. 2025).
    #[arg(long, value_enum, default_value_t = defaults::PLACEMENT)]
    pub placement: Placement,
    /// What the answer-side rows start from: `opening` (the answer opening "Answer:" itself,
    /// so that z = 0 is exactly the naive prompt) or `persona` ("Speaking as a person from
    /// China." before " Answer: ").
    #[arg(long, value_enum, default_value_t = defaults::ANCHOR)]
    pub anchor: AnswerAnchor,
    /// Training survey: a shipped survey's id or a survey file. The default `vsm13` is
    /// wording A; `vsm13-ac` asks wordings A and C together (48 items, twice the time per
    /// candidate; docs/tuning.md measures what it does to the held-out loss).
    #[arg(long, value_name = "ID|FILE", default_value = defaults::SURVEY)]
    pub survey: String,
    /// The independently worded survey every method is also reported on (never searched)
    /// [default: `vsm13-alt` for a survey that scores Hofstede's dimensions; another
    /// instrument needs its own second wording].
    #[arg(long, value_name = "ID|FILE")]
    pub heldout_survey: Option<String>,
    /// Respondents in the panel.
    #[arg(long, default_value_t = defaults::PANEL)]
    pub panel: usize,
    /// Ask every item in both option orders (the answers of the two orders are averaged, so
    /// rows that only push the answer digit one way cancel out).
    #[arg(long)]
    pub counterbalance: bool,
    /// Seed of every random choice (projection and optimizer); stored with the run.
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,
    /// Calibration regions (comma-separated codes) [default: a 12-region set spanning the
    /// cultural clusters, those of them in the targets table; for a table with fewer than 3 of
    /// them, its first 12 regions with all six dimensions].
    #[arg(long, value_delimiter = ',', value_name = "CODES")]
    pub calibration_regions: Option<Vec<String>>,
}

impl SpaceArgs {
    /// The request these options state (the search's budget, strategy and patience are the
    /// command's own).
    pub fn request(&self) -> TuneRequest {
        TuneRequest {
            region: Some(self.region.clone()),
            survey: Some(self.survey.clone()),
            heldout_survey: self.heldout_survey.clone(),
            population: Some(self.population),
            dims: Some(self.dims),
            extra_rows: Some(self.extra_rows),
            a_scale: Some(self.a_scale),
            placement: Some(self.placement),
            anchor: Some(self.anchor),
            panel: Some(self.panel),
            counterbalance: Some(self.counterbalance),
            seed: Some(self.seed),
            calibration_regions: self.calibration_regions.clone(),
            ..TuneRequest::default()
        }
    }
}
