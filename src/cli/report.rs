//! The comparison table printed after tuning and by `show` and `eval`: a renderer of
//! `tuning::report::Comparison`.

use super::format::{cell, dim_header, dim_row};
use crate::tuning::report::Comparison;
use anyhow::Result;
use std::io::Write;

/// Prints the target, each method's indices and losses, the gap closed and the held-out
/// verdict (or the comparison's JSON).
pub fn print_comparison(out: &mut dyn Write, c: &Comparison, json_out: bool) -> Result<()> {
    if super::format::json(out, json_out, c)? {
        return Ok(());
    }
    if let Some(r) = &c.run {
        writeln!(
            out,
            "run {}: {} evaluations, {:.0} s of search",
            r.id, r.evals, r.seconds
        )?;
    }
    let region = &c.region;
    writeln!(
        out,
        "region {} ({}); constants: {}",
        region.code,
        region.name,
        c.constants.describe()
    )?;
    if let Some(p) = &c.population {
        writeln!(out, "target: {p}; the region is the persona only")?;
    }
    let mut all: Vec<&crate::dimension::DimScores> = c.rows.iter().map(|r| &r.indices).collect();
    all.extend(&c.targets);
    let dims = super::format::dims_of(&all);
    print_rows(out, c, &dims)?;
    print_item_fit(out, c)?;
    // Training before held-out, as the rows are.
    for label in ["train", "held-out"] {
        let Some(g) = c.gap_closed.get(label) else {
            continue;
        };
        let pct: String = dims
            .iter()
            .map(|&d| match g.get(d) {
                Some(v) => format!("{:>7}", format!("{:.0}%", v * 100.0)),
                None => format!("{:>7}", "-"),
            })
            .collect();
        writeln!(out, "{:<16}{pct}", format!("{label} closed"))?;
    }
    if !c.gap_closed.is_empty() {
        writeln!(
            out,
            "closed = share of the naive prompt's distance to the target that the tuned prompt removed, per dimension (100% = on target, negative = further away)"
        )?;
    }
    if let Some(t) = c.transfer_text() {
        writeln!(out, "{t}")?;
    }
    if let Some(t) = c.item_holdout_text() {
        writeln!(out, "{t}")?;
    }
    if let Some(r) = c.rows.first() {
        let constants = match c.population {
            Some(_) => "every row uses zero constants, as the population's indices do",
            None => "held-out rows use the held-out survey's own calibrated constants",
        };
        writeln!(
            out,
            "losses over {} of {} dimensions; {constants}",
            r.dims_used,
            r.indices.count()
        )?;
    }
    Ok(())
}

/// The table of a comparison: the targets, then a row per method and survey (indices on
/// `dims`, loss, mean loss, digit mass).
fn print_rows(
    out: &mut dyn Write,
    c: &Comparison,
    dims: &[crate::dimension::Dimension],
) -> Result<()> {
    writeln!(
        out,
        "{:<16}{}{:>9}{:>7}{:>6}",
        "",
        dim_header(dims, 7),
        "L1",
        "mean",
        "mass"
    )?;
    writeln!(out, "{:<16}{}", "target", dim_row(&c.targets[0], dims, 7))?;
    if c.targets[1] != c.targets[0] {
        writeln!(
            out,
            "{:<16}{}",
            "held-out target",
            dim_row(&c.targets[1], dims, 7)
        )?;
    }
    for r in &c.rows {
        writeln!(
            out,
            "{:<16}{}{:>9}{:>7}{:>6.2}",
            r.label,
            dim_row(&r.indices, dims, 7),
            cell(Some(r.loss)),
            cell(Some(r.loss_mean)),
            r.digit_mass
        )?;
    }
    Ok(())
}

/// The per-item fit of each method (population runs with the items objective): mean earth
/// mover's distance over the training items and over the held-out items.
fn print_item_fit(out: &mut dyn Write, c: &Comparison) -> Result<()> {
    if c.rows.iter().all(|r| r.items_train.is_none()) {
        return Ok(());
    }
    writeln!(
        out,
        "item distance (mean earth mover's distance to the population's answers, in code steps):"
    )?;
    writeln!(
        out,
        "{:<16}{:>12}{:>16}",
        "", "train items", "held-out items"
    )?;
    for r in c.rows.iter().filter(|r| r.items_train.is_some()) {
        writeln!(
            out,
            "{:<16}{:>12}{:>16}",
            r.label,
            r.items_train.map_or("-".into(), |v| format!("{v:.3}")),
            r.items_heldout.map_or("-".into(), |v| format!("{v:.3}"))
        )?;
    }
    Ok(())
}
