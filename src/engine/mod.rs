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
mod gguf;
mod model;
pub mod offload;
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
    /// A prompt or soft prompt does not fit the model or the evaluation settings.
    #[error("{0}")]
    Prompt(String),
    /// A decode call was refused or failed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
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
