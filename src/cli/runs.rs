//! `culturetune runs`, `show`, `compare` and `eval`: renderers of what the store holds about
//! tuning runs (`tuning::history`, `tuning::reeval`).

use super::format::cell;
use super::report::print_comparison;
use crate::labels::serde_name;
use crate::regions::RegionTable;
use crate::store::{RunStatus, Store};
use crate::tuning::history::{self, CompareRow, Spread};
use crate::tuning::placed::PromptPlacement;
use crate::tuning::TuneConfig;
use anyhow::Result;
use std::io::Write;
use std::path::Path;

/// Options of `culturetune runs`.
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `culturetune show` and `culturetune eval`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The run id (see `culturetune runs`).
    run: i64,
    /// Show llama.cpp's log (eval only).
    #[arg(long)]
    verbose: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `culturetune compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Regions to compare (comma-separated codes or names).
    #[arg(long, value_delimiter = ',', required = true, value_name = "CODES")]
    regions: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Lists every run.
pub fn runs(args: &RunsArgs, db: &Path, out: &mut dyn Write) -> Result<()> {
    let list = history::run_summaries(&Store::open_read_only(db)?)?;
    if super::format::json(out, args.json, &list)? {
        return Ok(());
    }
    writeln!(
        out,
        "{:>4}  {:<12} {:<7} {:>6} {:>9}  CREATED (UTC)",
        "RUN", "STATUS", "REGION", "EVALS", "BEST L1"
    )?;
    for r in &list {
        writeln!(
            out,
            "{:>4}  {:<12} {:<7} {:>6} {:>9}  {}",
            r.id,
            r.status.as_str(),
            r.region,
            r.evals.map_or("-".into(), |e| e.to_string()),
            cell(r.best_loss),
            r.created_at
        )?;
    }
    if list.is_empty() {
        writeln!(
            out,
            "no runs yet in {}; start one with `culturetune tune --region CODE`",
            db.display()
        )?;
    }
    Ok(())
}

/// Shows one run: settings, trajectory, comparison.
pub fn show(args: &RunArgs, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let d = history::run_detail(&Store::open_read_only(db)?, table, args.run)?;
    if super::format::json(out, args.json, &d)? {
        return Ok(());
    }
    let (run, region) = (&d.run, &d.comparison.region);
    writeln!(
        out,
        "run {}: {} ({}), status {}, seed {}, created {}",
        run.id,
        region.code,
        region.name,
        run.status.as_str(),
        run.seed,
        run.created_at
    )?;
    if let Some(e) = &run.error {
        writeln!(out, "error: {e}")?;
    }
    print_settings(out, &d.config)?;
    writeln!(out)?;
    writeln!(
        out,
        "{:>5} {:>6} {:>9} {:>9} {:>8}",
        "GEN", "EVALS", "BEST L1", "MEAN L1", "SECONDS"
    )?;
    for c in &d.trajectory {
        writeln!(
            out,
            "{:>5} {:>6} {:>9.1} {:>9.1} {:>8.0}",
            c.generation, c.evals, c.best_loss, c.mean_loss, c.elapsed_s
        )?;
    }
    writeln!(out)?;
    print_comparison(out, &d.comparison, false)?;
    if run.status == RunStatus::Done {
        print_use_elsewhere(out, run.id)?;
    }
    if matches!(run.status, RunStatus::Cancelled | RunStatus::Interrupted) {
        writeln!(out, "continue with `culturetune resume {}`", run.id)?;
    }
    Ok(())
}

/// How to take a finished run's prompt to other llama.cpp programs (`export --gguf`).
fn print_use_elsewhere(out: &mut dyn Write, run: i64) -> Result<()> {
    let how = crate::carried::how_to_run(
        "FILE.gguf",
        "FILE.Modelfile",
        "the card's gguf.system_prompt (FILE.culturetune.json)",
    );
    writeln!(out)?;
    writeln!(
        out,
        "use it in other llama.cpp programs: culturetune export {run} --gguf FILE.gguf, then"
    )?;
    for (tool, key) in [
        ("llama-server", "llama_server"),
        ("LM Studio", "lm_studio"),
        ("Ollama", "ollama"),
    ] {
        writeln!(out, "  {tool}: {}", how[key].as_str().unwrap_or_default())?;
    }
    Ok(())
}

/// The settings lines of `show`: model, search, placement and surveys.
fn print_settings(out: &mut dyn Write, config: &TuneConfig) -> Result<()> {
    writeln!(
        out,
        "model {} (sha256 {}), weights {}; optimizer {}, population {}, budget {}, d {}, A scale {}, extra rows {}",
        config.model_path,
        config.model_sha256.get(..12).unwrap_or(&config.model_sha256),
        serde_name(&config.weights),
        serde_name(&config.de.strategy),
        config.de.pop_size,
        config
            .de
            .max_evals
            .map_or("none".to_string(), |b| b.to_string()),
        config.d,
        config.a_scale,
        config.extra_rows
    )?;
    writeln!(
        out,
        "placement {} (soft prompt {}), {} candidate(s) per decode, {} GPU layers",
        config.placement.as_str(),
        PromptPlacement::new(config.placement, config.anchor).describe(),
        config.candidates_per_decode,
        config.gpu_layers
    )?;
    writeln!(
        out,
        "training survey {}, held-out survey {}; panel {}, {}",
        config.survey,
        config.heldout_survey,
        config.panel,
        if config.counterbalance {
            "both option orders"
        } else {
            "one option order"
        }
    )?;
    Ok(())
}

/// Re-evaluates a finished run's tuned prompt and the baselines, and stores the results.
pub fn eval(args: &RunArgs, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let store = Store::open(db)?;
    crate::engine::init(args.verbose);
    let c = crate::tuning::reeval::reevaluate(&store, table, args.run, &mut |line| {
        eprintln!("{line}")
    })?;
    print_comparison(out, &c, args.json)
}

/// A table of regions x methods from the newest finished run of each region.
pub fn compare(
    args: &CompareArgs,
    table: &RegionTable,
    db: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let report = history::compare(&Store::open_read_only(db)?, table, &args.regions)?;
    if super::format::json(out, args.json, &report)? {
        return Ok(());
    }
    print_compare(out, &report)
}

/// The text table of `compare`.
fn print_compare(out: &mut dyn Write, report: &[CompareRow]) -> Result<()> {
    writeln!(
        out,
        "L1 loss to the published scores (lower is better); calibrated constants per survey"
    )?;
    writeln!(
        out,
        "{:<7} {:>5} | {:>7} {:>7} {:>7} {:>16} | {:>7} {:>7} {:>7} {:>16}",
        "REGION",
        "RUN",
        "naive",
        "icl",
        "tuned",
        "tuned, all seeds",
        "naive",
        "icl",
        "tuned",
        "tuned, all seeds"
    )?;
    let train: fn(&CompareRow) -> Option<String> = |e| e.train_survey.clone();
    let heldout: fn(&CompareRow) -> Option<String> = |e| e.heldout_survey.clone();
    let heading = |what: &str, ids: Vec<String>| match ids.as_slice() {
        [one] => format!("{what} {one}"),
        _ => what.to_string(),
    };
    writeln!(
        out,
        "{:<7} {:>5} | {:^40} | {:^40}",
        "",
        "",
        heading("training survey", distinct(report, train)),
        heading("held-out survey", distinct(report, heldout))
    )?;
    for e in report {
        writeln!(out, "{}", compare_line(e))?;
    }
    for (what, survey) in [("trained", train), ("held out", heldout)] {
        if distinct(report, survey).len() > 1 {
            let per_row: Vec<String> = report
                .iter()
                .filter_map(|e| Some(format!("{} {}", e.region, survey(e)?)))
                .collect();
            writeln!(
                out,
                "the runs were {what} on different surveys ({}): their losses there are not comparable across rows",
                per_row.join(", ")
            )?;
        }
    }
    writeln!(
        out,
        "RUN = the newest finished run; all seeds = mean ± sample sd of the tuned loss over the finished runs with the same settings but another seed"
    )?;
    if report.iter().any(|e| e.run.is_none()) {
        writeln!(
            out,
            "'-' = no finished run for that region yet (culturetune tune --region CODE)"
        )?;
    }
    Ok(())
}

/// The distinct surveys of the rows (sorted): the header names one when every row shares it.
fn distinct(report: &[CompareRow], survey: impl Fn(&CompareRow) -> Option<String>) -> Vec<String> {
    let mut ids: Vec<String> = report.iter().filter_map(survey).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// One region's line of the `compare` table.
fn compare_line(e: &CompareRow) -> String {
    let all_seeds = |s: Option<&Spread>| match s.map(|s| (s.mean, s.sd, s.n)) {
        Some((Some(m), Some(sd), n)) => format!("{m:.1} ± {sd:.1} (n {n})"),
        _ => "-".into(),
    };
    let seeds = e.seeds.as_ref();
    let (t, h) = (e.train.unwrap_or_default(), e.heldout.unwrap_or_default());
    format!(
        "{:<7} {:>5} | {:>7} {:>7} {:>7} {:>16} | {:>7} {:>7} {:>7} {:>16}",
        e.region,
        e.run.map_or("-".into(), |r| r.to_string()),
        cell(t.naive),
        cell(t.icl),
        cell(t.tuned),
        all_seeds(seeds.map(|s| &s.train)),
        cell(h.naive),
        cell(h.icl),
        cell(h.tuned),
        all_seeds(seeds.map(|s| &s.heldout)),
    )
}
