//! Property test of the GGUF validation (issue 12): random edits of a real GGUF header (keys,
//! value types, counts, array lengths, string lengths, tensor shapes, types and offsets, bytes
//! anywhere, truncation). Properties:
//!
//! 1. `inspect_bytes` never panics (10 000 mutants here; `CULTURETUNE_FUZZ_CASES` for more);
//! 2. every mutant it accepts loads and answers the survey in llama.cpp without an abort:
//!    checked in child processes (`culturetune survey`) over a corpus of accepted mutants,
//!    each of which must exit 0 or 1, never by a signal or a panic.
//!
//! The model is tests/common's tiny llama, small enough that one survey takes a second.

use culturetune::engine::inspect_bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::process::Command;

mod common;
use common::{tiny_model, tiny_model_with, Writer, N_EMBD};

/// Values that break parsers: zero, one, all ones, powers of two at type boundaries, and the
/// original nudged.
fn interesting(orig: u64, width: usize, rng: &mut ChaCha8Rng) -> u64 {
    let max = if width == 4 {
        u64::from(u32::MAX)
    } else {
        u64::MAX
    };
    match rng.random_range(0..10) {
        0 => 0,
        1 => 1,
        2 => max,
        3 => max / 2 + 1,
        4 => 1 << rng.random_range(0..(width as u32 * 8)),
        5 => orig.wrapping_add(1) & max,
        6 => orig.wrapping_sub(1) & max,
        7 => orig.wrapping_mul(2) & max,
        8 => rng.random_range(0..13), // another GGUF value type or a small count
        _ => rng.random::<u64>() & max,
    }
}

fn mutate(seed: &Writer, file: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let header = seed.b.len();
    let mut m = file.to_vec();
    let edits = rng.random_range(1..=3);
    for _ in 0..edits {
        match rng.random_range(0..6) {
            // An integer field: a count, a length, a type, a dimension, an offset, a value.
            0..=2 => {
                let (at, width) = seed.fields[rng.random_range(0..seed.fields.len())];
                if at + width > m.len() {
                    continue;
                }
                let mut cur = [0u8; 8];
                cur[..width].copy_from_slice(&m[at..at + width]);
                let v = interesting(u64::from_le_bytes(cur), width, rng);
                m[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            // Random bytes anywhere in the header (key names, strings, floats).
            3 => {
                let at = rng.random_range(0..header.min(m.len()));
                m[at] = rng.random();
            }
            // Truncation anywhere.
            4 => {
                let at = rng.random_range(0..m.len());
                m.truncate(at);
            }
            // A slice of the header deleted or duplicated.
            _ => {
                let at = rng.random_range(0..header.min(m.len()));
                let len = rng.random_range(1..=16).min(m.len() - at);
                if rng.random_bool(0.5) {
                    m.drain(at..at + len);
                } else {
                    let dup: Vec<u8> = m[at..at + len].to_vec();
                    m.splice(at..at, dup);
                }
            }
        }
    }
    m
}

#[test]
fn the_seed_model_is_valid_and_answers_the_survey() {
    let (_, file) = tiny_model();
    let info = inspect_bytes(&file, "seed.gguf").expect("the seed model is valid");
    assert_eq!(info.n_layer, Some(1));
    assert_eq!(info.n_embd, Some(N_EMBD));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.gguf");
    std::fs::write(&path, &file).unwrap();
    let o = survey(&path);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_vocabulary_with_two_equal_tokens_is_refused_before_llama_cpp_asserts_on_it() {
    // Found by the property test below (llama-vocab.cpp: GGML_ASSERT(id_to_token.size() ==
    // token_to_id.size()) aborted the process).
    let (_, file) = tiny_model_with(|t| t[66] = t[65].clone());
    let e = inspect_bytes(&file, "dup.gguf").unwrap_err().to_string();
    assert_eq!(
        e,
        "dup.gguf is not a usable GGUF model: tokenizer.ggml.tokens: tokens 65 and 66 have the same text"
    );
}

fn survey(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_culturetune"))
        .args([
            "survey",
            "--region",
            "USA",
            "--weights",
            "original",
            "--threads",
            "2",
        ])
        .args(["--n-ctx", "16384", "--model"])
        .arg(path)
        .output()
        .expect("the binary runs")
}

#[test]
fn random_header_edits_never_panic_and_accepted_files_never_abort_llama_cpp() {
    let (seed, file) = tiny_model();
    let cases: usize = std::env::var("CULTURETUNE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let corpus_size: usize = std::env::var("CULTURETUNE_FUZZ_LOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut rng = ChaCha8Rng::seed_from_u64(2013);
    let mut accepted = Vec::new();
    let mut rejected = 0usize;
    for case in 0..cases {
        let m = mutate(&seed, &file, &mut rng);
        let r = std::panic::catch_unwind(|| inspect_bytes(&m, "mutant.gguf"));
        match r {
            Err(_) => panic!("inspect_bytes panicked on case {case} (seed 2013)"),
            Ok(Ok(_)) if m != file => accepted.push((case, m)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                rejected += 1;
                // Every rejection names the file.
                assert!(e.to_string().contains("mutant.gguf"), "case {case}: {e}");
            }
        }
    }
    assert!(
        rejected > cases / 2 && !accepted.is_empty(),
        "{rejected} of {cases} rejected, {} accepted: the mutations do not exercise both sides",
        accepted.len()
    );

    // Property 2 on a spread of the accepted mutants.
    let dir = tempfile::tempdir().unwrap();
    let step = (accepted.len() / corpus_size.max(1)).max(1);
    let mut failures = Vec::new();
    for (case, m) in accepted.iter().step_by(step).take(corpus_size) {
        let path = dir.path().join(format!("mutant-{case}.gguf"));
        std::fs::write(&path, m).unwrap();
        let o = survey(&path);
        match o.status.code() {
            Some(0) | Some(1) => {}
            other => failures.push(format!(
                "case {case}: exit {other:?} (killed by a signal if None): {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
        }
        std::fs::remove_file(&path).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
