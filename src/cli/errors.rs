//! How the command line reports a failure: the stable code of an error (the first library
//! error in its chain), its text as one line, and the two refusals of its own.

use crate::error_code::ErrorCode;

/// Marks a run stopped by the user (exit code 130, like an interrupted shell command).
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// A request the command line refuses before any work (an empty message, a malformed worker
/// request): code `invalid_input`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// A stable code for an error, for `--events jsonl` and the desktop app: the code of the
/// first library error in its chain (each knows its own), else `internal`.
pub fn error_code(e: &anyhow::Error) -> ErrorCode {
    for c in e.chain() {
        let code = if let Some(e) = c.downcast_ref::<crate::tuning::TuneError>() {
            e.code()
        } else if let Some(e) = c.downcast_ref::<crate::engine::EngineError>() {
            e.code()
        } else if let Some(e) = c.downcast_ref::<crate::regions::RegionError>() {
            e.code()
        } else if let Some(e) = c.downcast_ref::<crate::store::StoreError>() {
            e.code()
        } else if let Some(e) = c.downcast_ref::<crate::survey::SurveyError>() {
            e.code()
        } else if let Some(e) = c.downcast_ref::<crate::export::ExportError>() {
            e.code()
        } else if let Some(e) = c.downcast_ref::<crate::scoring::ScoreError>() {
            e.code()
        } else if let Some(e) = c.downcast_ref::<crate::responses::ResponsesError>() {
            e.code()
        } else if let Some(e) = c.downcast_ref::<crate::bench::BenchError>() {
            e.code()
        } else if c.is::<Cancelled>() {
            ErrorCode::Cancelled
        } else if c.is::<InvalidInput>() {
            ErrorCode::InvalidInput
        } else {
            continue;
        };
        return code;
    }
    ErrorCode::Internal
}

/// An error and its causes as one line, `context: error: cause`. A cause is left out when
/// the text before it already ends with it: the library's errors name their cause in their
/// own message (`cannot read model file X: <io error>`), and anyhow's `{:#}` would repeat it.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.ends_with(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

pub(super) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use crate::engine::EngineError;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(EngineError::Io {
            path: "m.gguf".into(),
            source: io,
        })
        .context("loading the model");
        assert_eq!(
            error_text(&e),
            "loading the model: cannot read model file m.gguf: gone"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }
}
