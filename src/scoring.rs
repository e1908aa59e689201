//! Scoring: item means -> six indices under a constants policy, and the L1 loss against targets.
//!
//! Pure arithmetic: no I/O, no model. The VSM 2013 constants only shift scores; which
//! convention a result used is always reported alongside it (see [`Constants::describe`]).

use crate::dimension::{DimScores, Dimension};
use crate::survey::Survey;
use serde::{Deserialize, Serialize};

/// How the per-dimension constants `C_d` of the index formulas are chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "lowercase")]
pub enum Constants {
    /// All constants are 0: the raw formula values.
    Zero,
    /// Constants given by the user or the survey file; missing dimensions count as 0.
    Given {
        /// The constant per dimension.
        values: DimScores,
    },
    /// Constants calibrated for one model, survey and panel (method.md section 1).
    Calibrated {
        /// The constant per dimension.
        values: DimScores,
        /// What they were calibrated on (model hash, survey, panel, regions).
        source: String,
    },
}

impl Constants {
    /// The constant for a dimension.
    pub fn value(&self, d: Dimension) -> f64 {
        match self {
            Constants::Zero => 0.0,
            Constants::Given { values } | Constants::Calibrated { values, .. } => {
                values.get(d).unwrap_or(0.0)
            }
        }
    }

    /// A one-line description of the convention, printed with every loss.
    pub fn describe(&self) -> String {
        let list = |v: &DimScores| {
            let mut dims = v.dims();
            if dims.iter().all(|d| d.is_hofstede()) {
                dims = Dimension::HOFSTEDE.to_vec();
            }
            dims.into_iter()
                .map(|d| format!("{d}={}", round1(v.get(d).unwrap_or(0.0))))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Constants::Zero => "zero (raw formula values)".to_string(),
            Constants::Given { values } => format!("given ({})", list(values)),
            Constants::Calibrated { values, source } => {
                format!("calibrated on {source} ({})", list(values))
            }
        }
    }
}

/// A number with at most one decimal, without a trailing ".0".
fn round1(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// Why item means could not be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    /// The number of means does not match the survey's items.
    #[error("got {got} item means, but survey {survey} has {expected} items")]
    WrongLength {
        /// The survey id.
        survey: String,
        /// Its number of items.
        expected: usize,
        /// The number of means given.
        got: usize,
    },
    /// A mean is NaN or infinite.
    #[error("the mean of item {item} is {value}, expected a finite number")]
    NotFinite {
        /// The item id.
        item: String,
        /// The offending value.
        value: f64,
    },
    /// A constants policy (`--constants`) that cannot be read.
    #[error("--constants: {0}")]
    BadConstants(String),
}

impl ScoreError {
    /// The stable code of this error (bad input: `invalid_input`).
    pub fn code(&self) -> crate::error_code::ErrorCode {
        crate::error_code::ErrorCode::InvalidInput
    }
}

impl Constants {
    /// Reads a constants policy as the command line and the app give it: `zero` = all 0;
    /// `survey` = the survey file's `[constants]` (0 where absent); `PDI=20,IDV=10,...` =
    /// given values (unlisted dimensions are 0).
    pub fn parse(spec: &str, survey: &Survey) -> Result<Constants, ScoreError> {
        match spec.trim().to_ascii_lowercase().as_str() {
            "zero" => return Ok(Constants::Zero),
            "survey" if survey.given_constants.count() == 0 => return Ok(Constants::Zero),
            "survey" => {
                return Ok(Constants::Given {
                    values: survey.given_constants,
                })
            }
            _ => {}
        }
        let bad = |m: String| Err(ScoreError::BadConstants(m));
        let mut values = DimScores::default();
        let max = crate::dimension::MAX_SCORE;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return bad(format!(
                    "{part:?} is not DIM=VALUE; expected zero, survey, or e.g. PDI=20,IDV=10"
                ));
            };
            let d: Dimension = k.parse().map_err(ScoreError::BadConstants)?;
            let Some(v) = v
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && v.abs() <= max)
            else {
                return bad(format!(
                    "{d}={v:?} is not a finite number from -{max} to {max}"
                ));
            };
            if values.get(d).is_some() {
                return bad(format!("{d} is given more than once"));
            }
            values.set(d, Some(v));
        }
        if values.count() == 0 {
            return bad(format!(
                "{spec:?} names no constant; expected zero, survey, or e.g. PDI=20,IDV=10"
            ));
        }
        Ok(Constants::Given { values })
    }
}

/// The indices of every dimension the survey defines, from item means in survey item order.
pub fn indices(
    survey: &Survey,
    item_means: &[f64],
    constants: &Constants,
) -> Result<DimScores, ScoreError> {
    if item_means.len() != survey.items.len() {
        return Err(ScoreError::WrongLength {
            survey: survey.id.clone(),
            expected: survey.items.len(),
            got: item_means.len(),
        });
    }
    if let Some((i, &value)) = item_means.iter().enumerate().find(|(_, m)| !m.is_finite()) {
        return Err(ScoreError::NotFinite {
            item: survey.items[i].id.clone(),
            value,
        });
    }
    let mut out = DimScores::default();
    for f in &survey.formulas {
        out.set(
            f.dimension,
            Some(f.raw_value(item_means) + constants.value(f.dimension)),
        );
    }
    Ok(out)
}

