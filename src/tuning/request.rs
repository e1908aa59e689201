//! What a user asks of a tuning run, and the one step that turns it into a checked
//! [`TuneConfig`]. The command line's flags and the desktop app's Tune screen both state a
//! [`TuneRequest`] (every field optional); [`resolve`] owns every default ([`defaults`]) and
//! every check, and runs them all before the model file is even hashed, so a bad setting is
//! refused with the same message wherever it came from and before anything is loaded.

use super::calibration::resolve_calibration_regions;
use super::decode_group::{default_candidates_per_decode, prompt_bound, GroupFacts};
use super::{TuneConfig, TuneError};
use crate::engine::evaluate::EvalSettings;
use crate::engine::WeightType;
use crate::optim::Strategy;
use crate::regions::RegionTable;
use crate::responses::Selection;
use crate::soft_prompt::{AnswerAnchor, Placement};
use crate::survey::Survey;
use serde::{Deserialize, Serialize};

pub use super::defaults;
use super::target::{Holdout, PopulationRequest};

/// A tuning run as a user asks for it: `None` means culturetune's default ([`defaults`]).
/// The app sends it as JSON (the names below); the command line fills it from its flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuneRequest {
    /// Region code or name (required).
    pub region: Option<String>,
    /// Training survey: a shipped survey's id or a survey file.
    pub survey: Option<String>,
    /// Held-out survey [default: `vsm13-alt`, for a survey that scores Hofstede's dimensions].
    pub heldout_survey: Option<String>,
    /// Candidates to evaluate.
    pub budget: Option<usize>,
    /// Candidates per DE generation.
    pub population: Option<usize>,
    /// Search dimensions d.
    pub dims: Option<usize>,
    /// Soft-prompt rows beyond the anchor text's own.
    pub extra_rows: Option<usize>,
    /// Scale of the projection A.
    pub a_scale: Option<f64>,
    /// Where the rows go.
    pub placement: Option<Placement>,
    /// What the answer-side rows start from.
    pub anchor: Option<AnswerAnchor>,
    /// Respondents in the panel.
    pub panel: Option<usize>,
    /// Ask every item in both option orders.
    pub counterbalance: Option<bool>,
    /// Seed of the projection and the optimizer.
    pub seed: Option<u64>,
    /// Calibration regions (codes or names).
    pub calibration_regions: Option<Vec<String>>,
    /// The optimizer.
    pub strategy: Option<Strategy>,
    /// Stop after this many generations without improvement.
    pub patience: Option<usize>,
    /// Candidates evaluated together (answer placement) [default: 8 with layers on a GPU,
    /// else 1].
    pub candidates_per_decode: Option<usize>,
    /// A responses CSV whose respondents are the target instead of the region's published
    /// scores (the region is then the persona only).
    pub responses: Option<String>,
    /// Only the respondents of one group: `COLUMN=VALUE`.
    pub group: Option<String>,
    /// The column of respondent weights.
    pub weight: Option<String>,
    /// What a population run minimizes [default: indices].
    pub objective: Option<super::target::Objective>,
    /// Items held out of the items objective: a count or item ids (`q03,q11`).
    pub holdout_items: Option<String>,
}

impl TuneRequest {
    /// Every default filled in (what the app's Tune screen shows before the user edits it).
    /// `region`, `calibration_regions`, `patience` and `candidates_per_decode` stay `None`:
    /// their defaults depend on the targets table or the model.
    pub fn defaults() -> TuneRequest {
        TuneRequest {
            region: None,
            survey: Some(defaults::SURVEY.into()),
            heldout_survey: None,
            budget: Some(defaults::BUDGET),
            population: Some(defaults::POPULATION),
            dims: Some(defaults::DIMS),
            extra_rows: Some(defaults::EXTRA_ROWS),
            a_scale: Some(defaults::A_SCALE),
            placement: Some(defaults::PLACEMENT),
            anchor: Some(defaults::ANCHOR),
            panel: Some(defaults::PANEL),
            counterbalance: Some(false),
            seed: Some(defaults::SEED),
            calibration_regions: None,
            strategy: Some(defaults::STRATEGY),
            patience: None,
            candidates_per_decode: None,
            responses: None,
            group: None,
            weight: None,
            objective: None,
            holdout_items: None,
        }
    }

