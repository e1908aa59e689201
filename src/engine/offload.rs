//! GPU offload: the devices llama.cpp sees, and how many layers of a model to put on them.
//!
//! The plan is a pure function of the GGUF header (per-layer tensor sizes, head counts), the
//! context the survey needs, and a memory budget, so it is tested without a GPU. llama.cpp's
//! `n_gpu_layers` offloads the *last* n repeating layers; a value above the layer count also
//! offloads the output layer.

use super::ffi;
use super::gguf::GgufInfo;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

const MIB: u64 = 1 << 20;

/// What kind of device ggml reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// The CPU.
    Cpu,
    /// A discrete GPU.
    Gpu,
    /// An integrated GPU (shares the host's memory).
    IntegratedGpu,
    /// Another accelerator.
    Accelerator,
    /// A type this build does not know.
    Other,
}

impl DeviceKind {
    /// Whether layers can be offloaded to it.
    pub fn is_gpu(self) -> bool {
        matches!(self, DeviceKind::Gpu | DeviceKind::IntegratedGpu)
    }
}

/// One device llama.cpp can run on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    /// Device name (`CPU`, `CUDA0`, `Vulkan0`, ...).
    pub name: String,
    /// The GPU's or CPU's model name.
    pub description: String,
    /// The backend providing it (`CPU`, `CUDA`, `Vulkan`, `Metal`).
    pub backend: String,
    /// CPU, GPU, ...
    pub kind: DeviceKind,
    /// Free memory in bytes when asked.
    pub free_bytes: u64,
    /// Total memory in bytes.
    pub total_bytes: u64,
}

/// The devices this build of llama.cpp sees, CPU included.
pub fn devices() -> Vec<Device> {
    ffi::devices()
        .into_iter()
        .map(|d| Device {
            kind: match d.kind {
                0 => DeviceKind::Cpu,
                1 => DeviceKind::Gpu,
                2 => DeviceKind::IntegratedGpu,
                3 => DeviceKind::Accelerator,
                _ => DeviceKind::Other,
            },
            name: d.name,
            description: d.description,
            backend: d.backend,
            free_bytes: d.free,
            total_bytes: d.total,
        })
        .collect()
}

/// The memory a plan may use: free memory over all GPUs, at most `cap_mib` MiB when given;
/// `None` when there is no GPU.
pub fn budget(devices: &[Device], cap_mib: Option<u64>) -> Option<u64> {
    let gpus: Vec<&Device> = devices.iter().filter(|d| d.kind.is_gpu()).collect();
    let free: u64 = gpus.iter().map(|d| d.free_bytes).sum();
    (!gpus.is_empty()).then(|| cap_mib.map_or(free, |c| free.min(c.saturating_mul(MIB))))
}

/// `--gpu-layers`: a number of layers, or `auto` (planned from free device memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuLayers {
    /// As many as fit ([`plan`]).
    #[default]
    Auto,
    /// Exactly this many (llama.cpp's `n_gpu_layers`; above the layer count = all + output).
    Count(u32),
}

impl FromStr for GpuLayers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(GpuLayers::Auto);
        }
        s.parse::<u32>()
            .map(GpuLayers::Count)
            .map_err(|_| format!("expected `auto` or a number of layers (0 or more), got `{s}`"))
    }
}

impl fmt::Display for GpuLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuLayers::Auto => f.write_str("auto"),
            GpuLayers::Count(n) => write!(f, "{n}"),
        }
    }
}

/// How many layers go on the GPU, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPlan {
    /// llama.cpp's `n_gpu_layers` to use: 0..=n_layer, or n_layer + 1 with the output layer.
    pub gpu_layers: u32,
    /// The model's repeating layers.
    pub n_layer: u32,
    /// Memory the plan may use (free GPU memory, or the --gpu-memory cap), if any GPU.
    pub budget_bytes: Option<u64>,
    /// Bytes kept free for llama.cpp's compute buffers and the driver.
    pub margin_bytes: u64,
    /// Bytes one layer needs on the GPU: its weights (the largest layer) and its KV cache.
    pub per_layer_bytes: u64,
    /// Bytes the output layer needs.
    pub output_bytes: u64,
    /// Bytes that full offload needs, margin included.
    pub full_offload_bytes: u64,
    /// One line for the user: what was chosen and why.
    pub note: String,
}

