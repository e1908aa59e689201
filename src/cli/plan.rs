//! `culturetune plan` (a sweep as JSON lines) and `culturetune job` (one of its jobs run,
//! resumed or found done in --db): a renderer of `tuning::plan`.

use super::tune::{print_outcome, run_job, OutputArgs, SearchArgs};
use crate::regions::RegionTable;
use crate::store::Store;
use crate::tuning::job::JobSpec;
use crate::tuning::plan::{self, JobRef, JobReport, NextStep, Sweep};
use anyhow::Result;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `culturetune plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    search: SearchArgs,
    /// Seeds, comma-separated (each region is run once per seed) [default: --seed].
    #[arg(long, value_delimiter = ',', value_name = "SEEDS")]
    seeds: Vec<u64>,
    /// Model files, comma-separated (each job is run on each) [default: --model].
    #[arg(long, value_delimiter = ',', value_name = "GGUFS")]
    models: Vec<PathBuf>,
}

/// Prints the plan's jobs, one JSON object per line.
pub fn plan(args: &PlanArgs, table: &RegionTable, out: &mut dyn Write) -> Result<()> {
    let space = &args.search.space;
    let sweep = Sweep {
        regions: space.region.split(',').map(str::to_string).collect(),
        seeds: match args.seeds.is_empty() {
            true => vec![space.seed],
            false => args.seeds.clone(),
        },
        models: args.models.clone(),
    };
    let request = args.search.request();
    let jobs = plan::plan(&sweep, &request, table, &space.engine, &mut |l| {
        eprintln!("{l}")
    })?;
    for job in &jobs {
        writeln!(out, "{}", serde_json::to_string(job)?)?;
    }
    eprintln!("{} jobs", jobs.len());
    Ok(())
}

/// Options of `culturetune job`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true)))]
pub struct JobArgs {
    /// The plan (`culturetune plan`'s output).
    plan: PathBuf,
    /// The job's position in the plan, from 0 (SLURM: $SLURM_ARRAY_TASK_ID).
    #[arg(long, group = "which")]
    index: Option<usize>,
    /// The job's id.
    #[arg(long, group = "which")]
    id: Option<String>,
    /// Only compute the job's calibration into --db (to be merged into the databases of the
    /// jobs that share it: the plan's `calibration` field).
    #[arg(long)]
    calibrate_only: bool,
    /// Show llama.cpp's log.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// Runs one job of a plan in --db: nothing when it is done there, else started or resumed.
pub fn job(args: &JobArgs, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let jobs = plan::read_plan(&args.plan)?;
    let which = match (&args.id, args.index) {
        (Some(id), _) => JobRef::Id(id.clone()),
        (None, i) => JobRef::Index(i.unwrap_or(0)),
    };
    let job = plan::pick(&jobs, &which)?;
    let mut store = Store::open(db)?;
    if args.calibrate_only {
        crate::engine::init(args.verbose);
        let report = plan::calibrate_job(
            &store,
            table,
            job,
            &mut |s, done, code| eprintln!("calibrating {s}: {done} ({code})"),
            &mut |l| eprintln!("{l}"),
        )?;
        if !super::format::json(out, args.out.json, &report)? {
            let (c, id) = (&job.calibration, &job.id);
            writeln!(
                out,
                "calibration {c} of job {id} stored in {}",
                db.display()
            )?;
        }
        return Ok(());
    }
    let report = match plan::next_step(&store, job)? {
        NextStep::Done(run) => JobReport::already_done(&store, job, run)?,
        NextStep::Run(spec) => {
            let resumed = matches!(spec, JobSpec::Resume(_));
            let o = run_job(spec, table, &mut store, args.verbose, &args.out, out)?;
            if args.out.events.is_none() && !args.out.json {
                print_outcome(&o, false, out)?;
            }
            JobReport::ran(job, resumed, &o)
        }
    };
    if args.out.events.is_some() || super::format::json(out, args.out.json, &report)? {
        return Ok(());
    }
    writeln!(out, "{} in {}", report.describe(), db.display())?;
    Ok(())
}