    /// The population part of the request, parsed; `None` without `responses` (and then an
    /// error if another population setting was given).
    fn population(&self) -> Result<Option<PopulationRequest>, TuneError> {
        let bad = |m: String| TuneError::Invalid(m);
        let Some(responses) = self.responses.as_deref().filter(|r| !r.trim().is_empty()) else {
            let given = [
                ("--group", self.group.is_some()),
                ("--weight", self.weight.is_some()),
                ("--objective", self.objective.is_some()),
                ("--holdout-items", self.holdout_items.is_some()),
            ];
            return match given.iter().find(|(_, g)| *g) {
                Some((flag, _)) => Err(bad(format!(
                    "{flag} needs --responses FILE.csv (a population to tune toward)"
                ))),
                None => Ok(None),
            };
        };
        let selection =
            Selection::parse(self.group.as_deref(), self.weight.as_deref()).map_err(bad)?;
        let holdout = self
            .holdout_items
            .as_deref()
            .map(Holdout::parse)
            .transpose()
            .map_err(bad)?;
        Ok(Some(PopulationRequest {
            responses: responses.to_string(),
            selection,
            objective: self.objective.unwrap_or_default(),
            holdout,
        }))
    }
}

/// The model side of a run that needs no model file: which file, which weights, which
/// evaluation settings (the command line's engine options).
#[derive(Debug, Clone)]
pub struct EngineChoice {
    /// The model file as given.
    pub model_path: String,
    /// Weights to evaluate.
    pub weights: WeightType,
    /// Evaluation settings.
    pub settings: EvalSettings,
    /// The chat template given instead of the model file's (`--chat-template`, checked).
    pub chat_template: Option<String>,
}

impl EngineChoice {
    /// The choice the engine options make; refused when `--chat-template` names no template
    /// llama.cpp can use.
    pub fn of(engine: &crate::engine::options::EngineOptions) -> Result<EngineChoice, TuneError> {
        Ok(EngineChoice {
            model_path: engine.model_path().display().to_string(),
            weights: engine.weights,
            settings: engine.settings(),
            chat_template: engine.chat_template()?,
        })
    }
}

/// Reads the model file's hash and plans its GPU layers (`note` hears the plan): the facts
/// [`resolve`] asks for once every setting is checked.
pub fn model_facts(
    engine: &crate::engine::options::EngineOptions,
    note: &mut dyn FnMut(String),
) -> Result<ModelFacts, TuneError> {
    let given = engine.model_path();
    let sha256 = crate::fingerprint::sha256_file(&given).map_err(|source| {
        crate::engine::EngineError::Io {
            path: given.display().to_string(),
            source,
        }
    })?;
    let gpu_layers = engine.resolve_layers(&given, note)?;
    let info = crate::engine::inspect(&given)?;
    Ok(ModelFacts {
        sha256,
        gpu_layers,
        kv_bytes_per_cell: crate::engine::offload::kv_bytes_per_cell(&info),
    })
}

/// What is read from the model file, once every setting has been checked: its SHA-256, the
/// GPU layers the run will use and what one KV cell costs.
#[derive(Debug, Clone)]
pub struct ModelFacts {
    /// SHA-256 of the file given.
    pub sha256: String,
    /// Layers on the GPU (0 = CPU).
    pub gpu_layers: u32,
    /// Bytes of one KV cell in all layers (sizes the candidates' KV streams).
    pub kv_bytes_per_cell: u64,
}

