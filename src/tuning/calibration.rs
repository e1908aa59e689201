//! Calibration of the index constants: per dimension, the mean gap between the published
//! scores of a set of regions and the indices of the model's naive answers as those regions.
//! A calibration depends on the model and the procedure ([`Calibration`], the store's key)
//! and is computed once and stored.

use super::defaults::CALIBRATION_REGIONS as DEFAULT_CALIBRATION_REGIONS;
use super::{TuneConfig, TuneError};
use crate::dimension::{DimScores, MAX_DIMS};
use crate::engine::evaluate::{EvalSettings, Evaluator, PersonaInput, SurveyPrompts};
use crate::engine::{Model, WeightType};
use crate::prompt;
use crate::regions::RegionTable;
use crate::scoring::{indices, Constants};
use crate::store::Store;
use crate::survey::Survey;

/// Fewest calibration regions taken from a targets table by default.
const MIN_CALIBRATION_REGIONS: usize = 3;

/// What a calibration depends on: the model file, the weights and evaluation settings, the
/// respondents and option orders, and the regions.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// SHA-256 of the model file.
    pub model_sha256: String,
    /// Weight type evaluated.
    pub weights: WeightType,
    /// Evaluation settings (n_ubatch, n_batch and flash attention are in the key).
    pub settings: EvalSettings,
    /// Respondents.
    pub panel: usize,
    /// Both option orders.
    pub counterbalance: bool,
    /// The calibration regions.
    pub regions: Vec<String>,
    /// The chat template given instead of the model file's (`--chat-template`), if any.
    pub chat_template: Option<String>,
}

impl Calibration {
    /// The key under which a survey's calibration for this model and procedure is stored (the
    /// survey by id and by content, see [`Survey::content_sha256`]).
    pub fn key(&self, survey: &Survey) -> String {
        let mut key = serde_json::json!({
            "model": self.model_sha256, "weights": self.weights, "survey": survey.id,
            "survey_sha256": survey.content_sha256(), "panel": self.panel,
            "counterbalance": self.counterbalance, "n_ubatch": self.settings.n_ubatch,
            "n_batch": self.settings.n_batch, "flash_attn": self.settings.flash_attn,
            "regions": self.regions,
        });
        // Only when given: the keys of calibrations with the file's own template stay as
        // they were stored.
        if let Some(t) = &self.chat_template {
            key["chat_template"] = serde_json::Value::String(t.clone());
        }
        key.to_string()
    }

    /// The constants policy for calibrated values, labelled with what they were calibrated
    /// on.
    pub fn constants(&self, values: DimScores) -> Constants {
        Constants::Calibrated {
            values,
            source: format!(
                "{} regions, model {}",
                self.regions.len(),
                &self.model_sha256[..self.model_sha256.len().min(12)]
            ),
        }
    }

    /// Stores a survey's calibrated values under this procedure's key.
    pub fn save(
        &self,
        store: &Store,
        survey: &Survey,
        values: &DimScores,
    ) -> Result<(), TuneError> {
        store.save_calibration(
            &self.key(survey),
            &self.model_sha256,
            &survey.id,
            &self.regions,
            values,
        )?;
        Ok(())
    }
}

/// The calibration regions: the codes `given` (each looked up in the table, none twice), else
/// the table's default ([`calibration_regions`]).
pub fn resolve_calibration_regions(
    table: &RegionTable,
    given: Option<&[String]>,
) -> Result<Vec<String>, TuneError> {
    match given {
        Some(codes) => {
            let mut out: Vec<String> = Vec::with_capacity(codes.len());
            for c in codes {
                let code = table.find(c)?.code.clone();
                if out.contains(&code) {
                    return Err(TuneError::Invalid(format!(
                        "calibration region {code} is given more than once (--calibration-regions)"
                    )));
                }
                out.push(code);
            }
            Ok(out)
        }
        None => calibration_regions(table),
    }
}

