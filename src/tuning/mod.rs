//! Soft-prompt tuning of one region: calibration of the constants, the baselines (naive and
//! ICL), the Differential Evolution search over P = P0 + A z with a checkpoint per generation,
//! and the final evaluation on the training and the held-out survey.
//!
//! The search is resumable exactly: the optimizer state is stored after every generation, the
//! projection A is rebuilt from its seed, and every evaluation uses one fixed procedure. A
//! cancel flag stops it between two candidate evaluations; the unfinished generation is
//! dropped, so the stored state stays consistent.

use crate::dimension::DimScores;
use crate::engine::evaluate::{
    EvalSettings, Evaluator, PersonaInput, SurveyAnswers, SurveyPrompts,
};
use crate::engine::{EmbeddingTable, EngineError, Model, WeightType};
use crate::optim::{DeOptions, DeState, Generation, Outcome};
use crate::prompt::{self, Method, Respondent};
use crate::regions::Region;
use crate::scoring::{indices, Constants, Loss};
use crate::soft_prompt::{AnswerAnchor, Placement, SoftPromptSpace};
use crate::store::{Checkpoint, EvaluationRecord, Store};
use crate::survey::Survey;
use placed::{Insertion, PlacedPrompts, PromptPlacement};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub mod calibration;
pub mod chat;
pub mod decode_group;
pub mod defaults;
pub mod history;
pub mod job;
pub mod placed;
pub mod plan;
pub mod reach;
pub mod reeval;
pub mod report;
pub mod request;
pub mod survey_run;
pub mod target;
pub mod transfer;

/// The store's record of a model loaded from `given` (its SHA-256 `sha`); the size is the
/// given file's, which is what the hash covers (not a converted copy's).
pub fn model_record(
    model: &Model,
    sha: &str,
    given: &std::path::Path,
) -> crate::store::ModelRecord {
    crate::store::ModelRecord {
        sha256: sha.to_string(),
        path: given.display().to_string(),
        name: model.info().name.clone(),
        architecture: model.info().architecture.clone(),
        n_embd: model.info().n_embd,
        file_size: std::fs::metadata(given).map(|m| m.len()).unwrap_or(0),
    }
}

/// Most soft-prompt rows beyond the anchor text's own (`--extra-rows`): far more than any
/// useful prompt, few enough that a typo cannot ask for gigabytes.
pub const MAX_EXTRA_ROWS: usize = 1024;

pub use decode_group::GPU_CANDIDATES_PER_DECODE;

/// The version of the stored configuration this build writes. 1: every configuration
/// stored before versions existed (each setting added since reads as the value those runs
/// used, see the fields' defaults); 2: the same fields with the version stored. A
/// configuration of a newer version is refused rather than read without what it adds.
pub const CONFIG_VERSION: u32 = 2;

/// Everything that defines a tuning run; stored with it so it can be repeated and resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneConfig {
    /// The configuration's version ([`CONFIG_VERSION`] for new runs; 1 when absent).
    #[serde(default = "one_u32")]
    pub version: u32,
    /// Region code.
    pub region: String,
    /// Training survey id or path.
    pub survey: String,
    /// Held-out survey id or path.
    pub heldout_survey: String,
    /// The model file as given.
    pub model_path: String,
    /// Its SHA-256.
    pub model_sha256: String,
    /// Weight type evaluated.
    pub weights: WeightType,
    /// The chat template used instead of the model file's (`--chat-template`: a built-in name
    /// or a template's text); absent for the file's own, and then not stored, so that runs
    /// from before this setting keep their job key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// Evaluation procedure.
    pub settings: EvalSettings,
    /// Panel size.
    pub panel: usize,
    /// Counterbalanced option order.
    pub counterbalance: bool,
    /// Where the soft prompt's rows go (runs stored before this setting existed are
    /// `prefix`).
    #[serde(default)]
    pub placement: Placement,
    /// What an answer-side soft prompt's rows stand for at z = 0 (runs stored before this
    /// setting existed are `persona`).
    #[serde(default)]
    pub anchor: AnswerAnchor,
    /// Candidates evaluated in one pass of decodes (answer placement only; 1 = one at a time).
    /// Part of the procedure: a candidate's result can differ in the last digits with another
    /// grouping, so it is stored with the run.
    #[serde(default = "one")]
    pub candidates_per_decode: usize,
    /// Layers on the GPU (llama.cpp's `n_gpu_layers`; 0 = CPU), resolved when the run
    /// started. Offload changes results in the last digits, so a resumed or re-evaluated run
    /// uses the same (runs stored before GPU support read 0).
    #[serde(default)]
    pub gpu_layers: u32,
    /// Soft-prompt rows beyond the anchor text's own rows (the persona sentence for the prefix
    /// placement, the answer reminder for the answer placement).
    pub extra_rows: usize,
    /// Search dimensions d.
    pub d: usize,
    /// Scale of the projection A: its entries have standard deviation
    /// `a_scale * embedding std / sqrt(d)` (runs stored before this setting existed are 1).
    #[serde(default = "unit_scale")]
    pub a_scale: f64,
    /// Seed of the projection A (the optimizer has its own in `de`).
    pub projection_seed: u64,
    /// Optimizer settings (dim = d).
    pub de: DeOptions,
    /// Regions used to calibrate the constants.
    pub calibration_regions: Vec<String>,
    /// A population of respondents as the target instead of the region's published scores
    /// (the region is then the persona only); absent for region runs, and then not stored,
    /// so that runs from before this setting keep their job key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<target::Population>,
    /// The region as the run's targets table had it, when that is not the shipped table's row
    /// (a `--targets FILE` of another instrument, or edited scores): the run then shows,
    /// resumes and re-evaluates without the file. Absent for a shipped region, and then not
    /// stored, so that runs from before this setting keep their job key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_row: Option<Region>,
}

