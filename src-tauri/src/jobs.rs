//! Supervision of long jobs (tuning and resuming): one worker at a time, its `--events jsonl`
//! lines forwarded to the window as they arrive, and an end that is always reported, whether
//! the worker finished, was cancelled, failed with an error, or died.

use crate::error::{AppError, AppResult};
use crate::worker::{failure, stderr_tail, Worker};
use culturetune::events::{self, Event};
use culturetune::store::{RunStatus, Store};
use serde::Serialize;
use std::process::ExitStatus;
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
    /// The event the worker wrote (see docs/events.md).
    pub event: Event,
}

/// How a job ended, as the window sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The run finished.
    Done,
    /// Cancelled by the user (the run is resumable).
    Cancelled,
    /// Failed with an error, or the worker died.
    Failed,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct JobEnd {
    /// Job number.
    pub job: u64,
    /// Done, cancelled or failed.
    pub outcome: Outcome,
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
        let child = worker
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

        let current = self.current.clone();
        let db = worker.db.clone();
        tauri::async_runtime::spawn(supervise(app, child, job, kill, current, db));
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

/// Watches one worker to its end: forwards its events, keeps its last stderr lines, kills it
/// when asked, decides how the job ended and reports that (marking a killed run cancelled).
async fn supervise<R: Runtime>(
    app: tauri::AppHandle<R>,
    mut child: tokio::process::Child,
    job: u64,
    kill: Arc<Notify>,
    current: Arc<Mutex<Option<Current>>>,
    db: std::path::PathBuf,
) {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let err_task = stderr_tail(stderr);
    let (reported, finished) = match stdout {
        Some(o) => forward_events(&app, &mut child, o, job, &kill, &current).await,
        None => (None, None),
    };
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
    let (outcome, error) = decide_end(&Ended {
        status: status.map_err(|e| e.to_string()),
        finished,
        reported,
        run,
        cancelling,
        stderr,
    });
    // A worker killed by Cancel leaves its run 'running' (opening the store turns that
    // into 'interrupted', as for any dead worker); the window says cancelled, so the
    // store must too.
    if let (Some(r), Outcome::Cancelled) = (run, outcome) {
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
        outcome,
        run,
        error,
    };
    *lock(&current) = None;
    let _ = app.emit(JOB_END, end);
}

/// Forwards the worker's event lines to the window until its stdout closes; returns the error
/// it reported and the status it finished with, if any.
async fn forward_events<R: Runtime>(
    app: &tauri::AppHandle<R>,
    child: &mut tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    job: u64,
    kill: &Notify,
    current: &Mutex<Option<Current>>,
) -> (Option<AppError>, Option<RunStatus>) {
    let mut reported: Option<AppError> = None;
    let mut finished: Option<RunStatus> = None;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = kill.notified() => {
                let _ = child.start_kill();
                continue;
            }
        };
        let Ok(Some(line)) = line else { break };
        // Anything else on stdout (there should be nothing) is not an event.
        let Ok(event) = events::from_line(&line) else {
            continue;
        };
        match &event {
            Event::Started { run, .. } => {
                if let Some(c) = lock(current).as_mut() {
                    c.info.run = Some(*run);
                }
            }
            Event::Error { code, message, .. } => {
                reported = Some(AppError::new(code.as_str(), message.clone()));
            }
            Event::Finished { status, .. } => finished = Some(*status),
            _ => {}
        }
        let _ = app.emit(JOB_EVENT, JobEvent { job, event });
    }
    (reported, finished)
}

/// What the supervisor saw of a worker by the time it ended.
#[derive(Debug, Clone)]
pub struct Ended {
    /// Its exit status (or why waiting for it failed).
    pub status: Result<ExitStatus, String>,
    /// The status of its `finished` event, if it sent one.
    pub finished: Option<RunStatus>,
    /// The error of its `error` event, if it sent one.
    pub reported: Option<AppError>,
    /// The run, once the worker said which.
    pub run: Option<i64>,
    /// Whether Cancel was pressed.
    pub cancelling: bool,
    /// Its last lines of stderr.
    pub stderr: String,
}

/// How a job ended, from what its worker did: done when it exited cleanly without a cancel;
/// cancelled when it said so, exited with 130 or was stopped by Cancel; else failed, with the
/// error it reported or a description of how it died (a crash leaves the run resumable).
pub fn decide_end(e: &Ended) -> (Outcome, Option<AppError>) {
    let status = match &e.status {
        Err(why) => {
            return (
                Outcome::Failed,
                Some(AppError::new(
                    "worker_crashed",
                    format!("lost the worker process: {why}"),
                )),
            )
        }
        Ok(s) => *s,
    };
    if status.success() && e.finished != Some(RunStatus::Cancelled) {
        return (Outcome::Done, None);
    }
    if e.cancelling || status.code() == Some(130) || e.finished == Some(RunStatus::Cancelled) {
        let message = match e.run {
            Some(r) => {
                format!("run {r} was cancelled; Resume continues it from its last checkpoint")
            }
            None => "cancelled before the run started".into(),
        };
        return (
            Outcome::Cancelled,
            Some(AppError::new("cancelled", message)),
        );
    }
    let mut err = e
        .reported
        .clone()
        .unwrap_or_else(|| failure(status, &e.stderr));
    if let (Some(r), "worker_crashed") = (e.run, err.code.as_str()) {
        err.message.push_str(&format!(
            "; run {r} can be resumed from its last checkpoint"
        ));
    }
    (Outcome::Failed, Some(err))
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn ended(raw: i32) -> Ended {
        Ended {
            status: Ok(ExitStatus::from_raw(raw)),
            finished: None,
            reported: None,
            run: Some(4),
            cancelling: false,
            stderr: String::new(),
        }
    }

    #[test]
    fn the_end_follows_from_what_the_worker_did() {
        let done = Ended {
            finished: Some(RunStatus::Done),
            ..ended(0)
        };
        assert_eq!(decide_end(&done), (Outcome::Done, None));
        // Said cancelled (a closed stdout, a sink stop), exited 130, or Cancel was pressed.
        for e in [
            Ended {
                finished: Some(RunStatus::Cancelled),
                ..ended(0)
            },
            ended(130 << 8),
            Ended {
                cancelling: true,
                ..ended(9)
            },
        ] {
            let (o, err) = decide_end(&e);
            assert_eq!(o, Outcome::Cancelled, "{e:?}");
            assert!(err.unwrap().message.contains("run 4 was cancelled"));
        }
        let e = Ended {
            run: None,
            ..ended(130 << 8)
        };
        assert_eq!(
            decide_end(&e).1.unwrap().message,
            "cancelled before the run started"
        );
        // An error the worker reported wins over its exit status.
        let e = Ended {
            reported: Some(AppError::new("engine", "needs 900 KV cells")),
            ..ended(1 << 8)
        };
        assert_eq!(
            decide_end(&e),
            (
                Outcome::Failed,
                Some(AppError::new("engine", "needs 900 KV cells"))
            )
        );
        // A crash says how it died and that the run can be resumed.
        let e = Ended {
            stderr: "gen 3".into(),
            ..ended(9)
        };
        let (o, err) = decide_end(&e);
        let err = err.unwrap();
        assert_eq!((o, err.code.as_str()), (Outcome::Failed, "worker_crashed"));
        assert!(
            err.message.contains("SIGKILL")
                && err
                    .message
                    .ends_with("run 4 can be resumed from its last checkpoint"),
            "{err:?}"
        );
        let e = Ended {
            status: Err("gone".into()),
            ..ended(0)
        };
        assert_eq!(decide_end(&e).1.unwrap().code, "worker_crashed");
    }
}
