//! The store's file: opening it (read-write with migration, or read-only), checking it is
//! culturetune's database, and the error type of every table module.

use rusqlite::{params, Connection};
use serde::Serialize;
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
    /// A database named for a merge cannot be one (this database itself, not a file, an
    /// older schema); nothing was copied.
    #[error("{path}: {message}; nothing was merged")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl StoreError {
    /// The stable code of this error (every store failure is `database`).
    pub fn code(&self) -> crate::error_code::ErrorCode {
        crate::error_code::ErrorCode::Database
    }
}

/// An open database.
pub struct Store {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
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
        let latest = super::migrations::MIGRATIONS.len() as i64;
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
    pub(super) fn read_only_connection(path: &Path) -> Option<(Connection, i64)> {
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
    pub(super) fn prepare(conn: Connection, path: &Path) -> Result<Store, StoreError> {
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

    pub(super) fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    pub(super) fn not_finite(&self, what: String, value: f64) -> StoreError {
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
    pub(super) fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = move |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let latest = super::migrations::MIGRATIONS.len() as i64;
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
        for (i, m) in super::migrations::MIGRATIONS
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
    pub(super) fn mark_interrupted(&self) -> Result<(), StoreError> {
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
            if !owner_alive(pid) {
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

    pub(super) fn parse<T: serde::de::DeserializeOwned>(
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

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(self.sql())
    }
}

pub(super) fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

/// Whether the process holding a run (its stored pid) is this one or still exists.
pub(super) fn owner_alive(pid: Option<i64>) -> bool {
    pid.is_some_and(|p| p as u32 == std::process::id() || process_alive(p))
}

/// Whether a process with this id exists (Linux: /proc; elsewhere assume it is gone, so a
/// stale run is offered for resume rather than blocked forever).
fn process_alive(pid: i64) -> bool {
    cfg!(target_os = "linux") && Path::new(&format!("/proc/{pid}")).exists()
}
