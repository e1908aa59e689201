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

/// Whether the tuned prompt carries over to the held-out survey: its held-out loss against
/// the naive prompt's, in the run's objective (index L1, or the item distance over the
/// training items of a population run with the items objective).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Transfer {
    /// Naive loss on the held-out survey.
    pub heldout_naive: f64,
    /// Tuned loss on the held-out survey.
    pub heldout_tuned: f64,
    /// Tuned below naive.
    pub carries_over: bool,
    /// The losses are item distances, not index L1.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub items: bool,
}

/// How the tuned prompt does on the items held out of a population run's objective, on the
/// training wording: its mean item distance there against the naive prompt's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ItemHoldout {
    /// Naive prompt's mean distance over the held-out items.
    pub naive: f64,
    /// Tuned prompt's.
    pub tuned: f64,
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
    /// The held-out items' verdict (population runs with held-out items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_holdout: Option<ItemHoldout>,
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
            item_holdout: item_holdout(&rows),
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

    /// One sentence on the items held out of a population run's objective.
    pub fn item_holdout_text(&self) -> Option<String> {
        self.item_holdout.map(|h| {
            let verdict = if h.carries_over {
                "the tuned prompt also fits the items it was not tuned on better"
            } else {
                "the tuned prompt fits the items it was tuned on, not the ones held out"
            };
            format!(
                "held-out items: tuned {:.3} {} naive {:.3} on the training wording: {verdict}",
                h.tuned,
                if h.carries_over { "<" } else { ">=" },
                h.naive
            )
        })
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

/// The held-out verdict of a comparison's rows, in item distance when they have one.
fn transfer(rows: &[MethodRow]) -> Option<Transfer> {
    let row = |label: &str| rows.iter().find(|r| r.label == label);
    let (n, t) = (row("held-out naive")?, row("held-out tuned")?);
    let (n, t, items) = match (n.items_train, t.items_train) {
        (Some(n), Some(t)) => (n, t, true),
        _ => (n.loss, t.loss, false),
    };
    Some(Transfer {
        heldout_naive: n,
        heldout_tuned: t,
        carries_over: t < n,
        items,
    })
}

/// The held-out items' verdict, on the training wording.
fn item_holdout(rows: &[MethodRow]) -> Option<ItemHoldout> {
    let held = |label: &str| rows.iter().find(|r| r.label == label)?.items_heldout;
    let (naive, tuned) = (held("train naive")?, held("train tuned")?);
    Some(ItemHoldout {
        naive,
        tuned,
        carries_over: tuned < naive,
    })
}

fn transfer_text(t: &Transfer) -> String {
    if t.items {
        return format!(
            "held-out: tuned item distance {:.3} {} naive {:.3} on the independently worded survey's training items: {}",
            t.heldout_tuned,
            if t.carries_over { "<" } else { ">=" },
            t.heldout_naive,
            if t.carries_over { "the tuned prompt carries over" } else { "the tuned prompt does not carry over" }
        );
    }
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

    #[test]
    fn a_population_run_is_judged_by_its_item_distances() {
        let with = |label: &str, train: f64, held: f64| MethodRow {
            items_train: Some(train),
            items_heldout: Some(held),
            ..row(label, 400.0)
        };
        let rows = [
            with("train naive", 1.2, 1.5),
            with("train tuned", 1.0, 1.9),
            with("held-out naive", 1.18, 1.6),
            MethodRow {
                loss: 500.0,
                ..with("held-out tuned", 1.06, 2.0)
            },
        ];
        let t = transfer(&rows).unwrap();
        assert!(
            t.items && t.carries_over,
            "item distance, not index L1: {t:?}"
        );
        assert!(transfer_text(&t).contains("tuned item distance 1.060 < naive 1.180"));
        let h = item_holdout(&rows).unwrap();
        assert_eq!((h.naive, h.tuned, h.carries_over), (1.5, 1.9, false));
    }
}
