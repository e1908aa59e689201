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
    let (run, p) = tuned_prompt(store, run)?;
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

/// A run and its tuned prompt; an error naming the run's status when it has none.
fn tuned_prompt(
    store: &Store,
    run: i64,
) -> Result<(crate::store::RunRecord, crate::store::PromptRecord), TuneError> {
    let run = store.run(run)?;
    let p = store.prompt_for_run(run.id)?.ok_or_else(|| {
        TuneError::Invalid(format!(
            "run {} has no tuned prompt (status {})",
            run.id,
            run.status.as_str()
        ))
    })?;
    Ok((run, p))
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

/// What `export --gguf` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GgufExported {
    /// The run.
    pub run: i64,
    /// Its region.
    pub region: String,
    /// The model file with the tokens.
    pub gguf: crate::carried::GgufExport,
    /// The card beside it (`<name>.culturetune.json`).
    pub card: std::path::PathBuf,
    /// An Ollama Modelfile beside it (`<name>.Modelfile`).
    pub modelfile: std::path::PathBuf,
}

/// The files written beside an exported GGUF `out`: its card and its Ollama Modelfile.
pub fn beside(out: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let dir = crate::atomic_file::parent_dir(out);
    (
        dir.join(format!("{stem}.culturetune.json")),
        dir.join(format!("{stem}.Modelfile")),
    )
}

/// Writes run `run`'s tuned prompt into `out`, a copy of the model file the run evaluated
/// (its weights type) that carries the rows as new tokens (`crate::carried`), with its card
/// and an Ollama Modelfile beside it. The run's model file must still have its SHA-256.
pub fn export_gguf(
    store: &Store,
    run: i64,
    out: &Path,
    force: bool,
) -> Result<GgufExported, TuneError> {
    let (run, p) = tuned_prompt(store, run)?;
    let config = super::TuneConfig::from_stored(&run)?;
    let given = Path::new(&config.model_path);
    let sha = crate::fingerprint::sha256_file(given).map_err(|source| {
        crate::engine::EngineError::Io {
            path: config.model_path.clone(),
            source,
        }
    })?;
    if sha != config.model_sha256 {
        return Err(TuneError::Invalid(format!(
            "{} no longer has SHA-256 {} (the file changed since run {} was tuned)",
            config.model_path, config.model_sha256, run.id
        )));
    }
    let (card_path, modelfile) = beside(out);
    for path in [&card_path, &modelfile] {
        crate::atomic_file::check_replaceable(path)
            .map_err(|e| TuneError::Invalid(format!("{}: {e}", path.display())))?;
    }
    let evaluated = crate::engine::converted_path(given, config.weights, config.settings.threads)?;
    let source = crate::carried::CarrySource {
        model: &evaluated,
        rows: &p.rows,
        k: p.k,
        card: &p.card,
        chat_template: config.chat_template.as_deref(),
        quiet_token: quiet_token(&config, &evaluated)?,
    };
    let (gguf, carried) = crate::carried::write_gguf(&source, out, force)?;
    let card = crate::carried::export_card(&carried, &gguf, out);
    let text = serde_json::to_string_pretty(&card).map_err(|e| TuneError::Other(e.to_string()))?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| TuneError::Invalid(format!("{}: {e}", path.display()))
    };
    crate::atomic_file::write(&card_path, format!("{text}\n").as_bytes())
        .map_err(io(&card_path))?;
    let mf = crate::carried::modelfile(&carried, out);
    crate::atomic_file::write(&modelfile, mf.as_bytes()).map_err(io(&modelfile))?;
    Ok(GgufExported {
        run: run.id,
        region: run.region,
        gguf,
        card: card_path,
        modelfile,
    })
}

/// The token the exported file's new tokens copy the output row of: the one whose largest
/// logit over the run's training survey (naive persona, the run's panel and template) is the
/// lowest.
fn quiet_token(config: &super::TuneConfig, evaluated: &Path) -> Result<u32, TuneError> {
    use crate::engine::evaluate::{Evaluator, PersonaInput, SurveyPrompts};
    let model = crate::engine::load_for_evaluation(
        evaluated,
        crate::engine::WeightType::Original,
        config.settings.threads,
        0,
        config.chat_template.as_deref(),
        &mut |_| {},
    )?;
    let survey = crate::survey::Survey::from_id_or_path(&config.survey)?;
    let region = crate::regions::RegionTable::builtin();
    // A region of a custom targets table is not built in: any persona serves this purpose.
    let found = region
        .find(&config.region)
        .or_else(|_| region.find("USA"))?;
    let persona = crate::prompt::persona(found);
    let panel = crate::prompt::panel(config.panel);
    let prompts = SurveyPrompts::build(&model, &survey, &persona, &panel, config.counterbalance)?;
    let mut ev = Evaluator::new(&model, config.settings)?;
    ev.track_max_logits();
    ev.evaluate(&prompts, PersonaInput::Text)?;
    crate::carried::quiet_token(ev.max_logits())
        .ok_or_else(|| TuneError::Other("no logits to choose a quiet token from".into()))
}

/// Stores the tuned prompt a GGUF file exported by culturetune carries (read back from its
/// embeddings) in the database `db`, under the model it was tuned on (the card's SHA-256).
pub fn import_gguf(db: &Path, path: &Path) -> Result<Option<Imported>, TuneError> {
    let Some((carried, rows)) = crate::carried::read_with_rows(path)? else {
        return Ok(None);
    };
    let k = carried.k();
    let n_embd = rows.len() / k;
    let sha = carried
        .card
        .get("model_sha256")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let text = |key: &str| {
        carried
            .card
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let store = Store::open(db)?;
    store.upsert_model(&crate::store::ModelRecord {
        sha256: sha.clone(),
        file_size: std::fs::metadata(text("model_file")).map_or(0, |m| m.len()),
        path: text("model_file"),
        name: text("model_name"),
        architecture: text("architecture"),
        n_embd,
    })?;
    let prompt = store.save_prompt(None, &sha, k, n_embd, &rows, &carried.card)?;
    Ok(Some(Imported {
        prompt,
        k,
        n_embd,
        same_model: true,
    }))
}
