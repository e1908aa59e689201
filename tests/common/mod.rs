//! Shared by the integration tests that need a GGUF file of their own: a complete
//! llama-architecture model (one layer, n_embd 64, F32) with a byte-level BPE vocabulary and a
//! ChatML template, written in a few milliseconds; llama.cpp loads it and answers the survey
//! with it in about a second. Also the model record the store tests file runs under.
#![allow(dead_code)]

/// The store's record of a model that is never loaded (the store tests' runs refer to it).
pub fn model_record() -> culturetune::store::ModelRecord {
    culturetune::store::ModelRecord {
        sha256: "ab".repeat(32),
        path: "m.gguf".into(),
        name: "m".into(),
        architecture: "llama".into(),
        n_embd: 4,
        file_size: 10,
    }
}

/// A GGUF writer that remembers where each integer field is, so mutations can target them.
#[derive(Default)]
pub struct Writer {
    /// The header bytes written so far.
    pub b: Vec<u8>,
    /// (offset, width) of every integer field of the header.
    pub fields: Vec<(usize, usize)>,
    /// Where each key's value starts.
    pub values: std::collections::HashMap<String, usize>,
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
        self.values.insert(k.to_string(), self.b.len());
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

pub const N_EMBD: u64 = 64;
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
pub fn tiny_model() -> (Writer, Vec<u8>) {
    tiny_model_with(|_| {})
}

/// The model with its vocabulary edited by `edit`.
pub fn tiny_model_with(edit: impl Fn(&mut Vec<String>)) -> (Writer, Vec<u8>) {
    tiny_model_opts(edit, true)
}

/// The model with its vocabulary edited by `edit`, with or without a chat template.
pub fn tiny_model_opts(edit: impl Fn(&mut Vec<String>), template: bool) -> (Writer, Vec<u8>) {
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
    w.u64(if template { 19 } else { 18 });
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
    if template {
        w.kv_str(
            "tokenizer.chat_template",
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        );
    }
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

/// The arguments of a tiny tuning run on the generated model (24 candidates, population 4,
/// two calibration regions, events as JSON lines), for the tests that need a real run.
pub fn tiny_tune_args(model: &str, db: &str, seed: &str) -> Vec<String> {
    [
        "tune",
        "--region",
        "USA",
        "--model",
        model,
        "--weights",
        "original",
        "--db",
        db,
        "--budget",
        "24",
        "--population",
        "4",
        "--calibration-regions",
        "USA,CHI",
        "--seed",
        seed,
        "--events",
        "jsonl",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs a tuning command (`--events jsonl`) until its first generation's event, then kills it
/// with SIGKILL: a run left `running` with a checkpoint, as a crash leaves it.
pub fn kill_after_first_generation(cmd: &mut std::process::Command) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        if line.unwrap().contains("\"event\":\"generation\"") {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL"
    );
}

/// Runs the binary `bin` (a test's `env!("CARGO_BIN_EXE_culturetune")`) with `args` in
/// `dir`.
pub fn run_in<S: AsRef<std::ffi::OsStr>>(
    bin: &str,
    dir: &std::path::Path,
    args: &[S],
) -> std::process::Output {
    std::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A command's stdout, after asserting that it succeeded (its stderr otherwise).
pub fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// Serializes the tests of one test binary that run a real model. Each uses every core
/// (llama.cpp's threads wait for each other at spinning barriers), so two at once on a 2-core
/// machine take several times as long as one after the other (tests/answer.rs: 1117 s side by
/// side, 274 s in sequence). Hold the guard for the whole test.
pub fn one_model_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed while holding the lock poisons it; the next one may still run.
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
