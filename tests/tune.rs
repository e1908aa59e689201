//! Tuning end to end through the real binary, real model and real SQLite: the event stream,
//! a loss below the naive baseline, SIGKILL + resume equal to an uninterrupted run, Ctrl-C,
//! export -> import -> survey with the soft prompt, and z = 0 equal to the naive prompt.

mod common;

use culturetune::engine::{EmbeddingTable, Model};
use culturetune::prompt::Method;
use culturetune::regions::RegionTable;
use culturetune::scoring::Constants;
use culturetune::soft_prompt::Placement;
use culturetune::store::{RunStatus, Store};
use culturetune::survey::Survey;
use culturetune::tuning::{TuneConfig, Tuner};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// A small but real tuning run: 2 calibration regions, population 8, budget 24.
fn tune_args(db: &Path) -> Vec<String> {
    let m = model_path().display().to_string();
    [
        "--db",
        &db.display().to_string(),
        "tune",
        "--model",
        &m,
        "--region",
        "CHI",
        "--budget",
        "24",
        "--population",
        "8",
        "--dims",
        "8",
        "--seed",
        "3",
        "--calibration-regions",
        "USA,CHI",
        "--events",
        "jsonl",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn ct() -> Command {
    Command::new(env!("CARGO_BIN_EXE_culturetune"))
}

/// Runs to completion; returns the parsed events and the exit code.
fn run_events(args: &[String]) -> (Vec<Value>, Option<i32>, String) {
    let o = ct().args(args).output().unwrap();
    let events = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (
        events,
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Starts a run and calls `stop(pid)` once a generation >= 1 has been reported.
fn run_until_generation(
    args: &[String],
    stop: impl FnOnce(&mut std::process::Child),
) -> (Vec<Value>, Option<i32>) {
    let mut child = ct()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut events = Vec::new();
    let mut stop = Some(stop);
    for line in reader.lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let trigger = v["event"] == "generation" && v["generation"].as_u64() >= Some(1);
        events.push(v);
        if trigger {
            if let Some(s) = stop.take() {
                s(&mut child);
            }
        }
    }
    let status = child.wait().unwrap();
    (events, status.code())
}

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn loss(events: &[Value], method: &str, survey: &str) -> f64 {
    of(events, "evaluation")
        .iter()
        .find(|e| e["method"] == method && e["survey"] == survey)
        .unwrap_or_else(|| panic!("no {method} on {survey}"))["loss"]
        .as_f64()
        .unwrap()
}

#[test]
fn tuning_end_to_end() {
    let _one = common::one_model_at_a_time();
    let dir = tempfile::tempdir().unwrap();

    // 1. An uninterrupted run: the event stream follows the schema and tuning beats naive.
    let db_a = dir.path().join("a.db");
    let (ev, code, err) = run_events(&tune_args(&db_a));
    assert_eq!(code, Some(0), "{err}");
    assert!(ev.iter().all(|e| e["v"] == 1 && e["event"].is_string()));
    let kinds: Vec<&str> = ev
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .filter(|k| *k != "progress")
        .collect();
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"finished"));
    assert_eq!(
        of(&ev, "evaluation").len(),
        6,
        "naive, icl, tuned on two surveys"
    );
    let gens = of(&ev, "generation");
    assert_eq!(
        gens.len(),
        3,
        "generation 0 + 2 more for 24 evaluations of 8"
    );
    for (i, g) in gens.iter().enumerate() {
        assert_eq!(g["generation"], i);
        assert_eq!(g["evals"], 8 * (i + 1));
        assert_eq!(g["best_scores"].as_object().unwrap().len(), 6);
        assert!(g["mean_loss"].as_f64().unwrap() >= g["best_loss"].as_f64().unwrap());
    }
    assert!(gens
        .windows(2)
        .all(|w| w[1]["best_loss"].as_f64() <= w[0]["best_loss"].as_f64()));
    let fin = of(&ev, "finished")[0];
    assert_eq!(fin["status"], "done");
    let (naive, icl, tuned) = (
        loss(&ev, "naive", "vsm13"),
        loss(&ev, "icl", "vsm13"),
        loss(&ev, "tuned", "vsm13"),
    );
    assert!(tuned < naive, "tuned {tuned} must beat naive {naive}");
    assert_eq!(
        tuned,
        fin["best_loss"].as_f64().unwrap(),
        "the stored prompt scores what the search found"
    );
    eprintln!("CHI short run: naive {naive:.1}, icl {icl:.1}, tuned {tuned:.1}; held-out naive {:.1}, tuned {:.1}", loss(&ev, "naive", "vsm13-alt"), loss(&ev, "tuned", "vsm13-alt"));

    // 2. The same run killed with SIGKILL after generation 1, then resumed: same result.
    let db_b = dir.path().join("b.db");
    let (ev_b, _) = run_until_generation(&tune_args(&db_b), |c| c.kill().unwrap());
    assert!(of(&ev_b, "finished").is_empty());
    let run_b = of(&ev_b, "started")[0]["run"].as_i64().unwrap();
    assert_eq!(
        Store::open(&db_b).unwrap().run(run_b).unwrap().status,
        RunStatus::Interrupted
    );
    let (ev_r, code, err) = run_events(&[
        "--db".into(),
        db_b.display().to_string(),
        "resume".into(),
        run_b.to_string(),
        "--events".into(),
        "jsonl".into(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(of(&ev_r, "started")[0]["resumed"], true);
    assert_eq!(of(&ev_r, "finished")[0]["best_loss"], fin["best_loss"]);
    assert_eq!(
        loss(&ev_r, "tuned", "vsm13-alt"),
        loss(&ev, "tuned", "vsm13-alt")
    );
    let store_b = Store::open(&db_b).unwrap();
    assert_eq!(store_b.integrity_check().unwrap(), "ok");
    assert_eq!(store_b.run(run_b).unwrap().status, RunStatus::Done);
    let (pa, pb) = (
        Store::open(&db_a)
            .unwrap()
            .prompt_for_run(1)
            .unwrap()
            .unwrap(),
        store_b.prompt_for_run(run_b).unwrap().unwrap(),
    );
    assert_eq!(
        pa.rows, pb.rows,
        "resumed prompt is bit-identical to the uninterrupted one"
    );

    // 3. Ctrl-C (SIGINT) cancels cleanly with exit code 130; the run is resumable.
    let db_c = dir.path().join("c.db");
    let (ev_c, code) = run_until_generation(&tune_args(&db_c), |c| {
        Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status()
            .unwrap();
    });
    assert_eq!(code, Some(130));
    assert_eq!(of(&ev_c, "finished")[0]["status"], "cancelled");
    let run_c = of(&ev_c, "started")[0]["run"].as_i64().unwrap();
    assert_eq!(
        Store::open(&db_c).unwrap().run(run_c).unwrap().status,
        RunStatus::Cancelled
    );

    // 4. Export -> import -> survey with the soft prompt.
    let out = dir.path().join("chi-prompt");
    let o = ct()
        .args([
            "--db",
            &db_a.display().to_string(),
            "export",
            "1",
            "--out",
            &out.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = model_path().display().to_string();
    let o = ct()
        .args([
            "--db",
            &dir.path().join("d.db").display().to_string(),
            "import",
            &out.display().to_string(),
            "--model",
            &m,
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("as prompt 1"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = ct()
        .args([
            "survey",
            "--model",
            &m,
            "--region",
            "CHI",
            "--soft-prompt",
            &out.display().to_string(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 24);

    let o = ct()
        .args([
            "chat",
            "--model",
            &m,
            "--region",
            "CHI",
            "--soft-prompt",
            &out.display().to_string(),
            "--max-tokens",
            "16",
            "--json",
            "Describe a good boss.",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        !v["naive"].as_str().unwrap().is_empty() && !v["tuned"].as_str().unwrap().is_empty(),
        "{v}"
    );

    // 5. runs / compare see the finished run.
    let o = ct()
        .args([
            "--db",
            &db_a.display().to_string(),
            "compare",
            "--regions",
            "CHI,USA",
            "--json",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["train"]["tuned"].as_f64().unwrap(), tuned);
    assert!(v[1]["run"].is_null());
}

/// SIGKILL after generation 1, then `resume`: the run ends with what an uninterrupted run of
/// the same arguments gives, bit for bit (best loss, held-out loss, stored rows).
fn assert_kill_and_resume_is_bit_identical(args: &[String], dir: &Path) {
    let db_a = dir.join("whole.db");
    let (ev, code, err) = run_events(&args_with_db(args, &db_a));
    assert_eq!(code, Some(0), "{err}");
    let db_b = dir.join("killed.db");
    let (ev_b, _) = run_until_generation(&args_with_db(args, &db_b), |c| c.kill().unwrap());
    assert!(of(&ev_b, "finished").is_empty());
    let run_b = of(&ev_b, "started")[0]["run"].as_i64().unwrap();
    let (ev_r, code, err) = run_events(&[
        "--db".into(),
        db_b.display().to_string(),
        "resume".into(),
        run_b.to_string(),
        "--events".into(),
        "jsonl".into(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        of(&ev_r, "finished")[0]["best_loss"],
        of(&ev, "finished")[0]["best_loss"]
    );
    assert_eq!(
        loss(&ev_r, "tuned", "vsm13-alt"),
        loss(&ev, "tuned", "vsm13-alt")
    );
    let rows = |db: &Path, run: i64| {
        Store::open(db)
            .unwrap()
            .prompt_for_run(run)
            .unwrap()
            .unwrap()
            .rows
    };
    assert_eq!(rows(&db_a, 1), rows(&db_b, run_b));
}

/// `args` with its `--db` value replaced.
fn args_with_db(args: &[String], db: &Path) -> Vec<String> {
    let mut a = args.to_vec();
    let i = a.iter().position(|x| x == "--db").unwrap();
    a[i + 1] = db.display().to_string();
    a
}

#[test]
fn prefix_placement_runs_and_resumes_bit_identically() {
    let _one = common::one_model_at_a_time();
    // The seed paper's placement (every candidate re-decodes the survey).
    let dir = tempfile::tempdir().unwrap();
    // Half the usual run (3 generations of 4): every prefix candidate re-decodes the survey.
    let mut args = tune_args(&dir.path().join("x.db"));
    for (flag, value) in [("--budget", "12"), ("--population", "4")] {
        let i = args.iter().position(|x| x == flag).unwrap();
        args[i + 1] = value.into();
    }
    args.extend(["--placement".into(), "prefix".into()]);
    assert_kill_and_resume_is_bit_identical(&args, dir.path());
    let o = ct()
        .args([
            "--db",
            &dir.path().join("whole.db").display().to_string(),
            "show",
            "1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("placement prefix"), "{text}");
}

#[test]
fn z_zero_reproduces_the_naive_prompt_exactly() {
    let _one = common::one_model_at_a_time();
    let model = Model::load(&model_path(), 0).unwrap();
    let t = RegionTable::builtin();
    let region = t.find("IND").unwrap().clone();
    let survey = Survey::builtin("vsm13").unwrap();
    let config = TuneConfig {
        d: 8,
        placement: Placement::Prefix,
        ..TuneConfig::new("IND", "m", "sha", 1)
    };
    let target = culturetune::tuning::target::Target::region(&region);
    let mut tuner = Tuner::new(&model, &config, survey.clone(), region, Constants::Zero).unwrap();
    let rows = tuner.rows(&[0.0; 8]);
    let table = EmbeddingTable::load(&model).unwrap();
    let persona = model.tokenize("You are a person from India.").unwrap();
    assert_eq!(
        rows,
        table.rows(&persona).unwrap(),
        "P(z = 0) = P0 = the persona's own rows"
    );
    let soft = tuner.evaluate_rows(&rows).unwrap();
    let naive = tuner
        .evaluate_on(&survey, &Constants::Zero, &target, Method::Naive, None)
        .unwrap();
    assert_eq!(soft, naive);
    let moved = tuner.evaluate_rows(&tuner.rows(&[0.5; 8])).unwrap();
    assert_ne!(moved.indices, naive.indices, "z moves the answers");
}

#[test]
fn reach_brackets_the_start_and_every_search() {
    let _one = common::one_model_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let m = model_path().display().to_string();
    let o = ct()
        .args([
            "--db",
            &dir.path().join("r.db").display().to_string(),
            "reach",
            "--model",
            &m,
            "--region",
            "CHI",
            "--budget",
            "4",
            "--population",
            "4",
            "--dims",
            "8",
            "--calibration-regions",
            "USA,CHI",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let dims = v["dimensions"].as_array().unwrap();
    assert_eq!(dims.len(), 6);
    let mut moved = 0;
    for d in dims {
        let f = |k: &str| d[k].as_f64().unwrap_or_else(|| panic!("{k} in {d}"));
        // z = 0 is in every search's first generation.
        assert!(
            f("seen_min") <= f("start") && f("start") <= f("seen_max"),
            "{d}"
        );
        assert!(f("min") <= f("start") && f("max") >= f("start"), "{d}");
        assert!(
            f("seen_min") <= f("min") && f("max") <= f("seen_max"),
            "{d}"
        );
        if f("max") - f("min") > 0.5 {
            moved += 1;
        }
    }
    assert!(moved >= 3, "the soft prompt moves the indices: {v}");
}
