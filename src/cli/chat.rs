//! `culturetune chat`: one message answered with the naive persona and with a tuned soft
//! prompt (`tuning::chat`).

use super::engine_args::EngineArgs;
use crate::prompt;
use crate::regions::RegionTable;
use crate::tuning::chat::{answer, check, Request, DEFAULT_MAX_TOKENS};
use anyhow::Result;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `culturetune chat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Region of the persona.
    #[arg(long, value_name = "CODE")]
    region: String,
    /// An exported soft prompt directory.
    #[arg(long, value_name = "DIR", conflicts_with = "run")]
    soft_prompt: Option<PathBuf>,
    /// Or the tuned prompt of a run in the database.
    #[arg(long)]
    run: Option<i64>,
    /// Most tokens per reply.
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The message.
    message: String,
}

/// Answers the message twice.
pub fn run(args: &Args, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let request = Request {
        region: args.region.clone(),
        run: args.run,
        soft_prompt: args.soft_prompt.clone(),
        message: args.message.clone(),
        max_tokens: args.max_tokens,
    };
    check(&request, table)?;
    let model = super::engine_args::load(&args.engine)?;
    let reply = answer(&model, args.engine.settings(), table, db, &request)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reply)?)?;
    } else {
        let persona = prompt::persona(table.find(&reply.region)?);
        writeln!(out, "== naive persona ({persona:?})\n{}\n", reply.naive)?;
        writeln!(out, "== tuned soft prompt\n{}", reply.tuned)?;
    }
    Ok(())
}
