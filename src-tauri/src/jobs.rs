//! Supervision of long jobs (tuning and resuming): one worker at a time, its `--events jsonl`
//! lines forwarded to the window as they arrive, and an end that is always reported, whether
//! the worker finished, was cancelled, failed with an error, or died.

use crate::error::{AppError, AppResult};
use crate::worker::{failure, Worker};
use culturetune::store::{RunStatus, Store};
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tauri::{Emitter, Runtime};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

/// Event name of each worker event, with payload [`JobEvent`].
pub const JOB_EVENT: &str = "job-event";
/// Event name of a job's end, with payload [`JobEnd`].
pub const JOB_END: &str = "job-end";
/// How long a cancelled worker may take to stop by itself before it is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// What the window knows about the job in progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobInfo {
    /// Job number (per app session).
    pub job: u64,
    /// `tune` or `resume`.
    pub kind: String,
    /// The worker's process id.
    pub pid: Option<u32>,
    /// The run, once the worker has said which.
    pub run: Option<i64>,
    /// Region code.
    pub region: Option<String>,
    /// Whether Cancel was pressed.
    pub cancelling: bool,
}

/// One line of the worker's event stream.
#[derive(Debug, Clone, Serialize)]
pub struct JobEvent {
    /// Job number.
    pub job: u64,
    /// The event as the worker wrote it (see docs/events.md).
    pub event: Value,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct JobEnd {
    /// Job number.
    pub job: u64,
    /// `done`, `cancelled` or `failed`.
    pub outcome: String,
    /// The run, when one was created.
    pub run: Option<i64>,
    /// What went wrong, for `failed` (and `cancelled`, code `cancelled`).
    pub error: Option<AppError>,
}

struct Current {
    info: JobInfo,
    kill: Arc<Notify>,
}

/// The job supervisor, kept in the app state.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    current: Arc<Mutex<Option<Current>>>,
}

impl Jobs {
    /// The job in progress, if any.
    pub fn current(&self) -> Option<JobInfo> {
        lock(&self.current).as_ref().map(|c| c.info.clone())
    }

