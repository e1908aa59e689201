//! `culturetune export`, `import` and `calibrate`.

use super::engine_args::EngineArgs;
use crate::fingerprint::sha256_file;
use crate::regions::RegionTable;
use crate::store::Store;
use crate::tuning::calibration::{calibrate_surveys, resolve_calibration_regions, Calibration};
use crate::tuning::transfer;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `culturetune export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The run whose tuned prompt to export.
    run: i64,
    /// Directory to write (a PEFT prompt-tuning adapter plus culturetune.json).
    #[arg(long, value_name = "DIR", required_unless_present = "gguf")]
    out: Option<PathBuf>,
    /// Also (or instead) write a copy of the run's model in which the tuned rows are new
    /// tokens, for llama-server, LM Studio or Ollama; its card (NAME.culturetune.json) and an
    /// Ollama Modelfile (NAME.Modelfile) go beside it.
    #[arg(long, value_name = "FILE.gguf")]
    gguf: Option<PathBuf>,
    /// Replace the folder if it holds a previous export (culturetune.json and the adapter
    /// files, nothing else), or the GGUF if culturetune exported it; any other existing path
    /// is refused and left as it is.
    #[arg(long)]
    force: bool,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `culturetune import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// An exported soft-prompt directory, or a GGUF file written by `export --gguf`.
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
    if let Some(dir) = &args.out {
        let e = transfer::export_run(&store, db, args.run, dir, args.force)?;
        if !args.json {
            writeln!(
                out,
                "exported run {} ({} x {} soft prompt for {}) to {}",
                e.run,
                e.k,
                e.n_embd,
                e.region,
                dir.display()
            )?;
        }
    }
    let Some(file) = &args.gguf else {
        return Ok(());
    };
    let g = transfer::export_gguf(&store, args.run, file, args.force)?;
    if super::format::json(out, args.json, &g)? {
        return Ok(());
    }
    writeln!(
        out,
        "exported run {} ({} tokens {}..{} for {}) to {} ({} MB), card {}, Ollama Modelfile {}",
        g.run,
        g.gguf.tokens.len(),
        g.gguf.tokens[0],
        g.gguf.tokens[g.gguf.tokens.len() - 1],
        g.region,
        file.display(),
        g.gguf.bytes >> 20,
        g.card.display(),
        g.modelfile.display()
    )?;
    writeln!(
        out,
        "run it: llama-server -m {} --jinja   (README: \"Use a tuned prompt in llama-server, LM Studio or Ollama\")",
        file.display()
    )?;
    Ok(())
}

/// Validates an adapter directory against a model and stores it.
pub fn import_dir(args: &ImportArgs, db: &Path, out: &mut dyn Write) -> Result<()> {
    if args.dir.is_file() {
        let i = transfer::import_gguf(db, &args.dir)?.with_context(|| {
            format!(
                "{} is a file but not a GGUF exported by culturetune (no culturetune.* keys); import takes an export directory or such a file",
                args.dir.display()
            )
        })?;
        writeln!(
            out,
            "imported the tuned prompt {} carries ({} x {}) as prompt {}",
            args.dir.display(),
            i.k,
            i.n_embd,
            i.prompt
        )?;
        return Ok(());
    }
    let model = super::engine_args::load(&args.engine)?;
    let given = args.engine.model_path();
    let sha = sha256_file(&given).context("hashing the model")?;
    let i = transfer::import_dir(db, &model, &given, &sha, &args.dir)?;
    if !i.same_model {
        eprintln!("warning: {} was tuned on another model file (card model_sha256 differs); answers may not transfer", args.dir.display());
    }
    writeln!(
        out,
        "imported {} ({} x {}) as prompt {}",
        args.dir.display(),
        i.k,
        i.n_embd,
        i.prompt
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
    let procedure = Calibration {
        model_sha256: sha.clone(),
        weights: args.engine.weights,
        settings: args.engine.settings(),
        panel: args.panel,
        counterbalance: args.counterbalance,
        regions: resolve_calibration_regions(table, args.regions.as_deref())?,
        chat_template: args.engine.chat_template()?,
    };
    let surveys = crate::tuning::calibration::surveys_to_calibrate(&args.surveys)?;
    let model = super::engine_args::load(&args.engine)?;
    let store = Store::open(db)?;
    store.upsert_model(&crate::tuning::model_record(&model, &sha, &given))?;
    let n = procedure.regions.len();
    let report = calibrate_surveys(
        &store,
        &model,
        table,
        &procedure,
        &surveys,
        &mut |id, done, code| eprintln!("calibrating {id}: {done}/{n} ({code})"),
    )?;
    if super::format::json(out, args.json, &report)? {
        return Ok(());
    }
    for c in &report.calibrations {
        let parts: Vec<String> = super::format::dims_of(&[&c.constants])
            .iter()
            .map(|d| format!("{d}={:.1}", c.constants.get(*d).unwrap_or(0.0)))
            .collect();
        writeln!(out, "{}: {}", c.survey, parts.join(" "))?;
    }
    writeln!(
        out,
        "stored in {} for model {} (regions: {})",
        db.display(),
        sha.get(..12).unwrap_or(&sha),
        procedure.regions.join(",")
    )?;
    Ok(())
}
