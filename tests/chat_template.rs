//! `--chat-template` on a model file without a template (the generated one-layer model with
//! its `tokenizer.chat_template` left out): refused without it, naming the option; with it a
//! tiny tuning run works, stores the template with the run, and `eval` re-evaluates the run
//! with the stored template (the file still has none). `plan` carries it into its jobs.

mod common;

use common::ok;

fn ct<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    common::run_in(env!("CARGO_BIN_EXE_culturetune"), dir, args)
}

use serde_json::Value;
use std::path::Path;
use std::process::Output;

#[test]
fn a_model_without_a_template_runs_with_a_named_one_stored_with_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("plain.gguf"),
        common::tiny_model_opts(|_| {}, false).1,
    )
    .unwrap();
    let mut args = common::tiny_tune_args("plain.gguf", "runs.db", "5");
    let refused = ct(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let e = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{e}");
    assert!(
        e.contains("has no chat template") && e.contains("--chat-template"),
        "{e}"
    );

    args.extend(["--chat-template".to_string(), "chatml".into()]);
    ok(ct(d, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    let show: Value =
        serde_json::from_str(&ok(ct(d, &["--db", "runs.db", "show", "1", "--json"]))).unwrap();
    assert_eq!(show["run"]["status"], "done", "{show}");
    assert_eq!(show["run"]["config"]["chat_template"], "chatml", "{show}");
    let eval: Value =
        serde_json::from_str(&ok(ct(d, &["--db", "runs.db", "eval", "1", "--json"]))).unwrap();
    // The evaluations eval stored again equal the run's own, to the last bit.
    let mut stored: Vec<u64> = show["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loss"].as_f64().unwrap().to_bits())
        .collect();
    let mut again: Vec<u64> = eval["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{eval}"))
        .iter()
        .map(|r| r["loss"].as_f64().unwrap().to_bits())
        .collect();
    stored.sort_unstable();
    again.sort_unstable();
    assert_eq!(again.len(), 6, "{eval}");
    assert_eq!(again, stored, "eval uses the stored template");

    let plan = ok(ct(
        d,
        &[
            "plan",
            "--model",
            "plain.gguf",
            "--weights",
            "original",
            "--region",
            "USA",
            "--budget",
            "4",
            "--population",
            "4",
            "--chat-template",
            "chatml",
        ],
    ));
    let job: Value = serde_json::from_str(plan.lines().next().unwrap()).unwrap();
    assert_eq!(job["config"]["chat_template"], "chatml", "{job}");
    let bad = ct(
        d,
        &[
            "survey",
            "--region",
            "USA",
            "--model",
            "plain.gguf",
            "--chat-template",
            "nonesuch",
        ],
    );
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(
        e.contains("--chat-template nonesuch: not a file") && e.contains("chatml"),
        "{e}"
    );
}
