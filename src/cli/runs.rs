//! `culturetune runs`, `show`, `compare` and `eval`: what the store holds about tuning runs.

use super::engine_args::EngineArgs;
use super::format::cell;
use super::report::print_comparison;
use super::tune::comparison_rows;
use crate::prompt::Method;
use crate::regions::RegionTable;
use crate::scoring::Constants;
use crate::store::{EvaluationRecord, RunStatus, Store};
use crate::survey::Survey;
use crate::soft_prompt::Placement;
use crate::tuning::{TuneConfig, Tuner};
use anyhow::{Context, Result};
use serde_json::json;
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
    let store = Store::open(db)?;
    let mut list = Vec::new();
    for r in store.runs()? {
        let last = store.checkpoints(r.id)?.last().cloned();
        list.push(json!({"id": r.id, "status": r.status, "region": r.region, "survey": r.survey, "seed": r.seed,
            "evals": last.as_ref().map(|c| c.evals), "best_loss": last.as_ref().map(|c| c.best_loss),
            "created_at": r.created_at, "updated_at": r.updated_at, "error": r.error}));
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
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
            r["id"].as_i64().unwrap_or(0),
            r["status"].as_str().unwrap_or(""),
            r["region"].as_str().unwrap_or(""),
            r["evals"].as_u64().map_or("-".into(), |e| e.to_string()),
            cell(r["best_loss"].as_f64()),
            r["created_at"].as_str().unwrap_or("")
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

fn surveys(config: &TuneConfig) -> Result<(Survey, Survey)> {
    Ok((
        Survey::from_id_or_path(&config.survey)?,
        Survey::from_id_or_path(&config.heldout_survey)?,
    ))
}

fn train_constants(evals: &[EvaluationRecord], survey: &str) -> Constants {
    evals
        .iter()
        .rev()
        .find(|e| e.survey == survey)
        .and_then(|e| serde_json::from_value(e.constants.clone()).ok())
        .unwrap_or(Constants::Zero)
}

/// Shows one run: settings, trajectory, comparison.
pub fn show(args: &RunArgs, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let store = Store::open(db)?;
    let run = store.run(args.run)?;
    let config: TuneConfig =
        serde_json::from_value(run.config.clone()).context("reading the run's configuration")?;
    let checkpoints = store.checkpoints(run.id)?;
    let evals = store.evaluations(Some(run.id))?;
    let (train, heldout) = surveys(&config)?;
    let region = table.find(&run.region)?;
    if args.json {
        let trajectory: Vec<_> = checkpoints.iter().map(|c| json!({"generation": c.generation, "evals": c.evals, "best_loss": c.best_loss, "mean_loss": c.mean_loss, "best_scores": c.best_scores, "elapsed_s": c.elapsed_s})).collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &json!({"run": run, "trajectory": trajectory, "evaluations": evals})
            )?
        )?;
        return Ok(());
    }
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
    writeln!(
        out,
        "model {} (sha256 {}), weights {:?}; DE {:?}, population {}, budget {:?}, d {}",
        config.model_path,
        &config.model_sha256[..12],
        config.weights,
        config.de.strategy,
        config.de.pop_size,
        config.de.max_evals,
        config.d
    )?;
    writeln!(
        out,
        "placement {} (soft prompt {}), {} candidate(s) per decode",
        config.placement.as_str(),
        match config.placement {
            Placement::Prefix => "in place of the persona sentence",
            Placement::Answer => "after each question, before the answer; question prefixes cached",
        },
        config.candidates_per_decode
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:>5} {:>6} {:>9} {:>9} {:>8}",
        "GEN", "EVALS", "BEST L1", "MEAN L1", "SECONDS"
    )?;
    for c in &checkpoints {
        writeln!(
            out,
            "{:>5} {:>6} {:>9.1} {:>9.1} {:>8.0}",
            c.generation, c.evals, c.best_loss, c.mean_loss, c.elapsed_s
        )?;
    }
    writeln!(out)?;
    let rows = comparison_rows(&evals, &train, &heldout);
    print_comparison(
        out,
        region,
        &rows,
        &train_constants(&evals, &train.id),
        false,
        None,
    )?;
    if matches!(run.status, RunStatus::Cancelled | RunStatus::Interrupted) {
        writeln!(out, "continue with `culturetune resume {}`", run.id)?;
    }
    Ok(())
}

