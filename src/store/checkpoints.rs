//! The `checkpoints` table: the optimizer's state after every generation of a run.

use super::db::{json, Store, StoreError};
use crate::dimension::DimScores;
use rusqlite::params;
use serde::Serialize;

/// One generation's checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checkpoint {
    /// Generation number.
    pub generation: usize,
    /// Evaluations so far.
    pub evals: usize,
    /// Best loss so far.
    pub best_loss: f64,
    /// Mean loss of the population.
    pub mean_loss: f64,
    /// Indices of the best candidate.
    pub best_scores: DimScores,
    /// Serialized optimizer state (JSON).
    pub state: String,
    /// Seconds of tuning so far.
    pub elapsed_s: f64,
}

impl Store {
    /// Stores a generation's checkpoint and touches the run, in one transaction.
    pub fn save_checkpoint(&mut self, run_id: i64, c: &Checkpoint) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = move |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(&sql)?;
        tx.execute(
            "INSERT OR REPLACE INTO checkpoints (run_id, generation, evals, best_loss, mean_loss, best_scores, state, elapsed_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![run_id, c.generation as i64, c.evals as i64, c.best_loss, c.mean_loss, json(&c.best_scores), c.state, c.elapsed_s],
        )
        .map_err(&sql)?;
        tx.execute(
            "UPDATE runs SET updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?1",
            [run_id],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)
    }

    /// Every checkpoint of a run, in generation order.
    pub fn checkpoints(&self, run_id: i64) -> Result<Vec<Checkpoint>, StoreError> {
        self.checkpoints_where(run_id, "ORDER BY generation")
    }

    /// A run's last checkpoint (the one a resume continues from), if it has one.
    pub fn last_checkpoint(&self, run_id: i64) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self
            .checkpoints_where(run_id, "ORDER BY generation DESC LIMIT 1")?
            .pop())
    }

    /// A run's checkpoints, ordered and limited by `tail`.
    fn checkpoints_where(&self, run_id: i64, tail: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT generation, evals, best_loss, mean_loss, best_scores, state, elapsed_s FROM checkpoints WHERE run_id = ?1 {tail}"))
            .map_err(self.sql())?;
        let rows: Vec<(Checkpoint, String)> = stmt
            .query_map([run_id], |r| {
                Ok((
                    Checkpoint {
                        generation: r.get::<_, i64>("generation")? as usize,
                        evals: r.get::<_, i64>("evals")? as usize,
                        best_loss: r.get("best_loss")?,
                        mean_loss: r.get("mean_loss")?,
                        best_scores: DimScores::default(),
                        state: r.get("state")?,
                        elapsed_s: r.get("elapsed_s")?,
                    },
                    r.get("best_scores")?,
                ))
            })
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        rows.into_iter()
            .map(|(mut c, scores)| {
                c.best_scores = self.parse(&scores, "checkpoint scores")?;
                Ok(c)
            })
            .collect()
    }
}
