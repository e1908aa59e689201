//! `culturetune info`: what a GGUF file is (read from its header in Rust, without loading the
//! weights) and whether this build can offload layers to a GPU.

use super::engine_args::EngineArgs;
use crate::engine;
use crate::engine::file_report::{file_report, FileReport};
use anyhow::Result;
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
    engine::init(false);
    let r = file_report(&path, args.model.is_none(), args.gpu_memory)?;
    if super::format::json(out, args.json, &r)? {
        return Ok(());
    }
    print_text(out, &r)
}

/// The text form of `info`.
fn print_text(out: &mut dyn Write, r: &FileReport) -> Result<()> {
    writeln!(out, "file          {}", r.path.display())?;
    writeln!(
        out,
        "model         {} ({})",
        r.name.as_deref().unwrap_or("(no name)"),
        r.architecture
    )?;
    writeln!(
        out,
        "size          {:.1} MiB, {:.1} M weights, {}",
        r.file_size as f64 / (1u64 << 20) as f64,
        r.n_params as f64 / 1e6,
        r.quantization.unwrap_or("unknown quantization")
    )?;
    let or_dash = |v: Option<u64>| v.map_or("-".into(), |n| n.to_string());
    writeln!(out, "n_embd        {}", or_dash(r.n_embd))?;
    writeln!(out, "layers        {}", or_dash(r.n_layer))?;
    let template = match (r.has_chat_template, r.chat_template_usable) {
        (true, true) => "the file's own (llama.cpp recognises it)",
        (true, false) => {
            "the file's is not one llama.cpp recognises: name one with --chat-template"
        }
        (false, _) => "none in the file: name one with --chat-template",
    };
    writeln!(out, "chat template {template}")?;
    writeln!(out, "  built-in    {}", r.builtin_chat_templates.join(", "))?;
    let offload = if r.gpu_available {
        "available"
    } else {
        "not in this build"
    };
    writeln!(out, "GPU offload   {offload}")?;
    for d in &r.devices {
        writeln!(
            out,
            "device        {} ({}, {}): {}, {} of {} MiB free",
            d.name,
            d.backend,
            crate::labels::serde_name(&d.kind),
            d.description,
            d.free_bytes >> 20,
            d.total_bytes >> 20
        )?;
    }
    writeln!(out, "GPU plan      {}", r.gpu_plan.note)?;
    Ok(())
}
