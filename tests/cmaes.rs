//! `--optimizer cmaes` in a real tuning run (the generated one-layer model): stored and shown
//! with the run, and a run killed with SIGKILL after its first generation resumes to the same
//! result as an uninterrupted one, bit for bit (every checkpoint, the tuned rows, every loss).

mod common;

use common::ok;

fn ct<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    common::run_in(env!("CARGO_BIN_EXE_culturetune"), dir, args)
}

use culturetune::store::Store;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn args(db: &str) -> Vec<String> {
    let mut a = common::tiny_tune_args("tiny.gguf", db, "9");
    a.extend(["--optimizer".to_string(), "cmaes".into()]);
    a
}

/// Every checkpoint's (evals, best loss bits, state) and the tuned rows of run `run`.
fn trace(dir: &Path, db: &str, run: i64) -> (Vec<(usize, u64, String)>, Vec<f32>) {
    let s = Store::open(&dir.join(db)).unwrap();
    let points = s
        .checkpoints(run)
        .unwrap()
        .into_iter()
        .map(|c| (c.evals, c.best_loss.to_bits(), c.state))
        .collect();
    (points, s.prompt_for_run(run).unwrap().unwrap().rows)
}

#[test]
fn a_cmaes_run_is_stored_shown_and_resumes_bit_identically_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.gguf"), common::tiny_model().1).unwrap();
    ok(ct(d, &args("whole.db")));
    let show = ok(ct(d, &["--db", "whole.db", "show", "1"].map(String::from)));
    assert!(show.contains("optimizer cmaes"), "{show}");
    let json: Value = serde_json::from_str(&ok(ct(
        d,
        &["--db", "whole.db", "show", "1", "--json"].map(String::from),
    )))
    .unwrap();
    assert_eq!(json["run"]["config"]["de"]["strategy"], "cmaes", "{json}");

    let mut killed = Command::new(env!("CARGO_BIN_EXE_culturetune"));
    killed.args(args("killed.db")).current_dir(d);
    common::kill_after_first_generation(&mut killed);
    let resumed = ok(ct(
        d,
        &["--db", "killed.db", "resume", "1", "--json"].map(String::from),
    ));
    assert!(resumed.contains("\"region\""), "{resumed}");
    let (whole, killed) = (trace(d, "whole.db", 1), trace(d, "killed.db", 1));
    assert_eq!(whole.0.len(), 6, "24 candidates in generations of 4: 0..=5");
    assert!(
        whole.0.last().unwrap().2.contains("\"cma\""),
        "the CMA-ES state is checkpointed"
    );
    assert_eq!(killed, whole);
}
