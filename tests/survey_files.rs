//! The shipped survey files and the survey file format's validation.

use culturetune::dimension::Dimension;
use culturetune::survey::{Survey, SurveyError};
use std::path::Path;

fn shipped(name: &str) -> Survey {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("surveys")
        .join(name);
    Survey::from_path(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn both_shipped_surveys_load_with_24_items_and_six_formulas() {
    for (file, id) in [("vsm13.toml", "vsm13"), ("vsm13-alt.toml", "vsm13-alt")] {
        let s = shipped(file);
        assert_eq!(s.id, id);
        assert_eq!(s.items.len(), 24, "{file}");
        let ids: Vec<_> = s.items.iter().map(|i| i.id.as_str()).collect();
        let expected: Vec<String> = (1..=24).map(|k| format!("q{k:02}")).collect();
        assert_eq!(ids, expected, "{file}");
        let dims: Vec<_> = s.formulas.iter().map(|f| f.dimension).collect();
        assert_eq!(dims, Dimension::ALL.to_vec(), "{file}");
        for f in &s.formulas {
            for t in &f.terms {
                for i in [t.plus, t.minus].into_iter().flatten() {
                    assert!(
                        i < s.items.len(),
                        "{file}: formula {} names a missing item",
                        f.dimension
                    );
                }
            }
        }
        assert_eq!(
            s,
            Survey::builtin(id)
                .map(|b| Survey {
                    origin: s.origin.clone(),
                    ..b
                })
                .unwrap()
        );
    }
}

#[test]
fn the_two_wordings_share_constructs_scales_and_formulas_but_no_sentence() {
    let a = shipped("vsm13.toml");
    let b = shipped("vsm13-alt.toml");
    assert_eq!(a.formulas, b.formulas);
    for (x, y) in a.items.iter().zip(&b.items) {
        assert_eq!(x.id, y.id);
        assert_eq!(x.construct, y.construct);
        assert_eq!(a.scale_of(x).name, b.scale_of(y).name, "{}", x.id);
        assert_ne!(x.text, y.text, "{}: the held-out wording must differ", x.id);
    }
    for sa in &a.scales {
        let sb = b
            .scales
            .iter()
            .find(|s| s.name == sa.name)
            .expect("same scale names");
        assert_ne!(
            sa.labels, sb.labels,
            "scale {} should be worded differently",
            sa.name
        );
    }
}

#[test]
fn formula_20_is_never_to_always_and_importance_runs_utmost_to_none() {
    // Code directions matter: they decide the sign of every index.
    let s = shipped("vsm13.toml");
    let q20 = &s.items[s.item_index("q20").unwrap()];
    assert_eq!(s.scale_of(q20).labels[0], "never");
    assert_eq!(s.scale_of(q20).labels[4], "always");
    let q01 = &s.items[0];
    assert_eq!(s.scale_of(q01).labels[0], "of the highest importance");
}

/// A minimal valid survey; tests break one thing at a time.
const GOOD: &str = r#"
[survey]
id = "mini"
name = "Mini"
provenance = "test"

[scales.agree]
labels = ["a", "b", "c", "d", "e"]

[[items]]
id = "x1"
scale = "agree"
text = "First?"

[[items]]
id = "x2"
scale = "agree"
text = "Second?"

[dimensions.PDI]
terms = [{ coef = 10, plus = "x1", minus = "x2" }]

[constants]
PDI = 50
"#;

fn load_broken(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my-survey.toml");
    std::fs::write(&path, text).unwrap();
    let err = Survey::from_path(&path).expect_err("should be rejected");
    let msg = err.to_string();
    assert!(
        msg.contains("my-survey.toml"),
        "message must name the file: {msg}"
    );
    msg
}

#[test]
fn a_user_survey_in_the_same_format_loads_with_its_own_formula() {
    let s = Survey::from_toml_str(GOOD, "mini.toml").unwrap();
    assert_eq!(s.items.len(), 2);
    assert_eq!(s.formulas.len(), 1);
    assert_eq!(s.given_constants.get(Dimension::Pdi), Some(50.0));
    assert_eq!(s.formulas[0].raw_value(&[3.0, 1.0]), 20.0);
}

#[test]
fn malformed_toml_names_file_and_line() {
    let msg = load_broken(&GOOD.replace("id = \"x2\"", "id = \"x2"));
    assert!(msg.contains("line 16"), "{msg}");
}

#[test]
fn formula_naming_a_missing_item_is_rejected_with_its_line() {
    let msg = load_broken(&GOOD.replace("minus = \"x2\"", "minus = \"x9\""));
    assert!(
        msg.contains("\"x9\"") && msg.contains("does not define"),
        "{msg}"
    );
    assert!(msg.contains("my-survey.toml:21:"), "{msg}");
    assert!(msg.contains("dimensions.PDI.terms[0].minus"), "{msg}");
}

#[test]
fn duplicate_item_ids_are_rejected() {
    let msg = load_broken(&GOOD.replace("id = \"x2\"", "id = \"x1\""));
    assert!(msg.contains("duplicate item id \"x1\""), "{msg}");
    assert!(msg.contains("items[1].id") && msg.contains(":16:"), "{msg}");
}

#[test]
fn a_scale_without_five_labels_is_rejected() {
    let msg = load_broken(&GOOD.replace(
        "[\"a\", \"b\", \"c\", \"d\", \"e\"]",
        "[\"a\", \"b\", \"c\", \"d\"]",
    ));
    assert!(
        msg.contains("scales.agree.labels")
            && msg.contains("has 4 labels")
            && msg.contains("exactly 5"),
        "{msg}"
    );
}

#[test]
fn unknown_scale_dimension_and_keys_are_rejected() {
    let msg = load_broken(&GOOD.replace(
        "scale = \"agree\"\ntext = \"Second?\"",
        "scale = \"agreement\"\ntext = \"Second?\"",
    ));
    assert!(
        msg.contains("unknown scale \"agreement\"") && msg.contains("defined scales: agree"),
        "{msg}"
    );
    let msg = load_broken(&GOOD.replace("[dimensions.PDI]", "[dimensions.XYZ]"));
    assert!(
        msg.contains("dimensions.XYZ") && msg.contains("expected one of PDI"),
        "{msg}"
    );
    let msg = load_broken(&GOOD.replace("text = \"First?\"", "text = \"First?\"\nwording = 3"));
    assert!(msg.contains("unknown field `wording`"), "{msg}");
}

#[test]
fn a_term_without_items_and_a_missing_file_are_rejected() {
    let msg = load_broken(&GOOD.replace(
        "{ coef = 10, plus = \"x1\", minus = \"x2\" }",
        "{ coef = 10 }",
    ));
    assert!(msg.contains("expected `plus`, `minus` or both"), "{msg}");
    let err = Survey::from_path(Path::new("/nonexistent/survey.toml")).unwrap_err();
    assert!(matches!(err, SurveyError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/survey.toml"));
}
