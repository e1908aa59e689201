//! The engine's error type: every variant names the file or the setting, and maps to a
//! stable code.

use super::ffi::DecodeError;

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
    #[error("{path} has no chat template (tokenizer.chat_template): name one with --chat-template NAME|FILE (one of llama.cpp's built-in names such as chatml, llama3, gemma; see `culturetune info`), or use an instruction-tuned chat model")]
    NoChatTemplate {
        /// The path given.
        path: String,
    },
    /// llama.cpp does not recognise the model's chat template.
    #[error("{path}: llama.cpp does not recognise this chat template: name one it knows with --chat-template NAME|FILE (built-in names such as chatml, llama3, gemma; see `culturetune info`)")]
    UnknownChatTemplate {
        /// The path given.
        path: String,
    },
    /// `--chat-template` names no template llama.cpp can use.
    #[error("--chat-template {given}: {detail}")]
    BadChatTemplate {
        /// The value given.
        given: String,
        /// What is wrong with it.
        detail: String,
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
