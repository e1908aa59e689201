//! A population of respondents as the tuning target (`--responses`), on the generated
//! one-layer model: the per-item objective is the mean earth mover's distance to the group's
//! weighted answer distributions over the training items, held-out items are reported apart,
//! the targets are stored with the run, and a run killed after its first generation resumes
//! to the same result bit for bit.

mod common;

use common::ok;
use culturetune::item_fit::ordinal_emd;
use culturetune::store::Store;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn ct<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    common::run_in(env!("CARGO_BIN_EXE_culturetune"), dir, args)
}

const PEOPLE: usize = 30;

/// Respondent `r` of group `g` (0 = A, 1 = B) on item `k` (0-based): A answers 1..3, B 3..5.
fn code(g: usize, r: usize, k: usize) -> usize {
    if g == 0 {
        1 + (r + k) % 3
    } else {
        3 + (r * (k + 1)) % 3
    }
}

fn weight(r: usize) -> f64 {
    1.0 + (r % 2) as f64
}

/// The responses file: an id, a group, a weight and the 24 items, A's rows then B's.
fn population_csv() -> String {
    let mut lines = vec![format!(
        "id,group,w,{}",
        (1..=24)
            .map(|k| format!("q{k:02}"))
            .collect::<Vec<_>>()
            .join(",")
    )];
    for (g, name) in ["A", "B"].iter().enumerate() {
        for r in 0..PEOPLE {
            let codes: Vec<String> = (0..24).map(|k| code(g, r, k).to_string()).collect();
            lines.push(format!(
                "{name}{r},{name},{},{}",
                weight(r),
                codes.join(",")
            ));
        }
    }
    lines.join("\n") + "\n"
}

/// Group B's weighted share of each code on item `k`, computed apart from the program.
fn b_distribution(k: usize) -> [f64; 5] {
    let mut d = [0.0; 5];
    for r in 0..PEOPLE {
        d[code(1, r, k) - 1] += weight(r);
    }
    let total: f64 = d.iter().sum();
    d.map(|v| v / total)
}

fn tune_args(db: &str) -> Vec<String> {
    let mut a = common::tiny_tune_args("tiny.gguf", db, "4");
    a.extend(
        [
            "--responses",
            "people.csv",
            "--group",
            "group=B",
            "--weight",
            "w",
            "--objective",
            "items",
            "--holdout-items",
            "q11,q03",
        ]
        .map(String::from),
    );
    a
}

