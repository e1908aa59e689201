//! Export and import of a tuned soft prompt as a PEFT prompt-tuning adapter directory:
//! `adapter_config.json`, `adapter_model.safetensors` (`prompt_embeddings`, F32 [k, n_embd])
//! and culturetune's own card, `culturetune.json`, with what PEFT lacks (model hash, where the
//! vectors go, region, survey, constants, losses, optimizer settings, seed).
//!
//! An export is built in a temporary sibling directory and renamed into place, so a reader
//! never sees half of one; an existing target is refused unless forced.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The card format this version writes.
pub const CARD_FORMAT: &str = "culturetune-soft-prompt/1";
/// The tensor name PEFT uses for prompt-tuning embeddings.
pub const TENSOR_NAME: &str = "prompt_embeddings";
/// Largest safetensors file import accepts (a soft prompt is a few rows; 8 192 x 8 192 F32).
pub const MAX_IMPORT_BYTES: u64 = 256 << 20;

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The target exists and `force` was not given.
    #[error("{0} already exists; choose another directory or pass --force to replace it")]
    Exists(PathBuf),
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The directory does not hold a valid soft prompt.
    #[error("{path}: {message}")]
    Invalid {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
}

impl ExportError {
    /// The stable code of this error (bad input: `invalid_input`).
    pub fn code(&self) -> crate::error_code::ErrorCode {
        crate::error_code::ErrorCode::InvalidInput
    }
}

