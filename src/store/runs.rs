//! The `runs` table: tuning runs, their configuration, status and owner process.

use super::db::{Store, StoreError};
use crate::labels::{MethodLabel, RunStatus};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// A tuning run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// Id.
    pub id: i64,
    /// Region code.
    pub region: String,
    /// Training survey id.
    pub survey: String,
    /// Base method the soft prompt replaces the persona of.
    pub method: MethodLabel,
    /// Model hash.
    pub model_sha256: String,
    /// Full configuration (JSON).
    pub config: serde_json::Value,
    /// Seed.
    pub seed: u64,
    /// Status.
    pub status: RunStatus,
    /// Error message of a failed run.
    pub error: Option<String>,
    /// Created (UTC, ISO 8601).
    pub created_at: String,
    /// Last change (UTC, ISO 8601).
    pub updated_at: String,
}

/// A run's row as read: the record, its configuration, method and status as stored text, and
/// the pid of the process that holds it.
type RunRow = (RunRecord, [String; 3], Option<i64>);

impl Store {
    /// Creates a run in status `running`, owned by this process.
    pub fn create_run(
        &self,
        region: &str,
        survey: &str,
        method: MethodLabel,
        model_sha256: &str,
        config: &serde_json::Value,
        seed: u64,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO runs (region, survey, method, model_sha256, config, seed, status, pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7)",
                params![region, survey, method.as_str(), model_sha256, config.to_string(), seed as i64, std::process::id() as i64],
            )
            .map_err(self.sql())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Takes a run up again in this process (for resume): in one statement, so that of two
    /// processes resuming the same run only one gets it. Returns the status the run had, or,
    /// when it could not be claimed (it is running in a live process, or done), `Err` with the
    /// status it has and the pid that holds it.
    pub fn claim_run(
        &self,
        id: i64,
    ) -> Result<Result<RunStatus, (RunStatus, Option<i64>)>, StoreError> {
        let before = self.run(id)?.status;
        let n = self
            .conn
            .execute(
                "UPDATE runs SET status = 'running', pid = ?2, error = NULL, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?1 AND status NOT IN ('running', 'done')",
                params![id, std::process::id() as i64],
            )
            .map_err(self.sql())?;
        if n == 1 {
            return Ok(Ok(before));
        }
        let now = self.run(id)?.status;
        let pid: Option<i64> = self
            .conn
            .query_row("SELECT pid FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .map_err(self.sql())?;
        Ok(Err((now, pid)))
    }

    /// Sets a run's status (and error message).
    pub fn set_status(
        &self,
        id: i64,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE runs SET status = ?2, error = ?3, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?1",
                params![id, status.as_str(), error],
            )
            .map_err(self.sql())?;
        if n == 0 {
            return Err(StoreError::NotFound {
                path: self.path.clone(),
                what: "run",
                id,
            });
        }
        Ok(())
    }

    /// A run's row, with its configuration, method and status still as stored text
    /// ([`Store::finish_run`] checks them).
    fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok((
            RunRecord {
                id: r.get("id")?,
                region: r.get("region")?,
                survey: r.get("survey")?,
                method: MethodLabel::Naive,
                model_sha256: r.get("model_sha256")?,
                config: serde_json::Value::Null,
                seed: r.get::<_, i64>("seed")? as u64,
                status: RunStatus::Failed,
                error: r.get("error")?,
                created_at: r.get("created_at")?,
                updated_at: r.get("updated_at")?,
            },
            [r.get("config")?, r.get("method")?, r.get("status")?],
            r.get("pid")?,
        ))
    }

    /// A run record with its configuration parsed and its method and status checked (an
    /// unknown name is a corrupt record, not a failed run). A run stored as `running` whose
    /// process is gone reads as `interrupted`, also where the database is only read.
    fn finish_run(&self, row: RunRow) -> Result<RunRecord, StoreError> {
        let (mut rec, [config, method, status], pid) = row;
        let corrupt = |what: &str, message: String| StoreError::Corrupt {
            path: self.path.clone(),
            what: format!("{what} of run {}", rec.id),
            message,
        };
        rec.config = self.parse(&config, "run config")?;
        rec.method = MethodLabel::parse(&method)
            .ok_or_else(|| corrupt("method", format!("{method:?} is not naive, icl or tuned")))?;
        rec.status = RunStatus::parse(&status).ok_or_else(|| {
            let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            corrupt(
                "status",
                format!("{status:?}; expected one of {}", names.join(", ")),
            )
        })?;
        if rec.status == RunStatus::Running && !super::db::owner_alive(pid) {
            rec.status = RunStatus::Interrupted;
        }
        Ok(rec)
    }

    const RUN_COLUMNS: &'static str = "id, region, survey, method, model_sha256, config, seed, status, error, created_at, updated_at, pid";

    /// One run.
    pub fn run(&self, id: i64) -> Result<RunRecord, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {} FROM runs WHERE id = ?1", Self::RUN_COLUMNS),
                [id],
                Self::run_from_row,
            )
            .optional()
            .map_err(self.sql())?
            .ok_or(StoreError::NotFound {
                path: self.path.clone(),
                what: "run",
                id,
            })?;
        self.finish_run(row)
    }

    /// All runs, newest first (by creation time, then id: runs merged from other databases
    /// keep their own creation time).
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM runs ORDER BY created_at DESC, id DESC",
                Self::RUN_COLUMNS
            ))
            .map_err(self.sql())?;
        let rows: Vec<RunRow> = stmt
            .query_map([], Self::run_from_row)
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        rows.into_iter().map(|row| self.finish_run(row)).collect()
    }
}