impl TuneConfig {
    /// A configuration with culturetune's defaults for a region ([`defaults`],
    /// chosen by the sweep in docs/tuning.md: the answer placement with the answer opening
    /// as its anchor, so z = 0 is the naive prompt, the anchor's own rows, d = 100, A at
    /// scale 1, SHADE with 12 members and 288 candidates). [`request::resolve`] is the way
    /// from a user's settings; this is its starting point.
    pub fn new(region: &str, model_path: &str, model_sha256: &str, seed: u64) -> TuneConfig {
        use defaults as d;
        TuneConfig {
            version: CONFIG_VERSION,
            region: region.to_string(),
            survey: d::SURVEY.into(),
            heldout_survey: crate::survey::HELDOUT_SURVEY_ID.into(),
            model_path: model_path.to_string(),
            model_sha256: model_sha256.to_string(),
            weights: WeightType::Auto,
            chat_template: None,
            settings: EvalSettings::default(),
            panel: d::PANEL,
            counterbalance: false,
            placement: d::PLACEMENT,
            anchor: d::ANCHOR,
            candidates_per_decode: 1,
            gpu_layers: 0,
            extra_rows: d::EXTRA_ROWS,
            d: d::DIMS,
            a_scale: d::A_SCALE,
            projection_seed: seed,
            de: DeOptions {
                dim: d::DIMS,
                pop_size: d::POPULATION,
                bounds: (-1.0, 1.0),
                strategy: d::STRATEGY,
                f: 0.5,
                cr: 0.9,
                max_generations: None,
                max_evals: Some(d::BUDGET),
                patience: None,
                seed,
                include_origin: true,
            },
            calibration_regions: d::CALIBRATION_REGIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            population: None,
            region_row: None,
        }
    }

    /// The run's region: the row stored with it, else `table`'s row for its code.
    pub fn region(&self, table: &crate::regions::RegionTable) -> Result<Region, TuneError> {
        match &self.region_row {
            Some(r) => Ok(r.clone()),
            None => Ok(table.find(&self.region)?.clone()),
        }
    }

    /// What `survey`'s answers are scored against: the population's targets, or `region`'s
    /// published scores.
    pub fn target(&self, survey: &Survey, region: &Region) -> Result<target::Target, TuneError> {
        match &self.population {
            Some(p) => p.target(survey),
            None => Ok(target::Target::region(region)),
        }
    }

    /// Whether the run's constants are calibrated (region runs) or zero (population runs:
    /// the model and the population are scored by the same formulas).
    pub fn calibrates(&self) -> bool {
        self.population.is_none()
    }

