//! The SQLite store (bundled SQLite, WAL): models, calibrations, tuning runs with
//! per-generation checkpoints, tuned prompts and evaluations.
//!
//! A file that is not a SQLite database is refused before anything is written to it. A run
//! whose process died while it was `running` is shown as `interrupted` the next time the store
//! is opened, and can be resumed from its last checkpoint.

mod migrations;

use crate::dimension::DimScores;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is not a SQLite database; it was left untouched.
    #[error("{path} is not a culturetune database (not a SQLite file); it was left untouched. Choose another --db path")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The database was written by a newer culturetune.
    #[error("{path} has schema version {found}, newer than this culturetune supports ({supported}); upgrade culturetune")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// A SQLite error.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// An I/O error around the database file.
    #[error("database {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A stored JSON value could not be read back.
    #[error("database {path}: corrupt stored {what}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Which value.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// A value to be stored is NaN or infinite; nothing was written.
    #[error("database {path}: refusing to store {what}: {value} is not a finite number (nothing was written)")]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// Which value.
        what: String,
        /// The value.
        value: f64,
    },
    /// No such record.
    #[error("no {what} {id} in {path}")]
    NotFound {
        /// The file.
        path: PathBuf,
        /// What kind of record.
        what: &'static str,
        /// Its id.
        id: i64,
    },
}

impl StoreError {
    /// The stable code of this error (every store failure is `database`).
    pub fn code(&self) -> crate::error_code::ErrorCode {
        crate::error_code::ErrorCode::Database
    }
}

/// Which prompt an evaluation measured: the naive persona, the in-context prompt, or the tuned
/// soft prompt. Stored, reported in events and shown in every table under these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodLabel {
    /// The naive persona prompt.
    Naive,
    /// The in-context (ICL) prompt.
    Icl,
    /// The tuned soft prompt.
    Tuned,
}

impl MethodLabel {
    /// The three, in the order tables show them.
    pub const ALL: [MethodLabel; 3] = [MethodLabel::Naive, MethodLabel::Icl, MethodLabel::Tuned];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodLabel::Naive => "naive",
            MethodLabel::Icl => "icl",
            MethodLabel::Tuned => "tuned",
        }
    }

    /// The label with this stored name.
    pub fn parse(s: &str) -> Option<MethodLabel> {
        MethodLabel::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl std::fmt::Display for MethodLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a tuning run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// A process is working on it.
    Running,
    /// Finished.
    Done,
    /// Stopped by the user; resumable.
    Cancelled,
    /// Its process died; resumable.
    Interrupted,
    /// Ended with an error.
    Failed,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Done,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
        RunStatus::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }

    /// The status a stored name stands for; `None` for a name this version does not know.
    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A model as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// SHA-256 of the file given by the user (hex).
    pub sha256: String,
    /// Path it was loaded from.
    pub path: String,
    /// Name.
    pub name: String,
    /// Architecture.
    pub architecture: String,
    /// Embedding width.
    pub n_embd: usize,
    /// File size.
    pub file_size: u64,
}

impl ModelRecord {
    /// The record of a model loaded from `given` (its SHA-256 `sha`); the size is the given
    /// file's, which is what the hash covers (not a converted copy's).
    pub fn of(model: &crate::engine::Model, sha: &str, given: &Path) -> ModelRecord {
        ModelRecord {
            sha256: sha.to_string(),
            path: given.display().to_string(),
            name: model.info().name.clone(),
            architecture: model.info().architecture.clone(),
            n_embd: model.info().n_embd,
            file_size: std::fs::metadata(given).map(|m| m.len()).unwrap_or(0),
        }
    }
}

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
    pub method: String,
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