/// Turns a request into a checked configuration. Every default is applied and every check
/// made here: first everything that needs no model file (the region, the survey, the sizes,
/// the budget against the population, the evaluation settings), then `facts` is asked for the
/// file's hash and GPU layers, then what depends on them (candidates per decode).
pub fn resolve(
    req: &TuneRequest,
    table: &RegionTable,
    engine: &EngineChoice,
    facts: impl FnOnce() -> Result<ModelFacts, TuneError>,
) -> Result<TuneConfig, TuneError> {
    let population = req.population()?;
    let region = persona_region(req, population.as_ref(), table)?;
    let mut c = TuneConfig::new(
        &region.code,
        &engine.model_path,
        "",
        pick(req.seed, defaults::SEED),
    );
    let shipped = RegionTable::builtin();
    if shipped.find(&region.code).ok() != Some(region) {
        c.region_row = Some(region.clone());
    }
    c.weights = engine.weights;
    c.chat_template = engine.chat_template.clone();
    c.settings = engine.settings;
    c.survey = req
        .survey
        .clone()
        .unwrap_or_else(|| defaults::SURVEY.into());
    let train = Survey::from_id_or_path(&c.survey)?;
    c.heldout_survey = heldout_survey(req, &train)?;
    c.panel = pick(req.panel, defaults::PANEL);
    c.counterbalance = req.counterbalance.unwrap_or(false);
    c.extra_rows = pick(req.extra_rows, defaults::EXTRA_ROWS);
    c.a_scale = pick(req.a_scale, defaults::A_SCALE);
    c.placement = pick(req.placement, defaults::PLACEMENT);
    c.anchor = pick(req.anchor, defaults::ANCHOR);
    c.d = pick(req.dims, defaults::DIMS);
    c.de.dim = c.d;
    c.de.pop_size = pick(req.population, defaults::POPULATION);
    c.de.strategy = pick(req.strategy, defaults::STRATEGY);
    c.de.patience = req.patience;
    let budget = pick(req.budget, defaults::BUDGET);
    if budget < c.de.pop_size || budget > defaults::MAX_BUDGET {
        return Err(TuneError::Invalid(format!(
            "--budget must be {}..={} candidates (at least one generation of --population {}), got {budget}",
            c.de.pop_size,
            defaults::MAX_BUDGET,
            c.de.pop_size
        )));
    }
    c.de.max_evals = Some(budget);
    c.calibration_regions = resolve_calibration_regions(table, req.calibration_regions.as_deref())?;
    if let Some(p) = &population {
        let heldout = Survey::from_id_or_path(&c.heldout_survey)?;
        // (checked by `heldout_survey`: it loads and scores the training survey's dimensions)
        c.population = Some(p.read([&train, &heldout], c.de.seed)?);
    }
    if let Some(n) = req.candidates_per_decode {
        c.candidates_per_decode = n;
    }
    c.check()?;
    let f = facts()?;
    c.model_sha256 = f.sha256;
    c.gpu_layers = f.gpu_layers;
    if req.candidates_per_decode.is_none() {
        c.candidates_per_decode = default_candidates_per_decode(&GroupFacts {
            gpu_layers: c.gpu_layers,
            placement: c.placement,
            kv_layout: c.settings.kv_layout,
            prompts: prompt_bound(&train, c.panel, c.counterbalance),
            kv_bytes_per_cell: f.kv_bytes_per_cell,
        });
    }
    c.check()?;
    Ok(c)
}

