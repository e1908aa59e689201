//! `culturetune score`: score human survey responses.

use super::format::{cell, dim_header, dim_row};
use crate::regions::RegionTable;
use crate::responses::{Responses, ScoreReport, Selection};
use crate::scoring::Constants;
use crate::survey::Survey;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;

/// Options of `culturetune score`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Survey definition: a built-in id (vsm13, vsm13-alt, vsm13-c, vsm13-ac) or a path to a
    /// survey TOML file.
    #[arg(long, default_value = "vsm13", value_name = "ID|FILE")]
    survey: String,
    /// Responses CSV: one row per respondent, one column per item id with codes 1..5.
    #[arg(long, value_name = "CSV")]
    responses: PathBuf,
    /// Only the rows of one group, e.g. `country=DEU`.
    #[arg(long, value_name = "COLUMN=VALUE")]
    group: Option<String>,
    /// The column of respondent weights (numbers >= 0).
    #[arg(long, value_name = "COLUMN")]
    weight: Option<String>,
    /// Region (code or name) whose published scores to compare with.
    #[arg(long, value_name = "CODE")]
    region: Option<String>,
    /// Index constants: `zero`, `survey` (the survey file's [constants], else zero), or
    /// given values such as `PDI=20,IDV=10` (unlisted dimensions are 0).
    #[arg(long, default_value = "survey", value_name = "POLICY")]
    constants: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Scores the responses file.
pub fn run(args: &Args, table: &RegionTable, out: &mut dyn Write) -> Result<()> {
    let survey = Survey::from_id_or_path(&args.survey).context("loading the survey")?;
    let constants = Constants::parse(&args.constants, &survey)?;
    let selection = Selection::parse(args.group.as_deref(), args.weight.as_deref())
        .map_err(anyhow::Error::msg)?;
    let responses = Responses::from_path_with(&args.responses, &survey, &selection)?;
    let region = args.region.as_deref().map(|q| table.find(q)).transpose()?;
    let r = ScoreReport::new(&survey, &args.responses, &responses, constants, region)?;
    if super::format::json(out, args.json, &r)? {
        return Ok(());
    }
    let (scores, loss, constants) = (&r.indices, &r.loss, &r.constants);
    writeln!(
        out,
        "survey {} ({} items), {} respondents from {}",
        survey.id,
        survey.items.len(),
        responses.respondents,
        args.responses.display()
    )?;
    writeln!(out, "constants: {}", constants.describe())?;
    writeln!(out)?;
    let dims = match region {
        Some(r) => super::format::dims_of(&[scores, &r.scores]),
        None => super::format::dims_of(&[scores]),
    };
    writeln!(out, "{:<10}{}", "", dim_header(&dims, 8))?;
    writeln!(out, "{:<10}{}", "index", dim_row(scores, &dims, 8))?;
    if let Some(r) = region {
        writeln!(out, "{:<10}{}", r.code, dim_row(&r.scores, &dims, 8))?;
        match &loss {
            Some(l) => {
                writeln!(out, "{:<10}{}", "error", dim_row(&l.errors, &dims, 8))?;
                writeln!(out)?;
                writeln!(
                    out,
                    "loss vs {} ({}): L1 = {} over {} of {} dimensions (mean {})",
                    r.code,
                    r.name,
                    cell(Some(l.l1)),
                    l.dims_used,
                    survey.formulas.len(),
                    cell(Some(l.mean))
                )?;
            }
            None => writeln!(
                out,
                "{} has no published score on the dimensions this survey defines",
                r.code
            )?,
        }
    }
    let undefined: Vec<_> = dims
        .iter()
        .filter(|d| scores.get(**d).is_none())
        .map(|d| d.code())
        .collect();
    if !undefined.is_empty() {
        writeln!(
            out,
            "survey defines no formula for: {}",
            undefined.join(", ")
        )?;
    }
    Ok(())
}