/// A soft prompt read from an adapter directory.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftPromptFile {
    /// Rows.
    pub k: usize,
    /// Width.
    pub n_embd: usize,
    /// `k * n_embd` values, row-major.
    pub rows: Vec<f32>,
    /// The culturetune card.
    pub card: Value,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> ExportError {
    ExportError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes the adapter directory. `card` must be a JSON object; `format`, `k` and `n_embd` are
/// filled in.
pub fn export(
    dir: &Path,
    rows: &[f32],
    k: usize,
    n_embd: usize,
    card: &Value,
    base_model_name: &str,
    force: bool,
) -> Result<(), ExportError> {
    if k == 0 || n_embd == 0 || rows.len() != k * n_embd {
        return Err(invalid(
            dir,
            format!(
                "{} values do not form a {k} x {n_embd} soft prompt",
                rows.len()
            ),
        ));
    }
    if rows.iter().any(|v| !v.is_finite()) {
        return Err(invalid(dir, "the soft prompt contains NaN or infinity"));
    }
    if dir.exists() && !force {
        return Err(ExportError::Exists(dir.to_path_buf()));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = write_into(&tmp, rows, k, n_embd, card, base_model_name).and_then(|()| {
        if dir.exists() {
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(dir, &old).map_err(io(dir))?;
            std::fs::rename(&tmp, dir).map_err(io(dir))?;
            let _ = std::fs::remove_dir_all(&old);
            Ok(())
        } else {
            std::fs::rename(&tmp, dir).map_err(io(dir))
        }
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn write_into(
    dir: &Path,
    rows: &[f32],
    k: usize,
    n_embd: usize,
    card: &Value,
    base_model_name: &str,
) -> Result<(), ExportError> {
    std::fs::create_dir(dir).map_err(io(dir))?;
    let config = json!({
        "peft_type": "PROMPT_TUNING",
        "task_type": "CAUSAL_LM",
        "num_virtual_tokens": k,
        "token_dim": n_embd,
        "num_transformer_submodules": 1,
        "prompt_tuning_init": "RANDOM",
        "base_model_name_or_path": base_model_name,
        "inference_mode": true,
        "revision": null,
        "tokenizer_name_or_path": null,
    });
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        crate::atomic_file::write(&p, bytes).map_err(|source| ExportError::Io {
            path: p.clone(),
            source,
        })
    };
    write(
        "adapter_config.json",
        serde_json::to_string_pretty(&config)
            .expect("json")
            .as_bytes(),
    )?;
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![k, n_embd], &bytes)
            .map_err(|e| invalid(dir, format!("safetensors: {e}")))?;
    let meta: HashMap<String, String> = HashMap::from([("format".to_string(), "pt".to_string())]);
    let st = safetensors::tensor::serialize([(TENSOR_NAME, view)], &Some(meta))
        .map_err(|e| invalid(dir, format!("safetensors: {e}")))?;
    write("adapter_model.safetensors", &st)?;
    let mut card = card.clone();
    if let Some(obj) = card.as_object_mut() {
        obj.insert("format".into(), json!(CARD_FORMAT));
        obj.insert("k".into(), json!(k));
        obj.insert("n_embd".into(), json!(n_embd));
    } else {
        return Err(invalid(dir, "the card must be a JSON object"));
    }
    write(
        "culturetune.json",
        serde_json::to_string_pretty(&card)
            .expect("json")
            .as_bytes(),
    )?;
    Ok(())
}

/// Reads and validates an adapter directory. With `expected_n_embd`, the width must match the
/// model it will be used with.
pub fn import(dir: &Path, expected_n_embd: Option<usize>) -> Result<SoftPromptFile, ExportError> {
    if !dir.is_dir() {
        return Err(invalid(dir, "not a directory; expected an exported soft prompt (adapter_config.json, adapter_model.safetensors, culturetune.json)"));
    }
    let read_json = |name: &str| -> Result<Value, ExportError> {
        let p = dir.join(name);
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        serde_json::from_str(&text).map_err(|e| invalid(&p, format!("invalid JSON: {e}")))
    };
    let cfg_path = dir.join("adapter_config.json");
    let config = read_json("adapter_config.json")?;
    if config.get("peft_type").and_then(Value::as_str) != Some("PROMPT_TUNING") {
        return Err(invalid(&cfg_path, "peft_type must be \"PROMPT_TUNING\""));
    }
    let field = |name: &str| {
        config
            .get(name)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .filter(|v| *v > 0)
            .ok_or_else(|| invalid(&cfg_path, format!("{name} must be a positive integer")))
    };
    let (k, n_embd) = (field("num_virtual_tokens")?, field("token_dim")?);
    let st_path = dir.join("adapter_model.safetensors");
    let size = std::fs::metadata(&st_path).map_err(io(&st_path))?.len();
    if size > MAX_IMPORT_BYTES {
        return Err(invalid(
            &st_path,
            format!("{size} bytes is larger than the {MAX_IMPORT_BYTES} a soft prompt may have"),
        ));
    }
    let bytes = std::fs::read(&st_path).map_err(io(&st_path))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| invalid(&st_path, format!("not a valid safetensors file: {e}")))?;
    let t = st
        .tensor(TENSOR_NAME)
        .map_err(|_| invalid(&st_path, format!("no tensor named {TENSOR_NAME}")))?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(invalid(
            &st_path,
            format!("{TENSOR_NAME} is {:?}; expected F32", t.dtype()),
        ));
    }
    if t.shape() != [k, n_embd] {
        return Err(invalid(
            &st_path,
            format!(
                "{TENSOR_NAME} has shape {:?}; adapter_config.json says [{k}, {n_embd}]",
                t.shape()
            ),
        ));
    }
    if let Some(want) = expected_n_embd {
        if n_embd != want {
            return Err(invalid(&st_path, format!("the soft prompt is {n_embd} wide but the model's embeddings are {want} wide (made for another model?)")));
        }
    }
    let rows: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
        return Err(invalid(
            &st_path,
            format!(
                "value {i} (row {}, column {}) is {}; expected finite numbers",
                i / n_embd,
                i % n_embd,
                rows[i]
            ),
        ));
    }
    let card_path = dir.join("culturetune.json");
    let card = read_json("culturetune.json")?;
    if card.get("format").and_then(Value::as_str) != Some(CARD_FORMAT) {
        return Err(invalid(
            &card_path,
            format!("format must be \"{CARD_FORMAT}\""),
        ));
    }
    Ok(SoftPromptFile {
        k,
        n_embd,
        rows,
        card,
    })
}
