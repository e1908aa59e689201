//! Command-line parsing and dispatch. Each sub-command lives in its own module.

mod bench;
mod chat;
mod chat_worker;
mod engine_args;
mod errors;
mod format;
mod info;
mod merge;
mod plan;
mod reach;
mod regions;
mod report;
mod runs;
mod score;
mod sinks;
mod space_args;
mod survey;
mod transfer;
mod tune;

use crate::regions::RegionTable;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use errors::is_broken_pipe;
pub use errors::{error_code, error_text, Cancelled, InvalidInput};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// culturetune: align a local LLM with the culture of a chosen region.
///
/// The model answers Hofstede's Values Survey Module 2013; its answers are scored on the six
/// cultural dimensions (PDI, IDV, MAS, UAI, LTO, IVR) and compared with the region's published
/// scores. Every command that prints results accepts --json for scripts.
#[derive(Debug, Parser)]
#[command(name = "culturetune", version, about, long_about)]
pub struct Cli {
    /// Targets table to use instead of the built-in published 6-D scores (CSV with columns
    /// country,code, then one per dimension code, e.g. pdi,idv,mas,uai,lto,ivr).
    #[arg(long, global = true, value_name = "CSV")]
    targets: Option<PathBuf>,

    /// Database of runs, prompts and evaluations [default: culturetune/culturetune.db in the
    /// user's data directory].
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,

    /// On failure, also print the error as one JSON line `{"code": ..., "message": ...}` on
    /// stderr (stable codes, as in `--events jsonl`; used by the desktop app).
    #[arg(long, global = true)]
    json_errors: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every region with its published scores on the six dimensions.
    ///
    /// An empty cell ("-") means no score was published for that dimension; losses against
    /// such a region use only the dimensions it has.
    Regions(regions::Args),
    /// Score human survey data (a CSV of respondents) into the six indices.
    ///
    /// The CSV has one row per respondent and one column per item (q01..q24 for VSM 2013)
    /// holding the answer code 1..5; other columns are ignored and an empty cell counts as no
    /// answer. With --region, also prints the loss against that region's published scores.
    Score(score::Args),
    /// Let the model answer the survey as a person from a region, and score the answers.
    ///
    /// Each item is asked in its own chat; the answer is read from the next-token
    /// probabilities of the digits 1..5 (renormalised), so every item gets a distribution, the
    /// probability mass that fell on the digits, and an expected answer code.
    Survey(survey::Args),
    /// Measure survey-evaluation speed against llama.cpp's raw prompt processing.
    ///
    /// In one process with the same threads: (a) a 512-token batch, (b) one survey evaluation
    /// through the soft-prompt path, (c) tokens decoded over the minimum and the throughput
    /// ratio.
    Bench(bench::Args),
    /// Tune a soft prompt toward a region's culture (the main job).
    ///
    /// Calibrates the constants once per model, evaluates the naive and ICL baselines, runs
    /// Differential Evolution over the soft prompt (checkpointed every generation; Ctrl-C
    /// cancels and `resume` continues exactly), then compares naive, ICL and tuned on the
    /// training and the held-out survey.
    Tune(tune::TuneArgs),
    /// How far a soft prompt can move each index at all (a controllability bound).
    ///
    /// For each of the six indices, one DE search for its largest and one for its smallest
    /// value on the training survey, in the soft-prompt space `tune` would search with the
    /// same settings. Prints the target, the value at z = 0 and the range reached.
    Reach(reach::Args),
    /// Continue a cancelled or interrupted run from its last checkpoint.
    Resume(tune::ResumeArgs),
    /// List tuning runs with their status and best loss.
    Runs(runs::RunsArgs),
    /// Show one run: settings, loss per generation, naive vs ICL vs tuned.
    Show(runs::RunArgs),
    /// Re-evaluate a finished run's tuned prompt and the baselines, and store the results.
    Eval(runs::RunArgs),
    /// Compare regions: naive, ICL and tuned losses on the training and held-out surveys.
    Compare(runs::CompareArgs),
    /// Copy the runs, prompts, evaluations, checkpoints and calibrations of other databases
    /// (made on other machines) into this one, in one transaction; a job already here (the
    /// same stored configuration, wherever the model file was and however many threads ran it)
    /// is not copied twice.
    Merge(merge::Args),
    /// Expand a sweep into jobs, one JSON line each with an id derived from its content:
    /// --region takes codes (comma-separated) or `all`, --seeds and --models lists; every other
    /// option is tune's. Run a job with `culturetune job` (docs/scale.md: Ray, SLURM).
    Plan(plan::PlanArgs),
    /// Run one job of a plan in --db: nothing if it is done there, resumed from its
    /// checkpoint if it was interrupted, else started.
    Job(plan::JobArgs),
    /// Export a run's tuned prompt as a PEFT prompt-tuning adapter directory.
    Export(transfer::ExportArgs),
    /// Import an exported soft prompt (validated against the model) into the database.
    Import(transfer::ImportArgs),
    /// Compute the calibrated constants of a model for the surveys a default `tune` run uses
    /// (the training survey vsm13 and the held-out survey vsm13-alt), or for `--survey`.
    Calibrate(transfer::CalibrateArgs),
    /// Answer a message as a person from the region, with the naive persona and with a tuned
    /// soft prompt in its place (greedy decoding, so the replies are reproducible).
    Chat(chat::Args),
    /// Keep the model loaded and answer chat messages read from stdin, one JSON request per
    /// line (`{"region", "run" or "soft_prompt", "message", "max_tokens"}`), with one JSON
    /// line each on stdout. Used by the desktop app; stops when stdin closes or when idle.
    ChatWorker(chat_worker::Args),
    /// Inspect a GGUF model file: architecture, size, quantization, embedding width; and
    /// whether this build can offload layers to a GPU.
    Info(info::Args),
}

