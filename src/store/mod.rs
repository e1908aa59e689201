//! The SQLite store (bundled SQLite, WAL): models, calibrations, tuning runs with
//! per-generation checkpoints, tuned prompts and evaluations.
//!
//! A file that is not a SQLite database is refused before anything is written to it. A run
//! whose process died while it was `running` is shown as `interrupted` the next time the store
//! is opened, and can be resumed from its last checkpoint.
//!
//! One module per table (`runs`, `checkpoints`, `prompts`, `evaluations`, `calibrations`,
//! `models`), each with its record type, rows read by column name; `db` opens, migrates
//! and checks the file; this one only names them. The store depends on no engine or event type.

mod calibrations;
mod checkpoints;
mod db;
mod evaluations;
mod merge;
mod migrations;
mod models;
mod prompts;
mod runs;

pub use crate::labels::{MethodLabel, RunStatus};
pub use checkpoints::Checkpoint;
pub use db::{Store, StoreError};
pub use evaluations::EvaluationRecord;
pub use merge::{CalibrationConflict, SourceMerge};
pub use models::ModelRecord;
pub use prompts::PromptRecord;
pub use runs::RunRecord;
