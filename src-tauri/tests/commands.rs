//! The app's commands without a window (`tauri::test`'s mock runtime), each against a real
//! worker process (this package's own binary in worker mode) and a real, temporary database.

#[path = "../../tests/common/mod.rs"]
mod common;

use culturetune_app::jobs::{JobEnd, JOB_END};
use culturetune_app::worker::{Worker, WORKER_ARG};
use serde_json::{json, Value};
use std::sync::mpsc;
use std::time::Duration;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{Listener, WebviewWindowBuilder};

struct App {
    app: tauri::App<tauri::test::MockRuntime>,
    window: tauri::WebviewWindow<tauri::test::MockRuntime>,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker {
        program: env!("CARGO_BIN_EXE_culturetune-app").into(),
        prefix: vec![WORKER_ARG.into()],
        db: dir.path().join("runs.db"),
    };
    let app = culturetune_app::configure(mock_builder(), worker)
        .build(mock_context(noop_assets()))
        .unwrap();
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    App {
        app,
        window,
        _dir: dir,
    }
}

impl App {
    fn invoke(&self, cmd: &str, body: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.window,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: InvokeBody::Json(body),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|r| r.deserialize::<Value>().unwrap())
    }
}

#[test]
fn regions_come_from_the_worker() {
    let a = app();
    let r = a.invoke("regions", json!({})).unwrap();
    let list = r.as_array().unwrap();
    assert_eq!(list.len(), 111);
    let usa = list.iter().find(|r| r["code"] == "USA").unwrap();
    assert_eq!(usa["name"], "U.S.A.");
    assert_eq!(usa["scores"]["PDI"], 40.0);
    assert_eq!(usa["scores"]["IVR"], 68.0);
    assert_eq!(a.invoke("runs", json!({})).unwrap(), json!([]));
}

#[test]
fn model_errors_have_stable_codes() {
    let a = app();
    let e = a
        .invoke("model_info", json!({"path": "/nonexistent/model.gguf"}))
        .unwrap_err();
    assert_eq!(e["code"], "model_not_found", "{e}");
    let e = a
        .invoke("model_info", json!({"path": env!("CARGO_MANIFEST_PATH")}))
        .unwrap_err();
    assert_eq!(e["code"], "not_gguf", "{e}");
    assert!(e["message"].as_str().unwrap().contains("Cargo.toml"), "{e}");
    let m = a.invoke("model_info", json!({"path": null})).unwrap();
    assert_eq!(m["architecture"], "llama");
    assert_eq!(m["n_embd"], 576);
    assert_eq!(m["quantization"], "Q4_1");
}

#[test]
fn bad_requests_are_refused_before_a_worker_starts() {
    let a = app();
    let e = a
        .invoke("start_tune", json!({"settings": {"region": "  "}}))
        .unwrap_err();
    assert_eq!(e["code"], "invalid_input");
    let e = a
        .invoke(
            "start_tune",
            json!({"settings": {"region": "USA", "budgett": 3}}),
        )
        .unwrap_err();
    assert!(e.as_str().unwrap_or_default().contains("budgett"), "{e}");
    assert_eq!(a.invoke("cancel_job", json!({})).unwrap(), json!(false));
    assert_eq!(a.invoke("current_job", json!({})).unwrap(), Value::Null);
    let e = a.invoke("compare", json!({"regions": []})).unwrap_err();
    assert_eq!(e["code"], "invalid_input");
}

#[test]
fn a_failing_job_ends_with_the_workers_error_code() {
    let a = app();
    let (tx, rx) = mpsc::channel::<JobEnd>();
    a.app.listen(JOB_END, move |e| {
        let _ = tx.send(serde_json::from_str(e.payload()).unwrap());
    });
    let job = a
        .invoke("start_tune", json!({"settings": {"region": "Atlantis"}}))
        .unwrap();
    assert_eq!(job["kind"], "tune");
    assert!(job["pid"].as_u64().is_some());
    let end = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(end.outcome, culturetune_app::jobs::Outcome::Failed);
    assert_eq!(end.run, None);
    let err = end.error.unwrap();
    assert_eq!(err.code, "region_unknown", "{err:?}");
    assert!(err.message.contains("Atlantis"), "{err:?}");
    // The slot is free again.
    assert_eq!(a.invoke("current_job", json!({})).unwrap(), Value::Null);
}