    /// A stored run's configuration, typed: refused with the run's id when it cannot be read
    /// or was written by a newer culturetune.
    pub fn from_stored(run: &crate::store::RunRecord) -> Result<TuneConfig, TuneError> {
        let config: TuneConfig = serde_json::from_value(run.config.clone()).map_err(|e| {
            TuneError::Invalid(format!(
                "run {}'s stored configuration cannot be read: {e}",
                run.id
            ))
        })?;
        if config.version > CONFIG_VERSION {
            return Err(TuneError::Invalid(format!(
                "run {} was stored by a newer culturetune (configuration version {}; this one reads up to {CONFIG_VERSION}): open it with that version",
                run.id, config.version
            )));
        }
        Ok(config)
    }

    /// The configuration without what belongs to the machine that ran it: the model file's
    /// path (the file itself is its hash), the CPU threads and the version it was stored with.
    /// GPU layers and candidates per decode stay: they change results in the last digits.
    fn machine_free(&self) -> TuneConfig {
        let mut c = self.clone();
        c.model_path.clear();
        c.settings.threads = 0;
        c.version = 0;
        c
    }

    /// What makes two runs one job (`merge` copies a job once): the configuration without
    /// what belongs to the machine, as text.
    pub fn job_key(&self) -> String {
        serde_json::to_string(&self.machine_free()).unwrap_or_default()
    }

    /// Whether two configurations are one setting repeated: they differ at most in their seeds
    /// (the projection's and the search's) and in what belongs to the machine.
    pub fn same_but_seeds(&self, other: &TuneConfig) -> bool {
        let unseeded = |c: &TuneConfig| {
            let mut c = c.machine_free();
            c.projection_seed = 0;
            c.de.seed = 0;
            c
        };
        unseeded(self) == unseeded(other)
    }

    /// Checks every size and setting that needs no model, so that a bad one is refused before
    /// a model is loaded or a run is created (and a stored configuration before it is
    /// resumed): the evaluation settings against llama.cpp's limits, the optimizer's settings,
    /// `d` (equal to the optimizer's dimensions), the extra rows, the candidates per decode,
    /// the panel, the projection scale and the calibration regions.
    pub fn check(&self) -> Result<(), TuneError> {
        let bad = |m: String| Err(TuneError::Invalid(m));
        self.settings.check().map_err(TuneError::Invalid)?;
        self.de
            .check()
            .map_err(|e| TuneError::Invalid(format!("invalid optimizer settings: {e}")))?;
        if self.d != self.de.dim {
            return bad(format!(
                "d is {} but the optimizer searches {} dimensions",
                self.d, self.de.dim
            ));
        }
        if self.extra_rows > MAX_EXTRA_ROWS {
            return bad(format!(
                "--extra-rows is {}; it must be at most {MAX_EXTRA_ROWS}",
                self.extra_rows
            ));
        }
        let max_group = crate::engine::evaluate::MAX_SEQ;
        if self.candidates_per_decode == 0 || self.candidates_per_decode > max_group {
            return bad(format!(
                "--candidates-per-decode is {}; it must be 1..={max_group}",
                self.candidates_per_decode
            ));
        }
        if self.panel == 0 || self.panel > crate::prompt::MAX_PANEL {
            return bad(format!(
                "--panel is {}; it must be 1..={}",
                self.panel,
                crate::prompt::MAX_PANEL
            ));
        }
        if !(self.a_scale.is_finite() && self.a_scale > 0.0) {
            return bad(format!(
                "--a-scale must be a positive number (got {})",
                self.a_scale
            ));
        }
        if self.calibration_regions.is_empty() {
            return bad("no calibration regions".into());
        }
        Ok(())
    }
}

/// The job of a stored configuration (its JSON text): [`TuneConfig::job_key`], or the text
/// itself when it is not a configuration this culturetune reads.
pub fn job_of(config: &str) -> String {
    serde_json::from_str::<TuneConfig>(config).map_or_else(|_| config.to_string(), |c| c.job_key())
}

fn one_u32() -> u32 {
    1
}

fn one() -> usize {
    1
}

fn unit_scale() -> f64 {
    1.0
}

