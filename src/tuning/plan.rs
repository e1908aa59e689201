//! A sweep as a list of jobs any scheduler can run (`culturetune plan`, `culturetune job`):
//! regions x seeds x models expanded into checked configurations, each with an id derived
//! from its content, written one JSON object per line; and, on a worker, what to do with one
//! of them in a given database (start it, resume it from its checkpoint, or nothing because
//! it is done). docs/scale.md shows the plan run on Ray and on SLURM.

use super::calibration::{calibrate_surveys, surveys_to_calibrate, CalibrationReport};
use super::job::JobSpec;
use super::request::{model_facts, resolve, EngineChoice, ModelFacts, TuneRequest};
use super::{TuneConfig, TuneError, CONFIG_VERSION};
use crate::engine::options::EngineOptions;
use crate::fingerprint::{hex, sha256_file};
use crate::regions::RegionTable;
use crate::store::{RunStatus, Store};
use crate::survey::Survey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// One job of a plan: what to run, and the id that names it wherever it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedJob {
    /// The first 16 hex digits of the SHA-256 of the configuration's job key
    /// ([`TuneConfig::job_key`]): equal for equal jobs on any machine.
    pub id: String,
    /// Region code (also in `config`; here for people and schedulers).
    pub region: String,
    /// Seed (also in `config`).
    pub seed: u64,
    /// The first 16 hex digits of the SHA-256 of the job's calibration keys (training and
    /// held-out survey): jobs with equal ones can share one calibration
    /// ([`calibrate_job`]).
    pub calibration: String,
    /// The checked configuration, as `tune` would store it.
    pub config: TuneConfig,
}

/// A job's id: the first 16 hex digits of the SHA-256 of its job key.
pub fn job_id(config: &TuneConfig) -> String {
    let digest = Sha256::digest(config.job_key().as_bytes());
    hex(&digest[..8])
}

/// The id of a job's calibration: the first 16 hex digits of the SHA-256 of its calibration
/// keys for the training and the held-out survey.
pub fn calibration_id(config: &TuneConfig) -> Result<String, TuneError> {
    let procedure = config.calibration();
    let mut h = Sha256::new();
    for survey in [&config.survey, &config.heldout_survey] {
        h.update(procedure.key(&Survey::from_id_or_path(survey)?).as_bytes());
        h.update(b"\n");
    }
    Ok(hex(&h.finalize()[..8]))
}

/// What a sweep varies; everything else comes from the base request and engine options.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Region codes or names, or the single word `all` (every region of the targets table).
    pub regions: Vec<String>,
    /// Seeds (at least one).
    pub seeds: Vec<u64>,
    /// Model files (none: the engine options' model).
    pub models: Vec<std::path::PathBuf>,
}

/// Expands a sweep into jobs: for each model (hashed once; its path made absolute), region
/// and seed, the base request resolved as `tune` resolves it. A job named twice is listed
/// once.
pub fn plan(
    sweep: &Sweep,
    base: &TuneRequest,
    table: &RegionTable,
    engine: &EngineOptions,
    note: &mut dyn FnMut(String),
) -> Result<Vec<PlannedJob>, TuneError> {
    let regions = plan_regions(&sweep.regions, table)?;
    if sweep.seeds.is_empty() {
        return Err(TuneError::Invalid(
            "name at least one seed (--seeds)".into(),
        ));
    }
    let models = if sweep.models.is_empty() {
        vec![engine.model_path()]
    } else {
        sweep.models.clone()
    };
    let mut jobs: Vec<PlannedJob> = Vec::new();
    for model in models {
        let mut opts = engine.clone();
        // Workers run jobs from other directories: the plan names the file absolutely.
        opts.model = Some(std::path::absolute(&model).unwrap_or(model));
        let mut facts: Option<ModelFacts> = None;
        let choice = EngineChoice::of(&opts)?;
        for region in &regions {
            for &seed in &sweep.seeds {
                let req = TuneRequest {
                    region: Some(region.clone()),
                    seed: Some(seed),
                    ..base.clone()
                };
                let config = resolve(&req, table, &choice, || match &facts {
                    Some(f) => Ok(f.clone()),
                    None => model_facts(&opts, note).inspect(|f| facts = Some(f.clone())),
                })?;
                let job = PlannedJob {
                    id: job_id(&config),
                    region: config.region.clone(),
                    seed,
                    calibration: calibration_id(&config)?,
                    config,
                };
                if !jobs.iter().any(|j| j.id == job.id) {
                    jobs.push(job);
                }
            }
        }
    }
    Ok(jobs)
}

/// The region codes a sweep names (`all`: the whole table, in its order).
fn plan_regions(named: &[String], table: &RegionTable) -> Result<Vec<String>, TuneError> {
    if named.len() == 1 && named[0].trim().eq_ignore_ascii_case("all") {
        return Ok(table.all().iter().map(|r| r.code.clone()).collect());
    }
    if named.is_empty() {
        return Err(TuneError::Invalid(
            "name the regions to plan (--region USA,CHI or --region all)".into(),
        ));
    }
    named
        .iter()
        .map(|q| Ok(table.find(q)?.code.clone()))
        .collect()
}

