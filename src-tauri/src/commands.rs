//! The commands the window invokes. Each one runs a worker (or asks the job supervisor) and
//! hands back JSON as the command line prints it; nothing here computes results itself.

use crate::chat_worker::ChatWorker;
use crate::error::{AppError, AppResult};
use crate::jobs::{JobInfo, Jobs};
use crate::worker::Worker;
use serde::Deserialize;
use serde_json::Value;
use tauri::{AppHandle, Runtime, State};

/// Settings of a new tuning run, as the Tune screen sends them (names as on the command line;
/// `None` means the command line's default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TuneSettings {
    /// Region code.
    pub region: String,
    /// GGUF model file.
    pub model: Option<String>,
    /// Evaluation budget.
    pub budget: Option<u32>,
    /// DE population.
    pub population: Option<u32>,
    /// Search dimensions.
    pub dims: Option<u32>,
    /// Seed.
    pub seed: Option<u64>,
    /// DE strategy (`shade`, `rand1-bin`, ...).
    pub strategy: Option<String>,
    /// Where the soft prompt goes (`answer` or `prefix`).
    pub placement: Option<String>,
    /// Panel respondents.
    pub panel: Option<u32>,
    /// Ask every item in both option orders (the command line's `--counterbalance`).
    pub counterbalance: Option<bool>,
    /// Train on wordings A and C together (the command line's `--survey vsm13-ac`).
    pub two_wordings: Option<bool>,
    /// Comma-separated calibration regions.
    pub calibration_regions: Option<String>,
    /// Weights (`auto`, `original`, `q8_0`, `f16`, `f32`).
    pub weights: Option<String>,
    /// CPU threads.
    pub threads: Option<u32>,
    /// GPU layers.
    pub gpu_layers: Option<u32>,
    /// KV cache cells (the command line's `--n-ctx`).
    pub n_ctx: Option<u32>,
    /// Chat template instead of the model file's (the command line's `--chat-template`).
    pub chat_template: Option<String>,
    /// A survey file to train on instead of the VSM 2013 (`--survey`).
    pub survey: Option<String>,
    /// Its independently worded version (`--heldout-survey`).
    pub heldout_survey: Option<String>,
    /// Respondents to tune toward instead of the region's published scores (`--responses`).
    pub responses: Option<String>,
    /// Only one group's rows, `COLUMN=VALUE` (`--group`).
    pub group: Option<String>,
    /// The column of respondent weights (`--weight`).
    pub weight: Option<String>,
    /// `indices` or `items` (`--objective`).
    pub objective: Option<String>,
    /// Items held out of the items objective: a count or ids (`--holdout-items`).
    pub holdout_items: Option<String>,
}

impl TuneSettings {
    /// The worker's command line for these settings.
    pub fn args(&self) -> AppResult<Vec<String>> {
        let region = self.region.trim();
        if region.is_empty() {
            return Err(AppError::new(
                "invalid_input",
                "choose a region to tune toward (Regions screen)",
            ));
        }
        let mut a = vec![
            "tune".to_string(),
            "--region".into(),
            region.into(),
            "--events".into(),
            "jsonl".into(),
        ];
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                a.push(flag.into());
                a.push(v.trim().to_string());
            }
        };
        opt("--model", self.model.clone());
        opt("--budget", self.budget.map(|v| v.to_string()));
        opt("--population", self.population.map(|v| v.to_string()));
        opt("--dims", self.dims.map(|v| v.to_string()));
        opt("--seed", self.seed.map(|v| v.to_string()));
        opt("--strategy", self.strategy.clone());
        opt("--placement", self.placement.clone());
        opt("--panel", self.panel.map(|v| v.to_string()));
        opt("--calibration-regions", self.calibration_regions.clone());
        opt("--weights", self.weights.clone());
        opt("--threads", self.threads.map(|v| v.to_string()));
        opt("--gpu-layers", self.gpu_layers.map(|v| v.to_string()));
        opt("--n-ctx", self.n_ctx.map(|v| v.to_string()));
        opt("--chat-template", self.chat_template.clone());
        let survey = self.survey.clone().filter(|s| !s.trim().is_empty());
        if self.two_wordings == Some(true) && survey.is_some() {
            return Err(AppError::new(
                "invalid_input",
                "choose either two wordings or a survey file, not both",
            ));
        }
        opt("--survey", survey);
        opt("--heldout-survey", self.heldout_survey.clone());
        opt("--responses", self.responses.clone());
        opt("--group", self.group.clone());
        opt("--weight", self.weight.clone());
        opt("--objective", self.objective.clone());
        opt("--holdout-items", self.holdout_items.clone());
        if self.counterbalance == Some(true) {
            a.push("--counterbalance".into());
        }
        if self.two_wordings == Some(true) {
            a.push("--survey".into());
            a.push(culturetune::survey::TWO_WORDINGS_SURVEY_ID.into());
        }
        Ok(a)
    }
}

