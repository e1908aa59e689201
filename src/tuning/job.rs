//! The tuning job, start to end: load the model, calibrate the constants (once per model and
//! procedure), create or claim the run, evaluate the baselines, search with a checkpoint per
//! generation, evaluate and store the tuned prompt with its card. Every status change of the
//! run happens here; what happens is told to a [`JobSink`], which can also stop the job.
//!
//! The command line drives it with two sinks (JSON lines, or a progress bar and a final
//! table); tests drive it in-process and assert on the events.

use super::calibration::constants_for;
use super::target::Target;
use super::{MethodResult, TuneConfig, TuneError, Tuner};
use crate::dimension::DimScores;
use crate::engine::{self, EngineError, Model};
use crate::events::Event;
use crate::fingerprint::sha256_file;
use crate::optim::{DeState, Outcome};
use crate::prompt::Method;
use crate::regions::{Region, RegionTable};
use crate::scoring::{gap_closed, Constants};
use crate::store::{EvaluationRecord, MethodLabel, RunStatus, Store};
use crate::survey::Survey;
use serde::Serialize;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which job to run.
#[derive(Debug, Clone)]
pub enum JobSpec {
    /// A new run with this configuration.
    New(Box<TuneConfig>),
    /// Continue a cancelled or interrupted run from its last checkpoint.
    Resume(i64),
}

/// Where a job's events go. Returning `ControlFlow::Break` from [`JobSink::event`] stops the
/// job as a cancel does, at the next point where the stored state is consistent (after the
/// calibration, a baseline, or a generation's checkpoint); the run stays resumable.
pub trait JobSink {
    /// One event of the job.
    fn event(&mut self, event: &Event) -> ControlFlow<()>;
    /// A line for people: what was loaded, what is being calibrated, how to resume.
    fn note(&mut self, _text: &str) {}
}

/// A job that ran to its end.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// The run.
    pub run: i64,
    /// Its region.
    pub region: Region,
    /// Best training loss of the search.
    pub best_loss: f64,
    /// Candidates evaluated (across resumes).
    pub evals: usize,
    /// Generations completed.
    pub generations: usize,
    /// Seconds of search (across resumes).
    pub elapsed_s: f64,
    /// The training and the held-out survey.
    pub surveys: [Survey; 2],
    /// The training survey's constants.
    pub train_constants: Constants,
    /// Every evaluation stored for the run (baselines and tuned, both surveys).
    pub evaluations: Vec<EvaluationRecord>,
    /// The population the run was scored against (absent for a region run).
    pub population: Option<super::target::Population>,
}

use MethodLabel::{Icl as ICL, Naive as NAIVE, Tuned as TUNED};

/// A sink that writes every event as one JSON line (`--events jsonl`, docs/events.md) and
/// notes on stderr; a failed write stops the job and is kept in `failed`.
pub struct JsonLines<'a> {
    /// Where the lines go.
    pub out: &'a mut dyn Write,
    /// Why writing failed (the job was stopped then).
    pub failed: Option<std::io::Error>,
}