/// The largest plan read (a job line is about 1.5 kB: some 60,000 jobs).
const MAX_PLAN_BYTES: u64 = 100 << 20;

/// Reads a plan (JSON lines; blank lines skipped). A line that is not a job, whose id does
/// not match its configuration (an edited line), or that a newer culturetune wrote is refused
/// with the file and line.
pub fn read_plan(path: &Path) -> Result<Vec<PlannedJob>, TuneError> {
    let text = crate::input_file::read_text(path, MAX_PLAN_BYTES)
        .map_err(|e| TuneError::Invalid(format!("cannot read the plan {}: {e}", path.display())))?;
    let mut jobs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |m: String| TuneError::Invalid(format!("{} line {}: {m}", path.display(), i + 1));
        let job: PlannedJob = serde_json::from_str(line)
            .map_err(|e| at(format!("not a job of `culturetune plan`: {e}")))?;
        if job.config.version > CONFIG_VERSION {
            return Err(at(format!(
                "written by a newer culturetune (configuration version {}; this one reads up to {CONFIG_VERSION})",
                job.config.version
            )));
        }
        let id = job_id(&job.config);
        if job.id != id || job.region != job.config.region || job.seed != job.config.de.seed {
            return Err(at(format!(
                "key `id` is {} but the configuration's id is {id} (or region/seed differ from it): the line was edited; make the plan again",
                job.id
            )));
        }
        job.config.check().map_err(|e| at(e.to_string()))?;
        if job.calibration != calibration_id(&job.config).map_err(|e| at(e.to_string()))? {
            return Err(at(format!(
                "key `calibration` is {} but the configuration's is another: the line was edited; make the plan again",
                job.calibration
            )));
        }
        jobs.push(job);
    }
    Ok(jobs)
}

/// Which job of a plan: by its position (0-based, as SLURM's array index) or by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    /// The job on this line of the plan's jobs (0 = the first).
    Index(usize),
    /// The job with this id.
    Id(String),
}

/// The job `which` names in `jobs`.
pub fn pick<'a>(jobs: &'a [PlannedJob], which: &JobRef) -> Result<&'a PlannedJob, TuneError> {
    match which {
        JobRef::Index(i) => jobs.get(*i).ok_or_else(|| {
            TuneError::Invalid(format!(
                "--index {i} is past the plan's end: it has {} jobs (0..={})",
                jobs.len(),
                jobs.len().saturating_sub(1)
            ))
        }),
        JobRef::Id(id) => jobs
            .iter()
            .find(|j| j.id == *id)
            .ok_or_else(|| TuneError::Invalid(format!("no job with id {id} in the plan"))),
    }
}

/// Computes and stores in `store` the calibration a job needs (both surveys), so that the
/// jobs sharing it (equal [`PlannedJob::calibration`]) can start from a copy of it instead of
/// each computing it (`culturetune job --calibrate-only`, then `merge`).
pub fn calibrate_job(
    store: &Store,
    table: &RegionTable,
    job: &PlannedJob,
    progress: &mut dyn FnMut(&str, usize, &str),
    note: &mut dyn FnMut(String),
) -> Result<CalibrationReport, TuneError> {
    let c = &job.config;
    let surveys = surveys_to_calibrate(&[c.survey.clone(), c.heldout_survey.clone()])?;
    let path = Path::new(&c.model_path);
    let sha = checked_model(job)?;
    let model = crate::engine::load_for_evaluation(
        path,
        c.weights,
        c.settings.threads,
        c.gpu_layers,
        c.chat_template.as_deref(),
        note,
    )?;
    store.upsert_model(&super::model_record(&model, &sha, path))?;
    calibrate_surveys(store, &model, table, &c.calibration(), &surveys, progress)
}

/// The job's model file's SHA-256, refused unless it is the one the plan hashed.
fn checked_model(job: &PlannedJob) -> Result<String, TuneError> {
    let sha = sha256_file(Path::new(&job.config.model_path)).map_err(|e| {
        TuneError::Invalid(format!(
            "job {}'s model file {}: {e}",
            job.id, job.config.model_path
        ))
    })?;
    if sha != job.config.model_sha256 {
        return Err(TuneError::Invalid(format!(
            "job {}'s model file {} has SHA-256 {sha}, not the plan's {}: make the plan on this file",
            job.id, job.config.model_path, job.config.model_sha256
        )));
    }
    Ok(sha)
}

/// What a worker does with a job in its database.
#[derive(Debug, Clone)]
pub enum NextStep {
    /// The job is done there already, as this run.
    Done(i64),
    /// Start it (or resume the run that holds it).
    Run(JobSpec),
}

