//! Tuned prompts between the store and adapter directories: `export` writes a run's tuned
//! prompt as a PEFT adapter with its card, `import` validates one against a model and stores
//! it.

use super::TuneError;
use crate::engine::Model;
use crate::export;
use crate::store::Store;
use std::path::Path;

/// What `export` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The run.
    pub run: i64,
    /// Its region.
    pub region: String,
    /// Rows.
    pub k: usize,
    /// Their width.
    pub n_embd: usize,
}

/// Writes run `run`'s tuned prompt into the folder `out` (`force`: replace a previous
/// export there). A folder that holds the database `db` is refused.
pub fn export_run(
    store: &Store,
    db: &Path,
    run: i64,
    out: &Path,
    force: bool,
) -> Result<Exported, TuneError> {
    if let (Ok(target), Ok(db_file)) = (out.canonicalize(), db.canonicalize()) {
        if db_file.starts_with(&target) {
            return Err(TuneError::Invalid(format!(
                "{} holds the database {}; export into another folder (--out)",
                out.display(),
                db.display()
            )));
        }
    }
    let run = store.run(run)?;
    let p = store.prompt_for_run(run.id)?.ok_or_else(|| {
        TuneError::Invalid(format!(
            "run {} has no tuned prompt (status {})",
            run.id,
            run.status.as_str()
        ))
    })?;
    let name = p
        .card
        .get("model_name")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    export::export(out, &p.rows, p.k, p.n_embd, &p.card, name, force)?;
    Ok(Exported {
        run: run.id,
        region: run.region,
        k: p.k,
        n_embd: p.n_embd,
    })
}

/// What `import` stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The new prompt's id.
    pub prompt: i64,
    /// Rows.
    pub k: usize,
    /// Their width.
    pub n_embd: usize,
    /// Whether the card names this model file (its SHA-256); answers may not transfer when
    /// it does not.
    pub same_model: bool,
}

/// Validates the adapter folder `dir` against `model` (loaded from `given`, SHA-256 `sha`)
/// and stores its prompt in the database `db` (opened, or created, only once the folder
/// passed).
pub fn import_dir(
    db: &Path,
    model: &Model,
    given: &Path,
    sha: &str,
    dir: &Path,
) -> Result<Imported, TuneError> {
    let file = export::import(dir, Some(model.info().n_embd))?;
    let store = Store::open(db)?;
    store.upsert_model(&super::model_record(model, sha, given))?;
    let prompt = store.save_prompt(None, sha, file.k, file.n_embd, &file.rows, &file.card)?;
    Ok(Imported {
        prompt,
        k: file.k,
        n_embd: file.n_embd,
        same_model: file.card.get("model_sha256").and_then(|v| v.as_str()) == Some(sha),
    })
}