impl JobSink for JsonLines<'_> {
    fn event(&mut self, e: &Event) -> ControlFlow<()> {
        let written =
            writeln!(self.out, "{}", crate::events::to_line(e)).and_then(|()| self.out.flush());
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(err) => {
                self.failed.get_or_insert(err);
                ControlFlow::Break(())
            }
        }
    }

    fn note(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

/// Runs a job. On an error the run (if it exists) is marked `failed` and an `Error` event is
/// sent; on a cancel (the flag, or the sink) it is marked `cancelled`, a `Finished` event says
/// so, and `Err(TuneError::Cancelled)` is returned.
pub fn run(
    spec: JobSpec,
    store: &mut Store,
    table: &RegionTable,
    cancel: &AtomicBool,
    sink: &mut dyn JobSink,
) -> Result<JobOutcome, TuneError> {
    let mut job = Job {
        store,
        table,
        cancel,
        sink,
        run: None,
    };
    let result = job.resolve(spec).and_then(|(config, existing)| {
        job.run = existing;
        job.drive(&config)
    });
    match result {
        Ok(o) => Ok(o),
        Err(TuneError::Cancelled) => Err(job.cancelled()),
        Err(e) => {
            if let Some(id) = job.run {
                let _ = job
                    .store
                    .set_status(id, RunStatus::Failed, Some(&e.to_string()));
            }
            let _ = job.sink.event(&Event::Error {
                run: job.run,
                code: e.code(),
                message: e.to_string(),
            });
            Err(e)
        }
    }
}

/// The typed card stored with a tuned prompt and exported with it (`culturetune.json`).
#[derive(Debug, Clone, Serialize)]
pub struct PromptCard {
    /// SHA-256 of the model file given.
    pub model_sha256: String,
    /// The model's name.
    pub model_name: String,
    /// The model file given.
    pub model_file: String,
    /// Weight type evaluated.
    pub weights: engine::WeightType,
    /// The model's architecture.
    pub architecture: String,
    /// Where the rows go (placement, anchor, ...).
    pub insertion: super::placed::Insertion,
    /// Region code.
    pub region: String,
    /// Region name.
    pub region_name: String,
    /// Training survey.
    pub survey: String,
    /// Held-out survey.
    pub heldout_survey: String,
    /// Constants of both surveys.
    pub constants: CardConstants,
    /// Losses of the three methods on both surveys.
    pub losses: CardLosses,
    /// Optimizer settings.
    pub optimizer: crate::optim::DeOptions,
    /// The soft-prompt space (k, d, seed, scale).
    pub parametrization: crate::soft_prompt::Parametrization,
    /// Seed of the search.
    pub seed: u64,
    /// Evaluation settings.
    pub settings: engine::evaluate::EvalSettings,
    /// Panel size.
    pub panel: usize,
    /// Counterbalanced option order.
    pub counterbalance: bool,
    /// The run.
    pub run: i64,
    /// Candidates evaluated.
    pub evals: usize,
    /// Generations completed.
    pub generations: usize,
}

/// A card's constants per survey.
#[derive(Debug, Clone, Serialize)]
pub struct CardConstants {
    /// Training survey.
    pub train: Constants,
    /// Held-out survey.
    pub heldout: Constants,
}

/// A card's losses per survey.
#[derive(Debug, Clone, Serialize)]
pub struct CardLosses {
    /// Training survey.
    pub train: MethodLosses,
    /// Held-out survey.
    pub heldout: MethodLosses,
}

/// L1 losses of the three methods on one survey.
#[derive(Debug, Clone, Serialize)]
pub struct MethodLosses {
    /// Naive persona.
    pub naive: Option<f64>,
    /// In-context prompt.
    pub icl: Option<f64>,
    /// Tuned soft prompt.
    pub tuned: f64,
}

fn already_done(id: i64) -> TuneError {
    TuneError::Invalid(format!(
        "run {id} is already done; see `culturetune show {id}`"
    ))
}

/// What a run is measured against: its region (the persona), both surveys, their constants
/// and their targets.
struct RunSetting {
    region: Region,
    train: Survey,
    heldout: Survey,
    c_train: Constants,
    c_heldout: Constants,
    targets: [Target; 2],
}

impl RunSetting {
    /// The training and the held-out survey with their constants and targets.
    fn surveys(&self) -> [(&Survey, &Constants, &Target); 2] {
        [
            (&self.train, &self.c_train, &self.targets[0]),
            (&self.heldout, &self.c_heldout, &self.targets[1]),
        ]
    }
}

/// The card of a tuned prompt whose tuned losses are `tuned` (training, held-out); the
/// baselines' losses come from `evaluations`. The run and its counts are the caller's.
fn card(
    config: &TuneConfig,
    run: &RunSetting,
    model: &Model,
    tuner: &Tuner<'_>,
    evaluations: &[EvaluationRecord],
    tuned: [f64; 2],
) -> PromptCard {
    let loss_of = |m: MethodLabel, s: &Survey| {
        EvaluationRecord::latest(evaluations, m, &s.id).map(|e| e.loss)
    };
    let losses = |s: &Survey, tuned: f64| MethodLosses {
        naive: loss_of(NAIVE, s),
        icl: loss_of(ICL, s),
        tuned,
    };
    PromptCard {
        model_sha256: config.model_sha256.clone(),
        model_name: model.info().name.clone(),
        model_file: config.model_path.clone(),
        weights: config.weights,
        architecture: model.info().architecture.clone(),
        insertion: tuner.insertion(),
        region: run.region.code.clone(),
        region_name: run.region.name.clone(),
        survey: run.train.id.clone(),
        heldout_survey: run.heldout.id.clone(),
        constants: CardConstants {
            train: run.c_train.clone(),
            heldout: run.c_heldout.clone(),
        },
        losses: CardLosses {
            train: losses(&run.train, tuned[0]),
            heldout: losses(&run.heldout, tuned[1]),
        },
        optimizer: config.de.clone(),
        parametrization: tuner.space().param.clone(),
        seed: config.de.seed,
        settings: config.settings,
        panel: config.panel,
        counterbalance: config.counterbalance,
        run: 0,
        evals: 0,
        generations: 0,
    }
}

struct Job<'a> {
    store: &'a mut Store,
    table: &'a RegionTable,
    cancel: &'a AtomicBool,
    sink: &'a mut dyn JobSink,
    /// The run, once it exists.
    run: Option<i64>,
}

