//! llama.cpp's process-wide backend (initialization, GPU support, build features) and loading
//! a model for evaluation.

use super::error::EngineError;
use super::ffi;
use super::model::Model;
use super::weights::{converted_path, WeightType};

/// Initialises llama.cpp for this process (idempotent) and sets whether its log is shown.
pub fn init(verbose: bool) {
    ffi::init_backend(verbose);
}

/// Whether this build has a GPU backend; when false, GPU layers are always 0.
pub fn gpu_available() -> bool {
    ffi::supports_gpu_offload()
}

/// The CPU features llama.cpp was built with.
pub fn system_info() -> String {
    ffi::system_info()
}

/// Loads the model given as `given` for evaluation: its `weights` copy (converted on first
/// use), with `gpu_layers` on the GPU (fewer when llama.cpp cannot allocate them) and
/// `template` in place of the file's chat template when given. `note` gets each retry and, at
/// the end, one line describing what was loaded.
pub fn load_for_evaluation(
    given: &std::path::Path,
    weights: WeightType,
    threads: i32,
    gpu_layers: u32,
    template: Option<&str>,
    note: &mut dyn FnMut(String),
) -> Result<Model, EngineError> {
    // Refused before a converted copy is made, naming the file given.
    if template.is_none() && super::gguf::inspect(given)?.chat_template.is_none() {
        return Err(EngineError::NoChatTemplate {
            path: given.display().to_string(),
        });
    }
    let path = converted_path(given, weights, threads)?;
    let model = Model::load_offloaded(&path, gpu_layers, template, &mut |tried, next| {
        note(format!(
            "llama.cpp could not load the model with {tried} GPU layers (out of device memory?); retrying with {next}"
        ))
    })?;
    let i = model.info();
    note(format!(
        "model: {} ({}; {}, {:.1} M parameters, {:.1} MB, n_embd {}, context {}, GPU layers {}{})",
        i.path.display(),
        i.name,
        i.description,
        i.n_params as f64 / 1e6,
        i.file_size as f64 / 1e6,
        i.n_embd,
        i.n_ctx_train,
        i.gpu_layers,
        if gpu_available() {
            ""
        } else {
            ": no GPU backend in this build"
        },
    ));
    Ok(model)
}
