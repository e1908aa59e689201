//! A database written by an earlier culturetune must keep working: `tests/fixtures/runs-v1.db`
//! holds one finished run (1) and one run killed after its first checkpoint (2), both tuned
//! on the generated one-layer model (`tests/common`, whose bytes are deterministic, so the
//! file's SHA-256 matches the stored one) given as the relative path `tiny.gguf`. Today's
//! binary must list, show and compare them and resume run 2 to the end.
//!
//! The fixture was written with `cargo test --test fixture_db -- --ignored write_fixture`
//! (the schema and the stored configuration are those of main on 2026-12-01); rewrite it
//! only on purpose, since its point is to stay old.

mod common;

use std::path::Path;
use std::process::{Command, Output};

const FIXTURE: &str = "tests/fixtures/runs-v1.db";

fn culturetune<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_culturetune"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tune_args(seed: &str) -> Vec<String> {
    common::tiny_tune_args("tiny.gguf", "runs.db", seed)
}

#[test]
fn an_older_database_opens_shows_compares_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(FIXTURE, d.join("runs.db")).unwrap();
    std::fs::write(d.join("tiny.gguf"), common::tiny_model().1).unwrap();
    let runs: serde_json::Value =
        serde_json::from_str(&ok(&culturetune(d, &["runs", "--db", "runs.db", "--json"]))).unwrap();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["interrupted", "done"], "{runs}");
    let show = ok(&culturetune(d, &["show", "1", "--db", "runs.db"]));
    assert!(show.contains("status done"), "{show}");
    let compare = ok(&culturetune(
        d,
        &["compare", "--regions", "USA", "--db", "runs.db"],
    ));
    assert!(compare.contains("USA"), "{compare}");
    let resumed = culturetune(d, &["resume", "2", "--db", "runs.db", "--events", "jsonl"]);
    let events = ok(&resumed);
    assert!(events.contains("\"resumed\":true"), "{events}");
    let v: serde_json::Value = serde_json::from_str(&ok(&culturetune(
        d,
        &["show", "2", "--db", "runs.db", "--json"],
    )))
    .unwrap();
    assert_eq!(v["run"]["status"], "done", "{v}");
}

/// Writes the fixture (run by hand, on purpose): run 1 to the end, run 2 killed (SIGKILL)
/// after its first checkpoint, the WAL folded into the file.
#[test]
#[ignore]
fn write_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.gguf"), common::tiny_model().1).unwrap();
    ok(&culturetune(d, &tune_args("1")));
    common::kill_after_first_generation(
        Command::new(env!("CARGO_BIN_EXE_culturetune"))
            .args(tune_args("2"))
            .current_dir(d),
    );
    // Marked interrupted, as the next command that opened the database for writing would
    // (so the stored pid, which may be alive on another machine, never matters).
    let c = rusqlite::Connection::open(d.join("runs.db")).unwrap();
    c.execute("UPDATE runs SET status = 'interrupted' WHERE id = 2", [])
        .unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    c.execute_batch("PRAGMA journal_mode = DELETE").unwrap();
    drop(c);
    std::fs::create_dir_all("tests/fixtures").unwrap();
    std::fs::copy(d.join("runs.db"), FIXTURE).unwrap();
}
