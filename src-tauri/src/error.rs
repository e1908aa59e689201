//! Errors as the window sees them: a stable code and a message for people.

use serde::{Deserialize, Serialize};

/// An error returned by a command or reported at the end of a job. `code` is stable (the
/// worker's codes from `docs/events.md` plus the app's own: `worker_crashed`,
/// `worker_missing`, `busy`, `no_job`); `message` says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl AppError {
    /// An error with this code and message.
    pub fn new(code: &str, message: impl Into<String>) -> AppError {
        AppError {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Result of a command.
pub type AppResult<T> = Result<T, AppError>;
