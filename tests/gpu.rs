//! The GPU path, on whatever GPU backend this build has (`--features vulkan|cuda|metal`; the
//! file is empty otherwise). scripts/test-gpu.sh runs it on Mesa's lavapipe (Vulkan on the CPU)
//! with the default model: the device report and plan, offloaded survey answers against the
//! CPU's, the soft-prompt (embedding input) path offloaded, and a memory cap that leaves only
//! part of the model on the GPU.
#![cfg(any(feature = "vulkan", feature = "cuda", feature = "metal"))]

use serde_json::{json, Value};
use std::process::{Command, Output};

/// Largest difference allowed between a digit's probability on the GPU and on the CPU.
/// llama.cpp's Vulkan shaders compute with F16 where the device supports it (lavapipe reports
/// it), the CPU accumulates in F32, and the backends sum in other orders: on lavapipe with the
/// default model the answers differ by up to 0.021 (docs/performance.md), the same order as
/// the 0.06 that another micro-batch layout causes on quantized models. Wrong rows, a wrong
/// layer or garbage move them by far more.
const PROB_TOLERANCE: f64 = 0.05;

/// Largest difference allowed between an index on the GPU and on the CPU (points).
const INDEX_TOLERANCE: f64 = 5.0;

fn culturetune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_culturetune"))
        .args(args)
        .output()
        .unwrap()
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Largest |p_gpu - p_cpu| over every item and digit of two `survey --json` outputs.
fn max_prob_diff(a: &Value, b: &Value) -> f64 {
    let (a, b) = (
        a["items"].as_array().unwrap(),
        b["items"].as_array().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x["id"], y["id"]);
        for (p, q) in x["probs"]
            .as_array()
            .unwrap()
            .iter()
            .zip(y["probs"].as_array().unwrap())
        {
            worst = worst.max((p.as_f64().unwrap() - q.as_f64().unwrap()).abs());
        }
    }
    worst
}

/// The naive survey on the CPU (`--gpu-layers 0`), computed once for all tests.
fn cpu_naive() -> &'static Value {
    static CPU: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    CPU.get_or_init(|| survey(&["--gpu-layers", "0"]).0)
}

fn survey(extra: &[&str]) -> (Value, String) {
    let mut args = vec!["survey", "--region", "USA", "--json"];
    args.extend_from_slice(extra);
    let o = culturetune(&args);
    (json_of(&o), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn the_report_lists_a_gpu_and_plans_full_offload() {
    let v = json_of(&culturetune(&["info", "--json"]));
    let devices = v["devices"].as_array().unwrap();
    let gpu = devices
        .iter()
        .find(|d| d["kind"] != "cpu")
        .unwrap_or_else(|| panic!("no GPU device in {v}"));
    assert!(gpu["total_bytes"].as_u64().unwrap() > 0, "{gpu}");
    let plan = &v["gpu_plan"];
    let n_layer = v["n_layer"].as_u64().unwrap();
    assert_eq!(plan["gpu_layers"].as_u64(), Some(n_layer + 1), "{plan}");
    eprintln!("device: {gpu}\nplan: {}", plan["note"]);
}

#[test]
fn offloaded_answers_equal_the_cpus() {
    let cpu = cpu_naive();
    let (gpu, log) = survey(&[]);
    assert!(log.contains("GPU layers 31"), "{log}");
    let d = max_prob_diff(cpu, &gpu);
    eprintln!(
        "survey: max |p_gpu - p_cpu| = {d:.2e}; {:.1} s on the GPU, {:.1} s on the CPU",
        gpu["seconds"].as_f64().unwrap_or(f64::NAN),
        cpu["seconds"].as_f64().unwrap_or(f64::NAN)
    );
    assert!(d < PROB_TOLERANCE, "{d}");
    // The indices follow from the answers: coefficients of 25-35 on differences of item
    // means let answers within the tolerance move an index by a few points.
    for k in ["PDI", "IDV", "MAS", "UAI", "LTO", "IVR"] {
        let (a, b) = (
            cpu["indices"][k].as_f64().unwrap(),
            gpu["indices"][k].as_f64().unwrap(),
        );
        eprintln!("{k}: cpu {a:.2}, gpu {b:.2}");
        assert!((a - b).abs() < INDEX_TOLERANCE, "{k}: cpu {a}, gpu {b}");
    }
}

#[test]
fn the_soft_prompt_path_works_offloaded() {
    let dir = tempfile::tempdir().unwrap();
    let sp = dir.path().join("prompt");
    let (k, n_embd) = (4usize, 576usize);
    // A fixed, non-trivial prompt in the persona's place: rows of small values of both signs.
    let rows: Vec<f32> = (0..k * n_embd)
        .map(|i| (((i * 7919) % 101) as f32 - 50.0) * 0.002)
        .collect();
    let card = json!({"region": "USA", "insertion": {"placement": "prefix"}});
    culturetune::export::export(&sp, &rows, k, n_embd, &card, "m", false).unwrap();
    let sp = sp.display().to_string();
    let (cpu, _) = survey(&["--gpu-layers", "0", "--soft-prompt", &sp]);
    let (gpu, log) = survey(&["--soft-prompt", &sp]);
    assert!(log.contains("GPU layers 31"), "{log}");
    let d = max_prob_diff(&cpu, &gpu);
    let moved = max_prob_diff(cpu_naive(), &cpu);
    eprintln!(
        "soft prompt: max |p_gpu - p_cpu| = {d:.2e}; the rows move the CPU's answers by {moved:.2e}"
    );
    assert!(d < PROB_TOLERANCE, "{d}");
    // The rows reached the model: they move the answers further than the backends differ.
    assert!(moved > 2.0 * d, "{moved} vs {d}");
}

#[test]
fn a_small_memory_cap_leaves_layers_on_the_cpu() {
    let (capped, log) = survey(&["--gpu-memory", "600"]);
    let line = log
        .lines()
        .find(|l| l.starts_with("GPU plan:"))
        .unwrap_or_else(|| panic!("no plan line in {log}"));
    assert!(line.contains("of 30 layers on the GPU"), "{line}");
    let layers: u32 = line["GPU plan: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..30).contains(&layers), "{line}");
    assert!(log.contains(&format!("GPU layers {layers}")), "{log}");
    let d = max_prob_diff(cpu_naive(), &capped);
    eprintln!("capped: max |p_gpu - p_cpu| = {d:.2e}");
    assert!(d < PROB_TOLERANCE, "{d}");
}
