//! `culturetune chat`: the same message answered with the naive persona and with a tuned soft
//! prompt in its place, so a person can see what the tuning did. [`answer`] is shared with the
//! long-lived `chat-worker`, which keeps the model loaded between messages.

use super::engine_args::EngineArgs;
use super::InvalidInput;
use crate::engine::evaluate::{ChatPrompt, EvalSettings, Evaluator, PersonaInput};
use crate::engine::Model;
use crate::export;
use crate::prompt;
use crate::regions::RegionTable;
use crate::store::Store;
use crate::tuning::placed::PromptPlacement;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Most tokens per reply unless the request says otherwise.
pub const DEFAULT_MAX_TOKENS: usize = 120;
/// Most tokens a reply may be asked for.
pub const MAX_REPLY_TOKENS: usize = 4096;

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

/// One message to answer: the region's persona, where the tuned prompt comes from, the text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Region code of the persona.
    pub region: String,
    /// A run in the database whose tuned prompt to use.
    #[serde(default)]
    pub run: Option<i64>,
    /// Or an exported soft prompt directory.
    #[serde(default)]
    pub soft_prompt: Option<PathBuf>,
    /// The message.
    pub message: String,
    /// Most tokens per reply.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
}

fn default_max_tokens() -> usize {
    DEFAULT_MAX_TOKENS
}

/// The two replies to one message.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    /// Region code of the persona.
    pub region: String,
    /// The message answered.
    pub message: String,
    /// The reply with the naive persona text.
    pub naive: String,
    /// The reply with the tuned soft prompt in the persona's place.
    pub tuned: String,
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
    let model = args.engine.load()?;
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

/// Refuses a request that cannot be answered whatever the model: an unknown region, an empty
/// message, no tuned prompt named.
pub fn check(request: &Request, table: &RegionTable) -> Result<()> {
    table.find(&request.region)?;
    let refuse = |m: &str| Err(InvalidInput(m.to_string()).into());
    if request.message.trim().is_empty() {
        return refuse("the message is empty; give the text the model should answer");
    }
    if request.message.contains('\0') {
        return refuse("the message contains a NUL byte; expected plain text");
    }
    if request.max_tokens == 0 || request.max_tokens > MAX_REPLY_TOKENS {
        return Err(InvalidInput(format!(
            "max_tokens is {}; expected 1..={MAX_REPLY_TOKENS} tokens per reply",
            request.max_tokens
        ))
        .into());
    }
    match (&request.run, &request.soft_prompt) {
        (None, None) => refuse("give the tuned prompt with --soft-prompt DIR or --run N"),
        (Some(_), Some(_)) => {
            refuse("give the tuned prompt either as a run or as a soft prompt directory, not both")
        }
        _ => Ok(()),
    }
}

/// The naive and the tuned reply of a loaded model to one request (greedy decoding). The
/// caller has [`check`]ed the request (before loading the model).
pub fn answer(
    model: &Model,
    settings: EvalSettings,
    table: &RegionTable,
    db: &Path,
    request: &Request,
) -> Result<Reply> {
    let region = table.find(&request.region)?;
    let n_embd = model.info().n_embd;
    let (rows, card) = match (&request.soft_prompt, request.run) {
        (Some(dir), _) => {
            let f = export::import(dir, Some(n_embd))?;
            (f.rows, f.card)
        }
        (None, Some(run)) => {
            let store = Store::open_read_only(db)?;
            let status = match store.run(run) {
                Ok(r) => r.status,
                Err(crate::store::StoreError::NotFound { .. }) => {
                    return Err(InvalidInput(format!(
                        "no run {run} in {}: there is no tuned prompt to chat with (see `culturetune runs`)",
                        db.display()
                    ))
                    .into())
                }
                Err(e) => return Err(e.into()),
            };
            let p = store.prompt_for_run(run)?.ok_or_else(|| {
                InvalidInput(format!(
                    "run {run} has no tuned prompt (status {})",
                    status.as_str()
                ))
            })?;
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
    let placement =
        PromptPlacement::from_card(&card).map_err(|e| anyhow!("the prompt's card: {e}"))?;
    let chat = ChatPrompt::build(model, &prompt::persona(region), &request.message)?;
    let tuned_chat = placement.chat_prompt(model, region, &request.message)?;
    let mut ev = Evaluator::new(model, settings)?;
    let naive = ev.generate(&chat, PersonaInput::Text, request.max_tokens)?;
    let tuned = ev.generate(
        &tuned_chat,
        PersonaInput::Embeddings(&rows),
        request.max_tokens,
    )?;
    Ok(Reply {
        region: region.code.clone(),
        message: request.message.clone(),
        naive,
        tuned,
    })
}