/// The distance between scores and a region's published targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Sum over the dimensions used of |score - target|.
    pub l1: f64,
    /// `l1` divided by the number of dimensions used.
    pub mean: f64,
    /// How many dimensions both the scores and the targets have.
    pub dims_used: usize,
    /// Signed error `score - target` per dimension used.
    pub errors: DimScores,
}

impl Loss {
    /// Compares scores with targets over the dimensions both have; `None` if they share none.
    pub fn between(scores: &DimScores, targets: &DimScores) -> Option<Loss> {
        let mut errors = DimScores::default();
        for (d, s) in scores.iter() {
            if let Some(t) = targets.get(d) {
                errors.set(d, Some(s - t));
            }
        }
        let dims_used = errors.count();
        if dims_used == 0 {
            return None;
        }
        let l1: f64 = errors.iter().map(|(_, e)| e.abs()).sum();
        Some(Loss {
            l1,
            mean: l1 / dims_used as f64,
            dims_used,
            errors,
        })
    }
}

/// The share of the naive prompt's gap to the target that a method closed, per dimension:
/// `(|naive - target| - |method - target|) / |naive - target|`. 1 = reached the target, 0 =
/// no better than naive, negative = further away than naive. Absent where a value is
/// missing or the naive prompt already sits within 0.5 points of the target (the share of
/// a gap that small says nothing).
pub fn gap_closed(targets: &DimScores, naive: &DimScores, method: &DimScores) -> DimScores {
    let mut out = DimScores::default();
    for (d, t) in targets.iter() {
        if let (Some(n), Some(m)) = (naive.get(d), method.get(d)) {
            let gap = (n - t).abs();
            if gap >= 0.5 {
                out.set(d, Some((gap - (m - t).abs()) / gap));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survey::Survey;

    #[test]
    fn gap_closed_is_the_share_of_the_naive_distance_removed() {
        let t = DimScores::full([50.0, 50.0, 50.0, 50.0, 50.0, 50.0]);
        let n = DimScores::full([30.0, 70.0, 30.0, 50.2, 40.0, 60.0]);
        let m = DimScores::full([40.0, 50.0, 20.0, 80.0, 60.0, 55.0]);
        let g = gap_closed(&t, &n, &m);
        assert_eq!(g.get(Dimension::Pdi), Some(0.5));
        assert_eq!(g.get(Dimension::Idv), Some(1.0));
        assert_eq!(g.get(Dimension::Mas), Some(-0.5));
        assert_eq!(
            g.get(Dimension::Uai),
            None,
            "naive within 0.5 of the target"
        );
        assert_eq!(
            g.get(Dimension::Lto),
            Some(0.0),
            "overshooting by the gap gains nothing"
        );
        assert_eq!(g.get(Dimension::Ivr), Some(0.5));
        let mut partial = t;
        partial.set(Dimension::Pdi, None);
        assert_eq!(gap_closed(&partial, &n, &m).get(Dimension::Pdi), None);
    }

    fn vsm() -> Survey {
        Survey::builtin("vsm13").unwrap()
    }

    /// Item means m01..m24 = the given vector; helper to index by 1-based item number.
    fn means(f: impl Fn(usize) -> f64) -> Vec<f64> {
        (1..=24).map(f).collect()
    }

    #[test]
    fn formulas_match_hand_computed_values() {
        let s = vsm();
        // m_k = 1 + (k mod 5) * 0.5 : 1.5 2.0 2.5 3.0 1.0 1.5 ...
        let m = means(|k| 1.0 + (k % 5) as f64 * 0.5);
        let m_ = |k: usize| m[k - 1];
        let got = indices(&s, &m, &Constants::Zero).unwrap();
        // Hand computation from method.md section 1.
        let pdi = 35.0 * (m_(7) - m_(2)) + 25.0 * (m_(20) - m_(23));
        assert_eq!(m_(7), 2.0);
        assert_eq!(m_(2), 2.0);
        assert_eq!(m_(20), 1.0);
        assert_eq!(m_(23), 2.5);
        assert_eq!(pdi, -37.5);
        let expected = [
            -37.5,
            35.0 * (3.0 - 1.5) + 35.0 * (3.0 - 1.5), // IDV: m04=3.0 m01=1.5 m09=3.0 m06=1.5
            35.0 * (1.0 - 2.5) + 35.0 * (2.5 - 1.0), // MAS: m05=1.0 m03=2.5 m08=2.5 m10=1.0
            40.0 * (2.5 - 1.0) + 25.0 * (1.5 - 3.0), // UAI: m18=2.5 m15=1.0 m21=1.5 m24=3.0
            40.0 * (2.5 - 3.0) + 25.0 * (3.0 - 2.0), // LTO: m13=2.5 m14=3.0 m19=3.0 m22=2.0
            35.0 * (2.0 - 1.5) + 40.0 * (2.0 - 1.5), // IVR: m12=2.0 m11=1.5 m17=2.0 m16=1.5
        ];
        assert_eq!(got, DimScores::full(expected));
        assert_eq!(expected, [-37.5, 105.0, 0.0, 22.5, 5.0, 37.5]);
    }

    #[test]
    fn second_vector_with_given_constants() {
        let s = vsm();
        // A realistic answer pattern with distinct means per item.
        let m = vec![
            1.8, 1.6, 2.1, 1.9, 1.7, 1.5, 2.3, 2.2, 2.6, 2.4, 2.0, 2.9, 1.9, 2.2, 3.1, 2.2, 3.0,
            2.1, 1.9, 3.2, 2.7, 2.0, 3.3, 2.8,
        ];
        let c = Constants::Given {
            values: DimScores::full([20.0, 10.0, 50.0, 60.0, 40.0, 30.0]),
        };
        let got = indices(&s, &m, &c).unwrap();
        let want = [
            35.0 * (2.3 - 1.6) + 25.0 * (3.2 - 3.3) + 20.0,
            35.0 * (1.9 - 1.8) + 35.0 * (2.6 - 1.5) + 10.0,
            35.0 * (1.7 - 2.1) + 35.0 * (2.2 - 2.4) + 50.0,
            40.0 * (2.1 - 3.1) + 25.0 * (2.7 - 2.8) + 60.0,
            40.0 * (1.9 - 2.2) + 25.0 * (1.9 - 2.0) + 40.0,
            35.0 * (2.9 - 2.0) + 40.0 * (3.0 - 2.2) + 30.0,
        ];
        for (d, w) in Dimension::HOFSTEDE.iter().zip(want) {
            assert!(
                (got.get(*d).unwrap() - w).abs() < 1e-9,
                "{d}: {:?} vs {w}",
                got.get(*d)
            );
        }
        // Spot-check two by hand: PDI = 24.5 - 2.5 + 20 = 42.0, IVR = 31.5 + 32 + 30 = 93.5.
        assert!((got.get(Dimension::Pdi).unwrap() - 42.0).abs() < 1e-9);
        assert!((got.get(Dimension::Ivr).unwrap() - 93.5).abs() < 1e-9);
    }

    #[test]
    fn all_equal_answers_give_exactly_the_constants() {
        let s = vsm();
        for v in [1.0, 2.7, 5.0] {
            let c = Constants::Given {
                values: DimScores::full([11.0, -3.0, 0.5, 100.0, 42.0, 7.25]),
            };
            let got = indices(&s, &[v; 24], &c).unwrap();
            assert_eq!(got, DimScores::full([11.0, -3.0, 0.5, 100.0, 42.0, 7.25]));
            assert_eq!(
                indices(&s, &[v; 24], &Constants::Zero).unwrap(),
                DimScores::full([0.0; 6])
            );
        }
    }

    #[test]
    fn mas_coefficients_are_35_and_35() {
        let s = vsm();
        let mas = s.formula(Dimension::Mas).unwrap();
        let coefs: Vec<f64> = mas.terms.iter().map(|t| t.coef).collect();
        assert_eq!(coefs, vec![35.0, 35.0]);
    }

    #[test]
    fn wrong_length_and_nan_are_errors() {
        let s = vsm();
        let e = indices(&s, &[1.0; 23], &Constants::Zero).unwrap_err();
        assert!(
            e.to_string().contains("23 item means") && e.to_string().contains("24 items"),
            "{e}"
        );
        let mut m = vec![2.0; 24];
        m[4] = f64::NAN;
        let e = indices(&s, &m, &Constants::Zero).unwrap_err();
        assert!(e.to_string().contains("q05"), "{e}");
    }

    #[test]
    fn loss_uses_only_shared_dimensions() {
        let scores = DimScores::full([50.0, 50.0, 50.0, 50.0, 50.0, 50.0]);
        let mut targets = DimScores::default();
        targets.set(Dimension::Lto, Some(36.0));
        targets.set(Dimension::Ivr, Some(52.0));
        let l = Loss::between(&scores, &targets).unwrap();
        assert_eq!(l.dims_used, 2);
        assert_eq!(l.l1, 16.0);
        assert_eq!(l.mean, 8.0);
        assert_eq!(l.errors.get(Dimension::Lto), Some(14.0));
        assert_eq!(l.errors.get(Dimension::Ivr), Some(-2.0));
        assert_eq!(l.errors.get(Dimension::Pdi), None);
        assert!(Loss::between(&scores, &DimScores::default()).is_none());
    }

    #[test]
    fn constants_describe_names_the_policy() {
        assert!(Constants::Zero.describe().starts_with("zero"));
        let c = Constants::Calibrated {
            values: DimScores::full([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            source: "model abc".into(),
        };
        assert!(c.describe().contains("calibrated on model abc") && c.describe().contains("IVR=6"));
    }
}
