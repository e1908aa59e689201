//! `culturetune regions`: list the targets table.

use super::format::{dim_header, dim_row};
use crate::regions::RegionTable;
use anyhow::Result;
use std::io::Write;

/// Options of `culturetune regions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (an array of {code, name, scores}) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Prints every region.
pub fn run(args: &Args, table: &RegionTable, out: &mut dyn Write) -> Result<()> {
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(table.all())?)?;
        return Ok(());
    }
    let all: Vec<&crate::dimension::DimScores> = table.all().iter().map(|r| &r.scores).collect();
    let dims = super::format::dims_of(&all);
    writeln!(
        out,
        "{:<5} {:<22}{}",
        "CODE",
        "REGION",
        dim_header(&dims, 6)
    )?;
    for r in table.all() {
        writeln!(
            out,
            "{:<5} {:<22}{}",
            r.code,
            r.name,
            dim_row(&r.scores, &dims, 6)
        )?;
    }
    writeln!(
        out,
        "{} regions; '-' = no published score",
        table.all().len()
    )?;
    Ok(())
}