/// Finds the job in the store: a finished run of it means it is done; an interrupted,
/// cancelled or failed one is resumed from its last checkpoint; none starts it, after checking
/// that the model file is still the one the plan hashed.
pub fn next_step(store: &Store, job: &PlannedJob) -> Result<NextStep, TuneError> {
    let key = job.config.job_key();
    let mut resumable = None;
    for run in store.runs()? {
        let Ok(stored) = TuneConfig::from_stored(&run) else {
            continue;
        };
        if stored.job_key() != key {
            continue;
        }
        match run.status {
            RunStatus::Done => return Ok(NextStep::Done(run.id)),
            RunStatus::Running => {
                return Err(TuneError::Invalid(format!(
                    "job {} is running as run {} in another process",
                    job.id, run.id
                )))
            }
            _ => resumable = resumable.or(Some(run.id)),
        }
    }
    if let Some(id) = resumable {
        return Ok(NextStep::Run(JobSpec::Resume(id)));
    }
    checked_model(job)?;
    Ok(NextStep::Run(JobSpec::New(Box::new(job.config.clone()))))
}

/// What a worker did with a job (`culturetune job --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// The job's id.
    pub job: String,
    /// The run that holds it in the worker's database.
    pub run: i64,
    /// What was done.
    pub action: JobAction,
    /// The search's best training loss.
    pub best_loss: f64,
    /// Candidates evaluated (across resumes).
    pub evals: usize,
}

/// What a worker did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// Nothing: the database already held it, finished.
    AlreadyDone,
    /// Ran it from the start.
    Started,
    /// Continued it from its last checkpoint.
    Resumed,
}

impl JobReport {
    /// One line for people: what was done, the run and its best loss.
    pub fn describe(&self) -> String {
        let what = match self.action {
            JobAction::AlreadyDone => "was already done",
            JobAction::Started => "done",
            JobAction::Resumed => "resumed and done",
        };
        format!(
            "job {} {what}: run {}, best loss {:.2} after {} evaluations",
            self.job, self.run, self.best_loss, self.evals
        )
    }

    /// The report of a job this process ran to its end (`resumed`: from a checkpoint).
    pub fn ran(job: &PlannedJob, resumed: bool, o: &super::job::JobOutcome) -> JobReport {
        JobReport {
            job: job.id.clone(),
            run: o.run,
            action: match resumed {
                true => JobAction::Resumed,
                false => JobAction::Started,
            },
            best_loss: o.best_loss,
            evals: o.evals,
        }
    }

    /// The report of a job found done as `run`: its last checkpoint's figures.
    pub fn already_done(store: &Store, job: &PlannedJob, run: i64) -> Result<JobReport, TuneError> {
        let last = store.last_checkpoint(run)?.ok_or_else(|| {
            TuneError::Invalid(format!("run {run} is done but has no checkpoint"))
        })?;
        Ok(JobReport {
            job: job.id.clone(),
            run,
            action: JobAction::AlreadyDone,
            best_loss: last.best_loss,
            evals: last.evals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(seed: u64) -> PlannedJob {
        let mut config = TuneConfig::new("USA", "m.gguf", "abc", seed);
        config.settings.threads = 2;
        PlannedJob {
            id: job_id(&config),
            region: "USA".into(),
            seed,
            calibration: calibration_id(&config).unwrap(),
            config,
        }
    }

    #[test]
    fn ids_ignore_the_machine_and_follow_the_job() {
        let a = job(1);
        let mut moved = a.config.clone();
        moved.model_path = "/elsewhere/m.gguf".into();
        moved.settings.threads = 16;
        assert_eq!(job_id(&moved), a.id);
        assert_ne!(job(2).id, a.id);
        let mut other = a.config.clone();
        other.de.max_evals = Some(48);
        assert_ne!(job_id(&other), a.id);
        assert_eq!(a.id.len(), 16);
    }

    #[test]
    fn an_edited_line_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.jsonl");
        let line = |j: &PlannedJob| serde_json::to_string(j).unwrap();
        let mut edited = job(2);
        edited.config.de.max_evals = Some(999);
        let text = format!("{}\n\n{}\n", line(&job(1)), line(&edited));
        std::fs::write(&path, text).unwrap();
        let e = read_plan(&path).unwrap_err().to_string();
        assert!(
            e.contains("plan.jsonl line 3") && e.contains("key `id`"),
            "{e}"
        );
        std::fs::write(&path, format!("{}\n{}\n", line(&job(1)), line(&job(2)))).unwrap();
        let jobs = read_plan(&path).unwrap();
        assert_eq!(jobs, vec![job(1), job(2)]);
        assert_eq!(pick(&jobs, &JobRef::Index(1)).unwrap().seed, 2);
        let e = pick(&jobs, &JobRef::Index(2)).unwrap_err().to_string();
        assert!(e.contains("2 jobs"), "{e}");
        std::fs::write(&path, "{\"id\": 1}\n").unwrap();
        let e = read_plan(&path).unwrap_err().to_string();
        assert!(e.contains("line 1: not a job"), "{e}");
    }
}
