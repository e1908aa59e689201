//! `culturetune tune` and `culturetune resume`: the main job. Calibrate (once per model and
//! procedure), evaluate the baselines, search with DE while checkpointing every generation,
//! then evaluate the tuned prompt on the training and the held-out survey and store it.

use super::errors::Cancelled;
use super::report::print_comparison;
use super::sinks::Progress;
use super::space_args::SpaceArgs;
use crate::optim::Strategy;
use crate::regions::RegionTable;
use crate::store::Store;
use crate::tuning::job::{self, JobOutcome, JobSpec, JsonLines};
use crate::tuning::report::{Comparison, RunTiming};
use crate::tuning::request::{defaults, model_facts, resolve, EngineChoice, TuneRequest};
use crate::tuning::TuneError;
use anyhow::Result;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// How results are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventFormat {
    /// One JSON object per line on stdout (see docs/events.md).
    Jsonl,
}

/// Options of `culturetune tune`.
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    out: OutputArgs,
}

/// The search a run makes (`tune`; `plan` sweeps it over regions, seeds and models).
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Evaluation budget: candidate soft prompts to evaluate (for the default model on 2
    /// cores about 0.45 s each with the default answer placement, 3 s with prefix).
    #[arg(long, default_value_t = defaults::BUDGET)]
    budget: usize,
    /// Candidates evaluated together in one pass [default: 8 with layers on a GPU; on the CPU
    /// 4 for the answer placement's streams layout (fewer when their KV copies would pass
    /// 1 GiB, so 1 for an 8B model), else 1; docs/performance.md].
    #[arg(long, value_name = "N")]
    candidates_per_decode: Option<usize>,
    /// The optimizer: a DE strategy (`shade`, `rand1-bin`, `best1-bin`) or `cmaes` (CMA-ES);
    /// also `--optimizer`.
    #[arg(long, alias = "optimizer", value_enum, default_value_t = defaults::STRATEGY)]
    strategy: Strategy,
    /// Stop after this many generations without improvement.
    #[arg(long)]
    patience: Option<usize>,
    #[command(flatten)]
    population: PopulationArgs,
}

/// A population of respondents as the target (surveys/README.md, "Population targets").
#[derive(Debug, clap::Args)]
pub struct PopulationArgs {
    /// Tune toward these respondents (a responses CSV, one row each) instead of the region's
    /// published scores; --region then names the persona only.
    #[arg(long, value_name = "CSV", help_heading = "Population target")]
    responses: Option<String>,
    /// Only the rows of one group, e.g. `country=DEU`.
    #[arg(long, value_name = "COLUMN=VALUE", help_heading = "Population target")]
    group: Option<String>,
    /// The column of respondent weights (numbers >= 0).
    #[arg(long, value_name = "COLUMN", help_heading = "Population target")]
    weight: Option<String>,
    /// What to minimize: the population's `indices` (L1) or each item's answer distribution
    /// (`items`: mean earth mover's distance in code steps) [default: indices].
    #[arg(long, value_enum, help_heading = "Population target")]
    objective: Option<crate::tuning::target::Objective>,
    /// Items left out of the items objective and reported apart: a count chosen with the
    /// seed (`6`) or item ids (`q03,q11`).
    #[arg(long, value_name = "N|IDS", help_heading = "Population target")]
    holdout_items: Option<String>,
}

impl SearchArgs {
    /// The request these options state.
    pub fn request(&self) -> TuneRequest {
        let p = &self.population;
        TuneRequest {
            budget: Some(self.budget),
            strategy: Some(self.strategy),
            patience: self.patience,
            candidates_per_decode: self.candidates_per_decode,
            responses: p.responses.clone(),
            group: p.group.clone(),
            weight: p.weight.clone(),
            objective: p.objective,
            holdout_items: p.holdout_items.clone(),
            ..self.space.request()
        }
    }
}

/// Options of `culturetune resume`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run to continue (see `culturetune runs`).
    run: i64,
    /// Show llama.cpp's log.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// Output options shared by tune and resume.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Emit machine-readable events instead of a progress bar.
    #[arg(long, value_enum)]
    pub(super) events: Option<EventFormat>,
    /// Print the final comparison as JSON.
    #[arg(long)]
    pub(super) json: bool,
}

/// Raised by Ctrl-C; checked between candidate evaluations.
fn cancel_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // If a handler cannot be installed (already set), Ctrl-C simply kills the process and
        // the run shows as interrupted: still resumable.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
        flag
    })
    .clone()
}

/// Runs `tune`.
pub fn tune(args: &TuneArgs, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let engine = &args.search.space.engine;
    let config = resolve(
        &args.search.request(),
        table,
        &EngineChoice::of(engine)?,
        || model_facts(engine, &mut |line| eprintln!("{line}")),
    )?;
    let spec = JobSpec::New(Box::new(config));
    drive(spec, table, db, engine.verbose, &args.out, out)
}

/// Runs `resume`.
pub fn resume(
    args: &ResumeArgs,
    table: &RegionTable,
    db: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    drive(
        JobSpec::Resume(args.run),
        table,
        db,
        args.verbose,
        &args.out,
        out,
    )
}

/// Runs the job with the sink the output options ask for, then prints the final table.
fn drive(
    spec: JobSpec,
    table: &RegionTable,
    db: &Path,
    verbose: bool,
    opts: &OutputArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let o = run_job(spec, table, &mut Store::open(db)?, verbose, opts, out)?;
    if opts.events.is_none() {
        print_outcome(&o, opts.json, out)?;
    }
    Ok(())
}

/// Runs the job with a progress bar, or with `--events jsonl` as JSON lines on `out`.
pub(super) fn run_job(
    spec: JobSpec,
    table: &RegionTable,
    store: &mut Store,
    verbose: bool,
    opts: &OutputArgs,
    out: &mut dyn Write,
) -> Result<JobOutcome> {
    crate::engine::init(verbose);
    let cancel = cancel_flag();
    let result = if opts.events.is_some() {
        let mut sink = JsonLines { out, failed: None };
        let r = job::run(spec, store, table, &cancel, &mut sink);
        // A closed stdout stopped the job (resumable); say why, not "cancelled".
        if let Some(e) = sink.failed {
            return Err(e.into());
        }
        r
    } else {
        job::run(spec, store, table, &cancel, &mut Progress::default())
    };
    match result {
        Ok(o) => Ok(o),
        Err(TuneError::Cancelled) => Err(Cancelled.into()),
        Err(e) => Err(e.into()),
    }
}

/// Prints the comparison after a finished job.
pub(super) fn print_outcome(o: &JobOutcome, json: bool, out: &mut dyn Write) -> Result<()> {
    let [train, heldout] = &o.surveys;
    let timing = RunTiming {
        id: o.run,
        evals: o.evals,
        seconds: o.elapsed_s,
    };
    let c = Comparison::from_evaluations(
        &o.region,
        &o.train_constants,
        &o.evaluations,
        &train.id,
        &heldout.id,
        Some(timing),
    )
    .with_population(o.population.as_ref());
    print_comparison(out, &c, json)
}
