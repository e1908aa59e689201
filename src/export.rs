//! Export and import of a tuned soft prompt as a PEFT prompt-tuning adapter directory:
//! `adapter_config.json`, `adapter_model.safetensors` (`prompt_embeddings`, F32 [k, n_embd])
//! and culturetune's own card, `culturetune.json`, with what PEFT lacks (model hash, where the
//! vectors go, region, survey, constants, losses, optimizer settings, seed).
//!
//! An export is built in a temporary sibling directory and renamed into place, so a reader
//! never sees half of one; an existing target is refused unless forced, and even forced only
//! a previous export (a directory holding a culturetune card and nothing but the export's own
//! files) is ever replaced.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The card format this version writes.
pub const CARD_FORMAT: &str = "culturetune-soft-prompt/1";
/// The tensor name PEFT uses for prompt-tuning embeddings.
pub const TENSOR_NAME: &str = "prompt_embeddings";
/// Largest safetensors file import accepts (a soft prompt is a few rows; 8 192 x 8 192 F32).
pub const MAX_IMPORT_BYTES: u64 = 256 << 20;
/// The files of an export directory; `--force` replaces a directory holding only these.
pub const EXPORT_FILES: [&str; 3] = [
    "adapter_config.json",
    "adapter_model.safetensors",
    "culturetune.json",
];

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
    let exists = std::fs::symlink_metadata(dir).is_ok();
    if exists && !force {
        return Err(ExportError::Exists(dir.to_path_buf()));
    }
    if exists {
        check_previous_export(dir)?;
    }
    let parent = crate::atomic_file::parent_dir(dir).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = crate::atomic_file::temp_sibling(&parent, "export");
    let result = write_into(&tmp, rows, k, n_embd, card, base_model_name).and_then(|()| {
        if exists {
            let old = crate::atomic_file::temp_sibling(&parent, "old");
            std::fs::rename(dir, &old).map_err(io(dir))?;
            std::fs::rename(&tmp, dir).map_err(io(dir))?;
            remove_export(&old);
            Ok(())
        } else {
            std::fs::rename(&tmp, dir).map_err(io(dir))
        }
    });
    if result.is_err() {
        remove_export(&tmp);
    }
    result
}

/// Refuses to replace anything but a previous export: a real directory (not a symlink)
/// holding `culturetune.json` with this program's card format and no file or folder other
/// than [`EXPORT_FILES`].
fn check_previous_export(dir: &Path) -> Result<(), ExportError> {
    let refuse = |why: String| {
        invalid(
            dir,
            format!("{why}; --force replaces only a previous export (a folder holding culturetune.json and nothing else but the adapter files), so choose another --out"),
        )
    };
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    if !meta.is_dir() {
        return Err(refuse(format!(
            "it is {}, not an export folder",
            crate::input_file::kind_of(&meta.file_type())
        )));
    }
    let mut unexpected = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map_err(io(dir))?.is_file();
        if !is_file || !EXPORT_FILES.contains(&name.as_str()) {
            unexpected.push(name);
        }
    }
    if !unexpected.is_empty() {
        unexpected.sort();
        let shown: Vec<&str> = unexpected.iter().take(5).map(String::as_str).collect();
        return Err(refuse(format!(
            "it holds {} that culturetune's export did not write ({}{})",
            if unexpected.len() == 1 {
                "an entry"
            } else {
                "entries"
            },
            shown.join(", "),
            if unexpected.len() > 5 { ", ..." } else { "" }
        )));
    }
    let card_path = dir.join("culturetune.json");
    let card: Option<Value> =
        crate::input_file::read_text(&card_path, crate::input_file::MAX_TEXT_BYTES)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
    if card
        .as_ref()
        .and_then(|c| c.get("format"))
        .and_then(Value::as_str)
        != Some(CARD_FORMAT)
    {
        return Err(refuse(
            "it holds no culturetune card (culturetune.json)".into(),
        ));
    }
    Ok(())
}

/// Removes a directory this module wrote: its export files, then the (now empty) folder. A
/// file it did not write stays, and so does the folder.
fn remove_export(dir: &Path) {
    for f in EXPORT_FILES {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let _ = std::fs::remove_dir(dir);
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

/// Checks a card against the tensor it travels with and the enums it names: `k` and
/// `n_embd` (when present) must be the tensor's shape, and `insertion` must name a known
/// placement and anchor.
fn check_card(card: &Value, k: usize, n_embd: usize) -> Result<(), String> {
    if !card.is_object() {
        return Err("the card must be a JSON object".into());
    }
    for (key, want) in [("k", k), ("n_embd", n_embd)] {
        if let Some(v) = card.get(key) {
            if v.as_u64() != Some(want as u64) {
                return Err(format!(
                    "{key} is {v} but adapter_model.safetensors holds a {k} x {n_embd} tensor"
                ));
            }
        }
    }
    if card.get("insertion").is_some_and(|v| !v.is_object()) {
        return Err(format!(
            "insertion is {}; expected an object with placement and anchor",
            card["insertion"]
        ));
    }
    crate::soft_prompt::Placement::from_card(card)?;
    crate::soft_prompt::AnswerAnchor::from_card(card)?;
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
        let text =
            crate::input_file::read_text(&p, crate::input_file::MAX_TEXT_BYTES).map_err(io(&p))?;
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
    let rows = read_rows(
        &dir.join("adapter_model.safetensors"),
        k,
        n_embd,
        expected_n_embd,
    )?;
    let card_path = dir.join("culturetune.json");
    let card = read_json("culturetune.json")?;
    if card.get("format").and_then(Value::as_str) != Some(CARD_FORMAT) {
        return Err(invalid(
            &card_path,
            format!("format must be \"{CARD_FORMAT}\""),
        ));
    }
    check_card(&card, k, n_embd).map_err(|m| invalid(&card_path, m))?;
    Ok(SoftPromptFile {
        k,
        n_embd,
        rows,
        card,
    })
}

/// The `k x n_embd` rows of the adapter's tensor file `st_path`, all finite; `expected_n_embd`
/// is the model's width, when one is known.
fn read_rows(
    st_path: &Path,
    k: usize,
    n_embd: usize,
    expected_n_embd: Option<usize>,
) -> Result<Vec<f32>, ExportError> {
    let bytes = crate::input_file::read_capped(st_path, MAX_IMPORT_BYTES).map_err(io(st_path))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| invalid(st_path, format!("not a valid safetensors file: {e}")))?;
    let t = st
        .tensor(TENSOR_NAME)
        .map_err(|_| invalid(st_path, format!("no tensor named {TENSOR_NAME}")))?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(invalid(
            st_path,
            format!("{TENSOR_NAME} is {:?}; expected F32", t.dtype()),
        ));
    }
    if t.shape() != [k, n_embd] {
        return Err(invalid(
            st_path,
            format!(
                "{TENSOR_NAME} has shape {:?}; adapter_config.json says [{k}, {n_embd}]",
                t.shape()
            ),
        ));
    }
    if let Some(want) = expected_n_embd {
        if n_embd != want {
            return Err(invalid(st_path, format!("the soft prompt is {n_embd} wide but the model's embeddings are {want} wide (made for another model?)")));
        }
    }
    let rows: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
        return Err(invalid(
            st_path,
            format!(
                "value {i} (row {}, column {}) is {}; expected finite numbers",
                i / n_embd,
                i % n_embd,
                rows[i]
            ),
        ));
    }
    Ok(rows)
}