/// A stored soft prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRecord {
    /// Id.
    pub id: i64,
    /// The run that produced it, if any (None for imports).
    pub run_id: Option<i64>,
    /// Model hash it belongs to.
    pub model_sha256: String,
    /// Rows.
    pub k: usize,
    /// Width.
    pub n_embd: usize,
    /// `k * n_embd` values.
    pub rows: Vec<f32>,
    /// The card (JSON).
    pub card: serde_json::Value,
}

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
}

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Whether SQLite said the database is busy or locked by another connection.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Store {
    /// The default database: `culturetune/culturetune.db` in the user's data directory.
    pub fn default_path() -> PathBuf {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("culturetune")
            .join("culturetune.db")
    }

    /// Opens (creating if needed) and migrates a database. A stale `running` run whose process
    /// is gone becomes `interrupted`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.is_dir() {
                return Err(StoreError::NotADatabase {
                    path: path.to_path_buf(),
                });
            }
            if meta.len() > 0 {
                let mut head = [0u8; 16];
                use std::io::Read;
                let n = std::fs::File::open(path)
                    .and_then(|mut f| f.read(&mut head))
                    .map_err(io)?;
                if n < 16 || &head != SQLITE_MAGIC {
                    return Err(StoreError::NotADatabase {
                        path: path.to_path_buf(),
                    });
                }
            }
        } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let sql = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        // Two processes opening a new database at once can find it busy while the other
        // switches it to WAL or creates the schema, and SQLite does not always wait for that
        // itself (a journal-mode change does not call the busy handler): retry for up to 10 s.
        let mut tries = 0;
        loop {
            let conn = Connection::open(path).map_err(sql)?;
            match Self::prepare(conn, path) {
                Err(StoreError::Sqlite { source, .. }) if is_busy(&source) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Opens a database only to read it (`runs`, `show`, `compare`, `export`): nothing is
    /// written, so a database on read-only storage or with a read-only file can be listed and
    /// exported from. A database that does not exist yet is created as by [`Store::open`]
    /// (an empty store), and one whose schema is older than this version's is opened by
    /// [`Store::open`] to be migrated.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Store::open(path);
        };
        if !meta.is_file() || meta.len() == 0 {
            return Store::open(path);
        }
        let sql = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let Some((conn, version)) = Self::read_only_connection(path) else {
            return Store::open(path);
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        let latest = migrations::MIGRATIONS.len() as i64;
        if version > latest {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                supported: latest,
            });
        }
        if version < latest {
            return Store::open(path);
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// A read-only connection and the schema version it reads. A WAL database in a folder this
    /// process cannot write needs its `-shm` file to be read normally; when there is none,
    /// and no unmerged `-wal` either, the file is opened as immutable (nothing else can be
    /// writing it then).
    fn read_only_connection(path: &Path) -> Option<(Connection, i64)> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let version = |c: &Connection| c.pragma_query_value(None, "user_version", |r| r.get(0));
        if let Ok(c) = Connection::open_with_flags(path, flags) {
            if let Ok(v) = version(&c) {
                return Some((c, v));
            }
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            return None;
        }
        let uri = format!(
            "file:{}?immutable=1",
            path.display()
                .to_string()
                .replace('%', "%25")
                .replace('?', "%3f")
                .replace('#', "%23")
        );
        let c = Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI).ok()?;
        let v = version(&c).ok()?;
        Some((c, v))
    }

    /// Sets the connection up, migrates the schema and marks stale runs.
    fn prepare(conn: Connection, path: &Path) -> Result<Store, StoreError> {
        let sql = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        store.mark_interrupted()?;
        Ok(store)
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn not_finite(&self, what: String, value: f64) -> StoreError {
        StoreError::NotFinite {
            path: self.path.clone(),
            what,
            value,
        }
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version after migration.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.sql())
    }

    /// Brings the schema up to date in one IMMEDIATE transaction that reads the version
    /// itself: two processes opening a new database at once cannot both create its tables
    /// (the second waits for the first, then finds the schema current).
    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = move |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let latest = migrations::MIGRATIONS.len() as i64;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(&sql)?;
        let have: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&sql)?;
        if have > latest {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: have,
                supported: latest,
            });
        }
        for (i, m) in migrations::MIGRATIONS
            .iter()
            .enumerate()
            .skip(have as usize)
        {
            tx.execute_batch(m).map_err(&sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(&sql)?;
        }
        tx.commit().map_err(&sql)
    }

    /// Runs left `running` by a process that no longer exists become `interrupted`.
    fn mark_interrupted(&self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, pid, updated_at FROM runs WHERE status = 'running'")
            .map_err(self.sql())?;
        let rows: Vec<(i64, Option<i64>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        for (id, pid, _) in rows {
            let alive = pid.is_some_and(|p| p as u32 == std::process::id() || process_alive(p));
            if !alive {
                // Only if still held by the process seen dead: another process may have
                // claimed the run since the SELECT.
                self.conn
                    .execute(
                        "UPDATE runs SET status = 'interrupted', updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?1 AND status = 'running' AND pid IS ?2",
                        params![id, pid],
                    )
                    .map_err(self.sql())?;
            }
        }
        Ok(())
    }

    /// Records a model (replacing the stored path and facts for the same hash).
    pub fn upsert_model(&self, m: &ModelRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO models (sha256, path, name, architecture, n_embd, file_size) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(sha256) DO UPDATE SET path = excluded.path, name = excluded.name",
                params![m.sha256, m.path, m.name, m.architecture, m.n_embd as i64, m.file_size as i64],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Stores calibrated constants under a key (replacing an earlier one).
    pub fn save_calibration(
        &self,
        key: &str,
        model_sha256: &str,
        survey: &str,
        regions: &[String],
        constants: &DimScores,
    ) -> Result<(), StoreError> {
        for d in crate::dimension::Dimension::ALL {
            if let Some(v) = constants.get(d).filter(|v| !v.is_finite()) {
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

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        text: &str,
        what: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
            message: e.to_string(),
        })
    }

    /// Creates a run in status `running`, owned by this process.
    pub fn create_run(
        &self,
        region: &str,
        survey: &str,
        method: &str,
        model_sha256: &str,
        config: &serde_json::Value,
        seed: u64,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO runs (region, survey, method, model_sha256, config, seed, status, pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7)",
                params![region, survey, method, model_sha256, config.to_string(), seed as i64, std::process::id() as i64],
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

    /// A run's row, its stored configuration text and its stored status text; [`Store::finish_run`]
    /// checks both.
    fn run_from_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        let config: String = r.get(5)?;
        let status: String = r.get(7)?;
        Ok((
            RunRecord {
                id: r.get(0)?,
                region: r.get(1)?,
                survey: r.get(2)?,
                method: r.get(3)?,
                model_sha256: r.get(4)?,
                config: serde_json::Value::Null,
                seed: r.get::<_, i64>(6)? as u64,
                status: RunStatus::Failed,
                error: r.get(8)?,
                created_at: r.get(9)?,
                updated_at: r.get(10)?,
            },
            config,
            status,
        ))
    }

    /// A run record with its configuration parsed and its status checked (an unknown status
    /// is a corrupt record, not a failed run).
    fn finish_run(&self, row: RunRow) -> Result<RunRecord, StoreError> {
        let (mut rec, config, status) = row;
        rec.config = self.parse(&config, "run config")?;
        rec.status = RunStatus::parse(&status).ok_or_else(|| {
            let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("status of run {}", rec.id),
                message: format!("{status:?}; expected one of {}", names.join(", ")),
            }
        })?;
        Ok(rec)
    }

    const RUN_COLUMNS: &'static str = "id, region, survey, method, model_sha256, config, seed, status, error, created_at, updated_at";

    /// One run.
    pub fn run(&self, id: i64) -> Result<RunRecord, StoreError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {} FROM runs WHERE id = ?1", Self::RUN_COLUMNS),
                [id],
                |r| self.run_from_row(r),
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

    /// All runs, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM runs ORDER BY id DESC",
                Self::RUN_COLUMNS
            ))
            .map_err(self.sql())?;
        let rows: Vec<RunRow> = stmt
            .query_map([], |r| self.run_from_row(r))
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        rows.into_iter().map(|row| self.finish_run(row)).collect()
    }

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
        let mut stmt = self
            .conn
            .prepare("SELECT generation, evals, best_loss, mean_loss, best_scores, state, elapsed_s FROM checkpoints WHERE run_id = ?1 ORDER BY generation")
            .map_err(self.sql())?;
        let rows: Vec<(i64, i64, f64, f64, String, String, f64)> = stmt
            .query_map([run_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        rows.into_iter()
            .map(|(g, e, b, m, s, state, el)| {
                Ok(Checkpoint {
                    generation: g as usize,
                    evals: e as usize,
                    best_loss: b,
                    mean_loss: m,
                    best_scores: self.parse(&s, "checkpoint scores")?,
                    state,
                    elapsed_s: el,
                })
            })
            .collect()
    }

    /// Stores a soft prompt; returns its id.
    pub fn save_prompt(
        &self,
        run_id: Option<i64>,
        model_sha256: &str,
        k: usize,
        n_embd: usize,
        rows: &[f32],
        card: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let blob: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.conn
            .execute(
                "INSERT INTO prompts (run_id, model_sha256, k, n_embd, rows, card) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run_id, model_sha256, k as i64, n_embd as i64, blob, card.to_string()],
            )
            .map_err(self.sql())?;
        Ok(self.conn.last_insert_rowid())
    }

    fn prompt_where(&self, clause: &str, id: i64) -> Result<Option<PromptRecord>, StoreError> {
        let row: Option<PromptRow> = self
            .conn
            .query_row(
                &format!("SELECT id, run_id, model_sha256, k, n_embd, rows, card FROM prompts WHERE {clause} ORDER BY id DESC LIMIT 1"),
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()
            .map_err(self.sql())?;
        row.map(|(id, run_id, sha, k, n, blob, card)| {
            let rows: Vec<f32> = blob
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if rows.len() != (k * n) as usize {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    what: format!("prompt {id}"),
                    message: format!("{} values for {k}x{n}", rows.len()),
                });
            }
            Ok(PromptRecord {
                id,
                run_id,
                model_sha256: sha,
                k: k as usize,
                n_embd: n as usize,
                rows,
                card: self.parse(&card, "prompt card")?,
            })
        })
        .transpose()
    }

    /// The newest prompt a run produced.
    pub fn prompt_for_run(&self, run_id: i64) -> Result<Option<PromptRecord>, StoreError> {
        self.prompt_where("run_id = ?1", run_id)
    }

    /// A prompt by id.
    pub fn prompt(&self, id: i64) -> Result<PromptRecord, StoreError> {
        self.prompt_where("id = ?1", id)?
            .ok_or(StoreError::NotFound {
                path: self.path.clone(),
                what: "prompt",
                id,
            })
    }

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
        for d in crate::dimension::Dimension::ALL {
            if let Some(v) = e.indices.get(d).filter(|v| !v.is_finite()) {
                return Err(self.not_finite(what(&format!("{d} index")), v));
            }
        }
        self.conn
            .execute(
                "INSERT INTO evaluations (run_id, model_sha256, method, survey, region, constants, indices, loss, loss_mean, dims_used, digit_mass)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![e.run_id, e.model_sha256, e.method.as_str(), e.survey, e.region, e.constants.to_string(), json(&e.indices), e.loss, e.loss_mean, e.dims_used as i64, e.digit_mass],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Evaluations of a run (or, with `None`, all), oldest first.
    pub fn evaluations(&self, run_id: Option<i64>) -> Result<Vec<EvaluationRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, model_sha256, method, survey, region, constants, indices, loss, loss_mean, dims_used, digit_mass
                 FROM evaluations WHERE (?1 IS NULL OR run_id = ?1) ORDER BY id",
            )
            .map_err(self.sql())?;
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            Option<i64>,
            String,
            String,
            String,
            String,
            String,
            String,
            f64,
            f64,
            i64,
            f64,
        )> = stmt
            .query_map([run_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            })
            .map_err(self.sql())?
            .collect::<Result<_, _>>()
            .map_err(self.sql())?;
        rows.into_iter()
            .map(
                |(run_id, sha, method, survey, region, c, i, loss, loss_mean, dims, mass)| {
                    let method =
                        MethodLabel::parse(&method).ok_or_else(|| StoreError::Corrupt {
                            path: self.path.clone(),
                            what: "evaluation method".into(),
                            message: format!("{method:?} is not naive, icl or tuned"),
                        })?;
                    Ok(EvaluationRecord {
                        run_id,
                        model_sha256: sha,
                        method,
                        survey,
                        region,
                        constants: self.parse(&c, "evaluation constants")?,
                        indices: self.parse(&i, "evaluation indices")?,
                        loss,
                        loss_mean,
                        dims_used: dims as usize,
                        digit_mass: mass,
                    })
                },
            )
            .collect()
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(self.sql())
    }
}

/// A raw `prompts` row: id, run_id, model_sha256, k, n_embd, rows blob, card.
/// A run's row as read: the record, its configuration text, its status text.
type RunRow = (RunRecord, String, String);

type PromptRow = (i64, Option<i64>, String, i64, i64, Vec<u8>, String);

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

/// Whether a process with this id exists (Linux: /proc; elsewhere assume it is gone, so a
/// stale run is offered for resume rather than blocked forever).
fn process_alive(pid: i64) -> bool {
    cfg!(target_os = "linux") && Path::new(&format!("/proc/{pid}")).exists()
}
