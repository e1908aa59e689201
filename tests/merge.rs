//! `Store::merge` on real SQLite files: runs from two databases brought into a third with new
//! ids, a run present in both copied once, a calibration conflict reported, the sources
//! untouched, and a bad source refused with nothing copied.

mod common;

use culturetune::dimension::DimScores;
use culturetune::store::{Checkpoint, EvaluationRecord, MethodLabel, RunStatus, Store, StoreError};
use culturetune::tuning::job_of;
use serde_json::json;
use std::path::{Path, PathBuf};

/// A database with one finished run per seed (loss = seed) and a calibration of `c`.
fn source(dir: &Path, name: &str, seeds: &[u64], c: f64) -> PathBuf {
    let path = dir.join(name);
    let mut s = Store::open(&path).unwrap();
    let sha = common::model_record().sha256;
    s.upsert_model(&common::model_record()).unwrap();
    s.save_calibration(
        "key",
        &sha,
        "vsm13",
        &["USA".into()],
        &DimScores::full([c; 6]),
    )
    .unwrap();
    for &seed in seeds {
        let config = json!({"region": "USA", "seed": seed});
        let id = s
            .create_run("USA", "vsm13", MethodLabel::Naive, &sha, &config, seed)
            .unwrap();
        for generation in 0..2 {
            let cp = Checkpoint {
                generation,
                evals: 4 * (generation + 1),
                best_loss: seed as f64 + 1.0 - generation as f64,
                mean_loss: 20.0,
                best_scores: DimScores::full([1.0; 6]),
                state: format!("{{\"seed\":{seed}}}"),
                elapsed_s: 1.5,
            };
            s.save_checkpoint(id, &cp).unwrap();
        }
        let rows = [seed as f32, 0.5, -0.5, 1.0];
        s.save_prompt(Some(id), &sha, 2, 2, &rows, &json!({"seed": seed}))
            .unwrap();
        s.save_evaluation(&EvaluationRecord {
            run_id: Some(id),
            model_sha256: sha.clone(),
            method: MethodLabel::Tuned,
            survey: "vsm13".into(),
            region: "USA".into(),
            constants: json!({"policy": "zero"}),
            indices: DimScores::full([2.0; 6]),
            loss: seed as f64,
            loss_mean: seed as f64 / 6.0,
            dims_used: 6,
            digit_mass: 0.9,
            items: Some(culturetune::item_fit::ItemFit {
                train: 0.5,
                heldout: Some(0.75),
                per_item: [("q01".to_string(), 0.5)].into_iter().collect(),
            }),
        })
        .unwrap();
        s.set_status(id, RunStatus::Done, None).unwrap();
    }
    path
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn runs_of_two_databases_merge_into_one_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let a = source(dir.path(), "a.db", &[1, 2], 1.0);
    let b = source(dir.path(), "b.db", &[2, 3], 2.0);
    let (a_before, b_before) = (bytes(&a), bytes(&b));
    let main = dir.path().join("main.db");
    let mut s = Store::open(&main).unwrap();
    let report = s.merge(&[a.clone(), b.clone()], &job_of).unwrap();
    assert_eq!(report[0].runs.len(), 2);
    assert_eq!(report[0].calibrations, 1);
    assert_eq!(
        report[1].runs.len(),
        1,
        "seed 2 is already here: {report:?}"
    );
    assert_eq!(report[1].duplicates, vec![(1, report[0].runs[1].1)]);
    assert_eq!(
        report[1].conflicts.len(),
        1,
        "b calibrated the same key differently"
    );
    assert_eq!(report[1].calibrations, 0);
    assert_eq!(
        (
            report[0].checkpoints,
            report[0].prompts,
            report[0].evaluations
        ),
        (4, 2, 2)
    );

    let runs = s.runs().unwrap();
    assert_eq!(runs.len(), 3);
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    assert_eq!(seeds, [1, 2, 3]);
    for r in &runs {
        assert_eq!(r.status, RunStatus::Done);
        assert_eq!(s.checkpoints(r.id).unwrap().len(), 2);
        let e = s.evaluations(Some(r.id)).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].loss, r.seed as f64,
            "run {} got another run's evaluation",
            r.id
        );
        let p = s.prompt_for_run(r.id).unwrap().unwrap();
        assert_eq!(p.rows[0], r.seed as f32);
    }
    // The kept calibration is the first one copied (a's).
    let (kept, _) = s.calibration("key").unwrap().unwrap();
    assert_eq!(kept, DimScores::full([1.0; 6]));

    // Again: nothing new, every run recognized.
    let again = s.merge(&[a.clone(), b.clone()], &job_of).unwrap();
    assert!(again
        .iter()
        .all(|m| m.runs.is_empty() && m.checkpoints == 0));
    assert_eq!(again[0].duplicates.len() + again[1].duplicates.len(), 4);
    assert_eq!(s.runs().unwrap().len(), 3);
    drop(s);
    assert_eq!(bytes(&a), a_before, "a source was written to");
    assert_eq!(bytes(&b), b_before, "a source was written to");
}