/// The default calibration regions for a targets table: those of
/// [`DEFAULT_CALIBRATION_REGIONS`] that it has (all twelve in the built-in table); for a table
/// with fewer than three of them, its first twelve regions that publish all six dimensions.
/// An error when it has fewer than three such regions.
pub fn calibration_regions(table: &RegionTable) -> Result<Vec<String>, TuneError> {
    let known: Vec<String> = DEFAULT_CALIBRATION_REGIONS
        .iter()
        .filter(|c| table.all().iter().any(|r| r.code == **c))
        .map(|c| c.to_string())
        .collect();
    if known.len() >= MIN_CALIBRATION_REGIONS {
        return Ok(known);
    }
    // Regions with every dimension the table publishes (Hofstede's six for the shipped one).
    let most = table
        .all()
        .iter()
        .map(|r| r.scores.count())
        .max()
        .unwrap_or(0);
    let full: Vec<String> = table
        .all()
        .iter()
        .filter(|r| r.scores.count() == most)
        .take(DEFAULT_CALIBRATION_REGIONS.len())
        .map(|r| r.code.clone())
        .collect();
    if full.len() < MIN_CALIBRATION_REGIONS {
        return Err(TuneError::Invalid(format!(
            "the targets table has {} region(s) with all six dimensions published and {} of the default calibration regions ({}); calibration needs at least {MIN_CALIBRATION_REGIONS}: add regions or give --calibration-regions",
            full.len(),
            known.len(),
            DEFAULT_CALIBRATION_REGIONS.join(","),
        )));
    }
    Ok(full)
}

/// Calibrated constants: C_d = mean over the procedure's calibration regions of
/// (target_d - raw_d(naive answers)), over the regions that publish d, with the
/// procedure's panel. `progress` sees each region as it is done.
pub fn calibrate(
    model: &Model,
    ev: &mut Evaluator<'_>,
    survey: &Survey,
    table: &RegionTable,
    procedure: &Calibration,
    mut progress: impl FnMut(usize, &str),
) -> Result<DimScores, TuneError> {
    let (regions, panel, counterbalance) = (
        &procedure.regions,
        procedure.panel,
        procedure.counterbalance,
    );
    let mut sums = [0.0f64; MAX_DIMS];
    let mut counts = [0usize; MAX_DIMS];
    for (i, code) in regions.iter().enumerate() {
        let region = table.find(code)?;
        let p = SurveyPrompts::build(
            model,
            survey,
            &prompt::persona(region),
            &prompt::panel(panel),
            counterbalance,
        )?;
        let a = ev.evaluate(&p, PersonaInput::Text)?;
        let raw = indices(survey, &a.item_means(), &Constants::Zero)?;
        for (d, t) in region.scores.iter() {
            if let Some(r) = raw.get(d) {
                sums[d.index()] += t - r;
                counts[d.index()] += 1;
            }
        }
        progress(i + 1, code);
    }
    let mut c = DimScores::default();
    for d in crate::dimension::Dimension::known() {
        if counts[d.index()] > 0 {
            c.set(d, Some(sums[d.index()] / counts[d.index()] as f64));
        }
    }
    Ok(c)
}

/// The calibrated constants of a survey for a procedure: the stored ones when this model
/// and procedure were calibrated before, otherwise calibrated now (`progress` sees each
/// region) and stored.
pub fn constants_for(
    store: &Store,
    model: &Model,
    survey: &Survey,
    table: &RegionTable,
    procedure: &Calibration,
    progress: impl FnMut(usize, &str),
) -> Result<Constants, TuneError> {
    let key = procedure.key(survey);
    let values = match store.calibration(&key)? {
        Some((c, _)) => c,
        None => {
            let mut ev = Evaluator::new(model, procedure.settings)?;
            let c = calibrate(model, &mut ev, survey, table, procedure, progress)?;
            procedure.save(store, survey, &c)?;
            c
        }
    };
    Ok(procedure.constants(values))
}

impl TuneConfig {
    /// What this run's calibration depends on (the store's key of its constants).
    pub fn calibration(&self) -> Calibration {
        Calibration {
            model_sha256: self.model_sha256.clone(),
            weights: self.weights,
            settings: self.settings,
            panel: self.panel,
            counterbalance: self.counterbalance,
            regions: self.calibration_regions.clone(),
            chat_template: self.chat_template.clone(),
        }
    }
}

/// The surveys `calibrate` computes: those named (built-in ids or survey files), else the
/// training and the held-out survey of a default `tune` run.
pub fn surveys_to_calibrate(specs: &[String]) -> Result<Vec<Survey>, TuneError> {
    if specs.is_empty() {
        use crate::survey::{HELDOUT_SURVEY_ID, TRAINING_SURVEY_ID};
        return Ok(vec![
            Survey::builtin(TRAINING_SURVEY_ID)?,
            Survey::builtin(HELDOUT_SURVEY_ID)?,
        ]);
    }
    Ok(specs
        .iter()
        .map(|spec| Survey::from_id_or_path(spec))
        .collect::<Result<_, _>>()?)
}

/// One survey's calibrated values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SurveyCalibration {
    /// The survey's id.
    pub survey: String,
    /// The constants per dimension.
    pub constants: DimScores,
}

