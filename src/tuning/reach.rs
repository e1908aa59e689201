//! `reach`: the controllability bound of a soft-prompt space. For each of the six indices, a
//! search for its largest and one for its smallest value on the training survey, over the
//! space a `tune` run with the same settings searches; every candidate's indices also widen
//! the range seen of every index. Nothing is stored but the calibration (shared with `tune`).

use super::{score, TuneConfig, TuneError, Tuner};
use crate::dimension::{DimScores, Dimension, MAX_DIMS};
use crate::optim::{DeOptions, DeState};
use crate::soft_prompt::{AnswerAnchor, Placement};
use serde::Serialize;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a search for the extreme of one index found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reach {
    /// The index searched.
    pub dimension: Dimension,
    /// Whether it was maximized (else minimized).
    pub maximize: bool,
    /// The most extreme value found.
    pub value: f64,
    /// All six indices of the candidate that reached it.
    pub indices: DimScores,
    /// Candidates evaluated.
    pub evals: usize,
}

impl Tuner<'_> {
    /// Controllability bound: a DE search over this tuner's soft-prompt space for the largest
    /// (or smallest) value of one index on the training survey, not stored anywhere. Every
    /// candidate's indices go to `seen`, so a caller can also keep the range of the other
    /// indices over all candidates. `options.dim` must be the space's d.
    pub fn reach(
        &mut self,
        dimension: Dimension,
        maximize: bool,
        options: DeOptions,
        cancel: &AtomicBool,
        mut seen: impl FnMut(&DimScores),
    ) -> Result<Reach, TuneError> {
        let mut state = DeState::new(options).map_err(TuneError::Invalid)?;
        let sign = if maximize { -1.0 } else { 1.0 };
        let mut best: Option<(f64, DimScores)> = None;
        let outcome = state.run(
            |xs: &[Vec<f64>]| -> Result<Vec<f64>, TuneError> {
                let mut out = Vec::with_capacity(xs.len());
                for group in xs.chunks(self.group) {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(TuneError::Cancelled);
                    }
                    let rows: Vec<Vec<f32>> = group.iter().map(|z| self.space.rows(z)).collect();
                    for a in self.evaluate_many(&rows)? {
                        let r = score(&self.survey, &a, &self.constants, &self.target)?;
                        seen(&r.indices);
                        let v = r.indices.get(dimension).ok_or_else(|| {
                            TuneError::Invalid(format!(
                                "the survey does not score {}",
                                dimension.code()
                            ))
                        })?;
                        if best.is_none_or(|(b, _)| sign * v < sign * b) {
                            best = Some((v, r.indices));
                        }
                        out.push(sign * v);
                    }
                }
                Ok(out)
            },
            |_, _| ControlFlow::Continue(()),
        )?;
        let (value, indices) = best.ok_or_else(|| TuneError::Other("no candidate".into()))?;
        Ok(Reach {
            dimension,
            maximize,
            value,
            indices,
            evals: outcome.evals,
        })
    }
}

/// One index's row of the reach table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReachRow {
    /// The index.
    pub dimension: Dimension,
    /// The region's published score.
    pub target: Option<f64>,
    /// Its value at z = 0.
    pub start: Option<f64>,
    /// The smallest value its own search found.
    pub min: Option<f64>,
    /// The largest value its own search found.
    pub max: Option<f64>,
    /// The smallest value over every candidate of all searches.
    pub seen_min: f64,
    /// The largest value over every candidate of all searches.
    pub seen_max: f64,
}

/// What `reach` found, with the settings of the space (the JSON of `reach --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReachReport {
    /// Region code.
    pub region: String,
    /// Where the rows go.
    pub placement: Placement,
    /// What an answer-side prompt's rows stand for.
    pub anchor: AnswerAnchor,
    /// Search dimensions.
    pub d: usize,
    /// Rows beyond the anchor's.
    pub k_extra: usize,
    /// Scale of the projection.
    pub a_scale: f64,
    /// Respondents.
    pub panel: usize,
    /// Both option orders.
    pub counterbalance: bool,
    /// Candidates per search.
    pub budget_per_search: usize,
    /// The seed every search's own seed derives from.
    pub seed: u64,
    /// One row per index.
    pub dimensions: Vec<ReachRow>,
}

/// Runs the twelve searches (each index down and up, each with its own seed derived from
/// `config.de.seed`) over `tuner`'s space, with `config.de`'s settings; `found` hears each
/// search's result as it ends.
pub fn reach_all(
    tuner: &mut Tuner<'_>,
    config: &TuneConfig,
    target: &DimScores,
    cancel: &AtomicBool,
    found: &mut dyn FnMut(&Reach),
) -> Result<ReachReport, TuneError> {
    let start = tuner
        .evaluate_rows(&tuner.rows(&vec![0.0; config.d]))?
        .indices;
    let (mut lo, mut hi) = ([f64::INFINITY; MAX_DIMS], [f64::NEG_INFINITY; MAX_DIMS]);
    let mut all: Vec<Reach> = Vec::new();
    let seed = config.de.seed;
    // Every index the survey scores, in canonical order.
    let dims = start.dims();
    for &d in &dims {
        for maximize in [false, true] {
            let mut options = config.de.clone();
            // Each search its own stream, all from the one stored seed.
            options.seed = seed ^ ((d.index() as u64 * 2 + maximize as u64 + 1) << 32);
            let r = tuner.reach(d, maximize, options, cancel, |s: &DimScores| {
                for (dim, v) in s.iter() {
                    lo[dim.index()] = lo[dim.index()].min(v);
                    hi[dim.index()] = hi[dim.index()].max(v);
                }
            })?;
            found(&r);
            all.push(r);
        }
    }
    let searched = |d: Dimension, max: bool| {
        all.iter()
            .find(|r| r.dimension == d && r.maximize == max)
            .map(|r| r.value)
    };
    let dimensions = dims
        .iter()
        .map(|&d| ReachRow {
            dimension: d,
            target: target.get(d),
            start: start.get(d),
            min: searched(d, false),
            max: searched(d, true),
            seen_min: lo[d.index()],
            seen_max: hi[d.index()],
        })
        .collect();
    Ok(ReachReport {
        region: config.region.clone(),
        placement: config.placement,
        anchor: config.anchor,
        d: config.d,
        k_extra: config.extra_rows,
        a_scale: config.a_scale,
        panel: config.panel,
        counterbalance: config.counterbalance,
        budget_per_search: config.de.max_evals.unwrap_or(0),
        seed,
        dimensions,
    })
}
