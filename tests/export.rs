//! Export and import of soft prompts as PEFT adapter directories.

use culturetune::export::{export, import, ExportError};
use serde_json::{json, Value};
use std::path::Path;

fn rows(k: usize, n: usize) -> Vec<f32> {
    (0..k * n)
        .map(|i| (i as f32 * 0.37).sin() * 0.05 + 1e-7 * i as f32)
        .collect()
}

fn card() -> Value {
    json!({"model_sha256": "ab", "region": "USA", "seed": 3})
}

#[test]
fn round_trip_is_exact_and_peft_files_are_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("usa");
    let r = rows(9, 576);
    export(&out, &r, 9, 576, &card(), "SmolLM2", false).unwrap();
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "PROMPT_TUNING");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["num_virtual_tokens"], 9);
    assert_eq!(cfg["token_dim"], 576);
    let back = import(&out, Some(576)).unwrap();
    assert_eq!((back.k, back.n_embd), (9, 576));
    assert_eq!(back.rows, r, "bit-exact");
    assert_eq!(back.card["region"], "USA");
    assert_eq!(back.card["format"], "culturetune-soft-prompt/1");
    // Nothing else was left in the parent directory (no temporary directories).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn an_existing_target_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    export(&out, &rows(2, 4), 2, 4, &card(), "m", false).unwrap();
    let err = export(&out, &rows(3, 4), 3, 4, &card(), "m", false).unwrap_err();
    assert!(matches!(err, ExportError::Exists(_)), "{err}");
    assert!(err.to_string().contains("--force"));
    assert_eq!(import(&out, None).unwrap().k, 2, "untouched");
    export(&out, &rows(3, 4), 3, 4, &card(), "m", true).unwrap();
    assert_eq!(import(&out, None).unwrap().k, 3);
    assert!(export(
        &dir.path().join("nan"),
        &[f32::NAN; 8],
        2,
        4,
        &card(),
        "m",
        false
    )
    .is_err());
    assert!(!dir.path().join("nan").exists());
}

fn exported(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("p");
    export(&out, &rows(3, 8), 3, 8, &card(), "m", false).unwrap();
    out
}

fn msg(r: Result<culturetune::export::SoftPromptFile, ExportError>) -> String {
    r.expect_err("must fail").to_string()
}

#[test]
fn bad_directories_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = exported(dir.path());
    let m = msg(import(&out, Some(576)));
    assert!(
        m.contains("8 wide but the model's embeddings are 576 wide"),
        "{m}"
    );

    // NaN inside the tensor (same shape, valid file).
    let st = out.join("adapter_model.safetensors");
    let mut bytes = std::fs::read(&st).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&st, &bytes).unwrap();
    let m = msg(import(&out, Some(8)));
    assert!(m.contains("row 2, column 7") && m.contains("NaN"), "{m}");

    // Truncated safetensors.
    std::fs::write(&st, &bytes[..n / 2]).unwrap();
    let m = msg(import(&out, Some(8)));
    assert!(
        m.contains("adapter_model.safetensors") && m.contains("not a valid safetensors file"),
        "{m}"
    );

    // Missing config.
    let out2 = dir.path().join("p2");
    export(&out2, &rows(3, 8), 3, 8, &card(), "m", false).unwrap();
    std::fs::remove_file(out2.join("adapter_config.json")).unwrap();
    let m = msg(import(&out2, Some(8)));
    assert!(m.contains("adapter_config.json"), "{m}");

    // Config that disagrees with the tensor.
    let out3 = dir.path().join("p3");
    export(&out3, &rows(3, 8), 3, 8, &card(), "m", false).unwrap();
    let cfg = std::fs::read_to_string(out3.join("adapter_config.json"))
        .unwrap()
        .replace("\"num_virtual_tokens\": 3", "\"num_virtual_tokens\": 4");
    std::fs::write(out3.join("adapter_config.json"), cfg).unwrap();
    let m = msg(import(&out3, Some(8)));
    assert!(m.contains("shape [3, 8]") && m.contains("[4, 8]"), "{m}");

    assert!(msg(import(&dir.path().join("none"), None)).contains("not a directory"));
}

#[test]
fn force_replaces_only_a_previous_export() {
    let dir = tempfile::tempdir().unwrap();
    // A folder of the user's own files, even with a culturetune.json among them.
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("thesis.tex"), "years of work").unwrap();
    std::fs::write(mine.join("culturetune.json"), "{}").unwrap();
    let m = export(&mine, &rows(2, 4), 2, 4, &card(), "m", true)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("thesis.tex") && m.contains("previous export"),
        "{m}"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("thesis.tex")).unwrap(),
        "years of work"
    );
    // An export with a file added by the user is not replaced either.
    let out = exported(dir.path());
    std::fs::write(out.join("notes.md"), "mine").unwrap();
    assert!(export(&out, &rows(2, 4), 2, 4, &card(), "m", true).is_err());
    assert_eq!(import(&out, None).unwrap().k, 3, "untouched");
    std::fs::remove_file(out.join("notes.md")).unwrap();
    export(&out, &rows(2, 4), 2, 4, &card(), "m", true).unwrap();
    assert_eq!(
        import(&out, None).unwrap().k,
        2,
        "a previous export is replaced"
    );
    // Not a directory: refused, kept.
    let file = dir.path().join("file");
    std::fs::write(&file, "keep").unwrap();
    let m = export(&file, &rows(2, 4), 2, 4, &card(), "m", true)
        .unwrap_err()
        .to_string();
    assert!(m.contains("a regular file"), "{m}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    // A symlink to a previous export is not followed.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    assert!(export(&link, &rows(2, 4), 2, 4, &card(), "m", true).is_err());
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    // Nothing left behind but what the test made.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["file", "link", "mine", "p"]);
}

#[test]
fn import_checks_the_card_against_the_tensor_and_its_enums() {
    let dir = tempfile::tempdir().unwrap();
    let out = exported(dir.path());
    let card_path = out.join("culturetune.json");
    let original = std::fs::read_to_string(&card_path).unwrap();
    for (edit, want) in [
        (json!({"k": 999}), "k is 999"),
        (json!({"n_embd": 64}), "n_embd is 64"),
        (
            json!({"insertion": {"placement": "bogus"}}),
            "insertion.placement",
        ),
        (
            json!({"insertion": {"placement": 42}}),
            "insertion.placement is 42",
        ),
        (
            json!({"insertion": {"placement": "answer", "anchor": "x"}}),
            "insertion.anchor",
        ),
        (json!({"insertion": 42}), "insertion is 42"),
    ] {
        let mut card: Value = serde_json::from_str(&original).unwrap();
        for (k, v) in edit.as_object().unwrap() {
            card[k] = v.clone();
        }
        std::fs::write(&card_path, card.to_string()).unwrap();
        let m = msg(import(&out, Some(8)));
        assert!(m.contains("culturetune.json") && m.contains(want), "{m}");
    }
}