/// Runs one parsed command line, writing its results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let table = || -> Result<RegionTable> {
        match &cli.targets {
            Some(p) => RegionTable::from_path(p).context("loading the targets table"),
            None => Ok(RegionTable::builtin()),
        }
    };
    let db = cli
        .db
        .clone()
        .unwrap_or_else(crate::store::Store::default_path);
    match &cli.command {
        Command::Regions(a) => regions::run(a, &table()?, out),
        Command::Score(a) => score::run(a, &table()?, out),
        Command::Survey(a) => survey::run(a, &table()?, out),
        Command::Bench(a) => bench::run(a, &table()?, out),
        Command::Tune(a) => tune::tune(a, &table()?, &db, out),
        Command::Reach(a) => reach::run(a, &table()?, &db, out),
        Command::Resume(a) => tune::resume(a, &table()?, &db, out),
        Command::Runs(a) => runs::runs(a, &db, out),
        Command::Show(a) => runs::show(a, &table()?, &db, out),
        Command::Eval(a) => runs::eval(a, &table()?, &db, out),
        Command::Compare(a) => runs::compare(a, &table()?, &db, out),
        Command::Merge(a) => merge::run(a, &db, out),
        Command::Plan(a) => plan::plan(a, &table()?, out),
        Command::Job(a) => plan::job(a, &table()?, &db, out),
        Command::Export(a) => transfer::export_run(a, &db, out),
        Command::Import(a) => transfer::import_dir(a, &db, out),
        Command::Calibrate(a) => transfer::calibrate_model(a, &table()?, &db, out),
        Command::Chat(a) => chat::run(a, &table()?, &db, out),
        Command::ChatWorker(a) => chat_worker::run(a, &table()?, &db, out),
        Command::Info(a) => info::run(a, out),
    }
}

/// The whole command-line program: parses `args` (the first is the program name), runs the
/// command on stdout and turns the outcome into an exit code (0 ok, 1 error, 130 cancelled).
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let json_errors = cli.json_errors;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = run(cli, &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`culturetune regions | head`): not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.is::<Cancelled>() => ExitCode::from(130),
        Err(e) => {
            let message = error_text(&e);
            eprintln!("error: {message}");
            if json_errors {
                let line = crate::error_code::ErrorLine {
                    code: error_code(&e),
                    message,
                };
                eprintln!("{}", serde_json::to_string(&line).unwrap_or_default());
            }
            ExitCode::FAILURE
        }
    }
}
