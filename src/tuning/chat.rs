//! Chat with a tuned prompt: the same message answered with the naive persona and with the
//! tuned soft prompt in its placement (greedy decoding), so a person can see what the tuning
//! did. `culturetune chat` answers one message; the long-lived `chat-worker` answers many with
//! the model kept loaded.

use super::placed::PromptPlacement;
use super::TuneError;
use crate::engine::evaluate::{ChatPrompt, EvalSettings, Evaluator, PersonaInput};
use crate::engine::Model;
use crate::export;
use crate::prompt;
use crate::regions::RegionTable;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Most tokens per reply unless the request says otherwise.
pub const DEFAULT_MAX_TOKENS: usize = 120;
/// Most tokens a reply may be asked for.
pub const MAX_REPLY_TOKENS: usize = 4096;

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
    /// For a model that carries the tuned prompt as tokens: the largest probability of any
    /// of those tokens at any position of the tuned reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carried_token_max_prob: Option<f64>,
}

/// The naive and the tuned reply of a model file that carries its tuned prompt as tokens
/// (`crate::carried`): the tuned reply from plain tokens, the carried tokens' probability
/// watched at every reply position.
pub fn answer_carried(
    model: &Model,
    settings: EvalSettings,
    table: &RegionTable,
    carried: &crate::carried::Carried,
    request: &Request,
) -> Result<Reply, TuneError> {
    let region = table.find(&request.region)?;
    let tuned = crate::carried::chat_prompt(carried, model, &request.message)?;
    let watch = carried.id_range();
    replies(
        model,
        settings,
        region,
        request,
        &tuned,
        PersonaInput::Text,
        Some(watch),
    )
}

/// The naive persona's reply and the reply to `tuned` with `input` in its persona block's
/// place (greedy decoding), watching the probability of the tokens `watch` in the tuned one.
fn replies(
    model: &Model,
    settings: EvalSettings,
    region: &crate::regions::Region,
    request: &Request,
    tuned: &ChatPrompt,
    input: PersonaInput<'_>,
    watch: Option<std::ops::Range<i32>>,
) -> Result<Reply, TuneError> {
    let chat = ChatPrompt::build(model, &prompt::persona(region), &request.message)?;
    let mut ev = Evaluator::new(model, settings)?;
    let naive = ev.generate(&chat, PersonaInput::Text, request.max_tokens)?;
    if let Some(ids) = watch {
        ev.watch_tokens(ids);
    }
    let tuned = ev.generate(tuned, input, request.max_tokens)?;
    Ok(Reply {
        region: region.code.clone(),
        message: request.message.clone(),
        naive,
        tuned,
        carried_token_max_prob: ev.watched_max_prob(),
    })
}

/// Refuses a request that cannot be answered whatever the model: an unknown region, an empty
/// message, no tuned prompt named.
pub fn check(request: &Request, table: &RegionTable) -> Result<(), TuneError> {
    check_message(request, table)?;
    let refuse = |m: &str| Err(TuneError::Invalid(m.to_string()));
    match (&request.run, &request.soft_prompt) {
        (None, None) => refuse("give the tuned prompt with --soft-prompt DIR or --run N (or a --model exported with `export --gguf`)"),
        (Some(_), Some(_)) => {
            refuse("give the tuned prompt either as a run or as a soft prompt directory, not both")
        }
        _ => Ok(()),
    }
}

/// [`check`] without a tuned prompt named (the model carries one).
pub fn check_message(request: &Request, table: &RegionTable) -> Result<(), TuneError> {
    table.find(&request.region)?;
    let refuse = |m: &str| Err(TuneError::Invalid(m.to_string()));
    if request.message.trim().is_empty() {
        return refuse("the message is empty; give the text the model should answer");
    }
    if request.message.contains('\0') {
        return refuse("the message contains a NUL byte; expected plain text");
    }
    if request.max_tokens == 0 || request.max_tokens > MAX_REPLY_TOKENS {
        return Err(TuneError::Invalid(format!(
            "max_tokens is {}; expected 1..={MAX_REPLY_TOKENS} tokens per reply",
            request.max_tokens
        )));
    }
    Ok(())
}

/// The naive and the tuned reply of a loaded model to one request (greedy decoding). The
/// caller has [`check`]ed the request (before loading the model).
pub fn answer(
    model: &Model,
    settings: EvalSettings,
    table: &RegionTable,
    db: &Path,
    request: &Request,
) -> Result<Reply, TuneError> {
    let region = table.find(&request.region)?;
    let n_embd = model.info().n_embd;
    let (rows, card) = match (&request.soft_prompt, request.run) {
        (Some(dir), _) => {
            let f = export::import(dir, Some(n_embd))?;
            (f.rows, f.card)
        }
        (None, Some(run)) => stored_prompt(db, run, n_embd)?,
        (None, None) => {
            return Err(TuneError::Invalid(
                "give the tuned prompt with --soft-prompt DIR or --run N".into(),
            ))
        }
    };
    let placement = PromptPlacement::from_card(&card)
        .map_err(|e| TuneError::Invalid(format!("the prompt's card: {e}")))?;
    let tuned = placement.chat_prompt(model, region, &request.message)?;
    let input = PersonaInput::Embeddings(&rows);
    replies(model, settings, region, request, &tuned, input, None)
}

/// Run `run`'s tuned prompt from the database `db`: its rows and its card.
fn stored_prompt(
    db: &Path,
    run: i64,
    n_embd: usize,
) -> Result<(Vec<f32>, serde_json::Value), TuneError> {
    let store = Store::open_read_only(db)?;
    let status = match store.run(run) {
        Ok(r) => r.status,
        Err(crate::store::StoreError::NotFound { .. }) => {
            return Err(TuneError::Invalid(format!(
            "no run {run} in {}: there is no tuned prompt to chat with (see `culturetune runs`)",
            db.display()
        )))
        }
        Err(e) => return Err(e.into()),
    };
    let p = store.prompt_for_run(run)?.ok_or_else(|| {
        TuneError::Invalid(format!(
            "run {run} has no tuned prompt (status {})",
            status.as_str()
        ))
    })?;
    if p.n_embd != n_embd {
        return Err(TuneError::Invalid(format!(
            "run {run}'s prompt is {} wide but this model's embeddings are {n_embd} wide",
            p.n_embd
        )));
    }
    Ok((p.rows, p.card))
}

/// What the worker has done so far, sent with every answer (a caller can check that the model
/// was not loaded again, and which process answered).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WorkerState {
    /// This process's id.
    pub pid: u32,
    /// How many times the model was loaded (1 once the first message succeeded).
    pub model_loads: u32,
    /// Requests answered, including this one.
    pub requests: u32,
}

/// One line of the chat worker's output: the replies or the error of one request.
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    /// The replies, when the request succeeded.
    pub reply: Option<Reply>,
    /// The error, when it did not.
    pub error: Option<crate::error_code::ErrorLine>,
    /// The worker's counters after this request.
    pub worker: WorkerState,
}
