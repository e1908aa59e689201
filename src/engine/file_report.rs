//! `info`: what a GGUF file is, read from its header in Rust without loading the weights,
//! and where its layers would go (the devices llama.cpp sees and the automatic GPU plan).

use super::backend::gpu_available;
use super::error::EngineError;
use super::evaluate::EvalSettings;
use super::gguf::inspect;
use super::offload::{self, Device, LayerPlan};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `info` reports about a model file (the JSON of `info --json`; the app's Model screen
/// reads it, `ui/src/api.ts` `ModelInfo`).
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file, made absolute where it can be.
    pub path: PathBuf,
    /// Whether it is the default model (no path was given).
    pub is_default: bool,
    /// The model's name in its header.
    pub name: Option<String>,
    /// Its architecture.
    pub architecture: String,
    /// Bytes.
    pub file_size: u64,
    /// Weights.
    pub n_params: u64,
    /// The quantization, in words.
    pub quantization: Option<&'static str>,
    /// GGUF's `general.file_type`.
    pub file_type: Option<u32>,
    /// Embedding width.
    pub n_embd: Option<u64>,
    /// Layers.
    pub n_layer: Option<u64>,
    /// GGUF version.
    pub gguf_version: u32,
    /// Whether the header has a chat template.
    pub has_chat_template: bool,
    /// Whether llama.cpp recognises that template (without one, or when it does not, name
    /// one with `--chat-template`).
    pub chat_template_usable: bool,
    /// llama.cpp's built-in chat templates, the names `--chat-template` takes.
    pub builtin_chat_templates: Vec<String>,
    /// Whether this build can offload layers.
    pub gpu_available: bool,
    /// Why not, when it cannot.
    pub gpu_reason: Option<&'static str>,
    /// The devices llama.cpp sees.
    pub devices: Vec<Device>,
    /// The automatic layer plan at the default context size.
    pub gpu_plan: LayerPlan,
}

/// Reads `path`'s header and plans its layers under `gpu_memory_mib` (a cap on the device
/// memory the plan may use). llama.cpp's backend must be initialized (`engine::init`).
pub fn file_report(
    path: &Path,
    is_default: bool,
    gpu_memory_mib: Option<u64>,
) -> Result<FileReport, EngineError> {
    let info = inspect(path)?;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let gpu = gpu_available();
    let devices = offload::devices();
    let plan = offload::plan(
        &info,
        EvalSettings::default().n_ctx,
        offload::budget(&devices, gpu_memory_mib),
    );
    let quantization = info.quantization();
    let has_chat_template = info.chat_template.is_some();
    let chat_template_usable = info
        .chat_template
        .as_deref()
        .is_some_and(super::ffi::chat_template_known);
    Ok(FileReport {
        path,
        is_default,
        name: info.name,
        architecture: info.architecture,
        file_size: info.file_size,
        n_params: info.n_elements,
        quantization,
        file_type: info.file_type,
        n_embd: info.n_embd,
        n_layer: info.n_layer,
        gguf_version: info.version,
        has_chat_template,
        chat_template_usable,
        builtin_chat_templates: super::ffi::builtin_chat_templates(),
        gpu_available: gpu,
        gpu_reason: (!gpu).then_some(
            "this build of llama.cpp has no GPU backend (build with --features cuda, metal or vulkan)",
        ),
        devices,
        gpu_plan: plan,
    })
}
