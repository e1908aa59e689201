//! The long-lived chat worker: one `culturetune chat-worker` process that keeps the model
//! loaded between chat messages (loading an 8B model takes seconds; a message should not).
//!
//! It stays a separate process, so a crash in llama.cpp ends it and never the window. The
//! next message after a crash, after the worker stopped itself when idle, or for another
//! model file starts a fresh one. A message that was in flight when the worker died gets the
//! crash as its error.

use crate::error::{AppError, AppResult};
use crate::worker::{failure, stderr_tail, Worker};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The app's chat worker, started on the first message.
#[derive(Default)]
pub struct ChatWorker {
    session: tokio::sync::Mutex<Option<Session>>,
}

/// A running worker process and its pipes.
struct Session {
    /// The `--model` it was started with (None: the default model).
    model: Option<String>,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Its last lines of stderr, once it has ended.
    stderr: tauri::async_runtime::JoinHandle<String>,
}

/// How one exchange with the worker ended.
enum Exchange {
    /// The worker's answer line.
    Answered(Value),
    /// The pipe closed: the worker is gone.
    Gone,
}

impl ChatWorker {
    /// Sends one chat request (see `culturetune chat-worker`) for `model` and returns the
    /// reply, with the worker's counters under `worker`.
    pub async fn ask(
        &self,
        worker: &Worker,
        model: Option<String>,
        request: &Value,
    ) -> AppResult<Value> {
        let mut slot = self.session.lock().await;
        // Twice at most: a worker that stopped itself (idle) just as the request was sent
        // ended cleanly, and the request goes to a fresh one.
        for attempt in 0..2 {
            // Taken out while in use: a request dropped half-way (the window went away) also
            // drops, and so kills, a worker whose answer line would otherwise be left unread.
            let mut session = match slot.take() {
                Some(mut s) => {
                    if s.serves(&model) {
                        s
                    } else {
                        let _ = s.child.start_kill();
                        Session::start(worker, model.clone())?
                    }
                }
                None => Session::start(worker, model.clone())?,
            };
            match session.exchange(request).await {
                Exchange::Answered(v) => {
                    *slot = Some(session);
                    return answer(v);
                }
                Exchange::Gone => {
                    let status = session.child.wait().await.map_err(|e| {
                        AppError::new("internal", format!("waiting for the chat worker: {e}"))
                    })?;
                    if status.success() && attempt == 0 {
                        continue;
                    }
                    let stderr = session.stderr.await.unwrap_or_default();
                    return Err(failure(status, &stderr));
                }
            }
        }
        Err(AppError::new(
            "internal",
            "the chat worker stopped twice in a row without an error",
        ))
    }

    /// The worker's process id, while one is running.
    pub async fn pid(&self) -> Option<u32> {
        let mut slot = self.session.lock().await;
        let s = slot.as_mut()?;
        match s.child.try_wait() {
            Ok(None) => s.child.id(),
            _ => None,
        }
    }
}

impl Session {
    fn start(worker: &Worker, model: Option<String>) -> AppResult<Session> {
        let mut args = vec!["chat-worker".to_string()];
        if let Some(m) = &model {
            args.push("--model".into());
            args.push(m.clone());
        }
        let mut cmd = worker.command(&args);
        cmd.stdin(std::process::Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| worker.spawn_error(e))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(AppError::new(
                "internal",
                "the chat worker's pipes are missing",
            ));
        };
        Ok(Session {
            model,
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            stderr: stderr_tail(Some(stderr)),
        })
    }

    /// Whether this worker is alive and serves `model`.
    fn serves(&mut self, model: &Option<String>) -> bool {
        self.model == *model && matches!(self.child.try_wait(), Ok(None))
    }

    async fn exchange(&mut self, request: &Value) -> Exchange {
        let line = format!("{request}\n");
        if self.stdin.write_all(line.as_bytes()).await.is_err() || self.stdin.flush().await.is_err()
        {
            return Exchange::Gone;
        }
        loop {
            match self.stdout.next_line().await {
                Ok(Some(l)) if l.trim().is_empty() => continue,
                Ok(Some(l)) => {
                    return match serde_json::from_str(&l) {
                        Ok(v) => Exchange::Answered(v),
                        Err(_) => Exchange::Answered(Value::String(l)),
                    }
                }
                _ => return Exchange::Gone,
            }
        }
    }
}

/// The reply of a worker's answer line, or its error.
fn answer(line: Value) -> AppResult<Value> {
    if let Some(e) = line.get("error").filter(|e| !e.is_null()) {
        return Err(AppError::new(
            e.get("code").and_then(Value::as_str).unwrap_or("internal"),
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or("the chat worker failed"),
        ));
    }
    match line.get("reply") {
        Some(Value::Object(reply)) => {
            let mut reply = reply.clone();
            reply.insert(
                "worker".into(),
                line.get("worker").cloned().unwrap_or(Value::Null),
            );
            Ok(Value::Object(reply))
        }
        _ => Err(AppError::new(
            "internal",
            format!("the chat worker answered something that is not a reply: {line}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_become_replies_or_errors() {
        let w = json!({"pid": 7, "model_loads": 1, "requests": 2});
        let r = answer(json!({"reply": {"naive": "a", "tuned": "b"}, "error": null, "worker": w}));
        assert_eq!(r.unwrap(), json!({"naive": "a", "tuned": "b", "worker": w}));
        let e = answer(
            json!({"reply": null, "error": {"code": "region_unknown", "message": "m"}, "worker": w}),
        );
        assert_eq!(e.unwrap_err(), AppError::new("region_unknown", "m"));
        let e = answer(json!("garbage")).unwrap_err();
        assert_eq!(e.code, "internal");
        assert!(e.message.contains("garbage"), "{e:?}");
    }
}