#[test]
fn a_bad_source_copies_nothing_and_a_running_run_arrives_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let a = source(dir.path(), "a.db", &[1], 1.0);
    {
        let s = Store::open(&a).unwrap();
        s.create_run(
            "CHI",
            "vsm13",
            MethodLabel::Naive,
            &common::model_record().sha256,
            &json!({"r": 1}),
            5,
        )
        .unwrap();
    }
    let main = dir.path().join("main.db");
    let mut s = Store::open(&main).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database, long enough to be looked at").unwrap();
    for bad in [text, dir.path().join("missing.db"), main.clone()] {
        let e = s.merge(&[a.clone(), bad.clone()], &job_of).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Refused { .. } | StoreError::NotADatabase { .. }
            ),
            "{bad:?}: {e}"
        );
        assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
        assert!(
            s.runs().unwrap().is_empty(),
            "{bad:?}: something was copied"
        );
    }
    let report = s.merge(&[a], &job_of).unwrap();
    assert_eq!(report[0].runs.len(), 2);
    let chi = s
        .runs()
        .unwrap()
        .into_iter()
        .find(|r| r.region == "CHI")
        .unwrap();
    assert_eq!(
        chi.status,
        RunStatus::Interrupted,
        "no process here owns it"
    );
}

#[test]
fn one_job_run_on_two_machines_is_copied_once() {
    use culturetune::tuning::TuneConfig;
    let dir = tempfile::tempdir().unwrap();
    let sha = common::model_record().sha256;
    let here = TuneConfig::new("USA", "models/m.gguf", &sha, 7);
    let mut there = here.clone();
    there.model_path = "/srv/cluster/models/m.gguf".into();
    there.settings.threads = 96;
    let other_seed = TuneConfig::new("USA", "models/m.gguf", &sha, 8);
    let db = |name: &str, configs: &[&TuneConfig]| {
        let path = dir.path().join(name);
        let s = Store::open(&path).unwrap();
        s.upsert_model(&common::model_record()).unwrap();
        for c in configs {
            let v = serde_json::to_value(c).unwrap();
            s.create_run("USA", "vsm13", MethodLabel::Naive, &sha, &v, c.de.seed)
                .unwrap();
        }
        path
    };
    let mut main = Store::open(&db("main.db", &[&here])).unwrap();
    let cluster = db("cluster.db", &[&there, &other_seed]);
    let report = main.merge(&[cluster], &job_of).unwrap();
    assert_eq!(
        report[0].duplicates.len(),
        1,
        "the same job on another machine"
    );
    assert_eq!(report[0].runs.len(), 1, "another seed is another job");
    assert_eq!(main.runs().unwrap().len(), 2);
}

#[test]
fn a_corrupt_source_is_refused_naming_it_and_the_target_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let good = source(dir.path(), "good.db", &[1, 2], 1.0);
    let corrupt = source(dir.path(), "corrupt.db", &[3, 4], 1.0);
    // Keep SQLite's header (the file still opens) and overwrite every page after the first.
    let mut b = bytes(&corrupt);
    for x in b.iter_mut().skip(4096) {
        *x = 0xA5;
    }
    std::fs::write(&corrupt, b).unwrap();
    let main = dir.path().join("main.db");
    let mut s = Store::open(&main).unwrap();
    s.merge(std::slice::from_ref(&good), &job_of).unwrap();
    drop(s);
    let before = bytes(&main);
    let mut s = Store::open(&main).unwrap();
    let e = s
        .merge(std::slice::from_ref(&corrupt), &job_of)
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("corrupt.db"), "{text}");
    assert_eq!(s.runs().unwrap().len(), 2, "nothing was copied: {text}");
    drop(s);
    assert_eq!(bytes(&main), before, "the target changed: {text}");
}

#[test]
fn databases_of_two_models_merge_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let a = source(dir.path(), "a.db", &[1], 1.0);
    let b = dir.path().join("b.db");
    {
        let s = Store::open(&b).unwrap();
        let mut other = common::model_record();
        other.sha256 = "cd".repeat(32);
        other.name = "other".into();
        s.upsert_model(&other).unwrap();
        let config = json!({"region": "USA", "seed": 1, "model_sha256": other.sha256});
        let id = s
            .create_run(
                "USA",
                "vsm13",
                MethodLabel::Naive,
                &other.sha256,
                &config,
                1,
            )
            .unwrap();
        s.set_status(id, RunStatus::Done, None).unwrap();
    }
    let main = dir.path().join("main.db");
    let mut s = Store::open(&main).unwrap();
    let report = s.merge(&[a, b], &job_of).unwrap();
    assert_eq!((report[0].models, report[1].models), (1, 1), "{report:?}");
    assert!(
        report[1].summary().contains("1 run(s) copied"),
        "{}",
        report[1].summary()
    );
    assert!(report.iter().all(|m| m.conflicts.is_empty()), "{report:?}");
    let mut models: Vec<String> = s
        .runs()
        .unwrap()
        .into_iter()
        .map(|r| r.model_sha256)
        .collect();
    models.sort();
    assert_eq!(models, vec!["ab".repeat(32), "cd".repeat(32)]);
}
