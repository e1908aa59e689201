//! `culturetune reach`: the controllability bound of a soft-prompt space
//! (`tuning::reach`), with the model loaded and the constants calibrated as for `tune`.

use super::format::cell;
use super::space_args::SpaceArgs;
use crate::optim::Strategy;
use crate::regions::RegionTable;
use crate::store::Store;
use crate::survey::Survey;
use crate::tuning::calibration::constants_for;
use crate::tuning::reach::{reach_all, ReachReport};
use crate::tuning::request::{defaults, model_facts, resolve, EngineChoice, TuneRequest};
use crate::tuning::Tuner;
use anyhow::{Context, Result};
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
    let engine = &args.space.engine;
    let config = resolve(&request, table, &EngineChoice::of(engine)?, || {
        model_facts(engine, &mut |line| eprintln!("{line}"))
    })?;
    let region = table.find(&config.region)?.clone();
    let (given, sha) = (args.space.engine.model_path(), config.model_sha256.clone());
    let train = Survey::from_id_or_path(&config.survey).context("loading the training survey")?;
    let model = super::engine_args::load(&args.space.engine)?;
    let store = Store::open(db)?;
    // Calibrations refer to the model's record.
    store.upsert_model(&crate::tuning::model_record(&model, &sha, &given))?;
    let constants = constants_for(
        &store,
        &model,
        &train,
        table,
        &config.calibration(),
        |done, code| {
            eprintln!(
                "calibrating on {} ({done}/{})",
                code,
                config.calibration_regions.len()
            )
        },
    )?;
    let mut tuner = Tuner::new(&model, &config, train, region.clone(), constants)?;
    let cancel = AtomicBool::new(false);
    let report = reach_all(&mut tuner, &config, &region.scores, &cancel, &mut |r| {
        let way = if r.maximize { "max" } else { "min" };
        eprintln!("{way} {}: {:.1}", r.dimension.code(), r.value)
    })?;
    if super::format::json(out, args.json, &report)? {
        return Ok(());
    }
    print_table(out, &report)
}

/// The text table of `reach`: per dimension the target, the value at z = 0, and the range.
fn print_table(out: &mut dyn Write, r: &ReachReport) -> Result<()> {
    writeln!(
        out,
        "region {}: reach of each index over the {} placement's soft prompts ({} candidates per search)",
        r.region,
        r.placement.as_str(),
        r.budget_per_search
    )?;
    writeln!(
        out,
        "{:<5}{:>8}{:>8}{:>8}{:>8}",
        "", "target", "z = 0", "min", "max"
    )?;
    for d in &r.dimensions {
        writeln!(
            out,
            "{:<5}{:>8}{:>8}{:>8}{:>8}",
            d.dimension.code(),
            cell(d.target),
            cell(d.start),
            cell(Some(d.seen_min)),
            cell(Some(d.seen_max))
        )?;
    }
    writeln!(
        out,
        "min and max are over every candidate of all 12 searches (each index searched up and down)"
    )?;
    Ok(())
}
