//! The options every command that runs the model shares: the model file (or the default
//! model, wherever it was installed), its weights and GPU layers, and the evaluation
//! settings. Plain data with one conversion each ([`EngineOptions::settings`],
//! [`EngineOptions::load`]); the command line derives its flags from it.

use super::error::EngineError;
use super::evaluate::{EvalSettings, KvLayout};
use super::model::Model;
use super::offload::{self, GpuLayers, LayerPlan};
use super::weights::WeightType;
use std::path::{Path, PathBuf};

/// The largest chat-template file read (llama.cpp's own templates are a few kB).
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// The default model file, fetched by `models/fetch-default-model.sh`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Which model file, how it is loaded (weights, GPU layers) and how it is evaluated: the
/// options every command that runs the model shares (the command line's flags).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EngineOptions {
    /// GGUF model file [default: models/SmolLM2-135M-Instruct.Q4_1.gguf, looked for in the
    /// current directory, then in the data directory's culturetune/models/].
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATH"))]
    pub model: Option<PathBuf>,
    /// CPU threads [default: all cores].
    #[cfg_attr(feature = "cli", arg(long))]
    pub threads: Option<i32>,
    /// KV cache cells; must hold one evaluation's prompt tree.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = EvalSettings::default().n_ctx))]
    pub n_ctx: u32,
    /// Tokens per physical micro-batch (changes results slightly on quantized models, so
    /// compare only runs with the same value).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = EvalSettings::default().n_ubatch))]
    pub n_ubatch: u32,
    /// Turn flash attention off (also changes results slightly).
    #[cfg_attr(feature = "cli", arg(long))]
    pub no_flash_attn: bool,
    /// KV-cache layout of the answer placement's candidates: `streams` (one stream per
    /// prompt: a candidate attends over its own prompt only) or `unified` (one cache shared by
    /// every prompt, the layout before streams). Changes speed and, slightly, results.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = KvLayout::default(), value_name = "LAYOUT"))]
    pub kv_layout: KvLayout,
    /// Model layers to put on the GPU: `auto` plans them from free device memory (all when
    /// they fit), a number sets them (more than the model has = all and the output). 0 without
    /// a GPU backend.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "auto", value_name = "auto|N")
    )]
    pub gpu_layers: GpuLayers,
    /// Cap, in MiB, on the GPU memory that `--gpu-layers auto` plans with (default: all free
    /// memory the driver reports).
    #[cfg_attr(feature = "cli", arg(long, value_name = "MIB"))]
    pub gpu_memory: Option<u64>,
    /// Weight type to evaluate with: `auto` (F16 for models whose F16 copy is at most 1 GiB,
    /// else the file as given), the file as given, or a converted copy cached in a cache/
    /// folder beside the model on first use. Changes speed and, slightly, results: compare
    /// only runs with the same weights.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value = "auto"))]
    pub weights: WeightType,
    /// Chat template to use instead of the model file's (for base models without one, or one
    /// llama.cpp does not recognise): one of llama.cpp's built-in names (chatml, llama3, gemma,
    /// ...; `culturetune info` lists them) or a file holding a template llama.cpp recognises.
    /// Stored with runs and calibrations.
    #[cfg_attr(feature = "cli", arg(long, value_name = "NAME|FILE"))]
    pub chat_template: Option<String>,
    /// Show llama.cpp's own log on stderr.
    #[cfg_attr(feature = "cli", arg(long))]
    pub verbose: bool,
}

impl EngineOptions {
    /// The model path: --model, else models/<default> in the current directory, else the one
    /// in the source tree this binary was built from.
    pub fn model_path(&self) -> PathBuf {
        Self::default_or(self.model.clone())
    }

    /// `given`, else the default model: models/<default> in the current directory, else in
    /// the user's data directory (culturetune/models/, for an installed app), else the one
    /// beside the sources this binary was built from.
    pub fn default_or(given: Option<PathBuf>) -> PathBuf {
        if let Some(p) = given {
            return p;
        }
        let here = PathBuf::from("models").join(DEFAULT_MODEL_FILE);
        let candidates = [
            Some(here.clone()),
            dirs::data_dir().map(|d| d.join("culturetune/models").join(DEFAULT_MODEL_FILE)),
            Some(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("models")
                    .join(DEFAULT_MODEL_FILE),
            ),
        ];
        candidates
            .into_iter()
            .flatten()
            .find(|p| p.exists())
            .unwrap_or(here)
    }

