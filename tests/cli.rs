//! The `culturetune` binary, end to end: real files in, printed results out.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn culturetune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_culturetune"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Two respondents; item k answered (1 + k mod 5) by r1 and 3 by r2.
fn responses_csv() -> String {
    let mut s = String::from("id,");
    s += &(1..=24)
        .map(|k| format!("q{k:02}"))
        .collect::<Vec<_>>()
        .join(",");
    s += "\nr1,";
    s += &(1..=24)
        .map(|k| (1 + k % 5).to_string())
        .collect::<Vec<_>>()
        .join(",");
    s += "\nr2,";
    s += &["3"; 24].join(",");
    s + "\n"
}

#[test]
fn score_prints_hand_computed_indices_and_loss_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "people.csv", &responses_csv());
    let o = culturetune(&["score", "--responses", &csv, "--region", "usa", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // r1 gives 1 + k mod 5, r2 gives 3, so item means are m_k = (4 + k mod 5) / 2, e.g.
    // PDI = 35(m07-m02) + 25(m20-m23) = 35(3-3) + 25(2-3.5) = -37.5.
    let m = |k: u32| (4.0 + (k % 5) as f64) / 2.0;
    let want = [
        35.0 * (m(7) - m(2)) + 25.0 * (m(20) - m(23)),
        35.0 * (m(4) - m(1)) + 35.0 * (m(9) - m(6)),
        35.0 * (m(5) - m(3)) + 35.0 * (m(8) - m(10)),
        40.0 * (m(18) - m(15)) + 25.0 * (m(21) - m(24)),
        40.0 * (m(13) - m(14)) + 25.0 * (m(19) - m(22)),
        35.0 * (m(12) - m(11)) + 40.0 * (m(17) - m(16)),
    ];
    assert_eq!(want, [-37.5, 105.0, 0.0, 22.5, 5.0, 37.5]);
    let idx = &v["indices"];
    for (code, w) in ["PDI", "IDV", "MAS", "UAI", "LTO", "IVR"].iter().zip(want) {
        assert_eq!(idx[code].as_f64().unwrap(), w, "{code}");
    }
    assert_eq!(v["respondents"], 2);
    assert_eq!(v["region"]["code"], "USA");
    // Loss vs USA 40 91 62 46 26 68 with zero constants.
    let l1: f64 = want
        .iter()
        .zip([40.0, 91.0, 62.0, 46.0, 26.0, 68.0])
        .map(|(a, b): (&f64, f64)| (a - b).abs())
        .sum();
    assert_eq!(v["loss"]["l1"].as_f64().unwrap(), l1);
    assert_eq!(v["loss"]["dims_used"], 6);
    assert_eq!(v["constants"]["policy"], "zero");
}

#[test]
fn score_table_reports_constants_and_loss_over_available_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "people.csv", &responses_csv());
    let o = culturetune(&[
        "score",
        "--responses",
        &csv,
        "--region",
        "Saudi Arabia",
        "--constants",
        "LTO=20,IVR=50",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("constants: given (PDI=0 IDV=0 MAS=0 UAI=0 LTO=20 IVR=50)"),
        "{out}"
    );
    // LTO = 5 + 20 = 25 vs 36; IVR = 37.5 + 50 = 87.5 vs 52 -> 11 + 35.5 = 46.5
    assert!(
        out.contains("L1 = 46.5 over 2 of 6 dimensions (mean 23.2)"),
        "{out}"
    );
}

#[test]
fn regions_json_lists_every_region() {
    let o = culturetune(&["regions", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 111);
    let usa = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "USA")
        .unwrap();
    assert_eq!(usa["scores"]["IDV"], 91.0);
}

