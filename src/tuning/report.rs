//! The comparison of one run's methods: each method's indices and losses on the training and
//! the held-out survey, the share of the naive gap the tuned prompt closed, and whether it
//! carries over to the held-out wording. Built from stored evaluations (pure: no I/O); `tune`,
//! `show` and `eval` print it, as text or as this struct's JSON.

use crate::dimension::DimScores;
use crate::regions::Region;
use crate::scoring::{gap_closed, Constants};
use crate::store::{EvaluationRecord, MethodLabel};
use crate::tuning::target::Population;
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// Mean item distance over the training items (items objective only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_train: Option<f64>,
    /// Mean item distance over the held-out items (items objective with held-out items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_heldout: Option<f64>,
}

/// Whether the tuned prompt carries over to the held-out survey: its held-out L1 against the
/// naive prompt's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Transfer {
    /// Naive L1 on the held-out survey.
    pub heldout_naive: f64,
    /// Tuned L1 on the held-out survey.
    pub heldout_tuned: f64,
    /// Tuned below naive.
    pub carries_over: bool,
}

/// The run a comparison was made by, when it was made right after the search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunTiming {
    /// The run id.
    pub id: i64,
    /// Candidates evaluated.
    pub evals: usize,
    /// Seconds of search.
    pub seconds: f64,
}

/// The comparison table of one run (the JSON of `tune --json`, `show` and `eval --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The target region (the persona of a population run).
    pub region: Region,
    /// The index targets on the training and the held-out survey: the region's published
    /// scores, or the population's indices.
    pub targets: [DimScores; 2],
    /// The population a run was scored against, described (absent for a region run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub population: Option<String>,
    /// The training survey's constants.
    pub constants: Constants,
    /// Every method on both surveys that has an evaluation.
    pub rows: Vec<MethodRow>,
    /// Per survey label (`train`, `held-out`) with both a naive and a tuned row: the share of
    /// the naive gap the tuned prompt closed, per dimension.
    pub gap_closed: BTreeMap<String, DimScores>,
    /// The held-out verdict (absent without both held-out rows).
    pub transfer: Option<Transfer>,
    /// The run, right after its search.
    pub run: Option<RunTiming>,
}

impl Comparison {
    /// The comparison of a run's stored evaluations (the latest of each method and survey):
    /// `train` and `heldout` are the surveys' ids.
    pub fn from_evaluations(
        region: &Region,
        constants: &Constants,
        evals: &[EvaluationRecord],
        train: &str,
        heldout: &str,
        run: Option<RunTiming>,
    ) -> Comparison {
        let rows = method_rows(evals, train, heldout);
        let targets = [region.scores; 2];
        Comparison {
            region: region.clone(),
            targets,
            population: None,
            constants: constants.clone(),
            gap_closed: gap_rows(&targets, &rows),
            transfer: transfer(&rows),
            rows,
            run,
        }
    }

    /// The comparison scored against a run's population (unchanged without one): its
    /// indices on each survey as the targets, and the gaps closed toward them.
    pub fn with_population(mut self, population: Option<&Population>) -> Comparison {
        let Some(p) = population else {
            return self;
        };
        // The population's targets are stored training survey first, as the rows are.
        for (target, t) in self.targets.iter_mut().zip(&p.surveys) {
            *target = t.indices;
        }
        self.gap_closed = gap_rows(&self.targets, &self.rows);
        self.population = Some(p.describe());
        self
    }

    /// One sentence for a user judging the run on the held-out survey.
    pub fn transfer_text(&self) -> Option<String> {
        self.transfer.as_ref().map(transfer_text)
    }
}

/// The rows of the table from a run's stored evaluations (latest of each kind).
fn method_rows(evals: &[EvaluationRecord], train: &str, heldout: &str) -> Vec<MethodRow> {
    let mut rows = Vec::new();
    for (survey, label) in [(train, "train"), (heldout, "held-out")] {
        for m in MethodLabel::ALL {
            if let Some(e) = EvaluationRecord::latest(evals, m, survey) {
                rows.push(MethodRow {
                    label: format!("{label} {m}"),
                    indices: e.indices,
                    loss: e.loss,
                    loss_mean: e.loss_mean,
                    dims_used: e.dims_used,
                    digit_mass: e.digit_mass,
                    items_train: e.items.as_ref().map(|f| f.train),
                    items_heldout: e.items.as_ref().and_then(|f| f.heldout),
                });
            }
        }
    }
    rows
}

/// The gap closed per survey label that has both a naive and a tuned row.
fn gap_rows(targets: &[DimScores; 2], rows: &[MethodRow]) -> BTreeMap<String, DimScores> {
    let find = |label: String| rows.iter().find(|r| r.label == label).map(|r| r.indices);
    ["train", "held-out"]
        .iter()
        .zip(targets)
        .filter_map(|(s, target)| {
            let naive = find(format!("{s} naive"))?;
            let tuned = find(format!("{s} tuned"))?;
            Some((s.to_string(), gap_closed(target, &naive, &tuned)))
        })
        .collect()
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
            items_train: None,
            items_heldout: None,
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
