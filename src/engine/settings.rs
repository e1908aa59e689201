//! The settings that fix the evaluation procedure (context size, batches, threads, flash
//! attention, the answer placement's KV layout) and llama.cpp's limits on them.

use serde::{Deserialize, Serialize};

/// Most sequences one decode can carry (llama.cpp's LLAMA_MAX_SEQ).
pub const MAX_SEQ: usize = 256;

/// llama.cpp's granularity of a KV stream's cells (it pads `n_ctx / n_seq_max` to this): the
/// least a prompt's stream takes in the streams layout.
pub const STREAM_CELLS: usize = 256;

/// Most CPU threads llama.cpp takes (GGML_MAX_N_THREADS).
pub const MAX_THREADS: i32 = 512;

/// Most KV cells an evaluation may ask for: far beyond any survey (a few thousand cells), and
/// small enough that a typo cannot ask llama.cpp for terabytes.
pub const MAX_CTX: u32 = 1 << 20;

/// Settings that fix the evaluation procedure (and its speed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    /// CPU threads.
    pub threads: i32,
    /// KV cache cells; must hold the whole tree of one group.
    pub n_ctx: u32,
    /// Tokens per decode call.
    pub n_batch: u32,
    /// Tokens per physical micro-batch.
    pub n_ubatch: u32,
    /// Flash attention.
    pub flash_attn: bool,
    /// How the answer placement lays out its KV cache (see [`KvLayout`]). A configuration
    /// stored before this setting existed reads as [`KvLayout::Unified`], the layout it ran
    /// with, so its run resumes bit for bit.
    #[serde(default = "KvLayout::stored_before")]
    pub kv_layout: KvLayout,
}

/// The KV-cache layout of the answer placement's candidate evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum KvLayout {
    /// One stream per (candidate, prompt): each candidate token attends over its own prompt's
    /// cells only. The item prefixes are decoded once per run into their streams and copied
    /// to the other candidates' streams once.
    #[default]
    Streams,
    /// One cache shared by all sequences (the item prefixes stored once as a prefix tree):
    /// every candidate token attends, masked, over every cell in use.
    Unified,
}

impl KvLayout {
    /// The layout of a stored configuration that does not name one.
    pub fn stored_before() -> KvLayout {
        KvLayout::Unified
    }

    /// The name used on the command line and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            KvLayout::Streams => "streams",
            KvLayout::Unified => "unified",
        }
    }

    /// The other layout (`bench` times both).
    pub fn other(self) -> KvLayout {
        match self {
            KvLayout::Streams => KvLayout::Unified,
            KvLayout::Unified => KvLayout::Streams,
        }
    }
}

impl EvalSettings {
    /// Checks the settings against llama.cpp's limits, without a model: llama.cpp keeps one
    /// output row per sequence ([`MAX_SEQ`] of them) within n_batch outputs and cuts n_batch
    /// to n_ctx; outside these limits it aborts instead of failing.
    pub fn check(&self) -> Result<(), String> {
        let min = MAX_SEQ as u32;
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(format!(
                "threads is {}; it must be 1..={MAX_THREADS} (llama.cpp's limit; --threads)",
                self.threads
            ));
        }
        if self.n_ctx > MAX_CTX {
            return Err(format!(
                "n_ctx is {}; it must be at most {MAX_CTX} (lower --n-ctx)",
                self.n_ctx
            ));
        }
        if self.n_ctx < min {
            return Err(format!(
                "n_ctx is {}; it must be at least {min} (raise --n-ctx)",
                self.n_ctx
            ));
        }
        if self.n_batch < min
            || self.n_batch > self.n_ctx
            || self.n_ubatch == 0
            || self.n_ubatch > self.n_batch
        {
            return Err(format!(
                "invalid settings: n_batch {} ({min}..=n_ctx {}), n_ubatch {} (1..=n_batch)",
                self.n_batch, self.n_ctx, self.n_ubatch
            ));
        }
        Ok(())
    }
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get() as i32),
            n_ctx: 8192,
            n_batch: 2048,
            n_ubatch: 512,
            flash_attn: true,
            kv_layout: KvLayout::default(),
        }
    }
}