#[test]
fn bad_input_fails_cleanly_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "people.csv", &responses_csv());
    let o = culturetune(&["score", "--responses", &csv, "--region", "Germny"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown region \"Germny\"; closest matches: GER (Germany)"),
        "{}",
        stderr(&o)
    );

    let bad = write(
        dir.path(),
        "bad.csv",
        &responses_csv().replace("\nr2,3,", "\nr2,7,"),
    );
    let o = culturetune(&["score", "--responses", &bad]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("bad.csv: line 3, column \"q01\": \"7\""),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"));

    let survey = write(dir.path(), "s.toml", "[survey]\nid = 3\n");
    let o = culturetune(&["score", "--responses", &csv, "--survey", &survey]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("s.toml: TOML parse error at line 2"),
        "{}",
        stderr(&o)
    );

    let o = culturetune(&["score", "--responses", &csv, "--constants", "PDI=abc"]);
    assert!(
        stderr(&o).contains("--constants: PDI=\"abc\" is not a finite number"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn info_reads_the_model_header_and_errors_carry_stable_codes() {
    let o = culturetune(&["info", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["quantization"], "Q4_1");
    assert_eq!(v["n_embd"], 576);
    assert_eq!(v["n_layer"], 30);
    assert_eq!(v["is_default"], true);
    let params = v["n_params"].as_u64().unwrap();
    assert!((130_000_000..140_000_000).contains(&params), "{params}");
    // The device report: this build has only the CPU, so the plan offloads nothing. The
    // plan's sizes come from the header: 30 layers of 3.5 M weights each, Q4_1 (2.2 MB), plus
    // an F16 KV cache of 2 x 8192 cells x 192 (3 of 9 heads of 64) x 2 bytes; the output is
    // the tied Q8_0 embedding (576 x 49152 x 34/32 bytes) and the F32 output norm.
    assert_eq!(v["devices"][0]["kind"], "cpu", "{v}");
    let plan = &v["gpu_plan"];
    assert_eq!(plan["gpu_layers"], 0, "{plan}");
    assert_eq!(plan["n_layer"], 30);
    assert_eq!(plan["note"], "no GPU: every layer runs on the CPU");
    assert_eq!(plan["output_bytes"], 576 * 49152 * 34 / 32 + 576 * 4);
    let kv = 2 * 8192 * 192 * 2;
    let per_layer = plan["per_layer_bytes"].as_u64().unwrap();
    assert!(
        (kv + 2_000_000..kv + 2_500_000).contains(&per_layer),
        "{plan}"
    );
    // --gpu-layers takes `auto` or a count and names what it expected otherwise.
    let o = culturetune(&["survey", "--region", "USA", "--gpu-layers", "all"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("expected `auto` or a number of layers"),
        "{}",
        stderr(&o)
    );

    // --json-errors: the last stderr line is {code, message}; the exit status stays 1.
    let dir = tempfile::tempdir().unwrap();
    let fake = write(dir.path(), "fake.gguf", "not a model\n");
    let o = culturetune(&["info", "--model", &fake, "--json-errors"]);
    assert_eq!(o.status.code(), Some(1));
    let last = stderr(&o).lines().last().unwrap().to_string();
    let e: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(e["code"], "not_gguf");
    assert!(e["message"].as_str().unwrap().contains("fake.gguf"), "{e}");
    let o = culturetune(&[
        "regions",
        "--db",
        "/dev/null/x.db",
        "--json-errors",
        "--targets",
        "/nonexistent.csv",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent.csv"), "{}", stderr(&o));
}

#[test]
fn a_context_too_small_for_the_survey_is_an_error_not_an_abort() {
    // These used to end in a llama.cpp assertion (SIGABRT): n_batch (cut to n_ctx) was
    // smaller than the 256 outputs llama.cpp reserves for 256 sequences.
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let m = model.display().to_string();
    for n_ctx in ["10", "64", "65", "100", "128", "255", "1000"] {
        let o = culturetune(&["survey", "--model", &m, "--region", "USA", "--n-ctx", n_ctx]);
        assert_eq!(o.status.code(), Some(1), "--n-ctx {n_ctx}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!("n_ctx is {n_ctx}")) && e.contains("--n-ctx"),
            "--n-ctx {n_ctx}: {e}"
        );
    }
}

/// A new database at `db` that knows the model "m.gguf" (sha256 "abc"), as runs need.
fn store_with_model(db: &Path) -> culturetune::store::Store {
    let store = culturetune::store::Store::open(db).unwrap();
    store
        .upsert_model(&culturetune::store::ModelRecord {
            sha256: "abc".into(),
            path: "m.gguf".into(),
            name: "m".into(),
            architecture: "llama".into(),
            n_embd: 8,
            file_size: 1,
        })
        .unwrap();
    store
}

#[test]
fn show_prints_a_run_with_a_short_stored_hash_in_plain_words() {
    // A database written by another tool (or edited by hand) may hold a short hash; `show`
    // used to panic slicing it, and printed Rust debug text ("budget Some(144)").
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let config = culturetune::tuning::TuneConfig::new("CHI", "m.gguf", "abc", 7);
    let store = store_with_model(&db);
    let id = store
        .create_run(
            "CHI",
            "vsm13",
            culturetune::store::MethodLabel::Naive,
            "abc",
            &serde_json::to_value(&config).unwrap(),
            7,
        )
        .unwrap();
    drop(store);
    let o = culturetune(&["--db", &db.display().to_string(), "show", &id.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("(sha256 abc)"), "{text}");
    assert!(text.contains("weights auto; optimizer shade"), "{text}");
    assert!(text.contains("budget 288,"), "{text}");
    assert!(text.contains("placement answer"), "{text}");
    assert!(
        text.contains(
            "training survey vsm13, held-out survey vsm13-alt; panel 1, one option order"
        ),
        "{text}"
    );
    assert!(!text.contains("Some("), "{text}");
}

#[test]
fn compare_names_each_rows_surveys_and_says_when_rows_were_trained_on_different_ones() {
    use culturetune::dimension::DimScores;
    use culturetune::store::{EvaluationRecord, MethodLabel, RunStatus};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let store = store_with_model(&db);
    // USA trained on two wordings (built-in id), CHI on wording A.
    for (region, survey, loss) in [("USA", "vsm13-ac", 62.5), ("CHI", "vsm13", 101.25)] {
        let mut config = culturetune::tuning::TuneConfig::new(region, "m.gguf", "abc", 7);
        config.survey = survey.into();
        let id = store
            .create_run(
                region,
                survey,
                culturetune::store::MethodLabel::Naive,
                "abc",
                &serde_json::to_value(&config).unwrap(),
                7,
            )
            .unwrap();
        for (s, l) in [(survey, loss), ("vsm13-alt", loss + 50.0)] {
            store
                .save_evaluation(&EvaluationRecord {
                    run_id: Some(id),
                    model_sha256: "abc".into(),
                    method: MethodLabel::Tuned,
                    survey: s.into(),
                    region: region.into(),
                    constants: serde_json::json!({"policy": "zero"}),
                    indices: DimScores::full([50.0; 6]),
                    loss: l,
                    loss_mean: l / 6.0,
                    dims_used: 6,
                    digit_mass: 0.98,
                    items: None,
                })
                .unwrap();
        }
        store.set_status(id, RunStatus::Done, None).unwrap();
    }
    drop(store);
    let db = db.display().to_string();
    let o = culturetune(&["--db", &db, "compare", "--regions", "USA,CHI", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["train_survey"], "vsm13-ac");
    assert_eq!(v[0]["train"]["tuned"], 62.5);
    assert_eq!(v[1]["train_survey"], "vsm13");
    assert_eq!(v[1]["heldout_survey"], "vsm13-alt");
    assert_eq!(v[1]["heldout"]["tuned"], 151.25);

    let o = culturetune(&["--db", &db, "compare", "--regions", "USA,CHI"]);
    let text = stdout(&o);
    assert!(text.contains("held-out survey vsm13-alt"), "{text}");
    assert!(
        text.contains("the runs were trained on different surveys (USA vsm13-ac, CHI vsm13)"),
        "{text}"
    );
    let o = culturetune(&["--db", &db, "compare", "--regions", "CHI"]);
    let text = stdout(&o);
    assert!(text.contains("training survey vsm13 "), "{text}");
    assert!(!text.contains("different surveys"), "{text}");
}

#[test]
fn calibrate_takes_any_survey_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    std::fs::write(&model, common::tiny_model().1).unwrap();
    let db = dir.path().join("cal.db").display().to_string();
    let m = model.display().to_string();
    let calibrate = |surveys: &str| {
        let o = culturetune(&[
            "--db",
            &db,
            "calibrate",
            "--model",
            &m,
            "--weights",
            "original",
            "--regions",
            "USA,CHI",
            "--survey",
            surveys,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let v = calibrate("vsm13-c,surveys/vsm13-alt.toml");
    let cals = v["calibrations"].as_array().unwrap();
    let ids: Vec<&str> = cals.iter().map(|c| c["survey"].as_str().unwrap()).collect();
    assert_eq!(ids, ["vsm13-c", "vsm13-alt"]);
    for c in cals {
        assert_eq!(c["constants"].as_object().unwrap().len(), 6, "{c}");
    }
    // Deterministic: the same survey calibrates to the same constants.
    assert_eq!(calibrate("vsm13-c")["calibrations"][0], cals[0]);
    let o = culturetune(&["--db", &db, "calibrate", "--model", &m, "--survey", "vsm14"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("vsm14"), "{}", stderr(&o));
}

/// Bad tune settings are refused by the one resolve step before the model file is touched:
/// with a model path that does not exist, the error still names the setting.
#[test]
fn bad_tune_settings_are_refused_before_the_model_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf").display().to_string();
    let db = dir.path().join("runs.db").display().to_string();
    for (extra, want) in [
        (
            &["--n-ctx", "255"][..],
            "n_ctx is 255; it must be at least 256",
        ),
        (
            &["--population", "3", "--budget", "30"][..],
            "population of 4..=10000",
        ),
        (
            &["--budget", "5"][..],
            "at least one generation of --population 12",
        ),
        (&["--survey", "no-such-survey"][..], "no-such-survey"),
    ] {
        let mut a = vec!["tune", "--region", "USA", "--model", &missing, "--db", &db];
        a.extend_from_slice(extra);
        let o = culturetune(&a);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{extra:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("does not exist"), "{}", stderr(&o));
    }
    let runs = culturetune(&["runs", "--db", &db, "--json"]);
    assert_eq!(stdout(&runs).trim(), "[]", "no run was created");
}
