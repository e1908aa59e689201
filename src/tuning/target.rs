//! What a run's answers are scored against: a region's published indices, or a population of
//! respondents (`--responses FILE.csv`) with its indices or its per-item answer distributions
//! (`--objective items`), some items held out (`--holdout-items`).
//!
//! A population's targets are computed once, when the run is resolved, and stored in its
//! configuration with the file's SHA-256: the run resumes, shows and re-evaluates without the
//! file. Indices are compared with zero constants on both sides: the model and the population
//! are scored by the same formulas, so any shared constant would cancel in the distance.

use super::TuneError;
use crate::dimension::DimScores;
use crate::item_fit::ItemTarget;
use crate::regions::Region;
use crate::responses::{Responses, Selection};
use crate::scoring::{indices, Constants};
use crate::survey::Survey;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// What a population run minimizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// L1 distance of the indices to the population's indices.
    #[default]
    Indices,
    /// Mean earth mover's distance of each item's answer distribution to the population's
    /// (in answer-code steps), over the training items.
    Items,
}

/// A population's targets on one survey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurveyTargets {
    /// The survey's id.
    pub survey: String,
    /// The population's indices with zero constants.
    pub indices: DimScores,
    /// The population's answer distribution per item, in survey order.
    pub items: Vec<ItemTarget>,
}

/// A population of respondents as a run's target, stored with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Population {
    /// The responses file as given.
    pub responses: String,
    /// Its SHA-256.
    pub sha256: String,
    /// The rows used and their weights.
    pub selection: Selection,
    /// Respondents in the selection.
    pub respondents: usize,
    /// What the search minimizes.
    pub objective: Objective,
    /// Items held out of the objective (reported only), in survey order.
    pub heldout_items: Vec<String>,
    /// The targets on the training and the held-out survey.
    pub surveys: Vec<SurveyTargets>,
}

/// What one survey's answers are scored against.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Index targets.
    pub scores: DimScores,
    /// Item targets, when the objective is per item.
    pub items: Option<Vec<ItemTarget>>,
}

impl Target {
    /// A region's published scores.
    pub fn region(region: &Region) -> Target {
        Target {
            scores: region.scores,
            items: None,
        }
    }
}

/// Items held out of a population run's objective, as a user asks for them: a count chosen
/// with the run's seed, or a list of item ids.
#[derive(Debug, Clone, PartialEq)]
pub enum Holdout {
    /// This many items, chosen with the seed.
    Count(usize),
    /// These item ids.
    Ids(Vec<String>),
}

impl Holdout {
    /// Parses `--holdout-items`: `6` or `q03,q11,q20`.
    pub fn parse(text: &str) -> Result<Holdout, String> {
        let t = text.trim();
        if let Ok(n) = t.parse::<usize>() {
            return Ok(Holdout::Count(n));
        }
        let ids: Vec<String> = t.split(',').map(|s| s.trim().to_string()).collect();
        if ids.iter().any(String::is_empty) {
            return Err(format!(
                "--holdout-items {text:?}: expected a count (6) or item ids separated by commas (q03,q11)"
            ));
        }
        Ok(Holdout::Ids(ids))
    }

    /// The held-out ids of `survey`, in survey order: every id checked, at least one item
    /// left for training.
    pub fn resolve(&self, survey: &Survey, seed: u64) -> Result<Vec<String>, String> {
        let n = survey.items.len();
        let chosen: Vec<usize> = match self {
            Holdout::Count(k) => {
                let mut order: Vec<usize> = (0..n).collect();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x686f_6c64);
                order.shuffle(&mut rng);
                order.truncate(*k);
                order
            }
            Holdout::Ids(ids) => {
                let mut out = Vec::new();
                for id in ids {
                    let k = survey.item_index(id).ok_or_else(|| {
                        format!("--holdout-items: survey {} has no item {id:?}", survey.id)
                    })?;
                    if out.contains(&k) {
                        return Err(format!("--holdout-items: {id:?} is named twice"));
                    }
                    out.push(k);
                }
                out
            }
        };
        if chosen.is_empty() || chosen.len() >= n {
            return Err(format!(
                "--holdout-items must hold out 1..={} of survey {}'s {n} items, got {}",
                n - 1,
                survey.id,
                chosen.len()
            ));
        }
        let mut chosen = chosen;
        chosen.sort_unstable();
        Ok(chosen
            .into_iter()
            .map(|k| survey.items[k].id.clone())
            .collect())
    }
}