impl Job<'_> {
    /// The configuration and, on resume, the run.
    fn resolve(&mut self, spec: JobSpec) -> Result<(TuneConfig, Option<i64>), TuneError> {
        match spec {
            JobSpec::New(config) => {
                config.check()?;
                Ok((*config, None))
            }
            JobSpec::Resume(id) => {
                let run = self.store.run(id)?;
                if run.status == RunStatus::Done {
                    return Err(already_done(id));
                }
                let config = TuneConfig::from_stored(&run)?;
                config.check()?;
                self.last_checkpoint(id, &config)?;
                // The check of the status and the claim are one statement: of two resumes
                // of one run, the second is refused here and never touches the run.
                match self.store.claim_run(id)? {
                    Ok(_) => Ok((config, Some(id))),
                    Err((RunStatus::Done, _)) => Err(already_done(id)),
                    Err((_, pid)) => Err(TuneError::Invalid(format!(
                        "run {id} is running in another process{}; wait for it to end (or stop it) before resuming",
                        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                    ))),
                }
            }
        }
    }

    /// Sends an event; a sink that asks to stop raises the cancel flag.
    fn emit(&mut self, e: Event) {
        if self.sink.event(&e).is_break() {
            self.cancel.store(true, Ordering::SeqCst);
        }
    }

    fn check_cancel(&self) -> Result<(), TuneError> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(TuneError::Cancelled);
        }
        Ok(())
    }

    /// Marks the run cancelled and says how to continue; the error to return.
    fn cancelled(&mut self) -> TuneError {
        let Some(id) = self.run else {
            return TuneError::Cancelled;
        };
        if let Err(e) = self.store.set_status(id, RunStatus::Cancelled, None) {
            return e.into();
        }
        let last = self.store.last_checkpoint(id).ok().flatten();
        let evals = last.as_ref().map_or(0, |c| c.evals);
        let _ = self.sink.event(&Event::Finished {
            run: id,
            status: RunStatus::Cancelled,
            best_loss: last.as_ref().map(|c| c.best_loss),
            evals,
            elapsed_s: last.as_ref().map_or(0.0, |c| c.elapsed_s),
        });
        self.sink.note(&format!(
            "run {id} cancelled after {evals} evaluations; continue with `culturetune resume {id}`"
        ));
        TuneError::Cancelled
    }

    fn load_model(&mut self, config: &TuneConfig) -> Result<Model, TuneError> {
        let given = Path::new(&config.model_path);
        // A new run hashed the file moments ago; a resumed one must still be on the same file.
        if self.run.is_some() {
            let sha = sha256_file(given).map_err(|source| EngineError::Io {
                path: config.model_path.clone(),
                source,
            })?;
            if sha != config.model_sha256 {
                return Err(TuneError::Invalid(format!(
                    "{} no longer has SHA-256 {} (the file changed since the run started)",
                    config.model_path, config.model_sha256
                )));
            }
        }
        let sink = &mut *self.sink;
        let model = engine::load_for_evaluation(
            given,
            config.weights,
            config.settings.threads,
            config.gpu_layers,
            config.chat_template.as_deref(),
            &mut |line| sink.note(&line),
        )?;
        self.store.upsert_model(&crate::tuning::model_record(
            &model,
            &config.model_sha256,
            given,
        ))?;
        Ok(model)
    }

    /// The calibrated constants of a survey (stored, or calibrated now with progress events);
    /// zero for a population run.
    fn constants(
        &mut self,
        model: &Model,
        survey: &Survey,
        config: &TuneConfig,
    ) -> Result<Constants, TuneError> {
        if !config.calibrates() {
            return Ok(Constants::Zero);
        }
        let total = config.calibration_regions.len();
        let run = self.run;
        let mut announced = false;
        let mut stop = false;
        let sink = &mut *self.sink;
        let c = constants_for(
            self.store,
            model,
            survey,
            self.table,
            &config.calibration(),
            |done, _| {
                if !announced {
                    sink.note(&format!(
                    "calibrating constants on {} ({total} regions, once per model and procedure)",
                    survey.id
                ));
                    announced = true;
                }
                let e = Event::Progress {
                    run,
                    stage: format!("calibrating {}", survey.id),
                    done,
                    total,
                };
                stop |= sink.event(&e).is_break();
            },
        )?;
        if stop {
            self.cancel.store(true, Ordering::SeqCst);
        }
        Ok(c)
    }

    fn drive(&mut self, config: &TuneConfig) -> Result<JobOutcome, TuneError> {
        let region = config.region(self.table)?;
        let train = Survey::from_id_or_path(&config.survey)?;
        let heldout = Survey::from_id_or_path(&config.heldout_survey)?;
        if train.id == heldout.id {
            return Err(TuneError::Invalid(format!(
                "the training survey is the held-out survey ({}): train on another one (--survey)",
                heldout.id
            )));
        }
        let model = self.load_model(config)?;
        let c_train = self.constants(&model, &train, config)?;
        let c_heldout = self.constants(&model, &heldout, config)?;
        self.check_cancel()?;
        let targets = [
            config.target(&train, &region)?,
            config.target(&heldout, &region)?,
        ];
        let run = RunSetting {
            region,
            train,
            heldout,
            c_train,
            c_heldout,
            targets,
        };
        // The search space is built (and every size it implies checked) before a new run
        // exists, so a setting the model cannot take leaves no run behind.
        let mut tuner = Tuner::new(
            &model,
            config,
            run.train.clone(),
            run.region.clone(),
            run.c_train.clone(),
        )?;
        let id = self.start_run(config, &run)?;
        self.baselines(id, config, &run, &mut tuner)?;
        self.check_cancel()?;
        let outcome = self.search(id, config, &mut tuner)?;
        self.finish(id, config, run, &model, &mut tuner, &outcome)
    }

    /// The run's id: the one resumed, or a new run created now; tells the sink it started.
    fn start_run(&mut self, config: &TuneConfig, run: &RunSetting) -> Result<i64, TuneError> {
        let resumed = self.run.is_some();
        let id = match self.run {
            Some(id) => id,
            None => self.store.create_run(
                &run.region.code,
                &run.train.id,
                NAIVE,
                &config.model_sha256,
                &serde_json::to_value(config).map_err(|e| TuneError::Other(e.to_string()))?,
                config.de.seed,
            )?,
        };
        self.run = Some(id);
        self.emit(Event::Started {
            run: id,
            region: run.region.code.clone(),
            survey: run.train.id.clone(),
            heldout_survey: run.heldout.id.clone(),
            max_evals: config.de.max_evals,
            resumed,
        });
        Ok(id)
    }

    /// The naive and ICL baselines on both surveys, once per run (a resumed run skips those
    /// it stored before).
    fn baselines(
        &mut self,
        id: i64,
        config: &TuneConfig,
        run: &RunSetting,
        tuner: &mut Tuner<'_>,
    ) -> Result<(), TuneError> {
        let done_before: Vec<(MethodLabel, String)> = self
            .store
            .evaluations(Some(id))?
            .into_iter()
            .map(|e| (e.method, e.survey))
            .collect();
        for (survey, constants, target) in run.surveys() {
            for (method, label) in [(Method::Naive, NAIVE), (Method::Icl, ICL)] {
                if !done_before.contains(&(label, survey.id.clone())) {
                    self.check_cancel()?;
                    let r = tuner.evaluate_on(survey, constants, target, method, None)?;
                    self.record(
                        id,
                        config,
                        (&run.region, target),
                        label,
                        survey,
                        constants,
                        &r,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The tuned prompt evaluated on both surveys, stored with its card; the run done.
    fn finish(
        &mut self,
        id: i64,
        config: &TuneConfig,
        run: RunSetting,
        model: &Model,
        tuner: &mut Tuner<'_>,
        outcome: &Outcome,
    ) -> Result<JobOutcome, TuneError> {
        let rows = tuner.rows(&outcome.best);
        let mut tuned = Vec::new();
        for (survey, c, target) in run.surveys() {
            let r = tuner.evaluate_on(survey, c, target, Method::Naive, Some(&rows))?;
            self.record(id, config, (&run.region, target), TUNED, survey, c, &r)?;
            tuned.push(r.loss.l1);
        }
        let evaluations = self.store.evaluations(Some(id))?;
        let card = card(
            config,
            &run,
            model,
            tuner,
            &evaluations,
            [tuned[0], tuned[1]],
        );
        let card = PromptCard {
            run: id,
            evals: outcome.evals,
            generations: outcome.generations,
            ..card
        };
        let card = serde_json::to_value(&card).map_err(|e| TuneError::Other(e.to_string()))?;
        let k = tuner.space().param.k;
        let n_embd = model.info().n_embd;
        self.store
            .save_prompt(Some(id), &config.model_sha256, k, n_embd, &rows, &card)?;
        self.store.set_status(id, RunStatus::Done, None)?;
        let elapsed_s = self.store.last_checkpoint(id)?.map_or(0.0, |c| c.elapsed_s);
        self.emit(Event::Finished {
            run: id,
            status: RunStatus::Done,
            best_loss: Some(outcome.best_loss),
            evals: outcome.evals,
            elapsed_s,
        });
        Ok(JobOutcome {
            run: id,
            region: run.region,
            best_loss: outcome.best_loss,
            evals: outcome.evals,
            generations: outcome.generations,
            elapsed_s,
            surveys: [run.train, run.heldout],
            train_constants: run.c_train,
            evaluations,
            population: config.population.clone(),
        })
    }

    /// The optimizer state of a run's last checkpoint and the seconds searched before it,
    /// checked to be one the search can continue from (an edited or damaged checkpoint is an
    /// error that says what is inconsistent, never a panic).
    fn last_checkpoint(
        &self,
        id: i64,
        config: &TuneConfig,
    ) -> Result<Option<(DeState, f64)>, TuneError> {
        let Some(c) = self.store.last_checkpoint(id)? else {
            return Ok(None);
        };
        let bad = |why: String| {
            TuneError::Invalid(format!(
                "run {id}'s last checkpoint (generation {}) is inconsistent: {why}",
                c.generation
            ))
        };
        let state: DeState =
            serde_json::from_str(&c.state).map_err(|e| bad(format!("it cannot be read: {e}")))?;
        state.validate().map_err(bad)?;
        if state.options.dim != config.d {
            return Err(bad(format!(
                "it searches {} dimensions; the run's configuration says {}",
                state.options.dim, config.d
            )));
        }
        if !c.elapsed_s.is_finite() || c.elapsed_s < 0.0 {
            return Err(bad(format!("elapsed time {}", c.elapsed_s)));
        }
        Ok(Some((state, c.elapsed_s)))
    }

    /// The search, from the last checkpoint if there is one.
    fn search(
        &mut self,
        id: i64,
        config: &TuneConfig,
        tuner: &mut Tuner<'_>,
    ) -> Result<crate::optim::Outcome, TuneError> {
        let (mut state, elapsed_before) = match self.last_checkpoint(id, config)? {
            Some(found) => found,
            None => (
                DeState::new(config.de.clone()).map_err(TuneError::Invalid)?,
                0.0,
            ),
        };
        let max_evals = config.de.max_evals;
        let sink = &mut *self.sink;
        tuner.search(
            &mut state,
            self.store,
            id,
            self.cancel,
            elapsed_before,
            |g, scores, elapsed| {
                let eta_s = max_evals
                    .map(|m| elapsed / g.evals.max(1) as f64 * m.saturating_sub(g.evals) as f64);
                sink.event(&Event::Generation {
                    run: id,
                    generation: g.index,
                    evals: g.evals,
                    max_evals,
                    best_loss: g.best_loss,
                    mean_loss: g.mean_loss,
                    best_scores: *scores,
                    elapsed_s: elapsed,
                    eta_s,
                })
            },
        )
    }

    /// Stores one method's result and sends its event (tuned results with the share of the
    /// naive gap they closed).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        id: i64,
        config: &TuneConfig,
        (region, target): (&Region, &Target),
        method: MethodLabel,
        survey: &Survey,
        constants: &Constants,
        r: &MethodResult,
    ) -> Result<(), TuneError> {
        let gap_closed: Option<DimScores> = if method == TUNED {
            let evals = self.store.evaluations(Some(id))?;
            EvaluationRecord::latest(&evals, NAIVE, &survey.id)
                .map(|n| gap_closed(&target.scores, &n.indices, &r.indices))
        } else {
            None
        };
        self.store.save_evaluation(&r.record(
            Some(id),
            &config.model_sha256,
            method,
            &survey.id,
            &region.code,
            constants,
        ))?;
        self.emit(Event::Evaluation {
            run: id,
            method,
            survey: survey.id.clone(),
            indices: r.indices,
            loss: r.loss.l1,
            loss_mean: r.loss.mean,
            dims_used: r.loss.dims_used,
            digit_mass: r.digit_mass,
            gap_closed,
            items: r.items.clone(),
        });
        Ok(())
    }
}
