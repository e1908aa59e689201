//! Options shared by `tune` and `reach`: the model, the region and the soft-prompt space a
//! search runs in, and the configuration they make.

use super::engine_args::EngineArgs;
use crate::regions::RegionTable;
use crate::soft_prompt::{AnswerAnchor, Placement};
use crate::tuning::TuneConfig;
use anyhow::{bail, Result};

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
    #[arg(long, default_value_t = 12)]
    pub population: usize,
    /// Search dimensions d of the projection z -> A z.
    #[arg(long, default_value_t = 100)]
    pub dims: usize,
    /// Soft-prompt rows beyond the anchor text's own rows (the persona sentence for
    /// `--placement prefix`, the answer reminder for `answer`).
    #[arg(long, default_value_t = 0)]
    pub extra_rows: usize,
    /// Scale of the projection A: each entry has standard deviation a-scale x the embedding
    /// table's std / sqrt(dims). Larger values let the bounded search move further.
    #[arg(long, default_value_t = 1.0)]
    pub a_scale: f64,
    /// Where the soft prompt goes: `answer` (after each question, before the answer; the
    /// question prefixes are decoded once and cached, so candidates are cheap) or `prefix`
    /// (in place of the persona sentence; the method of Masoud et al. 2025).
    #[arg(long, value_enum, default_value = "answer")]
    pub placement: Placement,
    /// What the answer-side rows start from: `opening` (the answer opening "Answer:" itself,
    /// so that z = 0 is exactly the naive prompt) or `persona` ("Speaking as a person from
    /// China." before " Answer: ").
    #[arg(long, value_enum, default_value = "opening")]
    pub anchor: AnswerAnchor,
    /// Training survey: a shipped survey's id or a survey file. The default `vsm13` is
    /// wording A; `vsm13-ac` asks wordings A and C together (48 items, twice the time per
    /// candidate; docs/tuning.md measures what it does to the held-out loss). The held-out
    /// survey stays `vsm13-alt`.
    #[arg(long, value_name = "ID|FILE", default_value = crate::survey::TRAINING_SURVEY_ID)]
    pub survey: String,
    /// Respondents in the panel.
    #[arg(long, default_value_t = 1)]
    pub panel: usize,
    /// Ask every item in both option orders (the answers of the two orders are averaged, so
    /// rows that only push the answer digit one way cancel out).
    #[arg(long)]
    pub counterbalance: bool,
    /// Seed of every random choice (projection and optimizer); stored with the run.
    #[arg(long, default_value_t = 2013)]
    pub seed: u64,
    /// Calibration regions (comma-separated codes) [default: a 12-region set spanning the
    /// cultural clusters, those of them in the targets table; for a table with fewer than 3 of
    /// them, its first 12 regions with all six dimensions].
    #[arg(long, value_delimiter = ',', value_name = "CODES")]
    pub calibration_regions: Option<Vec<String>>,
}

impl SpaceArgs {
    /// The configuration these options select (culturetune's defaults elsewhere): the region
    /// looked up, the model file hashed, the space and the calibration regions checked.
    pub fn config(&self, table: &RegionTable) -> Result<TuneConfig> {
        let region = table.find(&self.region)?;
        let given = self.engine.model_path();
        let sha = crate::fingerprint::sha256_file(&given).map_err(|source| {
            crate::engine::EngineError::Io {
                path: given.display().to_string(),
                source,
            }
        })?;
        let mut c = TuneConfig::new(&region.code, &given.display().to_string(), &sha, self.seed);
        c.weights = self.engine.weights;
        c.settings = self.engine.settings();
        if !(self.a_scale.is_finite() && self.a_scale > 0.0) {
            bail!("--a-scale must be a positive number (got {})", self.a_scale);
        }
        c.a_scale = self.a_scale;
        if self.panel == 0 || self.panel > crate::prompt::MAX_PANEL {
            bail!("--panel must be 1..={}", crate::prompt::MAX_PANEL);
        }
        c.panel = self.panel;
        c.survey = self.survey.clone();
        c.counterbalance = self.counterbalance;
        c.extra_rows = self.extra_rows;
        c.placement = self.placement;
        c.anchor = self.anchor;
        c.d = self.dims;
        c.de.dim = self.dims;
        c.de.pop_size = self.population;
        c.calibration_regions =
            crate::tuning::resolve_calibration_regions(table, self.calibration_regions.as_deref())?;
        Ok(c)
    }
}
