//! `culturetune runs`, `show`, `compare` and `eval`: what the store holds about tuning runs.

use super::engine_args::EngineArgs;
use super::format::cell;
use super::report::comparison_rows;
use super::report::print_comparison;
use crate::prompt::Method;
use crate::regions::RegionTable;
use crate::scoring::Constants;
use crate::soft_prompt::Placement;
use crate::store::{EvaluationRecord, MethodLabel, RunStatus, Store};
use crate::survey::Survey;
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
    let store = Store::open_read_only(db)?;
    let mut list = Vec::new();
    for r in store.runs()? {
        let last = store.last_checkpoint(r.id)?;
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
    let store = Store::open_read_only(db)?;
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
    print_settings(out, &config)?;
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

/// The settings lines of `show`: model, search, placement and surveys.
fn print_settings(out: &mut dyn Write, config: &TuneConfig) -> Result<()> {
    writeln!(
        out,
        "model {} (sha256 {}), weights {}; DE {}, population {}, budget {}, d {}, A scale {}, extra rows {}",
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
        match (config.placement, config.anchor) {
            (Placement::Prefix, _) => "in place of the persona sentence".to_string(),
            (Placement::Answer, a) => format!(
                "opening each answer from the {} anchor, the naive persona in the system message; questions cached",
                a.as_str()
            ),
        },
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
    // The run's calibration, or (a database from before calibrations were keyed by survey
    // content) the same calibration computed again: deterministic, so the same constants.
    let constants = |s: &Survey| {
        crate::tuning::constants_for(&store, &model, s, table, &config, |done, code| {
            eprintln!(
                "calibrating {}: {done}/{} ({code})",
                s.id,
                config.calibration_regions.len()
            )
        })
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
            (MethodLabel::Naive, Method::Naive, None),
            (MethodLabel::Icl, Method::Icl, None),
            (
                MethodLabel::Tuned,
                Method::Naive,
                Some(prompt.rows.as_slice()),
            ),
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
    let store = Store::open_read_only(db)?;
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
            // Runs of this region with the same settings but another seed: mean and spread.
            let same: Vec<&crate::store::RunRecord> = all
                .iter()
                .filter(|r| r.region == region.code && r.status == RunStatus::Done)
                .filter(|r| seedless(&r.config) == seedless(&run.config))
                .collect();
            let mut seeds = json!({"runs": same.iter().map(|r| r.id).collect::<Vec<_>>()});
            for (key, survey) in [
                ("train", &config.survey),
                ("heldout", &config.heldout_survey),
            ] {
                let id = Survey::from_id_or_path(survey)
                    .map(|s| s.id)
                    .unwrap_or_else(|_| survey.clone());
                entry[format!("{key}_survey")] = json!(id);
                let evals = store.evaluations(Some(run.id))?;
                let mut m = serde_json::Map::new();
                for method in MethodLabel::ALL {
                    let e = evals
                        .iter()
                        .rev()
                        .find(|e| e.method == method && e.survey == id);
                    m.insert(method.as_str().into(), json!(e.map(|e| e.loss)));
                }
                entry[key] = serde_json::Value::Object(m);
                let mut tuned = Vec::new();
                for r in &same {
                    if let Some(e) = store
                        .evaluations(Some(r.id))?
                        .into_iter()
                        .rev()
                        .find(|e| e.method == MethodLabel::Tuned && e.survey == id)
                    {
                        tuned.push(e.loss);
                    }
                }
                seeds[key] = spread(&tuned);
            }
            entry["seeds"] = seeds;
        }
        report.push(entry);
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    print_compare(out, &report)
}

/// The text table of `compare`.
fn print_compare(out: &mut dyn Write, report: &[serde_json::Value]) -> Result<()> {
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
    // The surveys in the header when every row shares them, else per row below the table.
    let surveys = |key: &str| -> Vec<&str> {
        let mut ids: Vec<&str> = report.iter().filter_map(|e| e[key].as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let heading = |what: &str, key: &str| match surveys(key).as_slice() {
        [one] => format!("{what} {one}"),
        _ => what.to_string(),
    };
    writeln!(
        out,
        "{:<7} {:>5} | {:^40} | {:^40}",
        "",
        "",
        heading("training survey", "train_survey"),
        heading("held-out survey", "heldout_survey")
    )?;
    for e in report {
        let v = |s: &str, m: &str| cell(e[s][m].as_f64());
        let all_seeds = |s: &str| {
            let x = &e["seeds"][s];
            match (x["mean"].as_f64(), x["sd"].as_f64(), x["n"].as_u64()) {
                (Some(m), Some(sd), Some(n)) => format!("{m:.1} ± {sd:.1} (n {n})"),
                _ => "-".into(),
            }
        };
        writeln!(
            out,
            "{:<7} {:>5} | {:>7} {:>7} {:>7} {:>16} | {:>7} {:>7} {:>7} {:>16}",
            e["region"].as_str().unwrap_or(""),
            e["run"].as_i64().map_or("-".into(), |r| r.to_string()),
            v("train", "naive"),
            v("train", "icl"),
            v("train", "tuned"),
            all_seeds("train"),
            v("heldout", "naive"),
            v("heldout", "icl"),
            v("heldout", "tuned"),
            all_seeds("heldout"),
        )?;
    }
    for key in ["train_survey", "heldout_survey"] {
        if surveys(key).len() > 1 {
            let per_row: Vec<String> = report
                .iter()
                .filter_map(|e| Some(format!("{} {}", e["region"].as_str()?, e[key].as_str()?)))
                .collect();
            writeln!(
                out,
                "the runs were {} on different surveys ({}): their losses there are not comparable across rows",
                if key == "train_survey" { "trained" } else { "held out" },
                per_row.join(", ")
            )?;
        }
    }
    writeln!(
        out,
        "RUN = the newest finished run; all seeds = mean ± sample sd of the tuned loss over the finished runs with the same settings but another seed"
    )?;
    if report.iter().any(|e| e["run"].is_null()) {
        writeln!(
            out,
            "'-' = no finished run for that region yet (culturetune tune --region CODE)"
        )?;
    }
    Ok(())
}

/// A stored configuration without its seeds: runs that differ only here are repeats.
fn seedless(config: &serde_json::Value) -> serde_json::Value {
    let mut c = config.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("projection_seed");
    }
    if let Some(o) = c.get_mut("de").and_then(|d| d.as_object_mut()) {
        o.remove("seed");
    }
    c
}

/// Count, mean, sample standard deviation (0 for one value), min and max; nulls when empty.
fn spread(xs: &[f64]) -> serde_json::Value {
    if xs.is_empty() {
        return json!({"n": 0, "mean": null, "sd": null, "min": null, "max": null});
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    json!({"n": xs.len(), "mean": mean, "sd": sd, "min": min, "max": max})
}

/// A value's name as it is stored (serde's spelling), e.g. `auto` or `shade`.
fn serde_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}
