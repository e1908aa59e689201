//! Property test of the GGUF validation (issue 12): random edits of a real GGUF header (keys,
//! value types, counts, array lengths, string lengths, tensor shapes, types and offsets, bytes
//! anywhere, truncation). Properties:
//!
//! 1. `inspect_bytes` never panics (10 000 mutants here; `CULTURETUNE_FUZZ_CASES` for more);
//! 2. every mutant it accepts loads and answers the survey in llama.cpp without an abort:
//!    checked in child processes (`culturetune survey`) over a corpus of accepted mutants,
//!    each of which must exit 0 or 1, never by a signal or a panic.
//!
//! The model is written here: a complete llama-architecture GGUF (one layer, n_embd 64) with a
//! byte-level BPE vocabulary and a ChatML template, small enough that one survey takes a second.

use culturetune::engine::inspect_bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::process::Command;

/// A GGUF writer that remembers where each integer field is, so mutations can target them.
#[derive(Default)]
struct Writer {
    b: Vec<u8>,
    /// (offset, width) of every integer field of the header.
    fields: Vec<(usize, usize)>,
}

impl Writer {
    fn u32(&mut self, v: u32) {
        self.fields.push((self.b.len(), 4));
        self.b.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.fields.push((self.b.len(), 8));
        self.b.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.b.extend_from_slice(s.as_bytes());
    }
    fn key(&mut self, k: &str, ty: u32) {
        self.str(k);
        self.u32(ty);
    }
    fn kv_u32(&mut self, k: &str, v: u32) {
        self.key(k, 4);
        self.u32(v);
    }
    fn kv_f32(&mut self, k: &str, v: f32) {
        self.key(k, 6);
        self.b.extend_from_slice(&v.to_le_bytes());
    }
    fn kv_str(&mut self, k: &str, v: &str) {
        self.key(k, 8);
        self.str(v);
    }
    fn kv_strs(&mut self, k: &str, v: &[String]) {
        self.key(k, 9);
        self.u32(8);
        self.u64(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }
    fn kv_i32s(&mut self, k: &str, v: &[i32]) {
        self.key(k, 9);
        self.u32(5);
        self.u64(v.len() as u64);
        for x in v {
            self.b.extend_from_slice(&x.to_le_bytes());
        }
    }
}

const N_EMBD: u64 = 64;
const N_FF: u64 = 128;
const N_HEAD: u32 = 4;
const N_HEAD_KV: u32 = 2;

/// GPT-2's byte-to-unicode map: the byte-level BPE token for each byte.
fn byte_tokens() -> Vec<String> {
    let mut direct: Vec<u32> = (b'!'..=b'~').map(u32::from).collect();
    direct.extend(0xA1..=0xAC);
    direct.extend(0xAE..=0xFF);
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            let c = if direct.contains(&b) {
                b
            } else {
                extra += 1;
                255 + extra
            };
            char::from_u32(c).unwrap().to_string()
        })
        .collect()
}

/// The model: header bytes (with the integer fields' places) and the whole file.
fn tiny_model() -> (Writer, Vec<u8>) {
    tiny_model_with(|_| {})
}

/// The model with its vocabulary edited by `edit`.
fn tiny_model_with(edit: impl Fn(&mut Vec<String>)) -> (Writer, Vec<u8>) {
    let mut tokens = byte_tokens();
    let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    tokens.extend(specials.iter().map(|s| s.to_string()));
    edit(&mut tokens);
    let mut types = vec![1i32; 256];
    types.extend([3, 3, 3]);
    let n_vocab = tokens.len() as u64;
    let kvd = N_EMBD / u64::from(N_HEAD) * u64::from(N_HEAD_KV);
    let mut tensors: Vec<(String, Vec<u64>)> = vec![
        ("token_embd.weight".into(), vec![N_EMBD, n_vocab]),
        ("output_norm.weight".into(), vec![N_EMBD]),
    ];
    for (name, shape) in [
        ("attn_norm", vec![N_EMBD]),
        ("attn_q", vec![N_EMBD, N_EMBD]),
        ("attn_k", vec![N_EMBD, kvd]),
        ("attn_v", vec![N_EMBD, kvd]),
        ("attn_output", vec![N_EMBD, N_EMBD]),
        ("ffn_norm", vec![N_EMBD]),
        ("ffn_gate", vec![N_EMBD, N_FF]),
        ("ffn_up", vec![N_EMBD, N_FF]),
        ("ffn_down", vec![N_FF, N_EMBD]),
    ] {
        tensors.push((format!("blk.0.{name}.weight"), shape));
    }

    let mut w = Writer::default();
    w.b.extend_from_slice(b"GGUF");
    w.u32(3);
    w.u64(tensors.len() as u64);
    w.u64(19);
    w.kv_str("general.architecture", "llama");
    w.kv_str("general.name", "fuzz seed");
    w.kv_u32("llama.block_count", 1);
    w.kv_u32("llama.context_length", 16384);
    w.kv_u32("llama.embedding_length", N_EMBD as u32);
    w.kv_u32("llama.feed_forward_length", N_FF as u32);
    w.kv_u32("llama.attention.head_count", N_HEAD);
    w.kv_u32("llama.attention.head_count_kv", N_HEAD_KV);
    w.kv_u32("llama.rope.dimension_count", N_EMBD as u32 / N_HEAD);
    w.kv_f32("llama.rope.freq_base", 10000.0);
    w.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    w.kv_str("tokenizer.ggml.model", "gpt2");
    w.kv_str("tokenizer.ggml.pre", "default");
    w.kv_strs("tokenizer.ggml.tokens", &tokens);
    w.kv_i32s("tokenizer.ggml.token_type", &types);
    w.kv_strs("tokenizer.ggml.merges", &[]);
    w.kv_u32("tokenizer.ggml.bos_token_id", 256);
    w.kv_u32("tokenizer.ggml.eos_token_id", 258);
    w.kv_str(
        "tokenizer.chat_template",
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    );
    let mut offset = 0u64;
    let mut sizes = Vec::new();
    for (name, shape) in &tensors {
        w.str(name);
        w.u32(shape.len() as u32);
        for &d in shape {
            w.u64(d);
        }
        w.u32(0); // F32
        w.u64(offset);
        let bytes = shape.iter().product::<u64>() * 4;
        sizes.push(bytes);
        offset += bytes.div_ceil(32) * 32;
    }
    let mut file = w.b.clone();
    file.resize(file.len().div_ceil(32) * 32, 0);
    for (i, bytes) in sizes.iter().enumerate() {
        let start = file.len();
        let n = bytes / 4;
        let norm = tensors[i].1.len() == 1;
        for j in 0..n {
            // Norms are 1; weights small and deterministic, so activations stay finite.
            let v = if norm {
                1.0f32
            } else {
                ((j as f32 * 0.618 + i as f32).sin()) * 0.05
            };
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.resize(start + (*bytes as usize).div_ceil(32) * 32, 0);
    }
    (w, file)
}

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
