//! culturetune: align a local LLM with a region's culture.
//!
//! The library holds everything that is not GUI: the VSM 2013 survey model and scoring
//! ([`survey`], [`scoring`], [`responses`]), the published targets ([`regions`]) and the
//! dimension types ([`dimension`]), the llama.cpp engine ([`engine`]), the tuner
//! ([`tuning`], [`optim`]), the store ([`store`]), export ([`export`]) and the command line
//! ([`cli`], which the desktop app also runs as its worker process). See `docs/ARCHITECTURE.md` for the code map and invariants.

pub mod atomic_file;
pub mod bench;
pub mod carried;
#[cfg(feature = "cli")]
pub mod cli;
pub mod csv_lines;
pub mod dimension;
pub mod engine;
pub mod error_code;
pub mod events;
pub mod export;
pub mod fingerprint;
pub mod input_file;
pub mod item_fit;
pub mod labels;
pub mod optim;
pub mod prompt;
pub mod regions;
pub mod responses;
pub mod scoring;
pub mod soft_prompt;
pub mod store;
pub mod survey;
pub mod tuning;
