//! Worker processes: the culturetune command line, run as a child of the app so that a crash
//! in llama.cpp (an abort, an out-of-memory kill, a bad model) ends one job, never the window.
//! Short commands (`regions`, `runs`, `show`, `info`, `chat`, `export`) are awaited whole;
//! tuning runs are supervised by [`crate::jobs`].

use crate::error::{AppError, AppResult};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

/// First argument that makes the app binary act as the culturetune command line.
pub const WORKER_ARG: &str = "worker";

/// How to start a worker and which database it uses.
#[derive(Debug, Clone)]
pub struct Worker {
    /// The program: a `culturetune` binary, or this app's own binary.
    pub program: PathBuf,
    /// Arguments before the command (`worker` when the program is this app).
    pub prefix: Vec<OsString>,
    /// The database of runs (`--db`).
    pub db: PathBuf,
}

impl Worker {
    /// The worker for this process: `$CULTURETUNE_WORKER` (a culturetune binary) if set, else
    /// this app's own binary in worker mode; the database is `$CULTURETUNE_DB` if set, else
    /// the command line's default.
    pub fn from_env() -> AppResult<Worker> {
        let db = std::env::var_os("CULTURETUNE_DB")
            .map(PathBuf::from)
            .unwrap_or_else(culturetune::store::Store::default_path);
        if let Some(p) = std::env::var_os("CULTURETUNE_WORKER") {
            return Ok(Worker {
                program: p.into(),
                prefix: vec![],
                db,
            });
        }
        let me = std::env::current_exe().map_err(|e| {
            AppError::new(
                "worker_missing",
                format!("cannot find this program's own path to start workers: {e}"),
            )
        })?;
        Ok(Worker {
            program: me,
            prefix: vec![WORKER_ARG.into()],
            db,
        })
    }

    /// A command line for the worker: `args` plus the database and JSON errors; stdout and
    /// stderr piped, stdin closed.
    pub fn command(&self, args: &[String]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program);
        c.args(&self.prefix)
            .arg("--db")
            .arg(&self.db)
            .arg("--json-errors")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs a short command to its end and returns its stdout, or the error it reported.
    pub async fn output(&self, args: &[String]) -> AppResult<String> {
        let out = self
            .command(args)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| self.spawn_error(e))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        Err(failure(out.status, &String::from_utf8_lossy(&out.stderr)))
    }

    /// Runs a short command that prints JSON and parses it.
    pub async fn json(&self, args: &[String]) -> AppResult<serde_json::Value> {
        let out = self.output(args).await?;
        serde_json::from_str(&out).map_err(|e| {
            AppError::new(
                "internal",
                format!(
                    "the worker's output for `{}` is not JSON: {e}",
                    args.join(" ")
                ),
            )
        })
    }

    /// The error for a worker that could not be started.
    pub fn spawn_error(&self, e: std::io::Error) -> AppError {
        AppError::new(
            "worker_missing",
            format!("cannot start the worker {}: {e}", self.program.display()),
        )
    }
}

/// Lines of a worker's stderr kept to explain how it ended.
const STDERR_LINES: usize = 40;

/// Drains a worker's stderr (a full pipe would block it) and yields its last lines, joined,
/// once the stream ends.
pub fn stderr_tail(
    stderr: Option<tokio::process::ChildStderr>,
) -> tauri::async_runtime::JoinHandle<String> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    tauri::async_runtime::spawn(async move {
        let mut tail = std::collections::VecDeque::with_capacity(STDERR_LINES);
        if let Some(e) = stderr {
            let mut lines = BufReader::new(e).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(l);
            }
        }
        Vec::from(tail).join("\n")
    })
}

/// The error for a worker that ended with `status`, from what it printed on stderr: its JSON
/// error line when there is one, else a description of how it died and the last lines.
pub fn failure(status: ExitStatus, stderr: &str) -> AppError {
    if let Some(e) = stderr.lines().rev().find_map(json_error) {
        return e;
    }
    if status.code() == Some(130) {
        return AppError::new("cancelled", "cancelled");
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    let how = match (status.code(), signal_of(status)) {
        (_, Some(6)) => {
            "the worker aborted (SIGABRT, usually an assertion in llama.cpp)".to_string()
        }
        (_, Some(9)) => {
            "the worker was killed (SIGKILL: out of memory, or stopped from outside)".to_string()
        }
        (_, Some(11)) => "the worker crashed (SIGSEGV)".to_string(),
        (_, Some(s)) => format!("the worker was stopped by signal {s}"),
        (Some(c), None) => format!("the worker exited with status {c}"),
        (None, None) => "the worker ended abnormally".to_string(),
    };
    let message = if tail.is_empty() {
        how
    } else {
        format!("{how}; its last output: {}", tail.join(" | "))
    };
    // Died from a signal: a crash. Exited without saying why: a bug of ours.
    let code = if signal_of(status).is_some() {
        "worker_crashed"
    } else {
        "internal"
    };
    AppError::new(code, message)
}

/// Parses the `{"code", "message"}` line that `--json-errors` prints.
fn json_error(line: &str) -> Option<AppError> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    Some(AppError::new(
        v.get("code")?.as_str()?,
        v.get("message")?.as_str()?,
    ))
}

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal_of(_: ExitStatus) -> Option<i32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn status(raw: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(raw)
    }

    #[cfg(unix)]
    #[test]
    fn failures_name_their_cause() {
        let e = failure(
            status(1 << 8),
            "error: x\n{\"code\":\"not_gguf\",\"message\":\"m.gguf is not a GGUF model\"}\n",
        );
        assert_eq!(e, AppError::new("not_gguf", "m.gguf is not a GGUF model"));
        let e = failure(status(9), "loading model\n");
        assert_eq!(e.code, "worker_crashed");
        assert!(e.message.contains("SIGKILL") && e.message.contains("loading model"));
        assert!(failure(status(6), "").message.contains("SIGABRT"));
        assert_eq!(failure(status(130 << 8), "").code, "cancelled");
        let e = failure(status(2 << 8), "");
        assert_eq!(e.code, "internal");
        assert_eq!(e.message, "the worker exited with status 2");
    }
}
