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

/// Whether the tuned prompt carries over to the held-out survey: its held-out L1 against the
/// naive prompt's (None without both held-out rows).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Transfer {
    /// Naive L1 on the held-out survey.
    heldout_naive: f64,
    /// Tuned L1 on the held-out survey.
    heldout_tuned: f64,
    /// Tuned below naive.
    carries_over: bool,
}

/// The held-out verdict of a comparison's rows.
fn transfer(rows: &[MethodRow]) -> Option<Transfer> {
    let loss = |label: &str| rows.iter().find(|r| r.label == label).map(|r| r.loss);
    let (n, t) = (loss("held-out naive")?, loss("held-out tuned")?);
    Some(Transfer {
        heldout_naive: n,
        heldout_tuned: t,
        carries_over: t < n,
    })
}

/// One sentence for a user judging a run on the held-out survey.
fn transfer_text(t: &Transfer) -> String {
    if t.carries_over {
        format!(
            "held-out: tuned L1 {:.1} < naive {:.1}: the tuned prompt carries over to the independently worded survey",
            t.heldout_tuned, t.heldout_naive
        )
    } else {
        format!(
            "held-out: tuned L1 {:.1} >= naive {:.1}: the tuned prompt fits the training wording but does not carry over to the independently worded survey (docs/tuning.md, \"What does not generalize\": another --seed, or training on two wordings with --survey vsm13-ac, which carried over for USA and CHI but not for ARA)",
            t.heldout_tuned, t.heldout_naive
        )
    }
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
        let v = json!({"region": region, "constants": constants, "rows": rows, "gap_closed": gaps, "transfer": transfer(rows), "run": run.map(|(id, evals, secs)| json!({"id": id, "evals": evals, "seconds": secs}))});
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
    if let Some(t) = transfer(rows) {
        writeln!(out, "{}", transfer_text(&t))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, loss: f64) -> MethodRow {
        MethodRow {
            label: label.into(),
            indices: DimScores::default(),
            loss,
            loss_mean: loss / 6.0,
            dims_used: 6,
            digit_mass: 1.0,
        }
    }

    #[test]
    fn the_held_out_verdict_compares_tuned_with_naive() {
        let rows = [row("train naive", 100.0), row("train tuned", 50.0)];
        assert_eq!(transfer(&rows), None);
        let mut rows = rows.to_vec();
        rows.push(row("held-out naive", 129.4));
        rows.push(row("held-out tuned", 135.6));
        let t = transfer(&rows).unwrap();
        assert!(!t.carries_over);
        assert!(transfer_text(&t).contains("tuned L1 135.6 >= naive 129.4: the tuned prompt fits the training wording but does not carry over"));
        rows.last_mut().unwrap().loss = 119.4;
        let t = transfer(&rows).unwrap();
        assert!(t.carries_over);
        assert!(transfer_text(&t)
            .starts_with("held-out: tuned L1 119.4 < naive 129.4: the tuned prompt carries over"));
    }
}
