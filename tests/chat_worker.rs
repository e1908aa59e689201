//! `culturetune chat-worker`: the model is loaded once for many messages, a failed request
//! leaves the worker running, replies equal the one-shot `chat`, and the worker stops when
//! idle. Real llama.cpp on the generated one-layer model of tests/common.

mod common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_culturetune")
}

/// A directory with the tiny model and an exported 2-row soft prompt for it.
fn setup() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    std::fs::write(&model, common::tiny_model().1).unwrap();
    let sp = dir.path().join("prompt");
    let n = common::N_EMBD as usize;
    let rows: Vec<f32> = (0..2 * n).map(|i| ((i % 7) as f32 - 3.0) * 0.05).collect();
    culturetune::export::export(&sp, &rows, 2, n, &json!({"region": "USA"}), "tiny", false)
        .unwrap();
    let s = |p: &Path| p.display().to_string();
    (dir, s(&model), s(&sp))
}

#[test]
fn the_second_message_does_not_load_the_model_again() {
    let (dir, model, sp) = setup();
    let db = dir.path().join("runs.db").display().to_string();
    let mut child = Command::new(bin())
        .args([
            "--db",
            &db,
            "chat-worker",
            "--weights",
            "original",
            "--model",
            &model,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ask = |request: Value| -> Value {
        writeln!(stdin, "{request}").unwrap();
        serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap()
    };
    let message =
        |text: &str| json!({"region": "USA", "soft_prompt": sp, "message": text, "max_tokens": 6});

    let first = ask(message("Describe a good boss."));
    assert!(first["error"].is_null(), "{first}");
    assert_eq!(first["worker"]["model_loads"], 1, "{first}");
    assert_eq!(first["worker"]["pid"], child.id(), "{first}");
    // A bad request is answered with an error and the worker stays up, model loaded.
    let bad = ask(json!({"region": "USA", "soft_prompt": sp, "message": "  "}));
    assert_eq!(bad["error"]["code"], "invalid_input", "{bad}");
    let bad = ask(json!({"region": "NOWHERE", "run": 1, "message": "hi"}));
    assert_eq!(bad["error"]["code"], "region_unknown", "{bad}");
    let second = ask(message("What matters in a job?"));
    assert!(second["error"].is_null(), "{second}");
    assert_eq!(
        second["worker"]["model_loads"], 1,
        "the model was loaded again: {second}"
    );
    assert_eq!(second["worker"]["requests"], 4, "{second}");
    assert_eq!(second["worker"]["pid"], child.id());
    // Greedy decoding: the worker's replies are those of the one-shot command.
    let o = Command::new(bin())
        .args([
            "--db",
            &db,
            "chat",
            "--weights",
            "original",
            "--model",
            &model,
            "--region",
            "USA",
            "--soft-prompt",
            &sp,
            "--max-tokens",
            "6",
            "--json",
            "What matters in a job?",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let once: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(once["naive"], second["reply"]["naive"]);
    assert_eq!(once["tuned"], second["reply"]["tuned"]);

    drop(stdin);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "closing stdin stops the worker cleanly: {status}"
    );
}

#[test]
fn an_idle_worker_stops_by_itself() {
    let (_dir, model, _) = setup();
    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(["chat-worker", "--idle-secs", "1", "--model", &model])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stdin stays open: only the idle time can end it.
    let _stdin = child.stdin.take().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still running after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("no request for 1 s"), "{err}");
}
