//! The comparison table printed after tuning and by `show`, `eval` and `compare`.

use super::format::{cell, dim_header, dim_row};
use crate::dimension::{DimScores, Dimension};
use crate::regions::Region;
use crate::scoring::{gap_closed, Constants};
use crate::store::{EvaluationRecord, MethodLabel};
use crate::survey::Survey;
use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use std::io::Write;

/// One line of the table: a method on a survey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodRow {
    /// e.g. `train naive`.
    pub label: String,
    /// Indices.
    pub indices: DimScores,
    /// L1 loss.
    pub loss: f64,
    /// Mean loss per dimension.
    pub loss_mean: f64,
    /// Dimensions used.
    pub dims_used: usize,
    /// Mean digit mass.
    pub digit_mass: f64,
}

/// Per survey label ("train", "held-out") with both a naive and a tuned row: the share of
/// the naive gap the tuned prompt closed, per dimension.
fn gap_rows(region: &Region, rows: &[MethodRow]) -> Vec<(String, DimScores)> {
    let find = |label: String| rows.iter().find(|r| r.label == label).map(|r| r.indices);
    ["train", "held-out"]
        .iter()
        .filter_map(|s| {
            let naive = find(format!("{s} naive"))?;
            let tuned = find(format!("{s} tuned"))?;
            Some((s.to_string(), gap_closed(&region.scores, &naive, &tuned)))
        })
        .collect()
}

/// Prints the target, each method's indices and losses (or JSON).
pub fn print_comparison(
    out: &mut dyn Write,
    region: &Region,
    rows: &[MethodRow],
    constants: &Constants,
    json_out: bool,
    run: Option<(i64, usize, f64)>,
) -> Result<()> {
    let closed = gap_rows(region, rows);
    if json_out {
        let gaps: serde_json::Map<String, serde_json::Value> = closed
            .iter()
            .map(|(label, g)| (label.clone(), json!(g)))
            .collect();
        let v = json!({"region": region, "constants": constants, "rows": rows, "gap_closed": gaps, "run": run.map(|(id, evals, secs)| json!({"id": id, "evals": evals, "seconds": secs}))});
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    if let Some((id, evals, secs)) = run {
        writeln!(out, "run {id}: {evals} evaluations, {secs:.0} s of search")?;
    }
    writeln!(
        out,
        "region {} ({}); constants: {}",
        region.code,
        region.name,
        constants.describe()
    )?;
    writeln!(
        out,
        "{:<16}{}{:>9}{:>7}{:>6}",
        "",
        dim_header(7),
        "L1",
        "mean",
        "mass"
    )?;
    writeln!(out, "{:<16}{}", "target", dim_row(&region.scores, 7))?;
    for r in rows {
        writeln!(
            out,
            "{:<16}{}{:>9}{:>7}{:>6.2}",
            r.label,
            dim_row(&r.indices, 7),
            cell(Some(r.loss)),
            cell(Some(r.loss_mean)),
            r.digit_mass
        )?;
    }
    for (label, g) in &closed {
        let pct: String = Dimension::ALL
            .iter()
            .map(|&d| match g.get(d) {
                Some(v) => format!("{:>7}", format!("{:.0}%", v * 100.0)),
                None => format!("{:>7}", "-"),
            })
            .collect();
        writeln!(out, "{:<16}{pct}", format!("{label} closed"))?;
    }
    if !closed.is_empty() {
        writeln!(
            out,
            "closed = share of the naive prompt's distance to the target that the tuned prompt removed, per dimension (100% = on target, negative = further away)"
        )?;
    }
    if let Some(r) = rows.first() {
        writeln!(out, "losses over {} of 6 dimensions; held-out rows use the held-out survey's own calibrated constants", r.dims_used)?;
    }
    Ok(())
}

/// The rows of the final table from a run's stored evaluations (latest of each kind).
pub fn comparison_rows(
    evals: &[EvaluationRecord],
    train: &Survey,
    heldout: &Survey,
) -> Vec<MethodRow> {
    let mut rows = Vec::new();
    for (survey, label) in [(train, "train"), (heldout, "held-out")] {
        for m in MethodLabel::ALL {
            if let Some(e) = evals
                .iter()
                .rev()
                .find(|e| e.method == m && e.survey == survey.id)
            {
                rows.push(MethodRow {
                    label: format!("{label} {m}"),
                    indices: e.indices,
                    loss: e.loss,
                    loss_mean: e.loss_mean,
                    dims_used: e.dims_used,
                    digit_mass: e.digit_mass,
                });
            }
        }
    }
    rows
}
