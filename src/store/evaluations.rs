//! The `evaluations` table: every survey evaluation of a method (baselines and tuned
//! prompts, on the training and the held-out survey).

use super::db::{json, Store, StoreError};
use crate::dimension::DimScores;
use crate::labels::MethodLabel;
use rusqlite::params;
use serde::{Deserialize, Serialize};

/// A stored survey evaluation of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// Run it belongs to, if any.
    pub run_id: Option<i64>,
    /// Model hash.
    pub model_sha256: String,
    /// Which prompt was measured.
    pub method: MethodLabel,
    /// Survey id.
    pub survey: String,
    /// Region code.
    pub region: String,
    /// Constants policy used (JSON).
    pub constants: serde_json::Value,
    /// The indices.
    pub indices: DimScores,
    /// L1 loss.
    pub loss: f64,
    /// Mean loss per dimension.
    pub loss_mean: f64,
    /// Dimensions the loss used.
    pub dims_used: usize,
    /// Mean digit mass over the items.
    pub digit_mass: f64,
    /// The per-item fit to a population's answer distributions (runs with the items
    /// objective; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<crate::item_fit::ItemFit>,
}

impl EvaluationRecord {
    /// The newest of `evals` (oldest first, as the store lists them) of `method` on `survey`:
    /// the one a report shows when a run was evaluated more than once (`eval`).
    pub fn latest<'a>(
        evals: &'a [EvaluationRecord],
        method: MethodLabel,
        survey: &str,
    ) -> Option<&'a EvaluationRecord> {
        evals
            .iter()
            .rev()
            .find(|e| e.method == method && e.survey == survey)
    }
}

impl Store {
    /// Stores an evaluation.
    pub fn save_evaluation(&self, e: &EvaluationRecord) -> Result<(), StoreError> {
        let what = |v: &str| format!("the {v} of {} on {} for {}", e.method, e.survey, e.region);
        for (name, v) in [
            ("loss", e.loss),
            ("mean loss", e.loss_mean),
            ("digit mass", e.digit_mass),
        ] {
            if !v.is_finite() {
                return Err(self.not_finite(what(name), v));
            }
        }
        if let Some(f) = &e.items {
            let all = [Some(f.train), f.heldout].into_iter().flatten();
            if let Some(v) = all
                .chain(f.per_item.values().copied())
                .find(|v| !v.is_finite())
            {
                return Err(self.not_finite(what("item distance"), v));
            }
        }
        for (d, v) in e.indices.iter() {
            if !v.is_finite() {
                return Err(self.not_finite(what(&format!("{d} index")), v));
            }
        }
        self.conn
            .execute(
                "INSERT INTO evaluations (run_id, model_sha256, method, survey, region, constants, indices, loss, loss_mean, dims_used, digit_mass, items)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![e.run_id, e.model_sha256, e.method.as_str(), e.survey, e.region, e.constants.to_string(), json(&e.indices), e.loss, e.loss_mean, e.dims_used as i64, e.digit_mass, e.items.as_ref().map(json)],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Evaluations of a run (or, with `None`, all), oldest first.
    pub fn evaluations(&self, run_id: Option<i64>) -> Result<Vec<EvaluationRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, model_sha256, method, survey, region, constants, indices, loss, loss_mean, dims_used, digit_mass, items
                 FROM evaluations WHERE (?1 IS NULL OR run_id = ?1) ORDER BY id",
            )
            .map_err(self.sql())?;
        // The record with its JSON columns and method name still as stored text.
        let rows: Vec<(EvaluationRecord, [String; 3], Option<String>)> = stmt
            .query_map([run_id], |r| {
                Ok((
                    EvaluationRecord {
                        run_id: r.get("run_id")?,
                        model_sha256: r.get("model_sha256")?,
                        method: MethodLabel::Naive,
                        survey: r.get("survey")?,
                        region: r.get("region")?,
                        constants: serde_json::Value::Null,
                        indices: DimScores::default(),
                        loss: r.get("loss")?,
                        loss_mean: r.get("loss_mean")?,
                        dims_used: r.get::<_, i64>("dims_used")? as usize,
                        digit_mass: r.get("digit_mass")?,
                        items: None,
                    },
                    [r.get("method")?, r.get("constants")?, r.get("indices")?],
                    r.get("items")?,
                ))
            })
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        rows.into_iter()
            .map(|(mut e, [method, constants, indices], items)| {
                e.method = MethodLabel::parse(&method).ok_or_else(|| StoreError::Corrupt {
                    path: self.path.clone(),
                    what: "evaluation method".into(),
                    message: format!("{method:?} is not naive, icl or tuned"),
                })?;
                e.constants = self.parse(&constants, "evaluation constants")?;
                e.indices = self.parse(&indices, "evaluation indices")?;
                if let Some(items) = items {
                    e.items = Some(self.parse(&items, "evaluation item fit")?);
                }
                Ok(e)
            })
            .collect()
    }
}
