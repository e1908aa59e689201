//! `culturetune export`, `import` and `calibrate`.

use super::engine_args::EngineArgs;
use crate::dimension::Dimension;
use crate::engine::evaluate::Evaluator;
use crate::export;
use crate::fingerprint::sha256_file;
use crate::regions::RegionTable;
use crate::store::Store;
use crate::survey::{Survey, HELDOUT_SURVEY_ID, TRAINING_SURVEY_ID};
use crate::tuning::{calibrate, TuneConfig};
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `culturetune export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The run whose tuned prompt to export.
    run: i64,
    /// Directory to write (a PEFT prompt-tuning adapter plus culturetune.json).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace the folder if it holds a previous export (culturetune.json and the adapter
    /// files, nothing else); any other existing path is refused and left as it is.
    #[arg(long)]
    force: bool,
}

/// Options of `culturetune import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// An exported soft-prompt directory.
    dir: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Options of `culturetune calibrate`.
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Respondents in the panel.
    #[arg(long, default_value_t = 1)]
    panel: usize,
    /// Ask every item in both option orders.
    #[arg(long)]
    counterbalance: bool,
    /// Calibration regions (comma-separated) [default: the 12-region set].
    #[arg(long, value_delimiter = ',', value_name = "CODES")]
    regions: Option<Vec<String>>,
    /// Surveys to calibrate: built-in ids or survey files (comma-separated) [default: the
    /// training survey vsm13 and the held-out survey vsm13-alt].
    #[arg(long = "survey", value_delimiter = ',', value_name = "ID|FILE")]
    surveys: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Writes a run's tuned prompt as an adapter directory.
pub fn export_run(args: &ExportArgs, db: &Path, out: &mut dyn Write) -> Result<()> {
    let store = Store::open_read_only(db)?;
    if let (Ok(target), Ok(db_file)) = (args.out.canonicalize(), db.canonicalize()) {
        if db_file.starts_with(&target) {
            anyhow::bail!(
                "{} holds the database {}; export into another folder (--out)",
                args.out.display(),
                db.display()
            );
        }
    }
    let run = store.run(args.run)?;
    let p = store.prompt_for_run(run.id)?.with_context(|| {
        format!(
            "run {} has no tuned prompt (status {})",
            run.id,
            run.status.as_str()
        )
    })?;
    let name = p
        .card
        .get("model_name")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .to_string();
    export::export(
        &args.out, &p.rows, p.k, p.n_embd, &p.card, &name, args.force,
    )?;
    writeln!(
        out,
        "exported run {} ({} x {} soft prompt for {}) to {}",
        run.id,
        p.k,
        p.n_embd,
        run.region,
        args.out.display()
    )?;
    Ok(())
}

/// Validates an adapter directory against a model and stores it.
pub fn import_dir(args: &ImportArgs, db: &Path, out: &mut dyn Write) -> Result<()> {
    let model = args.engine.load()?;
    let file = export::import(&args.dir, Some(model.info().n_embd))?;
    let sha = sha256_file(&args.engine.model_path()).context("hashing the model")?;
    if file.card.get("model_sha256").and_then(|v| v.as_str()) != Some(sha.as_str()) {
        eprintln!("warning: {} was tuned on another model file (card model_sha256 differs); answers may not transfer", args.dir.display());
    }
    let store = Store::open(db)?;
    store.upsert_model(&crate::tuning::model_record(
        &model,
        &sha,
        &args.engine.model_path(),
    ))?;
    let id = store.save_prompt(None, &sha, file.k, file.n_embd, &file.rows, &file.card)?;
    writeln!(
        out,
        "imported {} ({} x {}) as prompt {id}",
        args.dir.display(),
        file.k,
        file.n_embd
    )?;
    Ok(())
}

/// Computes and stores calibrated constants for the given surveys (by default the training
/// and held-out surveys of a default `tune` run).
pub fn calibrate_model(
    args: &CalibrateArgs,
    table: &RegionTable,
    db: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let given = args.engine.model_path();
    let sha = sha256_file(&given).with_context(|| format!("reading {}", given.display()))?;
    let mut config = TuneConfig::new("USA", &given.display().to_string(), &sha, 0);
    config.weights = args.engine.weights;
    config.settings = args.engine.settings();
    config.panel = args.panel;
    config.counterbalance = args.counterbalance;
    config.calibration_regions =
        crate::tuning::resolve_calibration_regions(table, args.regions.as_deref())?;
    let model = args.engine.load()?;
    let store = Store::open(db)?;
    store.upsert_model(&crate::tuning::model_record(&model, &sha, &given))?;
    let mut ev = Evaluator::new(&model, config.settings)?;
    let surveys = if args.surveys.is_empty() {
        vec![
            Survey::builtin(TRAINING_SURVEY_ID)?,
            Survey::builtin(HELDOUT_SURVEY_ID)?,
        ]
    } else {
        args.surveys
            .iter()
            .map(|spec| Survey::from_id_or_path(spec))
            .collect::<Result<_, _>>()?
    };
    let mut report = Vec::new();
    for survey in &surveys {
        let id = &survey.id;
        let c = calibrate(&model, &mut ev, survey, table, &config, |done, code| {
            eprintln!(
                "calibrating {id}: {done}/{} ({code})",
                config.calibration_regions.len()
            )
        })?;
        store.save_calibration(
            &config.calibration_key(survey),
            &sha,
            id,
            &config.calibration_regions,
            &c,
        )?;
        report.push(json!({"survey": id, "constants": c}));
        if !args.json {
            let parts: Vec<String> = Dimension::ALL
                .iter()
                .map(|d| format!("{d}={:.1}", c.get(*d).unwrap_or(0.0)))
                .collect();
            writeln!(out, "{id}: {}", parts.join(" "))?;
        }
    }
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &json!({"model_sha256": sha, "regions": config.calibration_regions, "calibrations": report})
            )?
        )?;
    } else {
        writeln!(
            out,
            "stored in {} for model {} (regions: {})",
            db.display(),
            sha.get(..12).unwrap_or(&sha),
            config.calibration_regions.join(",")
        )?;
    }
    Ok(())
}
