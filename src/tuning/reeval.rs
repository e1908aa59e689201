//! `eval`: a finished run's tuned prompt and its baselines measured again on both surveys,
//! through the run's own procedure (its stored settings, weights and GPU layers), stored as
//! new evaluations of the run.

use super::calibration::constants_for;
use super::report::Comparison;
use super::{TuneConfig, TuneError, Tuner};
use crate::engine;
use crate::prompt::Method;
use crate::regions::RegionTable;
use crate::store::{MethodLabel, Store};
use crate::survey::Survey;
use std::path::Path;

/// Re-evaluates run `id`'s tuned prompt and the naive and ICL prompts, stores the results
/// and returns the run's comparison from them. `note` hears the model load's and the
/// calibration's progress lines.
pub fn reevaluate(
    store: &Store,
    table: &RegionTable,
    id: i64,
    note: &mut dyn FnMut(String),
) -> Result<Comparison, TuneError> {
    let run = store.run(id)?;
    let config = TuneConfig::from_stored(&run)?;
    let prompt = store.prompt_for_run(run.id)?.ok_or_else(|| {
        TuneError::Invalid(format!(
            "run {} has no tuned prompt yet (status {})",
            run.id,
            run.status.as_str()
        ))
    })?;
    let train = Survey::from_id_or_path(&config.survey)?;
    let heldout = Survey::from_id_or_path(&config.heldout_survey)?;
    let region = config.region(table)?;
    let model = engine::load_for_evaluation(
        Path::new(&config.model_path),
        config.weights,
        config.settings.threads,
        // The run's own layers (a build without a GPU backend loads them on the CPU).
        config.gpu_layers,
        config.chat_template.as_deref(),
        note,
    )?;
    // The run's calibration, or (a database from before calibrations were keyed by survey
    // content) the same calibration computed again: deterministic, so the same constants.
    let mut constants = |s: &Survey| {
        constants_for(
            store,
            &model,
            s,
            table,
            &config.calibration(),
            |done, code| {
                note(format!(
                    "calibrating {}: {done}/{} ({code})",
                    s.id,
                    config.calibration_regions.len()
                ))
            },
        )
    };
    let (c_train, c_heldout) = if config.calibrates() {
        (constants(&train)?, constants(&heldout)?)
    } else {
        (
            crate::scoring::Constants::Zero,
            crate::scoring::Constants::Zero,
        )
    };
    let mut tuner = Tuner::new(
        &model,
        &config,
        train.clone(),
        region.clone(),
        c_train.clone(),
    )?;
    for (survey, c) in [(&train, &c_train), (&heldout, &c_heldout)] {
        let target = config.target(survey, &region)?;
        let ctx = (run.id, config.model_sha256.as_str(), region.code.as_str());
        measure(store, &mut tuner, ctx, (survey, c, &target), &prompt.rows)?;
    }
    let evals = store.evaluations(Some(run.id))?;
    Ok(
        Comparison::from_evaluations(&region, &c_train, &evals, &train.id, &heldout.id, None)
            .with_population(config.population.as_ref()),
    )
}

/// The naive, ICL and tuned prompts on one survey, each stored as an evaluation of the run;
/// `ctx` is the run, the model's hash and the region.
fn measure(
    store: &Store,
    tuner: &mut Tuner<'_>,
    (run, sha, region): (i64, &str, &str),
    (survey, c, target): (&Survey, &crate::scoring::Constants, &super::target::Target),
    tuned: &[f32],
) -> Result<(), TuneError> {
    for (label, method, rows) in [
        (MethodLabel::Naive, Method::Naive, None),
        (MethodLabel::Icl, Method::Icl, None),
        (MethodLabel::Tuned, Method::Naive, Some(tuned)),
    ] {
        let r = tuner.evaluate_on(survey, c, target, method, rows)?;
        store.save_evaluation(&r.record(Some(run), sha, label, &survey.id, region, c))?;
    }
    Ok(())
}