/// The held-out survey: the one asked for, or `vsm13-alt` for a survey that scores only
/// Hofstede's dimensions; checked to load, to differ from the training survey and to score
/// every dimension the training survey scores.
fn heldout_survey(req: &TuneRequest, train: &Survey) -> Result<String, TuneError> {
    let dims = |s: &Survey| -> Vec<crate::dimension::Dimension> {
        s.formulas.iter().map(|f| f.dimension).collect()
    };
    let given = req
        .heldout_survey
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let Some(id) = given else {
        if dims(train).iter().all(|d| d.is_hofstede()) {
            return Ok(crate::survey::HELDOUT_SURVEY_ID.into());
        }
        return Err(TuneError::Invalid(format!(
            "survey {} scores its own dimensions: give an independently worded version of it to report on (--heldout-survey FILE)",
            train.id
        )));
    };
    let heldout = Survey::from_id_or_path(id)?;
    if heldout.id == train.id {
        return Err(TuneError::Invalid(format!(
            "the held-out survey is the training survey ({}): give another wording (--heldout-survey)",
            train.id
        )));
    }
    let missing: Vec<&str> = dims(train)
        .into_iter()
        .filter(|d| !dims(&heldout).contains(d))
        .map(|d| d.code())
        .collect();
    if !missing.is_empty() {
        return Err(TuneError::Invalid(format!(
            "held-out survey {} does not score {} of training survey {}",
            heldout.id,
            missing.join(", "),
            train.id
        )));
    }
    Ok(id.to_string())
}

/// The region a run's persona speaks for: `--region`, or for a population run without one,
/// the group's value when it names a region.
fn persona_region<'t>(
    req: &TuneRequest,
    population: Option<&PopulationRequest>,
    table: &'t RegionTable,
) -> Result<&'t crate::regions::Region, TuneError> {
    if let Some(query) = req.region.as_deref().filter(|r| !r.trim().is_empty()) {
        return Ok(table.find(query)?);
    }
    match population.and_then(|p| p.selection.group.as_ref()) {
        Some((_, value)) => table.find(value).map_err(|_| {
            TuneError::Invalid(format!(
                "--group value {value:?} is not a region: choose the persona's region with --region"
            ))
        }),
        None if population.is_some() => Err(TuneError::Invalid(
            "choose the region the persona speaks for (--region); the population is the target"
                .into(),
        )),
        None => Err(TuneError::Invalid(
            "choose a region to tune toward (--region)".into(),
        )),
    }
}

