//! The `models` table: the model files runs and prompts belong to, keyed by SHA-256.

use super::db::{Store, StoreError};
use rusqlite::params;
use serde::{Deserialize, Serialize};

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

impl Store {
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
}
