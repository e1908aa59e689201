//! `culturetune chat-worker`: a long-lived process that keeps one model loaded and answers chat
//! messages, so the second message of a conversation does not load the model again.
//!
//! Protocol: one JSON request per line on stdin (see [`Request`]), one JSON line per
//! request on stdout, in order: `{"reply": {...}, "error": null, "worker": {...}}` or
//! `{"reply": null, "error": {"code", "message"}, "worker": {...}}`. A failed request (a bad
//! region, a missing run, a message too long for the context) leaves the worker running. The
//! model is loaded on the first request, with the engine options the worker was started with.
//! The worker exits with status 0 when stdin closes or after `--idle-secs` without a request.

use super::engine_args::EngineArgs;
use super::errors::{error_code, error_text, InvalidInput};
use crate::engine::Model;
use crate::error_code::ErrorLine;
use crate::regions::RegionTable;
use crate::tuning::chat::{self, Reply, Request, Response, WorkerState};
use anyhow::{Context, Result};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Options of `culturetune chat-worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Stop after this many seconds without a request.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_secs: u64,
}

/// The worker: loaded model and counters.
struct Worker<'a> {
    engine: &'a EngineArgs,
    table: &'a RegionTable,
    db: &'a Path,
    model: Option<Model>,
    state: WorkerState,
}

impl Worker<'_> {
    /// Answers one request line (its raw bytes: a line that is not UTF-8 gets an error
    /// answer like any other bad request, and the worker goes on).
    fn handle(&mut self, line: &[u8]) -> Response {
        self.state.requests += 1;
        let answered = match std::str::from_utf8(line) {
            Ok(text) => self.answer(text),
            Err(e) => Err(InvalidInput(format!(
                "request {}: not UTF-8 text (invalid byte at offset {}); expected one JSON request per line",
                self.state.requests,
                e.valid_up_to()
            ))
            .into()),
        };
        let (reply, error) = match answered {
            Ok(r) => (Some(r), None),
            Err(e) => (
                None,
                Some(ErrorLine {
                    code: error_code(&e),
                    message: error_text(&e),
                }),
            ),
        };
        Response {
            reply,
            error,
            worker: self.state,
        }
    }

    fn answer(&mut self, line: &str) -> Result<Reply> {
        let request: Request = serde_json::from_str(line).map_err(|e| {
            InvalidInput(format!(
                "request {}: not a chat request ({e}); expected {{\"region\", \"run\" or \"soft_prompt\", \"message\", \"max_tokens\"?}}",
                self.state.requests
            ))
        })?;
        chat::check(&request, self.table)?;
        let model = match &mut self.model {
            Some(m) => m,
            slot => {
                let m = super::engine_args::load(self.engine)?;
                self.state.model_loads += 1;
                slot.insert(m)
            }
        };
        Ok(chat::answer(
            model,
            self.engine.settings(),
            self.table,
            self.db,
            &request,
        )?)
    }
}

/// Serves requests until stdin closes or the worker has been idle for `--idle-secs`.
pub fn run(args: &Args, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    // Stdin has no read timeout: a thread reads it and the loop below waits with one.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().split(b'\n') {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut worker = Worker {
        engine: &args.engine,
        table,
        db,
        model: None,
        state: WorkerState {
            pid: std::process::id(),
            model_loads: 0,
            requests: 0,
        },
    };
    let idle = Duration::from_secs(args.idle_secs);
    loop {
        let line = match rx.recv_timeout(idle) {
            Ok(line) => line.context("reading a request from stdin")?,
            Err(RecvTimeoutError::Timeout) => {
                eprintln!("chat-worker: no request for {} s, stopping", args.idle_secs);
                return Ok(());
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if line.trim_ascii().is_empty() {
            continue;
        }
        let response = worker.handle(&line);
        writeln!(out, "{}", serde_json::to_string(&response)?)?;
        out.flush()?;
    }
}
