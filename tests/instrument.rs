//! A new instrument is a survey file plus a targets file, with no code change: the two example
//! instruments of surveys/examples (three dimensions on a 1..4 scale; two on 0..10, whose
//! code "10" is two tokens) are copied into a temporary directory and run end to end on the
//! generated one-layer model: survey, tune (a tiny budget), compare and export.

mod common;

use common::ok;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn ct<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    common::run_in(env!("CARGO_BIN_EXE_culturetune"), dir, args)
}

/// An instrument: its three files as shipped, its dimension codes, its codes' range.
struct Instrument {
    id: &'static str,
    files: [(&'static str, &'static str); 3],
    dims: &'static [&'static str],
    codes: std::ops::RangeInclusive<u32>,
}

const WORK: Instrument = Instrument {
    id: "work-values-4",
    files: [
        (
            "i.toml",
            include_str!("../surveys/examples/work-values-4.toml"),
        ),
        (
            "i-alt.toml",
            include_str!("../surveys/examples/work-values-4-alt.toml"),
        ),
        (
            "t.csv",
            include_str!("../surveys/examples/work-values-4-targets.csv"),
        ),
    ],
    dims: &["AUT", "SEC", "COL"],
    codes: 1..=4,
};

const LIFE: Instrument = Instrument {
    id: "life-11",
    files: [
        ("i.toml", include_str!("../surveys/examples/life-11.toml")),
        (
            "i-alt.toml",
            include_str!("../surveys/examples/life-11-alt.toml"),
        ),
        (
            "t.csv",
            include_str!("../surveys/examples/life-11-targets.csv"),
        ),
    ],
    dims: &["SAT", "TRS"],
    codes: 0..=10,
};

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(ct(dir, args))).unwrap()
}

fn end_to_end(inst: &Instrument) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.gguf"), common::tiny_model().1).unwrap();
    for (name, text) in inst.files {
        std::fs::write(d.join(name), text).unwrap();
    }
    let model = ["--model", "tiny.gguf", "--weights", "original"];
    let with = |args: &[&'static str]| -> Vec<&str> {
        let mut a = vec!["--db", "i.db", "--targets", "t.csv"];
        a.extend_from_slice(args);
        a
    };

    // survey: one probability per code, the instrument's own indices, a loss to its targets.
    let mut args = with(&["survey", "--survey", "i.toml", "--region", "STH", "--json"]);
    args.extend(model);
    args.push("--counterbalance");
    let s = json(d, &args);
    let n_codes = inst.codes.clone().count();
    for item in s["items"].as_array().unwrap() {
        let probs: Vec<f64> = serde_json::from_value(item["probs"].clone()).unwrap();
        assert_eq!(probs.len(), n_codes, "{item}");
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{item}");
        let e = item["expected"].as_f64().unwrap();
        assert!((*inst.codes.start() as f64..=*inst.codes.end() as f64).contains(&e));
    }
    let dims: Vec<&str> = s["indices"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let mut want = inst.dims.to_vec();
    want.sort();
    let mut got = dims.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(s["loss"]["dims_used"], inst.dims.len());

    // tune, a tiny budget, on the instrument with its own held-out wording.
    let mut args = with(&[
        "tune",
        "--survey",
        "i.toml",
        "--heldout-survey",
        "i-alt.toml",
        "--region",
        "STH",
        "--budget",
        "8",
        "--population",
        "4",
        "--dims",
        "4",
        "--json",
    ]);
    args.extend(model);
    let c = json(d, &args);
    let targets = c["targets"][0].as_object().unwrap();
    assert_eq!(targets.len(), inst.dims.len(), "{c}");
    let rows = c["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "three methods on both wordings: {c}");
    for r in rows {
        assert_eq!(r["dims_used"], inst.dims.len(), "{r}");
    }
    // The region's row of the instrument's table is stored with the run: it shows without
    // the targets file.
    let shown = ok(ct(d, &["--db", "i.db", "show", "1"]));
    assert!(shown.contains("region STH (Southland)"), "{shown}");
    for dim in inst.dims {
        assert!(
            shown.lines().any(|l| l.contains(dim) && l.contains("L1")),
            "{shown}"
        );
    }
    // compare and export read the stored run.
    let cmp = json(d, &with(&["compare", "--regions", "STH", "--json"]));
    assert_eq!(cmp[0]["region"], "STH", "{cmp}");
    assert!(cmp[0]["train"]["tuned"].is_f64(), "{cmp}");
    ok(ct(d, &with(&["export", "1", "--out", "prompt"])));
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("prompt/culturetune.json")).unwrap())
            .unwrap();
    assert_eq!(card["region"], "STH", "{card}");
    assert_eq!(card["survey"], inst.id, "{card}");
}

#[test]
fn a_three_dimension_instrument_on_a_four_point_scale_runs_end_to_end() {
    end_to_end(&WORK);
}

#[test]
fn an_instrument_on_a_0_to_10_scale_runs_end_to_end() {
    end_to_end(&LIFE);
}

#[test]
fn an_instrument_needs_its_own_held_out_wording_and_in_range_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, text) in LIFE.files {
        std::fs::write(d.join(name), text).unwrap();
    }
    let o = ct(
        d,
        &[
            "--targets",
            "t.csv",
            "tune",
            "--survey",
            "i.toml",
            "--region",
            "STH",
            "--model",
            "none.gguf",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--heldout-survey FILE"), "{err}");
    // A responses file is checked against each item's own codes.
    std::fs::write(d.join("r.csv"), "l1,l2,l3,l4\n0,10,5,11\n").unwrap();
    let o = ct(d, &["score", "--survey", "i.toml", "--responses", "r.csv"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("column \"l4\": \"11\" is not a valid answer; expected a whole number 0..10"),
        "{err}"
    );
}