/// What `calibrate` computed and stored (the JSON of `calibrate --json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CalibrationReport {
    /// SHA-256 of the model file.
    pub model_sha256: String,
    /// The calibration regions.
    pub regions: Vec<String>,
    /// One entry per survey, in the order given.
    pub calibrations: Vec<SurveyCalibration>,
}

/// Calibrates each survey now (a stored calibration of the same key is replaced by the same
/// values: the procedure is deterministic) and stores it. `progress` hears the survey, the
/// regions done and the region just done.
pub fn calibrate_surveys(
    store: &Store,
    model: &Model,
    table: &RegionTable,
    procedure: &Calibration,
    surveys: &[Survey],
    progress: &mut dyn FnMut(&str, usize, &str),
) -> Result<CalibrationReport, TuneError> {
    let mut ev = Evaluator::new(model, procedure.settings)?;
    let mut calibrations = Vec::new();
    for survey in surveys {
        let c = calibrate(model, &mut ev, survey, table, procedure, |done, code| {
            progress(&survey.id, done, code)
        })?;
        procedure.save(store, survey, &c)?;
        calibrations.push(SurveyCalibration {
            survey: survey.id.clone(),
            constants: c,
        });
    }
    Ok(CalibrationReport {
        model_sha256: procedure.model_sha256.clone(),
        regions: procedure.regions.clone(),
        calibrations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(csv: &str) -> RegionTable {
        RegionTable::from_reader(csv.as_bytes(), "t.csv").unwrap()
    }

    #[test]
    fn an_edited_survey_gets_its_own_calibration_key() {
        let c = super::super::TuneConfig::new("USA", "m.gguf", "abc", 1).calibration();
        let a = Survey::builtin(crate::survey::TRAINING_SURVEY_ID).unwrap();
        let mut renamed = a.clone();
        renamed.name = "another title".into();
        renamed.items[0].construct = "documentation only".into();
        assert_eq!(c.key(&a), c.key(&renamed));
        let mut reworded = a.clone();
        reworded.items[3].text.push_str(" Please answer.");
        assert_ne!(c.key(&a), c.key(&reworded));
        let mut relabelled = a.clone();
        relabelled.scales[0].labels[4] = "unimportant".into();
        assert_ne!(c.key(&a), c.key(&relabelled));
        let mut reweighted = a.clone();
        reweighted.formulas[2].terms[1].coef = 25.0;
        assert_ne!(c.key(&a), c.key(&reweighted));
        let b = Survey::builtin(crate::survey::HELDOUT_SURVEY_ID).unwrap();
        assert_ne!(a.content_sha256(), b.content_sha256());
        assert_eq!(a.content_sha256().len(), 64);
    }

    #[test]
    fn calibration_regions_come_from_the_targets_table() {
        let builtin = calibration_regions(&RegionTable::builtin()).unwrap();
        assert_eq!(builtin, DEFAULT_CALIBRATION_REGIONS.map(String::from));
        // A table with three of the defaults: those three.
        let t = table("country,code,pdi,idv,mas,uai,lto,ivr\nA,USA,1,2,3,4,5,6\nB,CHI,1,2,3,4,5,6\nC,XXX,1,2,3,4,5,6\nD,JPN,1,2,3,4,5,\n");
        assert_eq!(calibration_regions(&t).unwrap(), ["USA", "JPN", "CHI"]);
        // None of the defaults: its regions with all six dimensions, in table order.
        let t = table("country,code,pdi,idv,mas,uai,lto,ivr\nA,AAA,1,2,3,4,5,6\nB,BBB,1,2,3,4,5,\nC,CCC,1,2,3,4,5,6\nD,DDD,1,2,3,4,5,6\n");
        assert_eq!(calibration_regions(&t).unwrap(), ["AAA", "CCC", "DDD"]);
        // Too few: a clear error.
        let t =
            table("country,code,pdi,idv,mas,uai,lto,ivr\nA,AAA,1,2,3,4,5,6\nB,BBB,1,2,3,4,5,\n");
        let e = calibration_regions(&t).unwrap_err();
        assert_eq!(e.code(), crate::error_code::ErrorCode::InvalidInput);
        assert!(e.to_string().contains("--calibration-regions"), "{e}");
        // Given codes are looked up.
        let given = ["usa".to_string()];
        let t = RegionTable::builtin();
        assert_eq!(
            resolve_calibration_regions(&t, Some(&given)).unwrap(),
            ["USA"]
        );
        let e = resolve_calibration_regions(&t, Some(&["Atlantis".to_string()])).unwrap_err();
        assert_eq!(e.code(), crate::error_code::ErrorCode::RegionUnknown);
    }
}
