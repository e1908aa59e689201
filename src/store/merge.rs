//! `merge`: runs made on other machines brought into this database. Every source is opened
//! read-only (and never written); everything is copied in one transaction, so a failure
//! leaves this database as it was. Rows get this database's ids (the sources' ids clash);
//! a run of a job already here (the caller says what a job is: for culturetune, the stored
//! configuration without what belongs to the machine) is recognized and not copied again; a
//! calibration stored here under the same key with other values is a conflict, reported and
//! left as it is here.

use super::db::{Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A calibration both databases hold under one key with different values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationConflict {
    /// The model's hash.
    pub model_sha256: String,
    /// The survey.
    pub survey: String,
    /// The values kept (this database's, JSON).
    pub kept: String,
    /// The source's values, not copied (JSON).
    pub other: String,
}

/// What one source brought.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SourceMerge {
    /// The source database.
    pub source: PathBuf,
    /// Runs copied, as (the source's id, the id here).
    pub runs: Vec<(i64, i64)>,
    /// Runs already here, as (the source's id, the id here): not copied again.
    pub duplicates: Vec<(i64, i64)>,
    /// Checkpoints copied.
    pub checkpoints: usize,
    /// Tuned and imported prompts copied.
    pub prompts: usize,
    /// Evaluations copied.
    pub evaluations: usize,
    /// Calibrations copied.
    pub calibrations: usize,
    /// Models this database did not know.
    pub models: usize,
    /// Calibrations stored here under the same key with other values.
    pub conflicts: Vec<CalibrationConflict>,
}

impl SourceMerge {
    /// One line for people: what the source brought.
    pub fn summary(&self) -> String {
        let pairs = |v: &[(i64, i64)]| -> String {
            let p: Vec<String> = v.iter().map(|(a, b)| format!("{a} -> {b}")).collect();
            match p.is_empty() {
                true => String::new(),
                false => format!(" ({})", p.join(", ")),
            }
        };
        format!(
            "{}: {} run(s) copied{}, {} already here{}; {} checkpoints, {} prompts, {} evaluations, {} calibrations, {} models",
            self.source.display(),
            self.runs.len(),
            pairs(&self.runs),
            self.duplicates.len(),
            pairs(&self.duplicates),
            self.checkpoints,
            self.prompts,
            self.evaluations,
            self.calibrations,
            self.models
        )
    }
}

impl CalibrationConflict {
    /// One line for people: which calibration differs and which values were kept.
    pub fn describe(&self) -> String {
        format!(
            "conflict: model {} survey {} is calibrated differently there ({}) than here ({}); kept this database's",
            self.model_sha256.get(..12).unwrap_or(&self.model_sha256),
            self.survey,
            self.other,
            self.kept
        )
    }
}

impl Store {
    /// Copies the runs, checkpoints, prompts, evaluations, calibrations and models of every
    /// source into this database, in one transaction. A source that is this database, is not
    /// culturetune's database, or has another schema version is refused before anything is
    /// copied. `job` maps a run's stored configuration to its job: runs of one job are
    /// copied once (the store does not read configurations; the caller knows what in them
    /// belongs to the machine rather than to the job).
    pub fn merge(
        &mut self,
        sources: &[PathBuf],
        job: &dyn Fn(&str) -> String,
    ) -> Result<Vec<SourceMerge>, StoreError> {
        let mut opened = Vec::with_capacity(sources.len());
        for s in sources {
            opened.push((s.clone(), self.open_source(s)?));
        }
        let path = self.path.clone();
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        let mut jobs = known_jobs(&tx, job).map_err(sql)?;
        let mut out = Vec::with_capacity(opened.len());
        for (source, conn) in &opened {
            let mut m = SourceMerge {
                source: source.clone(),
                ..SourceMerge::default()
            };
            copy_source(conn, &tx, (job, &mut jobs), &mut m).map_err(|e| StoreError::Sqlite {
                path: source.clone(),
                source: e,
            })?;
            out.push(m);
        }
        tx.commit().map_err(sql)?;
        Ok(out)
    }