/// culturetune's defaults for a tuning run, from the library (the Tune screen shows them; the
/// page holds no copy).
#[tauri::command]
pub fn tune_defaults() -> Value {
    serde_json::to_value(culturetune::tuning::request::TuneRequest::defaults()).unwrap_or_default()
}

/// Where the app keeps its data and how it runs workers.
#[tauri::command]
pub fn app_info(worker: State<'_, Worker>) -> Value {
    serde_json::json!({
        "db": worker.db,
        "worker": worker.program,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// What a model file is (`culturetune info`); the default model when `path` is empty.
#[tauri::command]
pub async fn model_info(worker: State<'_, Worker>, path: Option<String>) -> AppResult<Value> {
    let mut args = vec!["info".to_string(), "--json".into()];
    if let Some(p) = path.filter(|p| !p.trim().is_empty()) {
        args.push("--model".into());
        args.push(p);
    }
    worker.json(&args).await
}

/// Every region with its published scores (`culturetune regions`).
#[tauri::command]
pub async fn regions(worker: State<'_, Worker>) -> AppResult<Value> {
    worker.json(&["regions".into(), "--json".into()]).await
}

/// The run history (`culturetune runs`).
#[tauri::command]
pub async fn runs(worker: State<'_, Worker>) -> AppResult<Value> {
    worker.json(&["runs".into(), "--json".into()]).await
}

/// One run: settings, trajectory, evaluations (`culturetune show`).
#[tauri::command]
pub async fn run_detail(worker: State<'_, Worker>, run: i64) -> AppResult<Value> {
    worker
        .json(&["show".into(), run.to_string(), "--json".into()])
        .await
}

/// Regions x methods on both surveys (`culturetune compare`).
#[tauri::command]
pub async fn compare(worker: State<'_, Worker>, regions: Vec<String>) -> AppResult<Value> {
    if regions.is_empty() {
        return Err(AppError::new(
            "invalid_input",
            "choose at least one region to compare",
        ));
    }
    worker
        .json(&[
            "compare".into(),
            "--regions".into(),
            regions.join(","),
            "--json".into(),
        ])
        .await
}

/// The same message answered with the naive persona and with a run's tuned prompt, by the
/// long-lived chat worker (the model stays loaded between messages).
#[tauri::command]
pub async fn chat(
    worker: State<'_, Worker>,
    chat: State<'_, ChatWorker>,
    region: String,
    run: i64,
    message: String,
    model: Option<String>,
) -> AppResult<Value> {
    if message.trim().is_empty() {
        return Err(AppError::new("invalid_input", "type a message first"));
    }
    let model = model.filter(|m| !m.trim().is_empty());
    let request = serde_json::json!({"region": region, "run": run, "message": message});
    chat.ask(&worker, model, &request).await
}

/// Writes a run's tuned prompt as a PEFT adapter directory, or (`gguf`) as a GGUF file that
/// carries it as tokens for llama-server, LM Studio and Ollama (`culturetune export`).
#[tauri::command]
pub async fn export_run(
    worker: State<'_, Worker>,
    run: i64,
    dir: String,
    force: bool,
    gguf: Option<bool>,
) -> AppResult<String> {
    let gguf = gguf.unwrap_or(false);
    if dir.trim().is_empty() {
        let what = if gguf { "a .gguf file" } else { "a folder" };
        return Err(AppError::new(
            "invalid_input",
            format!("choose {what} to export to"),
        ));
    }
    let flag = if gguf { "--gguf" } else { "--out" };
    let mut args = vec!["export".to_string(), run.to_string(), flag.into(), dir];
    if force {
        args.push("--force".into());
    }
    Ok(worker.output(&args).await?.trim().to_string())
}

/// Starts a tuning run in a worker.
#[tauri::command]
pub async fn start_tune<R: Runtime>(
    app: AppHandle<R>,
    worker: State<'_, Worker>,
    jobs: State<'_, Jobs>,
    settings: TuneSettings,
) -> AppResult<JobInfo> {
    let args = settings.args()?;
    jobs.start(
        app,
        &worker,
        "tune",
        Some(settings.region.trim().to_string()),
        None,
        args,
    )
}

/// Continues a cancelled, interrupted or failed run from its last checkpoint.
#[tauri::command]
pub async fn resume_run<R: Runtime>(
    app: AppHandle<R>,
    worker: State<'_, Worker>,
    jobs: State<'_, Jobs>,
    run: i64,
    region: Option<String>,
) -> AppResult<JobInfo> {
    let args = vec![
        "resume".to_string(),
        run.to_string(),
        "--events".into(),
        "jsonl".into(),
    ];
    jobs.start(app, &worker, "resume", region, Some(run), args)
}

/// Cancels the job in progress; false when none runs.
#[tauri::command]
pub fn cancel_job(jobs: State<'_, Jobs>) -> bool {
    jobs.cancel()
}

/// The job in progress, if any (the window asks after a reload).
#[tauri::command]
pub fn current_job(jobs: State<'_, Jobs>) -> Option<JobInfo> {
    jobs.current()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_the_workers_command_line() {
        let s = TuneSettings {
            region: " JPN ".into(),
            budget: Some(36),
            strategy: Some("shade".into()),
            placement: Some("prefix".into()),
            calibration_regions: Some("  ".into()),
            counterbalance: Some(true),
            two_wordings: Some(true),
            ..Default::default()
        };
        assert_eq!(
            s.args().unwrap(),
            [
                "tune",
                "--region",
                "JPN",
                "--events",
                "jsonl",
                "--budget",
                "36",
                "--strategy",
                "shade",
                "--placement",
                "prefix",
                "--counterbalance",
                "--survey",
                "vsm13-ac"
            ]
        );
        let e = TuneSettings::default().args().unwrap_err();
        assert_eq!(e.code, "invalid_input");
    }

    #[test]
    fn an_own_survey_and_respondents_become_flags() {
        let s = TuneSettings {
            region: "USA".into(),
            survey: Some("mine.toml".into()),
            heldout_survey: Some("mine-alt.toml".into()),
            responses: Some(" staff.csv ".into()),
            group: Some("site=Lyon".into()),
            weight: Some("".into()),
            objective: Some("items".into()),
            holdout_items: Some("3".into()),
            ..Default::default()
        };
        let a = s.args().unwrap();
        assert_eq!(
            &a[5..],
            [
                "--survey",
                "mine.toml",
                "--heldout-survey",
                "mine-alt.toml",
                "--responses",
                "staff.csv",
                "--group",
                "site=Lyon",
                "--objective",
                "items",
                "--holdout-items",
                "3"
            ]
        );
        let both = TuneSettings {
            two_wordings: Some(true),
            ..s
        };
        assert!(both.args().unwrap_err().message.contains("not both"));
    }
}
