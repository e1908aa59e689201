//! The llama.cpp engine: loading a GGUF model, reading its input embeddings, and evaluating
//! survey prompts (with an optional soft prompt) as a prefix tree in one fixed procedure.
//!
//! `ffi` is the only module of culturetune with `unsafe` code. The rest of the engine is safe
//! Rust over it: [`Model`] (validated loading, tokenizing, chat templates), [`EmbeddingTable`]
//! (dequantized `token_embd.weight` rows), [`tree`] (the prefix tree) and [`evaluate`] (answer
//! distributions for a survey) with [`answer`] (soft prompts at the answer side, item prefixes
//! kept in the KV cache across candidates).

pub mod answer;
mod embeddings;
pub mod evaluate;
mod ffi;
pub mod file_report;
mod gguf;
mod model;
pub mod offload;
pub mod options;
mod streams;
pub mod tree;
mod weights;

pub use embeddings::EmbeddingTable;
pub use ffi::DecodeError;
pub use gguf::{inspect, inspect_bytes, GgufInfo};
pub use model::{Model, ModelInfo};
pub use weights::{converted_path, WeightType};

/// Why the engine could not do what was asked. Every variant names the file or the setting.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file does not exist.
    #[error("model file {path} does not exist (fetch the default with models/fetch-default-model.sh, or pass --model PATH)")]
    NotFound {
        /// The path given.
        path: String,
    },
    /// The model file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a GGUF file.
    #[error("{path} is not a GGUF model: {detail}")]
    NotGguf {
        /// The path given.
        path: String,
        /// What was found instead.
        detail: String,
    },
    /// The file ends before its header or its tensor data does.
    #[error("{path} is truncated: {detail}")]
    Truncated {
        /// The path given.
        path: String,
        /// Where it ends and what was expected.
        detail: String,
    },
    /// The GGUF header is inconsistent or unsupported.
    #[error("{path} is not a usable GGUF model: {detail}")]
    BadGguf {
        /// The path given.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The model has no chat template, so prompts cannot be rendered as a chat.
    #[error("{path} has no chat template (tokenizer.chat_template); culturetune needs an instruction-tuned chat model")]
    NoChatTemplate {
        /// The path given.
        path: String,
    },
    /// llama.cpp does not recognise the model's chat template.
    #[error("{path}: llama.cpp does not recognise this model's chat template")]
    UnknownChatTemplate {
        /// The path given.
        path: String,
    },
    /// llama.cpp refused to load the model (run with --verbose for its log).
    #[error("llama.cpp could not load {path} (run with --verbose to see its log)")]
    LoadFailed {
        /// The path given.
        path: String,
    },
    /// llama.cpp could not create a context (usually out of memory).
    #[error("llama.cpp could not create a context with {n_ctx} cells (out of memory?)")]
    ContextFailed {
        /// Requested KV cells.
        n_ctx: u32,
    },
    /// The model cannot be used as culturetune needs.
    #[error("{path}: {detail}")]
    Unsupported {
        /// The path given.
        path: String,
        /// What is missing.
        detail: String,
    },
    /// The model computed NaN or infinity: its tensor data is damaged (the header validated).
    #[error("{path} looks damaged: {detail}; a valid model never computes NaN or infinity here. Check the file's SHA-256 against its publisher's, or download it again")]
    Damaged {
        /// The path given.
        path: String,
        /// What was computed.
        detail: String,
    },
    /// A prompt or soft prompt does not fit the model or the evaluation settings.
    #[error("{0}")]
    Prompt(String),
    /// A decode call was refused or failed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl EngineError {
    /// The stable code of this error.
    pub fn code(&self) -> crate::error_code::ErrorCode {
        use crate::error_code::ErrorCode as C;
        match self {
            EngineError::NotFound { .. } => C::ModelNotFound,
            EngineError::NotGguf { .. } => C::NotGguf,
            EngineError::Truncated { .. }
            | EngineError::BadGguf { .. }
            | EngineError::NoChatTemplate { .. }
            | EngineError::UnknownChatTemplate { .. }
            | EngineError::LoadFailed { .. }
            | EngineError::Unsupported { .. }
            | EngineError::Damaged { .. } => C::BadModel,
            EngineError::ContextFailed { .. } => C::OutOfMemory,
            _ => C::Engine,
        }
    }
}

/// Initialises llama.cpp for this process (idempotent) and sets whether its log is shown.
pub fn init(verbose: bool) {
    ffi::init_backend(verbose);
}

/// Whether this build has a GPU backend; when false, GPU layers are always 0.
pub fn gpu_available() -> bool {
    ffi::supports_gpu_offload()
}

/// The CPU features llama.cpp was built with.
pub fn system_info() -> String {
    ffi::system_info()
}

/// Loads the model given as `given` for evaluation: its `weights` copy (converted on first
/// use), with `gpu_layers` on the GPU (fewer when llama.cpp cannot allocate them). `note` gets
/// each retry and, at the end, one line describing what was loaded.
pub fn load_for_evaluation(
    given: &std::path::Path,
    weights: WeightType,
    threads: i32,
    gpu_layers: u32,
    note: &mut dyn FnMut(String),
) -> Result<Model, EngineError> {
    let path = converted_path(given, weights, threads)?;
    let model = Model::load_offloaded(&path, gpu_layers, &mut |tried, next| {
        note(format!(
            "llama.cpp could not load the model with {tried} GPU layers (out of device memory?); retrying with {next}"
        ))
    })?;
    let i = model.info();
    note(format!(
        "model: {} ({}; {}, {:.1} M parameters, {:.1} MB, n_embd {}, context {}, GPU layers {}{})",
        i.path.display(),
        i.name,
        i.description,
        i.n_params as f64 / 1e6,
        i.file_size as f64 / 1e6,
        i.n_embd,
        i.n_ctx_train,
        i.gpu_layers,
        if gpu_available() {
            ""
        } else {
            ": no GPU backend in this build"
        },
    ));
    Ok(model)
}
