//! Command-line parsing and dispatch. Each sub-command lives in its own module.

mod bench;
mod constants;
mod engine_args;
mod format;
mod regions;
mod score;
mod survey;

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
        Command::Survey(a) => survey::run(a, &table()?, out),
        Command::Bench(a) => bench::run(a, &table()?, out),
    }
}