    /// A source opened read-only, checked to be another culturetune database of this schema.
    fn open_source(&self, source: &Path) -> Result<Connection, StoreError> {
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same(source, &self.path) {
            return Err(StoreError::Refused {
                path: source.to_path_buf(),
                message: "it is the database merged into (name it only in --into)".into(),
            });
        }
        if !source.is_file() {
            return Err(StoreError::Refused {
                path: source.to_path_buf(),
                message: "no such database file".into(),
            });
        }
        let latest = super::migrations::MIGRATIONS.len() as i64;
        match Store::read_only_connection(source) {
            Some((conn, v)) if v == latest => Ok(conn),
            Some((_, v)) if v > latest => Err(StoreError::TooNew {
                path: source.to_path_buf(),
                found: v,
                supported: latest,
            }),
            Some((_, v)) => Err(StoreError::Refused {
                path: source.to_path_buf(),
                message: format!(
                    "schema version {v}, not {latest}: open it once with this culturetune (`culturetune --db {} runs`), then merge it",
                    source.display()
                ),
            }),
            None => Err(StoreError::Refused {
                path: source.to_path_buf(),
                message: "not a culturetune database (not a SQLite file)".into(),
            }),
        }
    }
}

/// How runs are matched: the caller's job of a configuration, and the jobs here (job -> run).
type Jobs<'a> = (&'a dyn Fn(&str) -> String, &'a mut HashMap<String, i64>);

/// The job of every run here (the oldest run of a job when there are several).
fn known_jobs(
    tx: &Transaction<'_>,
    job: &dyn Fn(&str) -> String,
) -> rusqlite::Result<HashMap<String, i64>> {
    let mut q = tx.prepare("SELECT id, config FROM runs ORDER BY id DESC")?;
    let rows = q.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut jobs = HashMap::new();
    for row in rows {
        let (id, config) = row?;
        jobs.insert(job(&config), id);
    }
    Ok(jobs)
}

/// Copies one source into the transaction.
fn copy_source(
    src: &Connection,
    tx: &Transaction<'_>,
    jobs: Jobs<'_>,
    m: &mut SourceMerge,
) -> rusqlite::Result<()> {
    m.models = copy_rows(src, tx, "models", MODEL_COLUMNS, None)?;
    copy_calibrations(src, tx, m)?;
    let ids = copy_runs(src, tx, jobs, m)?;
    m.checkpoints = copy_rows(src, tx, "checkpoints", CHECKPOINT_COLUMNS, Some(&ids))?;
    copy_prompts(src, tx, &ids, m)?;
    m.evaluations = copy_rows(src, tx, "evaluations", EVALUATION_COLUMNS, Some(&ids))?;
    Ok(())
}

const MODEL_COLUMNS: &[&str] = &[
    "sha256",
    "path",
    "name",
    "architecture",
    "n_embd",
    "file_size",
    "added_at",
];
const CHECKPOINT_COLUMNS: &[&str] = &[
    "run_id",
    "generation",
    "evals",
    "best_loss",
    "mean_loss",
    "best_scores",
    "state",
    "elapsed_s",
    "created_at",
];
const EVALUATION_COLUMNS: &[&str] = &[
    "run_id",
    "model_sha256",
    "method",
    "survey",
    "region",
    "constants",
    "indices",
    "loss",
    "loss_mean",
    "dims_used",
    "digit_mass",
    "items",
    "created_at",
];

/// Copies a table's rows, every column as stored. With `runs`, the first column is the run
/// id: rows of runs not copied (and rows without a run, which culturetune does not store in
/// these tables) are left out, the others get the run's id here. Without, a row whose key is
/// already here is left as it is here. Returns the rows copied.
fn copy_rows(
    src: &Connection,
    tx: &Transaction<'_>,
    table: &str,
    columns: &[&str],
    runs: Option<&HashMap<i64, i64>>,
) -> rusqlite::Result<usize> {
    use rusqlite::types::Value;
    let list = columns.join(", ");
    let mut q = src.prepare(&format!("SELECT {list} FROM {table} ORDER BY rowid"))?;
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let verb = if runs.is_some() {
        "INSERT"
    } else {
        "INSERT OR IGNORE"
    };
    let insert = format!("{verb} INTO {table} ({list}) VALUES ({})", marks.join(", "));
    let mut rows = q.query([])?;
    let mut copied = 0;
    while let Some(r) = rows.next()? {
        let mut values: Vec<Value> = (0..columns.len())
            .map(|i| r.get(i))
            .collect::<rusqlite::Result<_>>()?;
        if let Some(ids) = runs {
            let Value::Integer(run) = values[0] else {
                continue;
            };
            let Some(&here) = ids.get(&run) else {
                continue;
            };
            values[0] = Value::Integer(here);
        }
        copied += tx.execute(&insert, rusqlite::params_from_iter(values))?;
    }
    Ok(copied)
}