/// Why tuning stopped without a result.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The cancel flag was raised, or the job's sink asked to stop.
    #[error("cancelled")]
    Cancelled,
    /// The engine failed.
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// A region is not in the targets table.
    #[error("{0}")]
    Region(#[from] crate::regions::RegionError),
    /// A survey could not be loaded.
    #[error("{0}")]
    Survey(#[from] crate::survey::SurveyError),
    /// Answers could not be scored.
    #[error("{0}")]
    Score(#[from] crate::scoring::ScoreError),
    /// An exported soft prompt could not be read.
    #[error("{0}")]
    Export(#[from] crate::export::ExportError),
    /// The configuration or the request cannot be carried out (bad settings, a run that is
    /// not resumable, a model file that changed).
    #[error("{0}")]
    Invalid(String),
    /// Anything else: a bug of ours.
    #[error("{0}")]
    Other(String),
}

impl TuneError {
    /// The stable code of this error: the code of the engine, store, region, survey or
    /// scoring error inside it.
    pub fn code(&self) -> crate::error_code::ErrorCode {
        use crate::error_code::ErrorCode as C;
        match self {
            TuneError::Cancelled => C::Cancelled,
            TuneError::Engine(e) => e.code(),
            TuneError::Store(e) => e.code(),
            TuneError::Region(e) => e.code(),
            TuneError::Survey(e) => e.code(),
            TuneError::Score(e) => e.code(),
            TuneError::Export(e) => e.code(),
            TuneError::Invalid(_) => C::InvalidInput,
            TuneError::Other(_) => C::Internal,
        }
    }
}

/// A method's result on one survey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodResult {
    /// The indices.
    pub indices: DimScores,
    /// The loss against the region's targets.
    pub loss: Loss,
    /// Mean digit mass.
    pub digit_mass: f64,
    /// The fit of each item's answer distribution (population runs with the items objective).
    pub items: Option<crate::item_fit::ItemFit>,
}

impl MethodResult {
    /// What the search minimizes: the mean item distance over the training items when the
    /// target has items, else the index L1.
    pub fn objective(&self) -> f64 {
        self.items.as_ref().map_or(self.loss.l1, |f| f.train)
    }

    /// The store record of this result.
    pub fn record(
        &self,
        run_id: Option<i64>,
        model_sha256: &str,
        method: crate::store::MethodLabel,
        survey: &str,
        region: &str,
        constants: &Constants,
    ) -> EvaluationRecord {
        EvaluationRecord {
            run_id,
            model_sha256: model_sha256.to_string(),
            method,
            survey: survey.to_string(),
            region: region.to_string(),
            constants: serde_json::to_value(constants).expect("constants serialize"),
            indices: self.indices,
            loss: self.loss.l1,
            loss_mean: self.loss.mean,
            dims_used: self.loss.dims_used,
            digit_mass: self.digit_mass,
            items: self.items.clone(),
        }
    }
}

/// Scores survey answers against a target under given constants.
pub fn score(
    survey: &Survey,
    answers: &SurveyAnswers,
    constants: &Constants,
    target: &target::Target,
) -> Result<MethodResult, TuneError> {
    let idx = indices(survey, &answers.item_means(), constants)?;
    let loss = Loss::between(&idx, &target.scores).ok_or_else(|| {
        TuneError::Invalid(format!(
            "the target shares no dimension with survey {}",
            survey.id
        ))
    })?;
    let items = match &target.items {
        Some(t) => {
            let probs: Vec<Vec<f64>> = answers.items.iter().map(|i| i.probs.clone()).collect();
            Some(crate::item_fit::ItemFit::of(&probs, t).ok_or_else(|| {
                TuneError::Invalid(format!(
                    "the item targets do not match survey {}'s items",
                    survey.id
                ))
            })?)
        }
        None => None,
    };
    let digit_mass =
        answers.items.iter().map(|i| i.digit_mass).sum::<f64>() / answers.items.len().max(1) as f64;
    Ok(MethodResult {
        indices: idx,
        loss,
        digit_mass,
        items,
    })
}

/// The soft-prompt search for one region on one survey.
pub struct Tuner<'m> {
    model: &'m Model,
    evaluator: Evaluator<'m>,
    survey: Survey,
    region: Region,
    target: target::Target,
    panel: Vec<Respondent>,
    counterbalance: bool,
    placement: PromptPlacement,
    group: usize,
    prompts: PlacedPrompts,
    space: SoftPromptSpace,
    constants: Constants,
}

impl<'m> Tuner<'m> {
    /// Sets up the search: the training prompts in the configured placement, P0 = the anchor
    /// text's rows (the persona sentence, or the answer reminder) plus extra rows, and the
    /// projection A from the configured seed. The training survey's target is the
    /// configuration's ([`TuneConfig::target`]).
    pub fn new(
        model: &'m Model,
        config: &TuneConfig,
        survey: Survey,
        region: Region,
        constants: Constants,
    ) -> Result<Tuner<'m>, TuneError> {
        let target = config.target(&survey, &region)?;
        let evaluator = Evaluator::new(model, config.settings)?;
        let panel = prompt::panel(config.panel);
        let placement = PromptPlacement::new(config.placement, config.anchor);
        let prompts =
            placement.survey_prompts(model, &survey, &region, &panel, config.counterbalance)?;
        prompts
            .check_group(config.candidates_per_decode)
            .map_err(TuneError::Invalid)?;
        let anchor = prompts.anchor_tokens();
        let table = EmbeddingTable::load(model)?;
        let p0 = table.rows(anchor)?;
        let k = anchor.len() + config.extra_rows;
        let space = SoftPromptSpace::new(
            &p0,
            model.info().n_embd,
            k,
            config.d,
            config.projection_seed,
            table.std()? * config.a_scale,
        )
        .map_err(TuneError::Invalid)?;
        Ok(Tuner {
            model,
            evaluator,
            survey,
            region,
            target,
            panel,
            counterbalance: config.counterbalance,
            placement,
            group: config.candidates_per_decode.max(1),
            prompts,
            space,
            constants,
        })
    }

    /// The soft prompt of a point z.
    pub fn rows(&self, z: &[f64]) -> Vec<f32> {
        self.space.rows(z)
    }

    /// The parametrization (for the card).
    pub fn space(&self) -> &SoftPromptSpace {
        &self.space
    }

    /// Where the rows go.
    pub fn placement(&self) -> PromptPlacement {
        self.placement
    }

    /// The text the soft prompt starts from (z = 0): the persona sentence, or the answer
    /// reminder.
    pub fn anchor_text(&self) -> String {
        self.prompts.anchor_text().to_string()
    }

    /// Where the rows go, for export cards.
    pub fn insertion(&self) -> Insertion {
        self.placement
            .insertion(&self.region, self.prompts.anchor_text())
    }

    /// Evaluates soft prompts on the training survey, in groups of the configured size.
    fn evaluate_many(&mut self, all: &[Vec<f32>]) -> Result<Vec<SurveyAnswers>, TuneError> {
        let refs: Vec<&[f32]> = all.iter().map(Vec::as_slice).collect();
        Ok(self
            .prompts
            .evaluate(&mut self.evaluator, &refs, self.group)?)
    }

    /// Evaluates a soft prompt (rows) on the training survey.
    pub fn evaluate_rows(&mut self, rows: &[f32]) -> Result<MethodResult, TuneError> {
        let a = self.evaluate_many(&[rows.to_vec()])?.remove(0);
        score(&self.survey, &a, &self.constants, &self.target)
    }

    /// Evaluates a method (naive or ICL hard prompt, or soft-prompt rows in this tuner's
    /// placement) on any survey with given constants and target, through this tuner's
    /// evaluator (same procedure).
    pub fn evaluate_on(
        &mut self,
        survey: &Survey,
        constants: &Constants,
        target: &target::Target,
        method: Method,
        rows: Option<&[f32]>,
    ) -> Result<MethodResult, TuneError> {
        let a = match rows {
            Some(rows) => {
                let p = self.placement.survey_prompts(
                    self.model,
                    survey,
                    &self.region,
                    &self.panel,
                    self.counterbalance,
                )?;
                p.evaluate(&mut self.evaluator, &[rows], 1)?.remove(0)
            }
            None => {
                let block = prompt::persona_block(method, &self.region);
                let p = SurveyPrompts::build(
                    self.model,
                    survey,
                    &block,
                    &self.panel,
                    self.counterbalance,
                )?;
                self.evaluator.evaluate(&p, PersonaInput::Text)?
            }
        };
        score(survey, &a, constants, target)
    }

    /// Runs (or continues) the search. After every generation the state is checkpointed to
    /// `store` and `on_generation` is called with the generation and the best candidate's
    /// indices. `cancel` is checked before every candidate evaluation (or group of candidates
    /// evaluated together).
    pub fn search(
        &mut self,
        state: &mut DeState,
        store: &mut Store,
        run_id: i64,
        cancel: &AtomicBool,
        elapsed_before: f64,
        mut on_generation: impl FnMut(&Generation, &DimScores, f64) -> ControlFlow<()>,
    ) -> Result<Outcome, TuneError> {
        let start = Instant::now();
        let best_scores: RefCell<Vec<(Vec<f64>, DimScores)>> = RefCell::new(Vec::new());
        let mut failure: Option<TuneError> = None;
        let objective = |xs: &[Vec<f64>]| -> Result<Vec<f64>, TuneError> {
            let mut out = Vec::with_capacity(xs.len());
            for group in xs.chunks(self.group) {
                if cancel.load(Ordering::Relaxed) {
                    return Err(TuneError::Cancelled);
                }
                let rows: Vec<Vec<f32>> = group.iter().map(|z| self.space.rows(z)).collect();
                for (z, a) in group.iter().zip(self.evaluate_many(&rows)?) {
                    let r = score(&self.survey, &a, &self.constants, &self.target)?;
                    best_scores.borrow_mut().push((z.clone(), r.indices));
                    out.push(r.objective());
                }
            }
            Ok(out)
        };
        let outcome = state.run(objective, |g, st| {
            let mut seen = best_scores.borrow_mut();
            let scores = seen
                .iter()
                .rev()
                .find(|(z, _)| *z == g.best)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            // Keep only what can still be the best.
            seen.retain(|(z, _)| st.pop.contains(z));
            drop(seen);
            let elapsed = elapsed_before + start.elapsed().as_secs_f64();
            let c = Checkpoint {
                generation: g.index,
                evals: g.evals,
                best_loss: g.best_loss,
                mean_loss: g.mean_loss,
                best_scores: scores,
                state: serde_json::to_string(st).expect("state serializes"),
                elapsed_s: elapsed,
            };
            if let Err(e) = store.save_checkpoint(run_id, &c) {
                failure = Some(e.into());
                return ControlFlow::Break(());
            }
            if on_generation(g, &scores, elapsed).is_break() {
                // Stopped after a checkpoint: resumable like a cancel.
                failure = Some(TuneError::Cancelled);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        if let Some(f) = failure {
            return Err(f);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: i64, config: serde_json::Value) -> crate::store::RunRecord {
        crate::store::RunRecord {
            id,
            region: "USA".into(),
            survey: "vsm13".into(),
            method: crate::store::MethodLabel::Naive,
            model_sha256: "ab".into(),
            config,
            seed: 1,
            status: crate::store::RunStatus::Done,
            error: None,
            created_at: "t".into(),
            updated_at: "t".into(),
        }
    }

    #[test]
    fn stored_configurations_are_read_by_version() {
        let c = TuneConfig::new("USA", "m.gguf", "ab", 1);
        assert_eq!(c.version, CONFIG_VERSION);
        let mut v = serde_json::to_value(&c).unwrap();
        assert_eq!(TuneConfig::from_stored(&stored(1, v.clone())).unwrap(), c);
        // Before versions: read as version 1, everything else as stored.
        v.as_object_mut().unwrap().remove("version");
        let old = TuneConfig::from_stored(&stored(2, v.clone())).unwrap();
        assert_eq!((old.version, old.d, old.region.as_str()), (1, c.d, "USA"));
        // A newer culturetune's configuration is refused, naming the run and both versions.
        v["version"] = serde_json::json!(CONFIG_VERSION + 1);
        let e = TuneConfig::from_stored(&stored(3, v))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run 3") && e.contains("newer culturetune"),
            "{e}"
        );
        let e = TuneConfig::from_stored(&stored(4, serde_json::json!({"d": "x"}))).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("run 4's stored configuration cannot be read"));
    }

    #[test]
    fn runs_that_differ_only_in_their_seeds_are_repeats() {
        let a = TuneConfig::new("USA", "m.gguf", "ab", 1);
        let b = TuneConfig::new("USA", "m.gguf", "ab", 2);
        assert!(a.same_but_seeds(&b));
        let old = TuneConfig {
            version: 1,
            ..b.clone()
        };
        assert!(a.same_but_seeds(&old), "the version is not a setting");
        let other = TuneConfig { d: 8, ..b.clone() };
        assert!(!a.same_but_seeds(&other));
        // Another machine: another path to the same file, other threads; the same job.
        let mut there = a.clone();
        there.model_path = "/home/x/models/m.gguf".into();
        there.settings.threads = 64;
        assert!(a.same_but_seeds(&there));
        assert_eq!(job_of(&serde_json::to_string(&there).unwrap()), a.job_key());
        assert_ne!(b.job_key(), a.job_key(), "another seed is another job");
        assert_eq!(job_of("{not a config"), "{not a config");
    }
}