/// The KV cache of one layer for `n_ctx` cells in F16 (K and V).
fn kv_bytes_per_layer(info: &GgufInfo, n_ctx: u32) -> u64 {
    let n_embd = info.n_embd.unwrap_or(0);
    let n_head = info.n_head.unwrap_or(1).max(1);
    let n_head_kv = info.n_head_kv.unwrap_or(n_head);
    let kv_width = n_embd / n_head * n_head_kv;
    2 * u64::from(n_ctx) * kv_width * 2
}

/// Bytes of one KV cell in all of the model's layers (K and V in F16): what every cell of a
/// context costs, on whichever device its layer is.
pub fn kv_bytes_per_cell(info: &GgufInfo) -> u64 {
    let n_layer = info.n_layer.map_or(info.layer_bytes.len() as u64, |n| n);
    kv_bytes_per_layer(info, 1) * n_layer
}

/// The memory kept free: llama.cpp's compute buffers grow with the model's width and the
/// vocabulary; 512 MiB or a twentieth of the budget, whichever is larger, covers the models we
/// measured (docs/performance.md).
fn margin(budget: u64) -> u64 {
    (512 * MIB).max(budget / 20)
}

/// Plans `--gpu-layers auto` for a model: all layers and the output when they fit into
/// `budget` (bytes of free GPU memory, `None` without a GPU), else as many layers as fit.
pub fn plan(info: &GgufInfo, n_ctx: u32, budget: Option<u64>) -> LayerPlan {
    let n_layer = info.n_layer.map_or(info.layer_bytes.len(), |n| n as usize) as u32;
    let largest = info.layer_bytes.iter().copied().max().unwrap_or(0);
    let per_layer = largest + kv_bytes_per_layer(info, n_ctx);
    let output = info.output_bytes;
    let m = budget.map_or(512 * MIB, margin);
    let full = u64::from(n_layer) * per_layer + output + m;
    let mut p = LayerPlan {
        gpu_layers: 0,
        n_layer,
        budget_bytes: budget,
        margin_bytes: m,
        per_layer_bytes: per_layer,
        output_bytes: output,
        full_offload_bytes: full,
        note: String::new(),
    };
    let Some(budget) = budget else {
        p.note = "no GPU: every layer runs on the CPU".into();
        return p;
    };
    let mib = |b: u64| b / MIB;
    if full <= budget {
        p.gpu_layers = n_layer + 1;
        p.note = format!(
            "all {n_layer} layers and the output on the GPU ({} of {} MiB)",
            mib(full),
            mib(budget)
        );
        return p;
    }
    let usable = budget.saturating_sub(m);
    let fit = usable
        .checked_div(per_layer)
        .unwrap_or(0)
        .min(u64::from(n_layer)) as u32;
    p.gpu_layers = fit;
    p.note = format!(
        "{fit} of {n_layer} layers on the GPU: {} MiB free, full offload needs {} MiB \
         ({} MiB per layer, {} MiB kept free)",
        mib(budget),
        mib(full),
        mib(per_layer).max(1),
        mib(m)
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(n_layer: u64, layer: u64, output: u64) -> GgufInfo {
        GgufInfo {
            version: 3,
            architecture: "llama".into(),
            name: None,
            chat_template: None,
            n_tensors: 0,
            file_size: 0,
            n_elements: 0,
            n_embd: Some(4096),
            n_layer: Some(n_layer),
            file_type: None,
            n_head: Some(32),
            n_head_kv: Some(8),
            layer_bytes: vec![layer; n_layer as usize],
            output_bytes: output,
        }
    }

    #[test]
    fn gpu_layers_parse_auto_and_counts_and_reject_the_rest() {
        assert_eq!("auto".parse::<GpuLayers>(), Ok(GpuLayers::Auto));
        assert_eq!("AUTO".parse::<GpuLayers>(), Ok(GpuLayers::Auto));
        assert_eq!("0".parse::<GpuLayers>(), Ok(GpuLayers::Count(0)));
        assert_eq!("33".parse::<GpuLayers>(), Ok(GpuLayers::Count(33)));
        for bad in ["-1", "", "all", "1.5", "99999999999"] {
            let e = bad.parse::<GpuLayers>().unwrap_err();
            assert!(e.contains("expected `auto` or a number"), "{bad}: {e}");
        }
        assert_eq!(GpuLayers::Count(7).to_string(), "7");
    }

    #[test]
    fn kv_cache_follows_grouped_query_attention() {
        // Llama-3-8B: 8 of 32 heads for K/V, 128 wide each: 1024 per cell, K and V, F16.
        assert_eq!(
            kv_bytes_per_layer(&info(32, 0, 0), 4096),
            2 * 4096 * 1024 * 2
        );
    }

    #[test]
    fn everything_fits_on_a_large_gpu() {
        let i = info(32, 120 * MIB, 280 * MIB);
        let p = plan(&i, 4096, Some(80 << 30));
        assert_eq!(p.gpu_layers, 33);
        assert_eq!(p.per_layer_bytes, 120 * MIB + 16 * MIB);
        assert!(
            p.note.starts_with("all 32 layers and the output"),
            "{}",
            p.note
        );
        assert!(p.full_offload_bytes <= p.budget_bytes.unwrap());
    }

    #[test]
    fn a_small_budget_gets_fewer_layers_and_says_why() {
        let i = info(32, 120 * MIB, 280 * MIB);
        // 2 GiB: 512 MiB margin, 1536 MiB / 136 MiB per layer = 11 layers.
        let p = plan(&i, 4096, Some(2 << 30));
        assert_eq!(p.gpu_layers, 11);
        assert!(
            p.note
                .starts_with("11 of 32 layers on the GPU: 2048 MiB free"),
            "{}",
            p.note
        );
        // Less than the margin: nothing offloaded, still no error.
        let p = plan(&i, 4096, Some(100 * MIB));
        assert_eq!(p.gpu_layers, 0);
        assert!(p.note.starts_with("0 of 32 layers"), "{}", p.note);
        // More context, bigger KV cache per layer, fewer layers.
        assert!(plan(&i, 8192, Some(2 << 30)).gpu_layers < 11);
    }

    #[test]
    fn the_budget_is_free_gpu_memory_under_the_cap() {
        let dev = |kind, free_bytes| Device {
            name: String::new(),
            description: String::new(),
            backend: String::new(),
            kind,
            free_bytes,
            total_bytes: free_bytes,
        };
        let cpu = dev(DeviceKind::Cpu, 64 << 30);
        assert_eq!(budget(std::slice::from_ref(&cpu), None), None);
        let devices = [
            cpu,
            dev(DeviceKind::Gpu, 6 << 30),
            dev(DeviceKind::Gpu, 2 << 30),
        ];
        assert_eq!(budget(&devices, None), Some(8 << 30));
        assert_eq!(budget(&devices, Some(2048)), Some(2 << 30));
        assert_eq!(budget(&devices, Some(u64::MAX)), Some(8 << 30));
    }

    #[test]
    fn no_gpu_means_no_layers() {
        let p = plan(&info(30, MIB, MIB), 4096, None);
        assert_eq!(p.gpu_layers, 0);
        assert_eq!(p.budget_bytes, None);
        assert!(p.note.contains("no GPU"));
    }

    #[test]
    fn a_model_without_layer_tensors_plans_zero_not_a_division_by_zero() {
        let mut i = info(0, 0, 0);
        i.n_embd = None;
        let p = plan(&i, 4096, Some(MIB));
        assert_eq!(p.gpu_layers, 0);
    }
}
