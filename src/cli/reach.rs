//! `culturetune reach`: the controllability bound of a soft-prompt space. For each of the six
//! indices, a DE search for its largest and one for its smallest value on the training
//! survey, from the same space a `tune` run with these settings searches. Nothing is stored
//! but the calibration (shared with `tune`).

use super::format::cell;
use super::space_args::SpaceArgs;
use crate::dimension::{DimScores, Dimension};
use crate::optim::Strategy;
use crate::regions::RegionTable;
use crate::store::Store;
use crate::survey::Survey;
use crate::tuning::request::{defaults, resolve, TuneRequest};
use crate::tuning::{constants_for, Reach, Tuner};
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Options of `culturetune reach`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    space: SpaceArgs,
    /// Candidates per search (12 searches: each index up and down).
    #[arg(long, default_value_t = defaults::REACH_BUDGET)]
    budget: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `reach`.
pub fn run(args: &Args, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let request = TuneRequest {
        budget: Some(args.budget),
        strategy: Some(Strategy::Shade),
        ..args.space.request()
    };
    let config = resolve(&request, table, &args.space.engine_choice(), || {
        args.space.facts()
    })?;
    let region = table.find(&config.region)?.clone();
    let (given, sha) = (args.space.engine.model_path(), config.model_sha256.clone());
    let train = Survey::from_id_or_path(&config.survey).context("loading the training survey")?;
    let model = args.space.engine.load()?;
    let store = Store::open(db)?;
    // Calibrations refer to the model's record.
    store.upsert_model(&crate::tuning::model_record(&model, &sha, &given))?;
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
            options.seed = args.space.seed ^ ((d.index() as u64 * 2 + maximize as u64 + 1) << 32);
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
            "k_extra": config.extra_rows, "a_scale": config.a_scale,
            "panel": config.panel, "counterbalance": config.counterbalance, "budget_per_search": args.budget,
            "seed": args.space.seed, "dimensions": rows});
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    print_table(
        out,
        &region.code,
        config.placement.as_str(),
        args.budget,
        &rows,
    )
}

/// The text table of `reach`: per dimension the target, the value at z = 0, and the range.
fn print_table(
    out: &mut dyn Write,
    region: &str,
    placement: &str,
    budget: usize,
    rows: &[serde_json::Value],
) -> Result<()> {
    writeln!(
        out,
        "region {region}: reach of each index over the {placement} placement's soft prompts ({budget} candidates per search)"
    )?;
    writeln!(
        out,
        "{:<5}{:>8}{:>8}{:>8}{:>8}",
        "", "target", "z = 0", "min", "max"
    )?;
    for r in rows {
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