/// Re-evaluates a finished run's tuned prompt and the baselines, and stores the results.
pub fn eval(args: &RunArgs, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let store = Store::open(db)?;
    let run = store.run(args.run)?;
    let config: TuneConfig =
        serde_json::from_value(run.config.clone()).context("reading the run's configuration")?;
    let prompt = store.prompt_for_run(run.id)?.with_context(|| {
        format!(
            "run {} has no tuned prompt yet (status {})",
            run.id,
            run.status.as_str()
        )
    })?;
    let (train, heldout) = surveys(&config)?;
    let region = table.find(&run.region)?.clone();
    let model = EngineArgs::for_config(&config, args.verbose).load()?;
    let constants = |s: &Survey| -> Result<Constants> {
        let (values, _) = store
            .calibration(&config.calibration_key(&s.id))?
            .with_context(|| format!("no calibration stored for {}", s.id))?;
        Ok(config.calibrated(values))
    };
    let (c_train, c_heldout) = (constants(&train)?, constants(&heldout)?);
    let mut tuner = Tuner::new(
        &model,
        &config,
        train.clone(),
        region.clone(),
        c_train.clone(),
    )?;
    for (survey, c) in [(&train, &c_train), (&heldout, &c_heldout)] {
        for (name, method, rows) in [
            ("naive", Method::Naive, None),
            ("icl", Method::Icl, None),
            ("tuned", Method::Naive, Some(prompt.rows.as_slice())),
        ] {
            let r = tuner.evaluate_on(survey, c, method, rows)?;
            store.save_evaluation(&r.record(
                Some(run.id),
                &config.model_sha256,
                name,
                &survey.id,
                &region.code,
                c,
            ))?;
        }
    }
    let rows = comparison_rows(&store.evaluations(Some(run.id))?, &train, &heldout);
    print_comparison(out, &region, &rows, &c_train, args.json, None)
}

/// A table of regions x methods from the newest finished run of each region.
pub fn compare(
    args: &CompareArgs,
    table: &RegionTable,
    db: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let store = Store::open(db)?;
    let all = store.runs()?;
    let mut report = Vec::new();
    for q in &args.regions {
        let region = table.find(q)?;
        let run = all
            .iter()
            .find(|r| r.region == region.code && r.status == RunStatus::Done);
        let mut entry =
            json!({"region": region.code, "name": region.name, "run": run.map(|r| r.id)});
        if let Some(run) = run {
            let config: TuneConfig = serde_json::from_value(run.config.clone())?;
            let evals = store.evaluations(Some(run.id))?;
            for (key, survey) in [
                ("train", &config.survey),
                ("heldout", &config.heldout_survey),
            ] {
                let id = Survey::from_id_or_path(survey)
                    .map(|s| s.id)
                    .unwrap_or_else(|_| survey.clone());
                let mut m = serde_json::Map::new();
                for method in ["naive", "icl", "tuned"] {
                    let e = evals
                        .iter()
                        .rev()
                        .find(|e| e.method == method && e.survey == id);
                    m.insert(method.into(), json!(e.map(|e| e.loss)));
                }
                entry[key] = serde_json::Value::Object(m);
            }
        }
        report.push(entry);
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "L1 loss to the published scores (lower is better); calibrated constants per survey"
    )?;
    writeln!(
        out,
        "{:<7} {:>5} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
        "REGION", "RUN", "naive", "icl", "tuned", "naive", "icl", "tuned"
    )?;
    writeln!(
        out,
        "{:<7} {:>5} | {:^23} | {:^23}",
        "", "", "training survey", "held-out survey"
    )?;
    for e in &report {
        let v = |s: &str, m: &str| cell(e[s][m].as_f64());
        writeln!(
            out,
            "{:<7} {:>5} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
            e["region"].as_str().unwrap_or(""),
            e["run"].as_i64().map_or("-".into(), |r| r.to_string()),
            v("train", "naive"),
            v("train", "icl"),
            v("train", "tuned"),
            v("heldout", "naive"),
            v("heldout", "icl"),
            v("heldout", "tuned"),
        )?;
    }
    if report.iter().any(|e| e["run"].is_null()) {
        writeln!(
            out,
            "'-' = no finished run for that region yet (culturetune tune --region CODE)"
        )?;
    }
    Ok(())
}
