//! `culturetune reach`: the controllability bound of a soft-prompt space. For each of the six
//! indices, a DE search for its largest and one for its smallest value on the training
//! survey, from the same space a `tune` run with these settings searches. Nothing is stored
//! but the calibration (shared with `tune`).

use super::engine_args::EngineArgs;
use super::format::cell;
use crate::dimension::{DimScores, Dimension};
use crate::fingerprint::sha256_file;
use crate::optim::Strategy;
use crate::regions::RegionTable;
use crate::soft_prompt::{AnswerAnchor, Placement};
use crate::store::Store;
use crate::survey::Survey;
use crate::tuning::{constants_for, Reach, TuneConfig, Tuner};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Options of `culturetune reach`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Region (code or name) whose persona and anchor the soft prompt starts from.
    #[arg(long, value_name = "CODE")]
    region: String,
    /// Candidates per search (12 searches: each index up and down).
    #[arg(long, default_value_t = 36)]
    budget: usize,
    /// Population size of Differential Evolution.
    #[arg(long, default_value_t = 12)]
    population: usize,
    /// Search dimensions d.
    #[arg(long, default_value_t = 100)]
    dims: usize,
    /// Soft-prompt rows beyond the anchor text's own rows.
    #[arg(long, default_value_t = 0)]
    extra_rows: usize,
    /// Scale of the projection A (1 = embedding std / sqrt(d) per entry).
    #[arg(long, default_value_t = 1.0)]
    a_scale: f64,
    /// Where the soft prompt goes.
    #[arg(long, value_enum, default_value = "answer")]
    placement: Placement,
    /// What the answer-side rows start from (as for `tune`).
    #[arg(long, value_enum, default_value = "opening")]
    anchor: AnswerAnchor,
    /// Seed of the projection and the searches.
    #[arg(long, default_value_t = 2013)]
    seed: u64,
    /// Calibration regions (comma-separated codes) [default: as for `tune`].
    #[arg(long, value_delimiter = ',', value_name = "CODES")]
    calibration_regions: Option<Vec<String>>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `reach`.
pub fn run(args: &Args, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let region = table.find(&args.region)?.clone();
    let given = args.engine.model_path();
    let sha = sha256_file(&given).with_context(|| format!("reading {}", given.display()))?;
    let mut config = TuneConfig::new(&region.code, &given.display().to_string(), &sha, args.seed);
    config.weights = args.engine.weights;
    config.settings = args.engine.settings();
    config.placement = args.placement;
    config.anchor = args.anchor;
    config.extra_rows = args.extra_rows;
    config.a_scale = args.a_scale;
    config.d = args.dims;
    config.de.dim = args.dims;
    config.de.pop_size = args.population;
    config.de.strategy = Strategy::Shade;
    config.de.max_evals = Some(args.budget);
    if !(args.a_scale.is_finite() && args.a_scale > 0.0) {
        bail!("--a-scale must be a positive number (got {})", args.a_scale);
    }
    config.calibration_regions =
        crate::tuning::resolve_calibration_regions(table, args.calibration_regions.as_deref())?;
    crate::optim::DeState::new(config.de.clone())
        .map_err(|e| anyhow!("invalid optimizer settings: {e}"))?;
    let train = Survey::from_id_or_path(&config.survey).context("loading the training survey")?;
    let model = args.engine.load()?;
    let store = Store::open(db)?;
    // Calibrations refer to the model's record.
    store.upsert_model(&super::engine_args::model_record(&model, &sha, &given))?;
    let constants = constants_for(&store, &model, &train, table, &config, |done, code| {
        eprintln!(
            "calibrating on {} ({done}/{})",
            code,
            config.calibration_regions.len()
        )
    })?;
    let mut tuner = Tuner::new(&model, &config, train, region.clone(), constants)?;
    let start = tuner
        .evaluate_rows(&tuner.rows(&vec![0.0; config.d]))?
        .indices;
    let cancel = AtomicBool::new(false);
    let (mut lo, mut hi) = ([f64::INFINITY; 6], [f64::NEG_INFINITY; 6]);
    let mut found: Vec<Reach> = Vec::new();
    for d in Dimension::ALL {
        for maximize in [false, true] {
            let mut options = config.de.clone();
            // Each search its own stream, all from the one stored seed.
            options.seed = args.seed ^ ((d.index() as u64 * 2 + maximize as u64 + 1) << 32);
            let r = tuner.reach(d, maximize, options, &cancel, |s: &DimScores| {
                for (dim, v) in s.iter() {
                    lo[dim.index()] = lo[dim.index()].min(v);
                    hi[dim.index()] = hi[dim.index()].max(v);
                }
            })?;
            eprintln!(
                "{} {}: {:.1}",
                if maximize { "max" } else { "min" },
                d.code(),
                r.value
            );
            found.push(r);
        }
    }
    let rows: Vec<_> = Dimension::ALL
        .iter()
        .map(|&d| {
            let searched = |max: bool| {
                found
                    .iter()
                    .find(|r| r.dimension == d && r.maximize == max)
                    .map(|r| r.value)
            };
            json!({
                "dimension": d.code(), "target": region.scores.get(d), "start": start.get(d),
                "min": searched(false), "max": searched(true),
                "seen_min": lo[d.index()], "seen_max": hi[d.index()],
            })
        })
        .collect();
    if args.json {
        let v = json!({"region": region.code, "placement": config.placement, "anchor": config.anchor, "d": config.d,
            "k_extra": config.extra_rows, "a_scale": config.a_scale, "budget_per_search": args.budget,
            "seed": args.seed, "dimensions": rows});
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "region {}: reach of each index over the {} placement's soft prompts ({} candidates per search)",
        region.code,
        config.placement.as_str(),
        args.budget
    )?;
    writeln!(
        out,
        "{:<5}{:>8}{:>8}{:>8}{:>8}",
        "", "target", "z = 0", "min", "max"
    )?;
    for r in &rows {
        let f = |k: &str| cell(r[k].as_f64());
        writeln!(
            out,
            "{:<5}{:>8}{:>8}{:>8}{:>8}",
            r["dimension"].as_str().unwrap_or("?"),
            f("target"),
            f("start"),
            f("seen_min"),
            f("seen_max")
        )?;
    }
    writeln!(
        out,
        "min and max are over every candidate of all 12 searches (each index searched up and down)"
    )?;
    Ok(())
}
