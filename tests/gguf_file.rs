//! `engine::gguf_file`: a GGUF read whole and written back unchanged is the same file, byte for
//! byte (the generated model and the default model), and a written file passes the same
//! validation as any model file.

mod common;

use culturetune::engine::gguf_file::{GgufFile, MetaValue};
use std::path::Path;

fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut GgufFile)) {
    let source = GgufFile::read(src).unwrap();
    let mut g = source.clone();
    edit(&mut g);
    let mut out = std::io::BufWriter::new(std::fs::File::create(dst).unwrap());
    g.write_copying(&source, &mut out).unwrap();
}

#[test]
fn a_file_written_back_unchanged_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.gguf");
    std::fs::write(&tiny, common::tiny_model().1).unwrap();
    let default =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    for src in [tiny.as_path(), default.as_path()] {
        let dst = dir.path().join("copy.gguf");
        rewrite(src, &dst, |_| {});
        assert!(
            std::fs::read(src).unwrap() == std::fs::read(&dst).unwrap(),
            "{} changed on the way through",
            src.display()
        );
    }
}

#[test]
fn an_edited_file_is_validated_again_and_keeps_its_edit() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.gguf");
    std::fs::write(&tiny, common::tiny_model().1).unwrap();
    let dst = dir.path().join("edited.gguf");
    rewrite(&tiny, &dst, |g| {
        g.set("general.name", MetaValue::string("edited"))
    });
    let back = GgufFile::read(&dst).unwrap();
    assert_eq!(
        back.get("general.name").and_then(MetaValue::as_str),
        Some("edited")
    );
    assert_eq!(
        culturetune::engine::inspect(&dst).unwrap().name.as_deref(),
        Some("edited")
    );
    // A vocabulary one token short of the embeddings is refused, naming the key.
    let bad = dir.path().join("bad.gguf");
    rewrite(&tiny, &bad, |g| {
        let Some(MetaValue::Array(et, mut v)) = g.get("tokenizer.ggml.tokens").cloned() else {
            panic!("no vocabulary")
        };
        v.pop();
        g.set("tokenizer.ggml.tokens", MetaValue::Array(et, v));
    });
    let err = GgufFile::read(&bad).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.tokens"), "{err}");
}
