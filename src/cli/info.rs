//! `culturetune info`: what a GGUF file is (read from its header in Rust, without loading the
//! weights) and whether this build can offload layers to a GPU.

use super::engine_args::EngineArgs;
use crate::engine;
use crate::engine::evaluate::EvalSettings;
use crate::engine::offload;
use anyhow::Result;
use serde_json::json;
use std::io::Write;

/// Options of `culturetune info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// GGUF model file [default: models/SmolLM2-135M-Instruct.Q4_1.gguf, looked for in the
    /// current directory, then in the data directory's culturetune/models/].
    #[arg(long, value_name = "PATH")]
    model: Option<std::path::PathBuf>,
    /// Cap, in MiB, on the GPU memory the layer plan may use.
    #[arg(long, value_name = "MIB")]
    gpu_memory: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Inspects the model file and prints what its header says.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let path = EngineArgs::default_or(args.model.clone());
    let info = engine::inspect(&path)?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    engine::init(false);
    let gpu = engine::gpu_available();
    let devices = offload::devices();
    let plan = offload::plan(
        &info,
        EvalSettings::default().n_ctx,
        offload::budget(&devices, args.gpu_memory),
    );
    let v = json!({
        "path": path,
        "is_default": args.model.is_none(),
        "name": info.name,
        "architecture": info.architecture,
        "file_size": info.file_size,
        "n_params": info.n_elements,
        "quantization": info.quantization(),
        "file_type": info.file_type,
        "n_embd": info.n_embd,
        "n_layer": info.n_layer,
        "gguf_version": info.version,
        "has_chat_template": info.chat_template.is_some(),
        "gpu_available": gpu,
        "gpu_reason": (!gpu).then_some(
            "this build of llama.cpp has no GPU backend (build with --features cuda, metal or vulkan)"
        ),
        "devices": devices,
        "gpu_plan": plan,
    });
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    print_text(out, &path, &info, gpu, &devices, &plan)
}

/// The text form of `info`.
fn print_text(
    out: &mut dyn Write,
    path: &std::path::Path,
    info: &engine::GgufInfo,
    gpu: bool,
    devices: &[offload::Device],
    plan: &offload::LayerPlan,
) -> Result<()> {
    writeln!(out, "file          {}", path.display())?;
    writeln!(
        out,
        "model         {} ({})",
        info.name.as_deref().unwrap_or("(no name)"),
        info.architecture
    )?;
    writeln!(
        out,
        "size          {:.1} MiB, {:.1} M weights, {}",
        info.file_size as f64 / (1u64 << 20) as f64,
        info.n_elements as f64 / 1e6,
        info.quantization().unwrap_or("unknown quantization")
    )?;
    writeln!(
        out,
        "n_embd        {}",
        info.n_embd.map_or("-".into(), |n| n.to_string())
    )?;
    writeln!(
        out,
        "layers        {}",
        info.n_layer.map_or("-".into(), |n| n.to_string())
    )?;
    writeln!(
        out,
        "GPU offload   {}",
        if gpu {
            "available"
        } else {
            "not in this build"
        }
    )?;
    for d in devices {
        writeln!(
            out,
            "device        {} ({}, {}): {}, {} of {} MiB free",
            d.name,
            d.backend,
            serde_json::to_value(d.kind)?.as_str().unwrap_or("?"),
            d.description,
            d.free_bytes >> 20,
            d.total_bytes >> 20
        )?;
    }
    writeln!(out, "GPU plan      {}", plan.note)?;
    Ok(())
}
