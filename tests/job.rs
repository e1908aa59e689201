//! The tuning job in-process (`tuning::job::run`), on the generated one-layer model of
//! tests/common and a real SQLite database: the event sequence of a whole run, a stop from the
//! sink that leaves the run cancelled and resumable to the same result, and the stable code of
//! an engine failure inside calibration.

mod common;

use culturetune::error_code::ErrorCode;
use culturetune::events::Event;
use culturetune::regions::RegionTable;
use culturetune::store::{MethodLabel, RunStatus, Store};
use culturetune::tuning::job::{self, JobSink, JobSpec};
use culturetune::tuning::{TuneConfig, TuneError};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Records every event; stops the job at the generation `stop_at`, if given.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
    stop_at: Option<usize>,
}

impl JobSink for Recorder {
    fn event(&mut self, e: &Event) -> ControlFlow<()> {
        self.events.push(e.clone());
        match e {
            Event::Generation { generation, .. } if Some(*generation) == self.stop_at => {
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

/// A short run on the tiny model: 3 calibration regions, 4 candidates x 3 generations.
fn config(model: &Path) -> TuneConfig {
    let sha = culturetune::fingerprint::sha256_file(model).unwrap();
    let mut c = TuneConfig::new("USA", &model.display().to_string(), &sha, 7);
    c.weights = culturetune::engine::WeightType::Original;
    c.settings.threads = 2;
    c.calibration_regions = vec!["USA".into(), "CHI".into(), "JPN".into()];
    c.d = 4;
    c.de.dim = 4;
    c.de.pop_size = 4;
    c.de.max_evals = Some(12);
    c
}

/// A compact picture of an event sequence: `progress vsm13 3/3`, `eval naive vsm13`, ...
fn shape(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Progress {
                stage, done, total, ..
            } => format!("{stage} {done}/{total}"),
            Event::Started { resumed, .. } => format!("started resumed={resumed}"),
            Event::Evaluation { method, survey, .. } => format!("eval {method} {survey}"),
            Event::Generation {
                generation, evals, ..
            } => format!("gen {generation} evals {evals}"),
            Event::Finished { status, evals, .. } => {
                format!("finished {} evals {evals}", status.as_str())
            }
            Event::Error { code, .. } => format!("error {code}"),
        })
        .collect()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    std::fs::write(&model, common::tiny_model().1).unwrap();
    culturetune::engine::init(false);
    (dir, model)
}

#[test]
fn a_job_reports_every_step_and_a_stopped_job_resumes_to_the_same_result() {
    let (dir, model) = setup();
    let table = RegionTable::builtin();
    let cancel = AtomicBool::new(false);

    // Uninterrupted.
    let mut store = Store::open(&dir.path().join("a.db")).unwrap();
    let mut whole = Recorder::default();
    let spec = JobSpec::New(Box::new(config(&model)));
    let done = job::run(spec, &mut store, &table, &cancel, &mut whole).unwrap();
    let mut expected: Vec<String> = ["vsm13", "vsm13-alt"]
        .iter()
        .flat_map(|s| (1..=3).map(move |i| format!("calibrating {s} {i}/3")))
        .collect();
    expected.extend(
        [
            "started resumed=false",
            "eval naive vsm13",
            "eval icl vsm13",
            "eval naive vsm13-alt",
            "eval icl vsm13-alt",
            "gen 0 evals 4",
            "gen 1 evals 8",
            "gen 2 evals 12",
            "eval tuned vsm13",
            "eval tuned vsm13-alt",
            "finished done evals 12",
        ]
        .map(String::from),
    );
    assert_eq!(shape(&whole.events), expected);
    assert_eq!(store.run(done.run).unwrap().status, RunStatus::Done);
    assert_eq!(done.evals, 12);
    // Tuned evaluations carry the share of the naive gap they closed; baselines do not.
    for e in &whole.events {
        if let Event::Evaluation {
            method, gap_closed, ..
        } = e
        {
            assert_eq!(gap_closed.is_some(), *method == MethodLabel::Tuned, "{e:?}");
        }
    }
    // z = 0 (the naive prompt) is in the first population: the search is never worse than naive.
    let naive = done
        .evaluations
        .iter()
        .find(|e| e.method == MethodLabel::Naive && e.survey == "vsm13")
        .unwrap();
    assert!(
        done.best_loss <= naive.loss + 0.5,
        "{} vs naive {}",
        done.best_loss,
        naive.loss
    );
    let prompt = store.prompt_for_run(done.run).unwrap().unwrap();
    assert_eq!(prompt.card["run"], done.run);
    assert_eq!(
        prompt.card["losses"]["train"]["tuned"],
        done.evaluations
            .iter()
            .rev()
            .find(|e| e.method == MethodLabel::Tuned && e.survey == "vsm13")
            .unwrap()
            .loss
    );

    // Stopped by the sink after generation 0, then resumed.
    let mut store = Store::open(&dir.path().join("b.db")).unwrap();
    let mut first = Recorder {
        stop_at: Some(0),
        ..Recorder::default()
    };
    let spec = JobSpec::New(Box::new(config(&model)));
    let err = job::run(spec, &mut store, &table, &cancel, &mut first).unwrap_err();
    assert!(matches!(err, TuneError::Cancelled), "{err}");
    let tail: Vec<String> = shape(&first.events).into_iter().rev().take(2).collect();
    assert_eq!(tail, ["finished cancelled evals 4", "gen 0 evals 4"]);
    let run = store.runs().unwrap()[0].id;
    assert_eq!(store.run(run).unwrap().status, RunStatus::Cancelled);

    let cancel = AtomicBool::new(false);
    let mut second = Recorder::default();
    let resumed = job::run(
        JobSpec::Resume(run),
        &mut store,
        &table,
        &cancel,
        &mut second,
    )
    .unwrap();
    assert_eq!(
        shape(&second.events),
        [
            "started resumed=true",
            "gen 1 evals 8",
            "gen 2 evals 12",
            "eval tuned vsm13",
            "eval tuned vsm13-alt",
            "finished done evals 12",
        ],
        "calibration and baselines are not redone"
    );
    assert_eq!(resumed.best_loss.to_bits(), done.best_loss.to_bits());
    let rows = store.prompt_for_run(run).unwrap().unwrap().rows;
    assert_eq!(rows, prompt.rows, "resumed prompt is bit-identical");

    // A finished run is not resumable, with a clear reason.
    let err = job::run(
        JobSpec::Resume(run),
        &mut store,
        &table,
        &cancel,
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.to_string().contains("already done"), "{err}");
}

#[test]
fn an_engine_failure_in_calibration_has_the_engine_code() {
    let (dir, model) = setup();
    let mut store = Store::open(&dir.path().join("c.db")).unwrap();
    let mut c = config(&model);
    // The tiny model's byte-level prompts do not fit 256 cells.
    c.settings.n_ctx = 256;
    c.settings.n_batch = 256;
    c.settings.n_ubatch = 256;
    let mut sink = Recorder::default();
    let cancel = AtomicBool::new(false);
    let err = job::run(
        JobSpec::New(Box::new(c)),
        &mut store,
        &RegionTable::builtin(),
        &cancel,
        &mut sink,
    )
    .unwrap_err();
    assert!(matches!(err, TuneError::Engine(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Engine);
    assert!(err.to_string().contains("n_ctx is 256"), "{err}");
    match sink.events.last() {
        Some(Event::Error { run, code, .. }) => {
            assert_eq!(*run, None, "no run is created before calibration succeeds");
            assert_eq!(*code, ErrorCode::Engine);
        }
        other => panic!("expected an error event, got {other:?}"),
    }
    assert!(store.runs().unwrap().is_empty());
}

#[test]
fn training_on_the_held_out_survey_is_refused_before_anything_runs() {
    let (dir, model) = setup();
    let mut store = Store::open(&dir.path().join("h.db")).unwrap();
    let mut c = config(&model);
    c.survey = culturetune::survey::HELDOUT_SURVEY_ID.into();
    let mut sink = Recorder::default();
    let err = job::run(
        JobSpec::New(Box::new(c)),
        &mut store,
        &RegionTable::builtin(),
        &AtomicBool::new(false),
        &mut sink,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(
        err.to_string()
            .contains("the training survey is the held-out survey (vsm13-alt)"),
        "{err}"
    );
    assert_eq!(shape(&sink.events), ["error invalid_input"]);
    assert!(store.runs().unwrap().is_empty());
}

#[test]
fn the_command_line_reports_the_engine_code_of_a_calibration_failure() {
    let (dir, model) = setup();
    let db = dir.path().join("d.db");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_culturetune"))
        .args(["--db", &db.display().to_string(), "--json-errors", "tune"])
        .args([
            "--model",
            &model.display().to_string(),
            "--weights",
            "original",
        ])
        .args([
            "--region",
            "USA",
            "--n-ctx",
            "256",
            "--calibration-regions",
            "USA",
        ])
        .args(["--events", "jsonl"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["code"], "engine", "{stderr}");
    // The event stream ends with the same code.
    let stdout = String::from_utf8_lossy(&o.stdout);
    let event = culturetune::events::from_line(stdout.lines().last().unwrap()).unwrap();
    assert!(
        matches!(
            event,
            Event::Error {
                code: ErrorCode::Engine,
                run: None,
                ..
            }
        ),
        "{event:?}"
    );
}