fn show(dir: &Path, db: &str) -> Value {
    let text = ok(ct(
        dir,
        &["--db", db, "show", "1", "--json"].map(String::from),
    ));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_population_run_minimizes_the_item_distance_and_reports_held_out_items() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.gguf"), common::tiny_model().1).unwrap();
    std::fs::write(d.join("people.csv"), population_csv()).unwrap();

    // score: the group's weighted means.
    let s: Value = serde_json::from_str(&ok(ct(
        d,
        &[
            "score",
            "--responses",
            "people.csv",
            "--group",
            "group=b",
            "--weight",
            "w",
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(s["respondents"], PEOPLE as u64);
    for k in [0, 6, 23] {
        let want: f64 = (1..=5)
            .zip(b_distribution(k))
            .map(|(c, p)| c as f64 * p)
            .sum();
        let got = s["item_means"][format!("q{:02}", k + 1)].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "item {k}: {got} vs {want}");
    }

    ok(ct(d, &tune_args("whole.db")));
    let json = show(d, "whole.db");
    let p = &json["run"]["config"]["population"];
    let sha = culturetune::fingerprint::sha256_file(&d.join("people.csv")).unwrap();
    assert_eq!(p["sha256"], sha.as_str(), "{p}");
    assert_eq!(p["heldout_items"], serde_json::json!(["q03", "q11"]));
    assert_eq!(p["respondents"], PEOPLE as u64);

    // The naive baseline's item distance, recomputed from `survey --json`'s answers and the
    // distributions above: the mean over the 22 training items, and over q03 and q11.
    let survey: Value = serde_json::from_str(&ok(ct(
        d,
        &[
            "survey",
            "--region",
            "USA",
            "--model",
            "tiny.gguf",
            "--weights",
            "original",
            "--json",
        ],
    )))
    .unwrap();
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (k, item) in survey["items"].as_array().unwrap().iter().enumerate() {
        let probs: Vec<f64> = serde_json::from_value(item["probs"].clone()).unwrap();
        let e = ordinal_emd(&probs, &b_distribution(k));
        if k == 2 || k == 10 {
            held.push(e)
        } else {
            train.push(e)
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let evals = json["evaluations"].as_array().unwrap();
    let of = |method: &str| {
        evals
            .iter()
            .find(|e| e["method"] == method && e["survey"] == "vsm13")
            .unwrap_or_else(|| panic!("no {method} evaluation: {json}"))
    };
    let naive = &of("naive")["items"];
    assert!(
        (naive["train"].as_f64().unwrap() - mean(&train)).abs() < 1e-9,
        "{naive}"
    );
    assert!(
        (naive["heldout"].as_f64().unwrap() - mean(&held)).abs() < 1e-9,
        "{naive}"
    );
    assert_eq!(of("naive")["constants"]["policy"], "zero");

    // The search minimized the training items' distance: the tuned prompt's is the best
    // checkpoint's loss, and no worse than the first generation's best.
    let tuned = of("tuned")["items"]["train"].as_f64().unwrap();
    let points = json["trajectory"].as_array().unwrap();
    let best = points.last().unwrap()["best_loss"].as_f64().unwrap();
    assert!((tuned - best).abs() < 1e-9, "tuned {tuned} vs best {best}");
    assert!(best <= points[0]["best_loss"].as_f64().unwrap());
    // Every evaluation on the held-out wording is scored against the same population.
    assert!(evals
        .iter()
        .filter(|e| e["survey"] == "vsm13-alt")
        .all(|e| e["items"]["heldout"].is_f64()));

    let text = ok(ct(d, &["--db", "whole.db", "show", "1"]));
    assert!(
        text.contains("target: population people.csv (group=B, weighted by w; 30 respondents)"),
        "{text}"
    );
    assert!(text.contains("held-out items"), "{text}");
}

#[test]
fn a_killed_population_run_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.gguf"), common::tiny_model().1).unwrap();
    std::fs::write(d.join("people.csv"), population_csv()).unwrap();
    ok(ct(d, &tune_args("whole.db")));
    let mut killed = Command::new(env!("CARGO_BIN_EXE_culturetune"));
    killed.args(tune_args("killed.db")).current_dir(d);
    common::kill_after_first_generation(&mut killed);
    // The targets are stored with the run: it resumes without the responses file.
    std::fs::remove_file(d.join("people.csv")).unwrap();
    ok(ct(d, &["--db", "killed.db", "resume", "1", "--json"]));
    let trace = |db: &str| {
        let s = Store::open(&d.join(db)).unwrap();
        let points: Vec<(usize, u64, String)> = s
            .checkpoints(1)
            .unwrap()
            .into_iter()
            .map(|c| (c.evals, c.best_loss.to_bits(), c.state))
            .collect();
        let evals: Vec<_> = s
            .evaluations(Some(1))
            .unwrap()
            .into_iter()
            .map(|e| e.items)
            .collect();
        (points, s.prompt_for_run(1).unwrap().unwrap().rows, evals)
    };
    let (whole, killed) = (trace("whole.db"), trace("killed.db"));
    assert_eq!(whole.0.len(), 6);
    assert_eq!(whole, killed);
}

#[test]
fn population_settings_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("people.csv"), population_csv()).unwrap();
    let mut bad_weight = population_csv().replace("B7,B,2,", "B7,B,heavy,");
    bad_weight.push('\n');
    std::fs::write(d.join("bad-weight.csv"), bad_weight).unwrap();
    let base = ["tune", "--model", "no-model.gguf", "--db", "x.db"];
    let cases: [(&[&str], &str); 5] = [
        (
            &["--region", "USA", "--group", "group=A"],
            "--group needs --responses FILE.csv",
        ),
        (
            &[
                "--region",
                "USA",
                "--responses",
                "people.csv",
                "--holdout-items",
                "3",
            ],
            "--holdout-items needs --objective items",
        ),
        (
            &[
                "--region",
                "USA",
                "--responses",
                "people.csv",
                "--group",
                "group=Z",
            ],
            "people.csv: no row has group = \"Z\"; values found: A, B",
        ),
        (
            &[
                "--region",
                "USA",
                "--responses",
                "bad-weight.csv",
                "--weight",
                "w",
            ],
            "bad-weight.csv: line 39, column \"w\": \"heavy\" is not a valid weight",
        ),
        (
            &[
                "--region",
                "USA",
                "--responses",
                "people.csv",
                "--weight",
                "kg",
            ],
            "no column \"kg\" (named by --weight)",
        ),
    ];
    for (extra, want) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let o = ct(d, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(!d.join("x.db").exists(), "{args:?} created the database");
    }
}
