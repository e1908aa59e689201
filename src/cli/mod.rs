//! Command-line parsing and dispatch. Each sub-command lives in its own module.

mod constants;
mod format;
mod regions;
mod score;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use culturetune::regions::RegionTable;
use std::io::Write;
use std::path::PathBuf;

/// culturetune: align a local LLM with the culture of a chosen region.
///
/// The model answers Hofstede's Values Survey Module 2013; its answers are scored on the six
/// cultural dimensions (PDI, IDV, MAS, UAI, LTO, IVR) and compared with the region's published
/// scores. Every command that prints results accepts --json for scripts.
#[derive(Debug, Parser)]
#[command(name = "culturetune", version, about, long_about)]
pub struct Cli {
    /// Targets table to use instead of the built-in published 6-D scores
    /// (CSV with columns country,code,pdi,idv,mas,uai,lto,ivr).
    #[arg(long, global = true, value_name = "CSV")]
    targets: Option<PathBuf>,

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
}

/// Runs one parsed command line, writing its results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let table = || -> Result<RegionTable> {
        match &cli.targets {
            Some(p) => RegionTable::from_path(p).context("loading the targets table"),
            None => Ok(RegionTable::builtin()),
        }
    };
    match &cli.command {
        Command::Regions(a) => regions::run(a, &table()?, out),
        Command::Score(a) => score::run(a, &table()?, out),
    }
}
