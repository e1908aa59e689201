//! `culturetune chat`: one message answered with the naive persona and with a tuned soft
//! prompt (`tuning::chat`).

use super::engine_args::EngineArgs;
use crate::prompt;
use crate::regions::RegionTable;
use crate::tuning::chat::{
    answer, answer_carried, check, check_message, Request, DEFAULT_MAX_TOKENS,
};
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
    let carried = match args.run.is_some() || args.soft_prompt.is_some() {
        true => None,
        false => crate::carried::detect(&args.engine.model_path())?,
    };
    let reply = match &carried {
        Some(c) => {
            check_message(&request, table)?;
            let model = args
                .engine
                .load_carried(&c.base_template, &mut |line| eprintln!("{line}"))?;
            answer_carried(&model, args.engine.settings(), table, c, &request)?
        }
        None => {
            check(&request, table)?;
            let model = super::engine_args::load(&args.engine)?;
            answer(&model, args.engine.settings(), table, db, &request)?
        }
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reply)?)?;
    } else {
        let persona = prompt::persona(table.find(&reply.region)?);
        writeln!(out, "== naive persona ({persona:?})\n{}\n", reply.naive)?;
        writeln!(out, "== tuned soft prompt\n{}", reply.tuned)?;
        if let Some(p) = reply.carried_token_max_prob {
            writeln!(
                out,
                "\nlargest probability of a carried token in the reply: {p:.2e}"
            )?;
        }
    }
    Ok(())
}
