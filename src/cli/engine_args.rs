//! The engine options of every command that runs the model (`engine::options`), and loading
//! the model with its notes on stderr.

pub use crate::engine::options::EngineOptions as EngineArgs;
use crate::engine::Model;
use anyhow::{Context, Result};

/// Loads the model `opts` name, printing the GPU plan and any retry to stderr.
pub fn load(opts: &EngineArgs) -> Result<Model> {
    opts.load(&mut |line| eprintln!("{line}"))
        .context("loading the model")
}
