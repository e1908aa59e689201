//! The SQLite store on real files: migrations, round trips, interrupted runs, refusal of
//! files that are not databases.

mod common;

use culturetune::dimension::DimScores;
use culturetune::store::{Checkpoint, EvaluationRecord, MethodLabel, RunStatus, Store, StoreError};
use serde_json::json;

#[test]
fn migrates_an_empty_file_and_round_trips_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/ct.db");
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), 2);
    s.upsert_model(&common::model_record()).unwrap();
    let c = DimScores::full([1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
    s.save_calibration(
        "k1",
        &common::model_record().sha256,
        "vsm13",
        &["USA".into(), "CHI".into()],
        &c,
    )
    .unwrap();
    assert_eq!(
        s.calibration("k1").unwrap(),
        Some((c, vec!["USA".to_string(), "CHI".to_string()]))
    );
    assert_eq!(s.calibration("k2").unwrap(), None);

    let id = s
        .create_run(
            "USA",
            "vsm13",
            MethodLabel::Naive,
            &common::model_record().sha256,
            &json!({"budget": 10}),
            7,
        )
        .unwrap();
    let cp = Checkpoint {
        generation: 3,
        evals: 40,
        best_loss: 12.5,
        mean_loss: 20.25,
        best_scores: c,
        state: "{\"x\":1}".into(),
        elapsed_s: 9.5,
    };
    s.save_checkpoint(id, &cp).unwrap();
    assert_eq!(s.checkpoints(id).unwrap(), vec![cp]);
    let rows: Vec<f32> = (0..8).map(|v| v as f32 * 0.25 - 1.0).collect();
    let pid = s
        .save_prompt(
            Some(id),
            &common::model_record().sha256,
            2,
            4,
            &rows,
            &json!({"region": "USA"}),
        )
        .unwrap();
    let p = s.prompt(pid).unwrap();
    assert_eq!(
        (p.k, p.n_embd, p.rows.clone(), p.card["region"].clone()),
        (2, 4, rows, json!("USA"))
    );
    assert_eq!(s.prompt_for_run(id).unwrap().unwrap().id, pid);
    let e = EvaluationRecord {
        run_id: Some(id),
        model_sha256: common::model_record().sha256,
        method: culturetune::store::MethodLabel::Naive,
        survey: "vsm13".into(),
        region: "USA".into(),
        constants: json!({"policy": "zero"}),
        indices: c,
        loss: 1.5,
        loss_mean: 0.25,
        dims_used: 6,
        digit_mass: 0.9,
        items: Some(culturetune::item_fit::ItemFit {
            train: 0.5,
            heldout: Some(0.75),
            per_item: [("q01".to_string(), 0.5)].into_iter().collect(),
        }),
    };
    s.save_evaluation(&e).unwrap();
    assert_eq!(s.evaluations(Some(id)).unwrap(), vec![e]);
    s.set_status(id, RunStatus::Done, None).unwrap();
    drop(s);

    let s = Store::open(&path).unwrap();
    let run = s.run(id).unwrap();
    assert_eq!(
        (run.status, run.seed, run.config["budget"].clone()),
        (RunStatus::Done, 7, json!(10))
    );
    assert_eq!(s.runs().unwrap().len(), 1);
    assert_eq!(s.integrity_check().unwrap(), "ok");
    assert!(matches!(s.run(99), Err(StoreError::NotFound { .. })));
}

#[test]
fn a_run_whose_process_died_shows_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ct.db");
    let s = Store::open(&path).unwrap();
    s.upsert_model(&common::model_record()).unwrap();
    let dead = s
        .create_run(
            "USA",
            "vsm13",
            MethodLabel::Naive,
            &common::model_record().sha256,
            &json!({}),
            1,
        )
        .unwrap();
    let alive = s
        .create_run(
            "CHI",
            "vsm13",
            MethodLabel::Naive,
            &common::model_record().sha256,
            &json!({}),
            1,
        )
        .unwrap();
    drop(s);
    // Pretend the first run belonged to a process that no longer exists (above Linux's pid_max).
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE runs SET pid = 99999999 WHERE id = ?1", [dead])
        .unwrap();
    drop(c);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.run(dead).unwrap().status, RunStatus::Interrupted);
    assert_eq!(
        s.run(alive).unwrap().status,
        RunStatus::Running,
        "this process is alive"
    );
    assert_eq!(s.claim_run(dead).unwrap(), Ok(RunStatus::Interrupted));
    assert_eq!(s.run(dead).unwrap().status, RunStatus::Running);
    // A second claim (another resume of the same run) is refused: the run is held.
    let me = std::process::id() as i64;
    assert_eq!(
        s.claim_run(dead).unwrap(),
        Err((RunStatus::Running, Some(me)))
    );
    s.set_status(dead, RunStatus::Done, None).unwrap();
    assert_eq!(s.claim_run(dead).unwrap(), Err((RunStatus::Done, Some(me))));
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let text = b"my precious notes, not a database\n".repeat(100);
    std::fs::write(&path, &text).unwrap();
    let err = Store::open(&path).err().expect("refused");
    assert!(matches!(err, StoreError::NotADatabase { .. }));
    assert!(
        err.to_string()
            .contains("notes.db is not a culturetune database"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), text);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no -wal or -shm files left"
    );
    let err = Store::open(dir.path())
        .err()
        .expect("a directory is refused");
    assert!(matches!(err, StoreError::NotADatabase { .. }));
}

#[test]
fn many_connections_opening_a_new_database_at_once_all_succeed() {
    // Before: two processes opening a new file raced in the migration ("table models already
    // exists") or in the switch to WAL ("database is locked").
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || culturetune::store::Store::open(&p).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        let s = culturetune::store::Store::open(&path).unwrap();
        assert!(s.schema_version().unwrap() >= 1);
    }
}