fn pick<T>(given: Option<T>, default: T) -> T {
    given.unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> EngineChoice {
        EngineChoice {
            model_path: "no-such-model.gguf".into(),
            weights: WeightType::Original,
            settings: EvalSettings {
                threads: 2,
                ..EvalSettings::default()
            },
            chat_template: None,
        }
    }

    fn facts() -> Result<ModelFacts, TuneError> {
        Ok(ModelFacts {
            sha256: "ab".repeat(32),
            gpu_layers: 0,
            kv_bytes_per_cell: 23_040,
        })
    }

    fn usa() -> TuneRequest {
        TuneRequest {
            region: Some("usa".into()),
            ..TuneRequest::default()
        }
    }

    #[test]
    fn an_empty_request_gets_every_default_once() {
        let t = RegionTable::builtin();
        let c = resolve(&usa(), &t, &engine(), facts).unwrap();
        let want = TuneConfig::new(
            "USA",
            "no-such-model.gguf",
            &"ab".repeat(32),
            defaults::SEED,
        );
        // The model decides the candidates per decode: the default model's small KV cells
        // on the CPU give the streams layout 4 (tuning::decode_group).
        assert_eq!(c.candidates_per_decode, 4);
        let mut c2 = c.clone();
        c2.weights = want.weights;
        c2.settings = want.settings;
        c2.candidates_per_decode = want.candidates_per_decode;
        assert_eq!(
            serde_json::to_value(&c2).unwrap(),
            serde_json::to_value(&want).unwrap()
        );
        assert_eq!(c.de.max_evals, Some(defaults::BUDGET));
        // The filled-in defaults resolve to the same configuration.
        let filled = TuneRequest {
            region: Some("USA".into()),
            ..TuneRequest::defaults()
        };
        let c3 = resolve(&filled, &t, &engine(), facts).unwrap();
        assert_eq!(
            serde_json::to_value(&c3).unwrap(),
            serde_json::to_value(&c).unwrap()
        );
    }

    #[test]
    fn bad_settings_are_refused_before_the_model_file_is_read() {
        let t = RegionTable::builtin();
        let never = || -> Result<ModelFacts, TuneError> { panic!("the model file was read") };
        let mut small_ctx = engine();
        small_ctx.settings.n_ctx = 255;
        let cases: Vec<(TuneRequest, EngineChoice, &str)> = vec![
            (usa(), small_ctx, "n_ctx is 255"),
            (
                TuneRequest {
                    population: Some(3),
                    budget: Some(30),
                    ..usa()
                },
                engine(),
                "population of 4..=10000",
            ),
            (
                TuneRequest {
                    budget: Some(5),
                    ..usa()
                },
                engine(),
                "at least one generation of --population 12",
            ),
            (
                TuneRequest {
                    survey: Some("no-such-survey".into()),
                    ..usa()
                },
                engine(),
                "no-such-survey",
            ),
            (TuneRequest::default(), engine(), "choose a region"),
            (
                TuneRequest {
                    region: Some("Atlantis".into()),
                    ..TuneRequest::default()
                },
                engine(),
                "unknown region",
            ),
        ];
        for (req, eng, want) in cases {
            let e = resolve(&req, &t, &eng, never).unwrap_err().to_string();
            assert!(e.contains(want), "{req:?}: {e}");
        }
    }

    #[test]
    fn a_population_request_is_read_into_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("p.csv");
        let header: Vec<String> = (1..=24).map(|k| format!("q{k:02}")).collect();
        let row = |code: &str| vec![code; 24].join(",");
        let text = format!(
            "country,{}\nCHI,{}\nCHI,{}\nUSA,{}\n",
            header.join(","),
            row("1"),
            row("2"),
            row("5")
        );
        std::fs::write(&csv, text).unwrap();
        let t = RegionTable::builtin();
        let req = TuneRequest {
            responses: Some(csv.display().to_string()),
            group: Some("country=chi".into()),
            objective: Some(super::super::target::Objective::Items),
            holdout_items: Some("4".into()),
            ..TuneRequest::default()
        };
        let c = resolve(&req, &t, &engine(), facts).unwrap();
        // No --region: the group's value names the persona's region.
        assert_eq!(c.region, "CHI");
        let p = c.population.as_ref().unwrap();
        assert_eq!((p.respondents, p.heldout_items.len()), (2, 4));
        assert_eq!(p.surveys[0].survey, "vsm13");
        assert_eq!(p.surveys[1].survey, "vsm13-alt");
        assert_eq!(p.surveys[0].items[0].dist, vec![0.5, 0.5, 0.0, 0.0, 0.0]);
        // Stored and read back unchanged; a region run stores no population key at all.
        let back: TuneConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let plain = resolve(&usa(), &t, &engine(), facts).unwrap();
        assert!(!serde_json::to_string(&plain)
            .unwrap()
            .contains("population"));
        let e = resolve(
            &TuneRequest {
                group: Some("country=XX".into()),
                ..req.clone()
            },
            &t,
            &engine(),
            facts,
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"XX\" is not a region"), "{e}");
    }

    #[test]
    fn requests_are_json_with_the_documented_names() {
        let r: TuneRequest =
            serde_json::from_str(r#"{"region": "CHI", "budget": 36, "placement": "prefix"}"#)
                .unwrap();
        assert_eq!(r.budget, Some(36));
        assert_eq!(r.placement, Some(Placement::Prefix));
        assert!(serde_json::from_str::<TuneRequest>(r#"{"budgett": 3}"#).is_err());
        let d = serde_json::to_value(TuneRequest::defaults()).unwrap();
        assert_eq!(d["budget"], 288);
        assert_eq!(d["placement"], "answer");
        assert_eq!(d["strategy"], "shade");
    }
}
