//! The `prompts` table: tuned (or imported) soft prompts with their cards.

use super::db::{Store, StoreError};
use rusqlite::{params, OptionalExtension};

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

impl Store {
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
        let row: Option<(PromptRecord, Vec<u8>, String)> = self
            .conn
            .query_row(
                &format!("SELECT id, run_id, model_sha256, k, n_embd, rows, card FROM prompts WHERE {clause} ORDER BY id DESC LIMIT 1"),
                [id],
                |r| {
                    Ok((
                        PromptRecord {
                            id: r.get("id")?,
                            run_id: r.get("run_id")?,
                            model_sha256: r.get("model_sha256")?,
                            k: r.get::<_, i64>("k")? as usize,
                            n_embd: r.get::<_, i64>("n_embd")? as usize,
                            rows: vec![],
                            card: serde_json::Value::Null,
                        },
                        r.get("rows")?,
                        r.get("card")?,
                    ))
                },
            )
            .optional()
            .map_err(self.sql())?;
        row.map(|(mut p, blob, card)| {
            p.rows = blob
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if p.rows.len() != p.k * p.n_embd || blob.len() % 4 != 0 {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    what: format!("prompt {}", p.id),
                    message: format!("{} bytes of values for {}x{}", blob.len(), p.k, p.n_embd),
                });
            }
            p.card = self.parse(&card, "prompt card")?;
            Ok(p)
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
}