#[test]
#[cfg(unix)]
fn chat_keeps_one_worker_with_the_model_loaded() {
    let a = app();
    let dir = a._dir.path();
    let model = dir.join("tiny.gguf");
    std::fs::write(&model, common::tiny_model().1).unwrap();
    // A run with a tuned prompt, written straight into the app's database.
    let store = culturetune::store::Store::open(&dir.join("runs.db")).unwrap();
    let n = common::N_EMBD as usize;
    store
        .upsert_model(&culturetune::store::ModelRecord {
            sha256: "tiny".into(),
            path: model.display().to_string(),
            name: "tiny".into(),
            architecture: "llama".into(),
            n_embd: n,
            file_size: 1,
        })
        .unwrap();
    let run = store
        .create_run(
            "USA",
            "vsm13",
            culturetune::store::MethodLabel::Tuned,
            "tiny",
            &json!({}),
            1,
        )
        .unwrap();
    let rows: Vec<f32> = (0..2 * n).map(|i| ((i % 5) as f32 - 2.0) * 0.05).collect();
    store
        .save_prompt(Some(run), "tiny", 2, n, &rows, &json!({"region": "USA"}))
        .unwrap();
    drop(store);
    let model = model.display().to_string();
    let chat = |text: &str| {
        a.invoke(
            "chat",
            json!({"region": "USA", "run": run, "message": text, "model": model}),
        )
    };
    let first = chat("Describe a good boss.").unwrap();
    assert!(
        first["naive"].is_string() && first["tuned"].is_string(),
        "{first}"
    );
    let pid = first["worker"]["pid"].as_u64().unwrap();
    assert_eq!(first["worker"]["model_loads"], 1, "{first}");
    // The second message goes to the same process, which does not load the model again.
    let second = chat("What matters in a job?").unwrap();
    assert_eq!(second["worker"]["pid"], pid, "{second}");
    assert_eq!(second["worker"]["model_loads"], 1, "{second}");
    assert_eq!(second["worker"]["requests"], 2, "{second}");
    // A request error comes back with its code and keeps the worker.
    let e = a
        .invoke(
            "chat",
            json!({"region": "USA", "run": run + 7, "message": "hi", "model": model}),
        )
        .unwrap_err();
    assert_eq!(e["code"], "invalid_input", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("no tuned prompt"),
        "{e}"
    );
    // A worker that died (here: killed) is replaced by the next message.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let third = chat("And a bad one?").unwrap();
    assert_ne!(third["worker"]["pid"], pid, "{third}");
    assert_eq!(third["worker"]["model_loads"], 1, "{third}");
    assert_eq!(third["worker"]["requests"], 1, "{third}");
    // Greedy decoding: the new worker answers the first message as the old one did.
    let again = chat("Describe a good boss.").unwrap();
    assert_eq!(again["naive"], first["naive"]);
    assert_eq!(again["tuned"], first["tuned"]);
}

#[test]
fn an_engine_failure_in_calibration_ends_the_job_with_the_engine_code() {
    let a = app();
    let model = a._dir.path().join("tiny.gguf");
    std::fs::write(&model, common::tiny_model().1).unwrap();
    let (tx, rx) = mpsc::channel::<JobEnd>();
    a.app.listen(JOB_END, move |e| {
        let _ = tx.send(serde_json::from_str(e.payload()).unwrap());
    });
    // The tiny model's byte-level prompts do not fit 256 KV cells: the first calibration
    // survey fails inside llama.cpp's evaluation.
    let settings = json!({"region": "USA", "model": model.display().to_string(),
        "weights": "original", "nCtx": 256, "calibrationRegions": "USA"});
    a.invoke("start_tune", json!({ "settings": settings }))
        .unwrap();
    let end = rx.recv_timeout(Duration::from_secs(120)).unwrap();
    assert_eq!(end.outcome, culturetune_app::jobs::Outcome::Failed);
    assert_eq!(end.run, None, "no run before calibration succeeds");
    let err = end.error.unwrap();
    assert_eq!(err.code, "engine", "{err:?}");
    assert!(err.message.contains("n_ctx is 256"), "{err:?}");
}

#[test]
fn the_tune_screen_gets_the_librarys_defaults_and_its_messages() {
    let a = app();
    let d = a.invoke("tune_defaults", json!({})).unwrap();
    assert_eq!(
        d,
        serde_json::to_value(culturetune::tuning::request::TuneRequest::defaults()).unwrap()
    );
    assert_eq!(d["budget"], 288);
    // A bad setting ends the job before the model is read, with the command line's words.
    let (tx, rx) = mpsc::channel::<JobEnd>();
    a.app.listen(JOB_END, move |e| {
        let _ = tx.send(serde_json::from_str(e.payload()).unwrap());
    });
    let missing = a._dir.path().join("missing.gguf").display().to_string();
    a.invoke(
        "start_tune",
        json!({"settings": {"region": "USA", "model": missing, "nCtx": 255}}),
    )
    .unwrap();
    let end = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let err = end.error.unwrap();
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_culturetune-app"))
        .args([
            WORKER_ARG, "tune", "--region", "USA", "--model", &missing, "--n-ctx", "255",
        ])
        .arg("--db")
        .arg(a._dir.path().join("cli.db"))
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&cli.stderr)
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    assert!(err.message.contains("n_ctx is 255"), "{err:?}");
    assert_eq!(
        err.message, line,
        "the app shows the command line's message"
    );
    assert_eq!(err.code, "invalid_input");
}
