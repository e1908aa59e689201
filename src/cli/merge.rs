//! `culturetune merge`: other databases' runs brought into one (`Store::merge`).

use crate::store::Store;
use anyhow::Result;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `culturetune merge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Databases to copy from (opened read-only, never written).
    #[arg(required = true, value_name = "DB")]
    sources: Vec<PathBuf>,
    /// The database to copy into [default: --db].
    #[arg(long, value_name = "DB")]
    into: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Merges the sources and says what each brought.
pub fn run(args: &Args, db: &Path, out: &mut dyn Write) -> Result<()> {
    let into = args.into.as_deref().unwrap_or(db);
    let report = Store::open(into)?.merge(&args.sources, &crate::tuning::job_of)?;
    if super::format::json(out, args.json, &report)? {
        return Ok(());
    }
    for m in &report {
        writeln!(out, "{}", m.summary())?;
        for c in &m.conflicts {
            writeln!(out, "  {}", c.describe())?;
        }
    }
    writeln!(out, "merged into {}", into.display())?;
    Ok(())
}
