//! The names culturetune stores and reports: which prompt an evaluation measured
//! ([`MethodLabel`]) and where a tuning run stands ([`RunStatus`]). A leaf module: the store,
//! the events and the reports all use these, and they depend on nothing but serde.

use serde::{Deserialize, Serialize};

/// Which prompt an evaluation measured: the naive persona, the in-context prompt, or the tuned
/// soft prompt. Stored, reported in events and shown in every table under these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodLabel {
    /// The naive persona prompt.
    Naive,
    /// The in-context (ICL) prompt.
    Icl,
    /// The tuned soft prompt.
    Tuned,
}

impl MethodLabel {
    /// The three, in the order tables show them.
    pub const ALL: [MethodLabel; 3] = [MethodLabel::Naive, MethodLabel::Icl, MethodLabel::Tuned];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodLabel::Naive => "naive",
            MethodLabel::Icl => "icl",
            MethodLabel::Tuned => "tuned",
        }
    }

    /// The label with this stored name.
    pub fn parse(s: &str) -> Option<MethodLabel> {
        MethodLabel::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl std::fmt::Display for MethodLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a tuning run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// A process is working on it.
    Running,
    /// Finished.
    Done,
    /// Stopped by the user; resumable.
    Cancelled,
    /// Its process died; resumable.
    Interrupted,
    /// Ended with an error.
    Failed,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Done,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
        RunStatus::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }

    /// The status a stored name stands for; `None` for a name this version does not know.
    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A value's name as it is stored (serde's spelling), e.g. `auto` or `shade`.
pub fn serde_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}