fn copy_calibrations(
    src: &Connection,
    tx: &Transaction<'_>,
    m: &mut SourceMerge,
) -> rusqlite::Result<()> {
    let mut q = src.prepare(
        "SELECT key, model_sha256, survey, regions, constants, created_at FROM calibrations ORDER BY id",
    )?;
    let rows = q.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (key, sha, survey, regions, constants, created) = row?;
        let here: Option<String> = tx
            .query_row(
                "SELECT constants FROM calibrations WHERE key = ?1",
                [&key],
                |r| r.get(0),
            )
            .optional()?;
        match here {
            Some(kept) if kept == constants => {}
            Some(kept) => m.conflicts.push(CalibrationConflict {
                model_sha256: sha,
                survey,
                kept,
                other: constants,
            }),
            None => {
                m.calibrations += tx.execute(
                    "INSERT INTO calibrations (key, model_sha256, survey, regions, constants, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![key, sha, survey, regions, constants, created],
                )?;
            }
        }
    }
    Ok(())
}

/// The runs not already here, copied; returns the source's id -> the id here of each.
fn copy_runs(
    src: &Connection,
    tx: &Transaction<'_>,
    (job, jobs): Jobs<'_>,
    m: &mut SourceMerge,
) -> rusqlite::Result<HashMap<i64, i64>> {
    let mut q = src.prepare(
        "SELECT id, region, survey, method, model_sha256, config, seed, status, error, created_at, updated_at FROM runs ORDER BY id",
    )?;
    let mut rows = q.query([])?;
    let mut ids = HashMap::new();
    while let Some(r) = rows.next()? {
        let id: i64 = r.get("id")?;
        let config: String = r.get("config")?;
        let key = job(&config);
        if let Some(&here) = jobs.get(&key) {
            m.duplicates.push((id, here));
            continue;
        }
        // A run still running over there is owned by no process here: interrupted, resumable.
        let status: String = r.get("status")?;
        let status = if status == "running" {
            "interrupted".to_string()
        } else {
            status
        };
        tx.execute(
            "INSERT INTO runs (region, survey, method, model_sha256, config, seed, status, pid, error, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10)",
            params![
                r.get::<_, String>("region")?,
                r.get::<_, String>("survey")?,
                r.get::<_, String>("method")?,
                r.get::<_, String>("model_sha256")?,
                config,
                r.get::<_, i64>("seed")?,
                status,
                r.get::<_, Option<String>>("error")?,
                r.get::<_, String>("created_at")?,
                r.get::<_, String>("updated_at")?,
            ],
        )?;
        let new = tx.last_insert_rowid();
        jobs.insert(key, new);
        ids.insert(id, new);
        m.runs.push((id, new));
    }
    Ok(ids)
}

/// The prompts of copied runs, and imported prompts (no run) this database lacks.
fn copy_prompts(
    src: &Connection,
    tx: &Transaction<'_>,
    ids: &HashMap<i64, i64>,
    m: &mut SourceMerge,
) -> rusqlite::Result<()> {
    let mut q = src.prepare(
        "SELECT run_id, model_sha256, k, n_embd, rows, card, created_at FROM prompts ORDER BY id",
    )?;
    let mut rows = q.query([])?;
    while let Some(r) = rows.next()? {
        let run = match r.get::<_, Option<i64>>(0)? {
            Some(src_run) => match ids.get(&src_run) {
                Some(&here) => Some(here),
                None => continue,
            },
            None => None,
        };
        let (sha, blob, card): (String, Vec<u8>, String) = (r.get(1)?, r.get(4)?, r.get(5)?);
        if run.is_none() {
            let known: Option<i64> = tx
                .query_row(
                    "SELECT id FROM prompts WHERE run_id IS NULL AND model_sha256 = ?1 AND rows = ?2 AND card = ?3",
                    params![sha, blob, card],
                    |r| r.get(0),
                )
                .optional()?;
            if known.is_some() {
                continue;
            }
        }
        m.prompts += tx.execute(
            "INSERT INTO prompts (run_id, model_sha256, k, n_embd, rows, card, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![run, sha, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, blob, card, r.get::<_, String>(6)?],
        )?;
    }
    Ok(())
}
