//! The `calibrations` table: calibrated constants per model, procedure and survey content.

use super::db::{json, Store, StoreError};
use crate::dimension::DimScores;
use rusqlite::{params, OptionalExtension};

impl Store {
    /// Stores calibrated constants under a key (replacing an earlier one).
    pub fn save_calibration(
        &self,
        key: &str,
        model_sha256: &str,
        survey: &str,
        regions: &[String],
        constants: &DimScores,
    ) -> Result<(), StoreError> {
        for (d, v) in constants.iter() {
            if !v.is_finite() {
                return Err(self.not_finite(format!("the calibrated constant {d} of {survey}"), v));
            }
        }
        self.conn
            .execute(
                "INSERT INTO calibrations (key, model_sha256, survey, regions, constants) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(key) DO UPDATE SET regions = excluded.regions, constants = excluded.constants,
                 created_at = strftime('%Y-%m-%dT%H:%M:%SZ','now')",
                params![key, model_sha256, survey, json(regions), json(constants)],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Calibrated constants stored under a key, with their region list.
    pub fn calibration(&self, key: &str) -> Result<Option<(DimScores, Vec<String>)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT constants, regions FROM calibrations WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.sql())?;
        row.map(|(c, r)| {
            Ok((
                self.parse(&c, "calibration constants")?,
                self.parse(&r, "calibration regions")?,
            ))
        })
        .transpose()
    }
}
