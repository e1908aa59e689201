//! A loaded model: validated before llama.cpp sees it, with the facts culturetune reports.

use super::error::EngineError;
use super::ffi::{self, RawModel};
use super::gguf::{self, GgufInfo};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What was loaded, as printed to the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The file.
    pub path: PathBuf,
    /// `general.name`, or the file name.
    pub name: String,
    /// `general.architecture`.
    pub architecture: String,
    /// llama.cpp's description (architecture, size class, quantization).
    pub description: String,
    /// Parameter count.
    pub n_params: u64,
    /// File size in bytes.
    pub file_size: u64,
    /// Input embedding width.
    pub n_embd: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Training context length.
    pub n_ctx_train: usize,
    /// GPU layers requested (0 without a GPU backend).
    pub gpu_layers: i32,
}

/// A loaded GGUF model with a chat template llama.cpp can render.
pub struct Model {
    raw: RawModel,
    info: ModelInfo,
    template: String,
}

impl Model {
    /// Validates and loads a model with its own chat template. `gpu_layers` is clamped to 0
    /// when the build has no GPU backend.
    pub fn load(path: &Path, gpu_layers: i32) -> Result<Model, EngineError> {
        Model::load_with_template(path, gpu_layers, None)
    }

    /// [`Model::load`] with `template` (a template text or a built-in name, `--chat-template`)
    /// in place of the file's own, for models without one or with one llama.cpp cannot use.
    pub fn load_with_template(
        path: &Path,
        gpu_layers: i32,
        template: Option<&str>,
    ) -> Result<Model, EngineError> {
        let g: GgufInfo = gguf::inspect(path)?;
        let p = path.display().to_string();
        let template = match template {
            Some(t) => t.to_string(),
            None => g
                .chat_template
                .clone()
                .ok_or_else(|| EngineError::NoChatTemplate { path: p.clone() })?,
        };
        if !ffi::chat_template_known(&template) {
            return Err(EngineError::UnknownChatTemplate { path: p });
        }
        ffi::ensure_backend();
        let gpu_layers = if ffi::supports_gpu_offload() {
            gpu_layers
        } else {
            0
        };
        let raw = RawModel::load(path, gpu_layers)
            .ok_or_else(|| EngineError::LoadFailed { path: p.clone() })?;
        let info = ModelInfo {
            path: path.to_path_buf(),
            name: g.name.clone().unwrap_or_else(|| {
                path.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            architecture: g.architecture.clone(),
            description: raw.desc(),
            n_params: raw.n_params(),
            file_size: g.file_size,
            n_embd: raw.n_embd(),
            n_vocab: raw.n_vocab(),
            n_ctx_train: raw.n_ctx_train(),
            gpu_layers,
        };
        Ok(Model {
            raw,
            info,
            template,
        })
    }

    /// Loads a model with `gpu_layers` on the GPU and, when llama.cpp cannot load it so
    /// (usually out of device memory), again with half as many, down to none. Each retry is
    /// reported to `on_retry(tried, next)`; an error only when even the CPU load fails or the
    /// file is invalid.
    pub fn load_offloaded(
        path: &Path,
        gpu_layers: u32,
        template: Option<&str>,
        on_retry: &mut dyn FnMut(u32, u32),
    ) -> Result<Model, EngineError> {
        let mut layers = gpu_layers;
        loop {
            let n = i32::try_from(layers).unwrap_or(i32::MAX);
            match Model::load_with_template(path, n, template) {
                Err(EngineError::LoadFailed { .. })
                    if layers > 0 && ffi::supports_gpu_offload() =>
                {
                    let next = layers / 2;
                    on_retry(layers, next);
                    layers = next;
                }
                other => return other,
            }
        }
    }

    /// What was loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub(super) fn raw(&self) -> &RawModel {
        &self.raw
    }

    /// Renders chat messages `(role, content)` with the model's template, ending with the
    /// start of the assistant turn.
    pub fn render_chat(&self, messages: &[(&str, &str)]) -> Result<String, EngineError> {
        ffi::apply_chat_template(&self.template, messages, true).ok_or_else(|| {
            EngineError::Prompt("a chat message contains a NUL byte or the template failed".into())
        })
    }

    /// Tokenizes template markup, treating control tokens (`<|im_start|>`) as special, adding
    /// no BOS. Only for text that holds no user or survey text: see [`Model::tokenize_text`]
    /// and [`Model::tokenize_rendered`].
    pub fn tokenize(&self, text: &str) -> Result<Vec<i32>, EngineError> {
        self.tokens(text, true)
    }

    /// Tokenizes user or survey text as text: a control token's spelling in it
    /// (`<|im_end|>`) stays characters and never becomes the control token.
    pub fn tokenize_text(&self, text: &str) -> Result<Vec<i32>, EngineError> {
        self.tokens(text, false)
    }

    fn tokens(&self, text: &str, special: bool) -> Result<Vec<i32>, EngineError> {
        self.raw.tokenize(text, false, special).ok_or_else(|| {
            EngineError::Prompt(format!("cannot tokenize a text of {} bytes", text.len()))
        })
    }

    /// Whether text spells a control token that parsing special tokens would turn into one.
    fn spells_control_token(&self, text: &str) -> Result<bool, EngineError> {
        Ok(self.tokens(text, true)? != self.tokens(text, false)?)
    }

    /// Tokenizes (part of) a rendered chat: the template's markup with its control tokens,
    /// and every occurrence of the `messages` (the user and survey text the chat was rendered
    /// from) as text. When no message spells a control token, this is exactly
    /// [`Model::tokenize`] of the whole (so ordinary prompts tokenize as they always have);
    /// otherwise the text is cut around the messages that do, and those are tokenized as
    /// text.
    pub fn tokenize_rendered(
        &self,
        text: &str,
        messages: &[&str],
    ) -> Result<Vec<i32>, EngineError> {
        let mut spans: Vec<std::ops::Range<usize>> = Vec::new();
        for m in messages {
            // Templates such as Llama 3's trim a message's content.
            let m = m.trim();
            if m.is_empty() || !self.spells_control_token(m)? {
                continue;
            }
            spans.extend(text.match_indices(m).map(|(at, s)| at..at + s.len()));
        }
        if spans.is_empty() {
            return self.tokenize(text);
        }
        spans.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
        let (mut out, mut at) = (Vec::new(), 0);
        for r in spans {
            if r.start < at {
                continue; // inside a message already taken
            }
            out.extend(self.tokenize(&text[at..r.start])?);
            out.extend(self.tokenize_text(&text[r.clone()])?);
            at = r.end;
        }
        out.extend(self.tokenize(&text[at..])?);
        Ok(out)
    }

    /// The token(s) the model puts before a prompt (its BOS token, if it uses one).
    pub fn bos_prefix(&self) -> Vec<i32> {
        let with = self.raw.tokenize("x", true, true).unwrap_or_default();
        let without = self.raw.tokenize("x", false, true).unwrap_or_default();
        with[..with.len().saturating_sub(without.len())].to_vec()
    }

    /// The text of a token.
    pub fn token_text(&self, token: i32) -> String {
        self.raw.token_piece(token)
    }

    /// Whether a token ends a turn.
    pub fn is_end_of_turn(&self, token: i32) -> bool {
        self.raw.is_eog(token)
    }

    /// The tokens of each answer code text (`"1"`, `"10"`), as the model writes it after the
    /// answer opening: one or two tokens each; `scale` names the scale in the error.
    pub fn code_tokens(&self, codes: &[String], scale: &str) -> Result<Vec<Vec<i32>>, EngineError> {
        codes
            .iter()
            .map(|c| match self.raw.tokenize(c, false, false) {
                Some(t) if (1..=2).contains(&t.len()) => Ok(t),
                other => Err(EngineError::Unsupported {
                    path: self.info.path.display().to_string(),
                    detail: format!(
                        "answer code {c:?} of scale {scale} is {} tokens for this model ({other:?}); codes of one or two tokens can be read",
                        other.as_ref().map_or(0, Vec::len)
                    ),
                }),
            })
            .collect()
    }
}

/// Renders chat messages with a template text or a built-in template's name, as
/// [`Model::render_chat`] does with a model's own template (no model needed); `None` when
/// llama.cpp does not recognise the template.
pub fn render_chat_with(template: &str, messages: &[(&str, &str)]) -> Option<String> {
    ffi::apply_chat_template(template, messages, true)
}

/// The factor llama.cpp multiplies a token's stored embedding row by in models of
/// `architecture`: sqrt(n_embd) for those that scale token embeddings for token input only
/// (Gemma 3 and later), else 1. Embedding rows fed directly are stored rows times this.
pub fn token_row_scale(architecture: &str, n_embd: usize) -> f32 {
    let token_input_only = matches!(
        architecture,
        "gemma3" | "gemma3n" | "gemma4" | "gemma-embedding"
    );
    if token_input_only {
        (n_embd as f32).sqrt()
    } else {
        1.0
    }
}
