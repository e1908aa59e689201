//! The culturetune desktop shell: Tauri commands, job supervision and app state. No science
//! here: every survey, tuning run and chat runs in a worker process (culturetune's command
//! line, see [`worker`]), and results are read back through its JSON output. Chat keeps one
//! worker with the model loaded ([`chat_worker`]).

pub mod chat_worker;
pub mod commands;
pub mod error;
pub mod jobs;
pub mod worker;

use tauri::{Builder, Runtime};

/// Registers the app's state and commands on a builder (the real window and the tests' mock
/// runtime use the same wiring).
pub fn configure<R: Runtime>(builder: Builder<R>, worker: worker::Worker) -> Builder<R> {
    builder
        .manage(worker)
        .manage(jobs::Jobs::default())
        .manage(chat_worker::ChatWorker::default())
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::tune_defaults,
            commands::model_info,
            commands::regions,
            commands::runs,
            commands::run_detail,
            commands::compare,
            commands::chat,
            commands::export_run,
            commands::start_tune,
            commands::resume_run,
            commands::cancel_job,
            commands::current_job,
        ])
}

/// Starts the desktop app.
pub fn run() {
    let worker = match worker::Worker::from_env() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("culturetune: {}", e.message);
            std::process::exit(1);
        }
    };
    configure(tauri::Builder::default(), worker)
        .plugin(tauri_plugin_dialog::init())
        .run(tauri::generate_context!("../tauri.conf.json"))
        .expect("error while running the culturetune app");
}
