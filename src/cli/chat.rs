//! `culturetune chat`: the same message answered with the naive persona and with a tuned soft
//! prompt in its place, so a person can see what the tuning did.

use super::engine_args::EngineArgs;
use crate::engine::evaluate::{ChatPrompt, Evaluator, PersonaInput};
use crate::export;
use crate::prompt;
use crate::regions::RegionTable;
use crate::soft_prompt::{AnswerAnchor, Placement};
use crate::store::Store;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
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
    #[arg(long, default_value_t = 120)]
    max_tokens: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The message.
    message: String,
}

/// Answers the message twice.
pub fn run(args: &Args, table: &RegionTable, db: &Path, out: &mut dyn Write) -> Result<()> {
    let region = table.find(&args.region)?;
    if args.message.trim().is_empty() {
        bail!("the message is empty; give the text the model should answer");
    }
    let model = args.engine.load()?;
    let n_embd = model.info().n_embd;
    let (rows, card) = match (&args.soft_prompt, args.run) {
        (Some(dir), _) => {
            let f = export::import(dir, Some(n_embd))?;
            (f.rows, f.card)
        }
        (None, Some(run)) => {
            let p = Store::open(db)?
                .prompt_for_run(run)?
                .with_context(|| format!("run {run} has no tuned prompt"))?;
            if p.n_embd != n_embd {
                bail!(
                    "run {run}'s prompt is {} wide but this model's embeddings are {n_embd} wide",
                    p.n_embd
                );
            }
            (p.rows, p.card)
        }
        (None, None) => bail!("give the tuned prompt with --soft-prompt DIR or --run N"),
    };
    let placement = Placement::from_card(&card).map_err(|e| anyhow!("the prompt's card: {e}"))?;
    let chat = ChatPrompt::build(&model, &prompt::persona(region), &args.message)?;
    let tuned_chat = match placement {
        Placement::Prefix => chat.clone(),
        Placement::Answer => {
            let anchor =
                AnswerAnchor::from_card(&card).map_err(|e| anyhow!("the prompt's card: {e}"))?;
            ChatPrompt::build_answer(
                &model,
                &prompt::persona(region),
                &prompt::answer_parts(anchor, region).0,
                &args.message,
            )?
        }
    };
    let mut ev = Evaluator::new(&model, args.engine.settings())?;
    let naive = ev.generate(&chat, PersonaInput::Text, args.max_tokens)?;
    let tuned = ev.generate(
        &tuned_chat,
        PersonaInput::Embeddings(&rows),
        args.max_tokens,
    )?;
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &json!({"region": region.code, "message": args.message, "naive": naive, "tuned": tuned})
            )?
        )?;
    } else {
        writeln!(
            out,
            "== naive persona ({:?})\n{naive}\n",
            prompt::persona(region)
        )?;
        writeln!(out, "== tuned soft prompt\n{tuned}")?;
    }
    Ok(())
}