    /// Starts a worker with `args` (which must include `--events jsonl`), forwards its events
    /// and reports its end. Fails with `busy` while another job runs.
    pub fn start<R: Runtime>(
        &self,
        app: tauri::AppHandle<R>,
        worker: &Worker,
        kind: &str,
        region: Option<String>,
        run: Option<i64>,
        args: Vec<String>,
    ) -> AppResult<JobInfo> {
        let mut slot = lock(&self.current);
        if let Some(c) = slot.as_ref() {
            return Err(AppError::new(
                "busy",
                format!(
                    "job {} ({}) is still running; cancel it or wait for it to end",
                    c.info.job, c.info.kind
                ),
            ));
        }
        let mut child = worker
            .command(&args)
            .spawn()
            .map_err(|e| worker.spawn_error(e))?;
        let job = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let info = JobInfo {
            job,
            kind: kind.into(),
            pid: child.id(),
            run,
            region,
            cancelling: false,
        };
        let kill = Arc::new(Notify::new());
        *slot = Some(Current {
            info: info.clone(),
            kill: kill.clone(),
        });
        drop(slot);

        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let current = self.current.clone();
        let db = worker.db.clone();
        tauri::async_runtime::spawn(async move {
            // stderr: keep the last lines for the error message.
            let err_task = tauri::async_runtime::spawn(async move {
                let mut tail: Vec<String> = Vec::new();
                if let Some(e) = stderr {
                    let mut lines = BufReader::new(e).lines();
                    while let Ok(Some(l)) = lines.next_line().await {
                        tail.push(l);
                        if tail.len() > 40 {
                            tail.remove(0);
                        }
                    }
                }
                tail.join("\n")
            });
            let mut reported: Option<AppError> = None;
            let mut finished_status: Option<String> = None;
            if let Some(o) = stdout {
                let mut lines = BufReader::new(o).lines();
                loop {
                    let line = tokio::select! {
                        l = lines.next_line() => l,
                        _ = kill.notified() => {
                            let _ = child.start_kill();
                            continue;
                        }
                    };
                    let Ok(Some(line)) = line else { break };
                    let Ok(event) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    match event.get("event").and_then(Value::as_str) {
                        Some("started") => {
                            if let Some(c) = lock(&current).as_mut() {
                                c.info.run = event.get("run").and_then(Value::as_i64);
                            }
                        }
                        Some("error") => {
                            reported = Some(AppError::new(
                                event["code"].as_str().unwrap_or("internal"),
                                event["message"].as_str().unwrap_or(""),
                            ));
                        }
                        Some("finished") => {
                            finished_status = event["status"].as_str().map(str::to_string);
                        }
                        _ => {}
                    }
                    let _ = app.emit(JOB_EVENT, JobEvent { job, event });
                }
            }
            let status = tokio::select! {
                s = child.wait() => s,
                _ = kill.notified() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let stderr = err_task.await.unwrap_or_default();
            let (run, cancelling) = lock(&current)
                .as_ref()
                .map_or((None, false), |c| (c.info.run, c.info.cancelling));
            let (outcome, error) = match status {
                Err(e) => (
                    "failed",
                    Some(AppError::new(
                        "worker_crashed",
                        format!("lost the worker process: {e}"),
                    )),
                ),
                Ok(s) if s.success() && finished_status.as_deref() != Some("cancelled") => {
                    ("done", None)
                }
                Ok(s) if cancelling || s.code() == Some(130) => {
                    let message = match run {
                        Some(r) => format!(
                            "run {r} was cancelled; Resume continues it from its last checkpoint"
                        ),
                        None => "cancelled before the run started".into(),
                    };
                    ("cancelled", Some(AppError::new("cancelled", message)))
                }
                Ok(s) => {
                    let mut e = reported.unwrap_or_else(|| failure(s, &stderr));
                    if let (Some(r), "worker_crashed") = (run, e.code.as_str()) {
                        e.message.push_str(&format!(
                            "; run {r} can be resumed from its last checkpoint"
                        ));
                    }
                    ("failed", Some(e))
                }
            };
            // A worker killed by Cancel leaves its run 'running' (opening the store turns that
            // into 'interrupted', as for any dead worker); the window says cancelled, so the
            // store must too.
            if let (Some(r), "cancelled") = (run, outcome) {
                let _ = tauri::async_runtime::spawn_blocking(move || {
                    let store = Store::open(&db)?;
                    if matches!(
                        store.run(r)?.status,
                        RunStatus::Running | RunStatus::Interrupted
                    ) {
                        store.set_status(r, RunStatus::Cancelled, None)?;
                    }
                    Ok::<_, culturetune::store::StoreError>(())
                })
                .await;
            }
            let end = JobEnd {
                job,
                outcome: outcome.into(),
                run,
                error,
            };
            *lock(&current) = None;
            let _ = app.emit(JOB_END, end);
        });
        Ok(info)
    }

    /// Cancels the job in progress: asks the worker to stop (SIGINT, so it checkpoints and
    /// marks the run cancelled), and kills it if it has not stopped after [`CANCEL_GRACE`].
    /// Returns false when no job runs.
    pub fn cancel(&self) -> bool {
        let mut slot = lock(&self.current);
        let Some(c) = slot.as_mut() else {
            return false;
        };
        c.info.cancelling = true;
        let kill = c.kill.clone();
        let pid = c.info.pid;
        let job = c.info.job;
        drop(slot);
        if !interrupt(pid) {
            kill.notify_one();
            return true;
        }
        let current = self.current.clone();
        tauri::async_runtime::spawn(async move {
            tokio::time::sleep(CANCEL_GRACE).await;
            if lock(&current).as_ref().is_some_and(|c| c.info.job == job) {
                kill.notify_one();
            }
        });
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends SIGINT (what Ctrl-C sends) to the worker; false where that is not possible.
#[cfg(unix)]
fn interrupt(pid: Option<u32>) -> bool {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    pid.and_then(|p| i32::try_from(p).ok())
        .is_some_and(|p| kill(Pid::from_raw(p), Signal::SIGINT).is_ok())
}

#[cfg(not(unix))]
fn interrupt(_: Option<u32>) -> bool {
    false
}
