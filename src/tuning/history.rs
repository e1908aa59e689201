//! What the store holds about tuning runs, as typed reports: the run list, one run's detail
//! (settings, trajectory, evaluations, comparison) and the compare rows over regions with the
//! spread of the tuned loss over seeds. Read-only and model-free; the CLI's `runs`, `show` and
//! `compare` render these, and the app reads their JSON (`ui/src/api.ts`, checked by
//! `src-tauri/tests/schema.rs`).

use super::report::Comparison;
use super::{TuneConfig, TuneError};
use crate::dimension::DimScores;
use crate::regions::{Region, RegionTable};
use crate::scoring::Constants;
use crate::store::{EvaluationRecord, MethodLabel, RunRecord, RunStatus, Store};
use crate::survey::Survey;
use serde::Serialize;

/// One line of the run list (`culturetune runs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub id: i64,
    /// Status.
    pub status: RunStatus,
    /// Region code.
    pub region: String,
    /// Training survey id.
    pub survey: String,
    /// Seed of the search.
    pub seed: u64,
    /// Candidates evaluated by the last checkpoint (none before the first generation).
    pub evals: Option<usize>,
    /// Best loss by the last checkpoint.
    pub best_loss: Option<f64>,
    /// Created (UTC, ISO 8601).
    pub created_at: String,
    /// Last change (UTC, ISO 8601).
    pub updated_at: String,
    /// Error message of a failed run.
    pub error: Option<String>,
}

/// Every run, newest first as the store lists them, with its progress.
pub fn run_summaries(store: &Store) -> Result<Vec<RunSummary>, TuneError> {
    let mut list = Vec::new();
    for r in store.runs()? {
        let last = store.last_checkpoint(r.id)?;
        list.push(RunSummary {
            id: r.id,
            status: r.status,
            seed: r.seed,
            evals: last.as_ref().map(|c| c.evals),
            best_loss: last.as_ref().map(|c| c.best_loss),
            region: r.region,
            survey: r.survey,
            created_at: r.created_at,
            updated_at: r.updated_at,
            error: r.error,
        });
    }
    Ok(list)
}

/// One generation of a run's trajectory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrajectoryPoint {
    /// Generation number.
    pub generation: usize,
    /// Candidates evaluated so far.
    pub evals: usize,
    /// Best loss so far.
    pub best_loss: f64,
    /// Mean loss of the population.
    pub mean_loss: f64,
    /// Indices of the best candidate.
    pub best_scores: DimScores,
    /// Seconds of tuning so far.
    pub elapsed_s: f64,
}

/// One run as `show` reports it (its JSON is `{run, trajectory, evaluations}`).
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    /// The stored run.
    pub run: RunRecord,
    /// One point per generation.
    pub trajectory: Vec<TrajectoryPoint>,
    /// Every stored evaluation of the run, oldest first.
    pub evaluations: Vec<EvaluationRecord>,
    /// The run's configuration, read from the store.
    #[serde(skip)]
    pub config: TuneConfig,
    /// The comparison of its methods on both surveys.
    #[serde(skip)]
    pub comparison: Comparison,
}

/// One run's detail: its stored configuration read, its trajectory and evaluations, and the
/// comparison of its methods.
pub fn run_detail(store: &Store, table: &RegionTable, id: i64) -> Result<RunDetail, TuneError> {
    let run = store.run(id)?;
    let config = TuneConfig::from_stored(&run)?;
    let trajectory = store
        .checkpoints(run.id)?
        .into_iter()
        .map(|c| TrajectoryPoint {
            generation: c.generation,
            evals: c.evals,
            best_loss: c.best_loss,
            mean_loss: c.mean_loss,
            best_scores: c.best_scores,
            elapsed_s: c.elapsed_s,
        })
        .collect();
    let evaluations = store.evaluations(Some(run.id))?;
    let region = &config.region(table)?;
    let [train, heldout] = survey_ids(&config)?;
    let constants = train_constants(&evaluations, &train);
    let comparison =
        Comparison::from_evaluations(region, &constants, &evaluations, &train, &heldout, None)
            .with_population(config.population.as_ref());
    Ok(RunDetail {
        run,
        trajectory,
        evaluations,
        config,
        comparison,
    })
}

/// The ids of a configuration's training and held-out surveys (loaded, so a survey file
/// gives the id inside it).
fn survey_ids(config: &TuneConfig) -> Result<[String; 2], TuneError> {
    Ok([
        Survey::from_id_or_path(&config.survey)?.id,
        Survey::from_id_or_path(&config.heldout_survey)?.id,
    ])
}

/// The constants of the newest evaluation on a survey (zero when there is none).
fn train_constants(evals: &[EvaluationRecord], survey: &str) -> Constants {
    evals
        .iter()
        .rev()
        .find(|e| e.survey == survey)
        .and_then(|e| serde_json::from_value(e.constants.clone()).ok())
        .unwrap_or(Constants::Zero)
}

/// The L1 loss of each method on one survey (absent where it was not evaluated).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Losses {
    /// Naive persona.
    pub naive: Option<f64>,
    /// In-context prompt.
    pub icl: Option<f64>,
    /// Tuned soft prompt.
    pub tuned: Option<f64>,
}

