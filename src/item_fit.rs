//! How closely a model's answer distribution on each item matches a population's: the
//! per-item objective of a population run (`--objective items`).
//!
//! The distance is the earth mover's distance on the ordinal scale: the least mass times
//! code steps that turns one distribution over an item's codes into the other, i.e. the sum
//! over the cut points between neighbouring codes of |CDF_a - CDF_b|. It is in answer-code
//! steps (0 = the same distribution; on a 1..5 scale 4 = all mass on code 1 against all on
//! code 5) and, unlike Jensen-Shannon divergence, it knows that answering 2 instead of 1 is a
//! smaller miss than answering 5.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The earth mover's distance between two distributions over the same ordered codes (the
/// shorter length counts), in code steps.
pub fn ordinal_emd(a: &[f64], b: &[f64]) -> f64 {
    let (mut ca, mut cb, mut d) = (0.0, 0.0, 0.0);
    for k in 0..a.len().min(b.len()).saturating_sub(1) {
        ca += a[k];
        cb += b[k];
        d += (ca - cb).abs();
    }
    d
}

/// A population's answer distribution on one item, and whether the item is held out of the
/// training objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemTarget {
    /// The item's id.
    pub id: String,
    /// Share of each code, in code order.
    pub dist: Vec<f64>,
    /// Held out: reported, never optimized.
    #[serde(default)]
    pub heldout: bool,
}

/// How a method's answers fit the item targets of one survey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemFit {
    /// Mean distance over the training items (what the search minimizes).
    pub train: f64,
    /// Mean distance over the held-out items (absent without any).
    pub heldout: Option<f64>,
    /// The distance per item id.
    pub per_item: BTreeMap<String, f64>,
}

impl ItemFit {
    /// The fit of answer distributions (`probs`, in the targets' order) to `targets`; `None`
    /// when the lengths differ (items or codes) or no item is for training.
    pub fn of(probs: &[Vec<f64>], targets: &[ItemTarget]) -> Option<ItemFit> {
        if probs.len() != targets.len()
            || probs
                .iter()
                .zip(targets)
                .any(|(p, t)| p.len() != t.dist.len())
        {
            return None;
        }
        let dist: Vec<f64> = probs
            .iter()
            .zip(targets)
            .map(|(p, t)| ordinal_emd(p, &t.dist))
            .collect();
        let mean = |held: bool| {
            let v: Vec<f64> = dist
                .iter()
                .zip(targets)
                .filter(|(_, t)| t.heldout == held)
                .map(|(d, _)| *d)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        Some(ItemFit {
            train: mean(false)?,
            heldout: mean(true),
            per_item: targets.iter().map(|t| t.id.clone()).zip(dist).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, dist: [f64; 5], heldout: bool) -> ItemTarget {
        ItemTarget {
            id: id.into(),
            dist: dist.to_vec(),
            heldout,
        }
    }

    #[test]
    fn emd_counts_code_steps() {
        let one = [1.0, 0.0, 0.0, 0.0, 0.0];
        let five = [0.0, 0.0, 0.0, 0.0, 1.0];
        let two = [0.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(ordinal_emd(&one, &one), 0.0);
        assert_eq!(ordinal_emd(&one, &five), 4.0);
        assert_eq!(ordinal_emd(&one, &two), 1.0);
        // Half the mass moved two steps: 1.0.
        let half = [0.5, 0.0, 0.5, 0.0, 0.0];
        assert!((ordinal_emd(&one, &half) - 1.0).abs() < 1e-12);
        assert_eq!(ordinal_emd(&half, &one), ordinal_emd(&one, &half));
    }

    #[test]
    fn fit_averages_training_and_heldout_items_apart() {
        let one = [1.0, 0.0, 0.0, 0.0, 0.0];
        let three = [0.0, 0.0, 1.0, 0.0, 0.0];
        let targets = [t("a", one, false), t("b", three, false), t("c", one, true)];
        let f = ItemFit::of(&[one.to_vec(), one.to_vec(), three.to_vec()], &targets).unwrap();
        assert_eq!(f.train, 1.0); // (0 + 2) / 2
        assert_eq!(f.heldout, Some(2.0));
        assert_eq!(f.per_item["b"], 2.0);
        assert!(ItemFit::of(&[one.to_vec()], &targets).is_none());
        let all_held = [t("a", one, true)];
        assert!(ItemFit::of(&[one.to_vec()], &all_held).is_none());
        assert!(ItemFit::of(&[vec![1.0, 0.0]], &[t("a", one, false)]).is_none());
        // Four codes: all on the first against all on the last is 3 steps.
        assert_eq!(
            ordinal_emd(&[1.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 1.0]),
            3.0
        );
    }
}
