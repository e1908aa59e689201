//! Parsing the `--constants` option shared by the scoring commands.

use crate::dimension::{DimScores, Dimension};
use crate::scoring::Constants;
use crate::survey::Survey;
use anyhow::{bail, Context, Result};

/// Turns a `--constants` value into a policy.
///
/// `zero` = all 0; `survey` = the survey file's `[constants]` (0 where absent);
/// `PDI=20,IDV=10,...` = given values (unlisted dimensions are 0).
pub fn parse(spec: &str, survey: &Survey) -> Result<Constants> {
    match spec.trim().to_ascii_lowercase().as_str() {
        "zero" => return Ok(Constants::Zero),
        "survey" => {
            return Ok(if survey.given_constants.count() == 0 {
                Constants::Zero
            } else {
                Constants::Given {
                    values: survey.given_constants,
                }
            })
        }
        _ => {}
    }
    let mut values = DimScores::default();
    let max = crate::dimension::MAX_SCORE;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            bail!("--constants: {part:?} is not DIM=VALUE; expected zero, survey, or e.g. PDI=20,IDV=10");
        };
        let d: Dimension = k
            .parse()
            .map_err(anyhow::Error::msg)
            .context("--constants")?;
        let v: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && v.abs() <= max)
            .with_context(|| {
                format!("--constants: {d}={v:?} is not a finite number from -{max} to {max}")
            })?;
        if values.get(d).is_some() {
            bail!("--constants: {d} is given more than once");
        }
        values.set(d, Some(v));
    }
    if values.count() == 0 {
        bail!(
            "--constants: {spec:?} names no constant; expected zero, survey, or e.g. PDI=20,IDV=10"
        );
    }
    Ok(Constants::Given { values })
}