/// Count, mean, sample standard deviation (0 for one value), min and max of some losses;
/// absent values when there are none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// How many.
    pub n: usize,
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation.
    pub sd: Option<f64>,
    /// Smallest.
    pub min: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Spread {
    /// The spread of `xs`.
    pub fn of(xs: &[f64]) -> Spread {
        if xs.is_empty() {
            return Spread {
                n: 0,
                mean: None,
                sd: None,
                min: None,
                max: None,
            };
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = if xs.len() > 1 {
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Spread {
            n: xs.len(),
            mean: Some(mean),
            sd: Some(sd),
            min: xs.iter().copied().reduce(f64::min),
            max: xs.iter().copied().reduce(f64::max),
        }
    }
}

/// The tuned losses of a region's finished runs that differ from the newest only in their
/// seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedSpread {
    /// Those runs (the newest included).
    pub runs: Vec<i64>,
    /// Their tuned losses on the training survey.
    pub train: Spread,
    /// Their tuned losses on the held-out survey.
    pub heldout: Spread,
}

/// One region of `compare`: the newest finished run's losses and the spread over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareRow {
    /// Region code.
    pub region: String,
    /// Region name.
    pub name: String,
    /// The newest finished run of the region, if any (the fields below need one).
    pub run: Option<i64>,
    /// Losses on its training survey.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<Losses>,
    /// Losses on its held-out survey.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heldout: Option<Losses>,
    /// Its training survey's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_survey: Option<String>,
    /// Its held-out survey's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heldout_survey: Option<String>,
    /// The spread over seeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<SeedSpread>,
}

/// The compare rows of the regions asked for (codes or names), in that order.
pub fn compare(
    store: &Store,
    table: &RegionTable,
    queries: &[String],
) -> Result<Vec<CompareRow>, TuneError> {
    let done: Vec<RunRecord> = store
        .runs()?
        .into_iter()
        .filter(|r| r.status == RunStatus::Done)
        .collect();
    let mut rows = Vec::new();
    for q in queries {
        let region = table.find(q)?;
        let newest = done.iter().find(|r| r.region == region.code);
        rows.push(match newest {
            None => CompareRow {
                region: region.code.clone(),
                name: region.name.clone(),
                run: None,
                train: None,
                heldout: None,
                train_survey: None,
                heldout_survey: None,
                seeds: None,
            },
            Some(run) => compare_row(store, region, run, &done)?,
        });
    }
    Ok(rows)
}

/// The compare row of a region's newest finished run; `done` is every finished run.
fn compare_row(
    store: &Store,
    region: &Region,
    run: &RunRecord,
    done: &[RunRecord],
) -> Result<CompareRow, TuneError> {
    let config = TuneConfig::from_stored(run)?;
    // Runs of this region with the same settings but another seed: mean and spread.
    let mut same = Vec::new();
    for r in done.iter().filter(|r| r.region == region.code) {
        if TuneConfig::from_stored(r).is_ok_and(|c| c.same_but_seeds(&config)) {
            same.push((r.id, store.evaluations(Some(r.id))?));
        }
    }
    let ids = [&config.survey, &config.heldout_survey].map(|s| {
        Survey::from_id_or_path(s)
            .map(|s| s.id)
            .unwrap_or_else(|_| s.clone())
    });
    // The newest run is one of `same`: its evaluations were read there.
    let evals = same
        .iter()
        .find(|(id, _)| *id == run.id)
        .map_or(&[][..], |(_, e)| e.as_slice());
    let latest = |evals: &[EvaluationRecord], m: MethodLabel, survey: &str| {
        EvaluationRecord::latest(evals, m, survey).map(|e| e.loss)
    };
    let losses = |survey: &str| Losses {
        naive: latest(evals, MethodLabel::Naive, survey),
        icl: latest(evals, MethodLabel::Icl, survey),
        tuned: latest(evals, MethodLabel::Tuned, survey),
    };
    let tuned = |survey: &str| -> Vec<f64> {
        same.iter()
            .filter_map(|(_, e)| latest(e, MethodLabel::Tuned, survey))
            .collect()
    };
    let [train, heldout] = ids;
    Ok(CompareRow {
        region: region.code.clone(),
        name: region.name.clone(),
        run: Some(run.id),
        train: Some(losses(&train)),
        heldout: Some(losses(&heldout)),
        seeds: Some(SeedSpread {
            runs: same.iter().map(|(id, _)| *id).collect(),
            train: Spread::of(&tuned(&train)),
            heldout: Spread::of(&tuned(&heldout)),
        }),
        train_survey: Some(train),
        heldout_survey: Some(heldout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_is_the_sample_spread() {
        let s = Spread::of(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!(s.n, 4);
        assert_eq!(s.mean, Some(3.0));
        assert!((s.sd.unwrap() - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (Some(1.0), Some(6.0)));
        assert_eq!(Spread::of(&[4.0]).sd, Some(0.0));
        let none = Spread::of(&[]);
        assert_eq!((none.n, none.mean, none.sd), (0, None, None));
    }
}
