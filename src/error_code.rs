//! Stable error codes: what a caller (the `--events jsonl` stream, `--json-errors`, the desktop
//! app) branches on, independent of the message's wording. Every library error enum maps its
//! variants to one with a `code()` method; docs/events.md lists them.

use serde::{Deserialize, Serialize};

/// The line `--json-errors` prints on stderr when a command fails: `{"code", "message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    /// The stable code.
    pub code: ErrorCode,
    /// The message for people (the same as the `error:` line's).
    pub message: String,
}

/// A stable, machine-readable error code (serialized in snake_case, e.g. `model_not_found`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The model file does not exist.
    ModelNotFound,
    /// The file is not a GGUF model.
    NotGguf,
    /// Truncated, no chat template, unsupported or refused by llama.cpp.
    BadModel,
    /// llama.cpp could not create a context.
    OutOfMemory,
    /// No region matches.
    RegionUnknown,
    /// The database cannot be opened, read or written.
    Database,
    /// A survey, targets, soft-prompt file or request is invalid.
    InvalidInput,
    /// The engine failed while evaluating (a decode, a prompt that does not fit).
    Engine,
    /// The user stopped the work.
    Cancelled,
    /// Anything else: a bug of ours.
    Internal,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::ModelNotFound,
        ErrorCode::NotGguf,
        ErrorCode::BadModel,
        ErrorCode::OutOfMemory,
        ErrorCode::RegionUnknown,
        ErrorCode::Database,
        ErrorCode::InvalidInput,
        ErrorCode::Engine,
        ErrorCode::Cancelled,
        ErrorCode::Internal,
    ];

    /// The code as written in events and error lines.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::NotGguf => "not_gguf",
            ErrorCode::BadModel => "bad_model",
            ErrorCode::OutOfMemory => "out_of_memory",
            ErrorCode::RegionUnknown => "region_unknown",
            ErrorCode::Database => "database",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Engine => "engine",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn the_text_is_the_serialized_name() {
        for c in ErrorCode::ALL {
            let json = serde_json::to_value(c).unwrap();
            assert_eq!(json, c.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), c);
        }
    }
}
