//! The llama.cpp engine: loading a GGUF model, reading its input embeddings, and evaluating
//! survey prompts (with an optional soft prompt) as a prefix tree in one fixed procedure.
//!
//! `ffi` is the only module of culturetune with `unsafe` code. The rest of the engine is safe
//! Rust over it: [`Model`] (validated loading, tokenizing, chat templates), [`EmbeddingTable`]
//! (dequantized `token_embd.weight` rows), [`tree`] (the prefix tree) and [`evaluate`] (answer
//! distributions for a survey) with [`answer`] (soft prompts at the answer side, item prefixes
//! kept in the KV cache across candidates).

pub mod answer;
mod backend;
mod embeddings;
mod error;
pub mod evaluate;
mod ffi;
pub mod file_report;
mod gguf;
pub mod gguf_file;
mod model;
pub mod offload;
pub mod options;
pub mod prompts;
pub mod settings;
mod streams;
pub mod tree;
mod weights;

pub use backend::{gpu_available, init, load_for_evaluation, system_info};
pub use embeddings::EmbeddingTable;
pub use error::EngineError;
pub use ffi::{builtin_chat_templates, DecodeError};
pub use gguf::{inspect, inspect_bytes, GgufInfo};
pub use model::{render_chat_with, token_row_scale, Model, ModelInfo};
pub use weights::{converted_path, WeightType};