/// What a user asks of a population target (the request's fields, parsed).
#[derive(Debug, Clone)]
pub struct PopulationRequest {
    /// The responses file.
    pub responses: String,
    /// The rows and weights.
    pub selection: Selection,
    /// What to minimize.
    pub objective: Objective,
    /// Items held out (items objective only).
    pub holdout: Option<Holdout>,
}

impl PopulationRequest {
    /// The population's targets on `surveys` (training first); the seed chooses held-out
    /// items by count.
    pub fn read(&self, surveys: [&Survey; 2], seed: u64) -> Result<Population, TuneError> {
        let bad = |m: String| TuneError::Invalid(m);
        let heldout_items = match (&self.holdout, self.objective) {
            (None, _) => Vec::new(),
            (Some(_), Objective::Indices) => {
                return Err(bad(
                    "--holdout-items needs --objective items (an index uses whole items)".into(),
                ))
            }
            (Some(h), Objective::Items) => h.resolve(surveys[0], seed).map_err(bad)?,
        };
        let path = std::path::Path::new(&self.responses);
        let sha256 = crate::fingerprint::sha256_file(path).map_err(|e| {
            bad(format!(
                "cannot read responses file {}: {e}",
                self.responses
            ))
        })?;
        let mut respondents = 0;
        let mut targets = Vec::new();
        for survey in surveys {
            let r = Responses::from_path_with(path, survey, &self.selection)
                .map_err(|e| bad(e.to_string()))?;
            if targets.is_empty() {
                respondents = r.respondents;
            }
            targets.push(SurveyTargets {
                survey: survey.id.clone(),
                indices: indices(survey, &r.item_means, &Constants::Zero)?,
                items: survey
                    .items
                    .iter()
                    .zip(&r.distributions)
                    .map(|(item, d)| ItemTarget {
                        id: item.id.clone(),
                        dist: d.clone(),
                        heldout: heldout_items.contains(&item.id),
                    })
                    .collect(),
            });
        }
        Ok(Population {
            responses: self.responses.clone(),
            sha256,
            selection: self.selection.clone(),
            respondents,
            objective: self.objective,
            heldout_items,
            surveys: targets,
        })
    }
}

impl Population {
    /// The target of one of the run's surveys.
    pub fn target(&self, survey: &Survey) -> Result<Target, TuneError> {
        let t = self
            .surveys
            .iter()
            .find(|t| t.survey == survey.id)
            .ok_or_else(|| {
                TuneError::Invalid(format!(
                    "the run's population has no targets for survey {}",
                    survey.id
                ))
            })?;
        Ok(Target {
            scores: t.indices,
            items: (self.objective == Objective::Items).then(|| t.items.clone()),
        })
    }

    /// One line for reports: the file, the selection, the respondents and the objective.
    pub fn describe(&self) -> String {
        let held = if self.heldout_items.is_empty() {
            String::new()
        } else {
            format!("; items held out: {}", self.heldout_items.join(","))
        };
        format!(
            "population {} ({}; {} respondents); objective {}{held}",
            self.responses,
            self.selection.describe(),
            self.respondents,
            match self.objective {
                Objective::Indices => "indices (L1, zero constants on both sides)",
                Objective::Items => "items (mean earth mover's distance per item, in code steps)",
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_counts_are_seeded_and_ids_checked() {
        let s = Survey::builtin("vsm13").unwrap();
        let a = Holdout::Count(6).resolve(&s, 1).unwrap();
        assert_eq!(a.len(), 6);
        assert_eq!(a, Holdout::Count(6).resolve(&s, 1).unwrap());
        assert_ne!(a, Holdout::Count(6).resolve(&s, 2).unwrap());
        let ids = Holdout::parse("q11, q03").unwrap();
        assert_eq!(ids.resolve(&s, 0).unwrap(), vec!["q03", "q11"]);
        for (text, want) in [
            ("q99", "no item \"q99\""),
            ("q01,q01", "named twice"),
            ("0", "1..=23"),
            ("24", "got 24"),
        ] {
            let e = Holdout::parse(text).unwrap().resolve(&s, 0).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(Holdout::parse("q01,,q02").is_err());
    }
}