    /// Loads the model (llama.cpp's backend initialized first); `note` hears the GPU plan and
    /// any retry with fewer layers.
    pub fn load(&self, note: &mut dyn FnMut(String)) -> Result<Model, EngineError> {
        let template = self.chat_template()?;
        self.load_as(self.weights, template.as_deref(), note)
    }

    /// Loads a model file that carries a tuned prompt (`crate::carried`) as it was exported:
    /// its own weights (no `--weights` conversion, which would round the carried rows) and
    /// the chat template the run rendered with (`base_template`).
    pub fn load_carried(
        &self,
        base_template: &str,
        note: &mut dyn FnMut(String),
    ) -> Result<Model, EngineError> {
        self.load_as(WeightType::Original, Some(base_template), note)
    }

    fn load_as(
        &self,
        weights: WeightType,
        template: Option<&str>,
        note: &mut dyn FnMut(String),
    ) -> Result<Model, EngineError> {
        super::backend::init(self.verbose);
        let given = self.model_path();
        let layers = self.resolve_layers(&given, note)?;
        let threads = self.settings().threads;
        super::backend::load_for_evaluation(&given, weights, threads, layers, template, note)
    }

    /// The chat template `--chat-template` names, checked with llama.cpp before any model is
    /// loaded: a file's text (when the value is a path to a file), else the value as a
    /// built-in name. `None` without the option (the model's own template).
    pub fn chat_template(&self) -> Result<Option<String>, EngineError> {
        let Some(given) = self.chat_template.as_deref() else {
            return Ok(None);
        };
        let path = Path::new(given);
        let from_file = path.is_file();
        let text = if from_file {
            crate::input_file::read_text(path, MAX_TEMPLATE_BYTES).map_err(|e| {
                EngineError::BadChatTemplate {
                    given: given.to_string(),
                    detail: format!("cannot read it: {e}"),
                }
            })?
        } else {
            given.to_string()
        };
        if !super::ffi::chat_template_known(&text) {
            let detail = match from_file {
                true => "llama.cpp does not recognise the template in this file".to_string(),
                false => format!(
                    "not a file, and not one of llama.cpp's built-in templates: {}",
                    super::ffi::builtin_chat_templates().join(", ")
                ),
            };
            return Err(EngineError::BadChatTemplate {
                given: given.to_string(),
                detail,
            });
        }
        Ok(Some(text))
    }

    /// The GPU layers to load the model given as `given` with: the number given, or for
    /// `auto` the plan for the weights that will be loaded (the converted copy under
    /// `--weights`; told to `note` when there is a GPU); 0 in a build without a GPU backend.
    pub fn resolve_layers(
        &self,
        given: &Path,
        note: &mut dyn FnMut(String),
    ) -> Result<u32, EngineError> {
        if !super::backend::gpu_available() {
            return Ok(0);
        }
        let path = &super::weights::converted_path(given, self.weights, self.settings().threads)?;
        Ok(match self.gpu_layers {
            GpuLayers::Count(n) => n,
            GpuLayers::Auto => {
                let plan = self.plan(path)?;
                if plan.budget_bytes.is_some() {
                    note(format!("GPU plan: {}", plan.note));
                }
                plan.gpu_layers
            }
        })
    }

    /// The layer plan for the model at `path` on this machine's GPUs (under --gpu-memory).
    pub fn plan(&self, path: &Path) -> Result<LayerPlan, EngineError> {
        let budget = offload::budget(&offload::devices(), self.gpu_memory);
        Ok(offload::plan(
            &super::gguf::inspect(path)?,
            self.settings().n_ctx,
            budget,
        ))
    }

    /// The evaluation settings these options select.
    pub fn settings(&self) -> EvalSettings {
        let d = EvalSettings::default();
        // A batch never exceeds the context (llama.cpp cuts it there itself); a survey that
        // does not fit a small context is then refused with the cells it needs.
        let n_batch = d.n_batch.max(self.n_ubatch).min(self.n_ctx.max(1));
        EvalSettings {
            threads: self.threads.unwrap_or(d.threads),
            n_ctx: self.n_ctx,
            n_batch,
            n_ubatch: self.n_ubatch.min(n_batch),
            flash_attn: !self.no_flash_attn,
            kv_layout: self.kv_layout,
        }
    }
}
