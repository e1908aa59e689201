//! A GGUF that carries a tuned prompt, for llama.cpp apps that take tokens only (llama-server,
//! LM Studio, Ollama): the k tuned rows become k new vocabulary tokens `<|ct_0|>`..., so that
//! the prompt is plain text.
//!
//! What the written file holds, against the model file the run evaluated:
//! - `token_embd.weight` as F32 with k more rows. Every original row is the exact f32 value
//!   llama.cpp dequantizes it to, and the new rows are the tuned rows exactly (divided by
//!   sqrt(n_embd) for architectures that scale token rows, which llama.cpp multiplies back).
//! - `output.weight` (added when the model ties it to the input embeddings): the original
//!   output matrix byte for byte, in its own type, plus k copies of the row of a *quiet* token
//!   (the token whose largest logit over the survey's answer positions is the lowest), so
//!   every original logit is unchanged and each new token is exactly as unlikely as that one.
//!   (Zero rows, logit 0, were tried first: a base model copying its prompt put 0.45 on one.)
//!   `survey` and `chat` measure the new tokens' probability.
//! - every tokenizer array grown by the k tokens (text, type `USER_DEFINED`, score 0),
//!   `<arch>.vocab_size` if present, a chat template that places the tokens where the run's
//!   placement puts the rows, and `culturetune.*` keys (the card, the tokens, the base
//!   vocabulary size, the template the run used). Every other key and tensor is copied.
//!
//! [`read`] recognises such a file and refuses one whose keys disagree (naming the key).

use crate::engine::gguf_file::{self, GgufFile, MetaValue, TensorInfo, TYPE_F32, TYPE_I32};
use crate::engine::EngineError;
use crate::export::ExportError;
use crate::prompt::CHAT_INSTRUCTIONS;
use crate::tuning::placed::Insertion;
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The version of the `culturetune.*` keys this build writes and reads.
pub const FORMAT: u32 = 1;
/// llama.cpp's token type of a user-defined token: matched in any text, never a control.
const USER_DEFINED: i32 = 4;
/// Token type of an ordinary token (for files without a token-type array).
const NORMAL: i32 = 1;

const K_FORMAT: &str = "culturetune.format";
const K_TOKENS: &str = "culturetune.tokens";
const K_BASE_VOCAB: &str = "culturetune.base_vocab_size";
const K_CARD: &str = "culturetune.card";
const K_TEMPLATE: &str = "culturetune.base_chat_template";
const K_SYSTEM: &str = "culturetune.system_prompt";
const K_CHAT_TEMPLATE: &str = "tokenizer.chat_template";
const K_VOCAB_TOKENS: &str = "tokenizer.ggml.tokens";
const K_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const K_SCORES: &str = "tokenizer.ggml.scores";

/// The text of new token `i`.
pub fn token_name(i: usize) -> String {
    format!("<|ct_{i}|>")
}

/// The k tokens as one text, in order.
pub fn token_text(k: usize) -> String {
    (0..k).map(token_name).collect()
}

/// A tuned prompt found in a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct Carried {
    /// The new tokens' texts, in row order.
    pub tokens: Vec<String>,
    /// The id of the first new token (the base model's vocabulary size).
    pub first_id: i32,
    /// The tuned prompt's card.
    pub card: Value,
    /// Where the tokens go, as the card says.
    pub insertion: Insertion,
    /// The chat template the run rendered its prompts with (a template text or a name).
    pub base_template: String,
    /// A plain-text system prompt for tools that ignore the file's chat template.
    pub system_prompt: String,
}

impl Carried {
    /// Rows (new tokens).
    pub fn k(&self) -> usize {
        self.tokens.len()
    }

    /// The new tokens' ids, in row order.
    pub fn id_range(&self) -> std::ops::Range<i32> {
        self.first_id..self.first_id + self.k() as i32
    }

    /// [`Carried::id_range`] as a list.
    pub fn ids(&self) -> Vec<i32> {
        self.id_range().collect()
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> ExportError {
    ExportError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn engine(path: &Path) -> impl Fn(EngineError) -> ExportError + '_ {
    move |e| invalid(path, e.to_string())
}

/// The plain-text system prompt for a tool that ignores the chat template: the tokens and
/// culturetune's chat instruction (prefix), or the naive persona (answer; the tokens then
/// belong at the start of the assistant's turn, which only a template can place).
pub fn system_prompt(insertion: &Insertion, tokens: &str) -> String {
    match insertion {
        Insertion::Prefix { .. } => format!("{tokens} {CHAT_INSTRUCTIONS}"),
        Insertion::Answer { system_persona, .. } => format!("{system_persona} {CHAT_INSTRUCTIONS}"),
    }
}

/// A Jinja string literal of `s`.
fn jinja_str(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// The exported chat template: `base` (a Jinja template) with a first statement that puts
/// the tokens in front of the system message (prefix; a system message of the tokens and
/// culturetune's chat instruction when there is none), or that supplies the naive persona's
/// system message when there is none and, after the template, opens the assistant's turn
/// with the tokens and the answer opening (answer).
pub fn chat_template(base: &str, insertion: &Insertion, tokens: &str) -> String {
    // A built-in template's name (`--chat-template gemma`) stands for its Jinja text.
    let base = builtin_jinja(base).unwrap_or(base);
    // A Jinja renderer drops one trailing newline of the template source; keep that.
    let base = base.strip_suffix('\n').unwrap_or(base);
    let has_system = "(messages and messages[0]['role'] == 'system')";
    let system = |content: String| format!("[{{'role': 'system', 'content': {content}}}]");
    match insertion {
        Insertion::Prefix { .. } => {
            let t = jinja_str(&format!("{tokens} "));
            let own = system(format!("{t} + messages[0]['content']"));
            let ours = system(jinja_str(&format!("{tokens} {CHAT_INSTRUCTIONS}")));
            format!("{{% set messages = ({own} + messages[1:]) if {has_system} else ({ours} + messages) %}}{base}")
        }
        Insertion::Answer {
            system_persona,
            answer_opening,
            ..
        } => {
            let ours = system(jinja_str(&format!("{system_persona} {CHAT_INSTRUCTIONS}")));
            let open = jinja_str(&format!("{tokens}{answer_opening}"));
            format!("{{% set messages = messages if {has_system} else ({ours} + messages) %}}{base}{{% if add_generation_prompt %}}{{{{ {open} }}}}{{% endif %}}")
        }
    }
}

/// What [`write_gguf`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GgufExport {
    /// The file.
    pub path: PathBuf,
    /// The model file it was made from.
    pub source: PathBuf,
    /// The new tokens.
    pub tokens: Vec<String>,
    /// The first new token's id.
    pub first_id: i32,
    /// Whether `output.weight` was added (the model tied it to the input embeddings).
    pub untied_output: bool,
    /// The token whose output row the new tokens copy.
    pub quiet_token: u32,
    /// Bytes written.
    pub bytes: u64,
}

/// What the export needs besides the model file: the tuned rows, as fed to llama.cpp
/// (`k * n_embd`), the card, and the chat template the run rendered with.
pub struct CarrySource<'a> {
    /// The model file the run evaluated (its weights type).
    pub model: &'a Path,
    /// The rows.
    pub rows: &'a [f32],
    /// Rows.
    pub k: usize,
    /// The prompt's card (its `insertion` says where the tokens go).
    pub card: &'a Value,
    /// The run's chat template: `None` for the model file's own.
    pub chat_template: Option<&'a str>,
    /// The token whose output row each new token gets ([`quiet_token`]).
    pub quiet_token: u32,
}

/// The token with the lowest largest logit, of `max_logits` (each token's largest logit over
/// a set of positions, e.g. `Evaluator::max_logits` over the survey's answers): new tokens
/// that copy its output row are as unlikely as it is there.
pub fn quiet_token(max_logits: &[f32]) -> Option<u32> {
    max_logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
}

/// Writes `out`, a copy of `src.model` that carries the rows as tokens (see the module
/// documentation), atomically; an existing `out` is refused unless `force`, and even then
/// only a file this program exported is replaced. The written file is read back and checked;
/// what it carries is returned with the report.
pub fn write_gguf(
    src: &CarrySource<'_>,
    out: &Path,
    force: bool,
) -> Result<(GgufExport, Carried), ExportError> {
    check_target(out, force)?;
    let plan = Plan::new(src).map_err(|e| invalid(src.model, e))?;
    let mut data = |t: &TensorInfo, w: &mut dyn Write| plan.data(t, w);
    crate::atomic_file::write_with(out, |w| plan.file.write(w, &mut data)).map_err(|source| {
        ExportError::Io {
            path: out.to_path_buf(),
            source,
        }
    })?;
    let back = read(out)?.ok_or_else(|| invalid(out, "the written file carries no prompt"))?;
    if back.k() != src.k {
        return Err(invalid(out, "the written file does not read back"));
    }
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    let export = GgufExport {
        path: out.to_path_buf(),
        source: src.model.to_path_buf(),
        tokens: back.tokens.clone(),
        first_id: back.first_id,
        untied_output: plan.untied,
        quiet_token: src.quiet_token,
        bytes,
    };
    Ok((export, back))
}

/// Refuses an existing target unless `force` and it is a GGUF this program exported.
fn check_target(out: &Path, force: bool) -> Result<(), ExportError> {
    if std::fs::symlink_metadata(out).is_err() {
        return Ok(());
    }
    if !force {
        return Err(ExportError::Exists(out.to_path_buf()));
    }
    crate::atomic_file::check_replaceable(out).map_err(|e| invalid(out, e.to_string()))?;
    match read(out) {
        Ok(Some(_)) => Ok(()),
        _ => Err(invalid(
            out,
            "it is not a GGUF exported by culturetune; refusing to replace it (choose a new file name)",
        )),
    }
}

/// The new file's metadata and tensor infos, and where each tensor's data comes from.
struct Plan {
    source: GgufFile,
    file: GgufFile,
    rows: Vec<f32>,
    n_vocab: u64,
    /// Whether output.weight is new (tied before).
    untied: bool,
    /// The row the new tokens' output rows copy.
    quiet: u64,
}

impl Plan {
    fn new(src: &CarrySource<'_>) -> Result<Plan, String> {
        let source = GgufFile::read(src.model).map_err(|e| e.to_string())?;
        if source.get(K_FORMAT).is_some() {
            return Err("the model already carries a culturetune prompt; export from the model the run was tuned on".into());
        }
        let insertion: Insertion =
            serde_json::from_value(src.card.get("insertion").cloned().unwrap_or(Value::Null))
                .map_err(|e| format!("the prompt's card has no readable insertion: {e}"))?;
        let embd = source
            .tensor("token_embd.weight")
            .filter(|t| t.ne.len() == 2)
            .ok_or("no 2-D token_embd.weight tensor")?
            .clone();
        let (n_embd, n_vocab) = (embd.ne[0], embd.ne[1]);
        if src.k == 0 || src.rows.len() as u64 != src.k as u64 * n_embd {
            return Err(format!(
                "{} values are not {} rows of {n_embd}",
                src.rows.len(),
                src.k
            ));
        }
        check_vocab_tensors(&source, n_vocab)?;
        let scale = crate::engine::token_row_scale(architecture(&source), n_embd as usize);
        let base = base_template(&source, src.chat_template)?;
        let mut file = source.clone();
        grow_vocabulary(&mut file, n_vocab, src.k)?;
        set_carry_keys(&mut file, src, &insertion, &base, n_vocab);
        if u64::from(src.quiet_token) >= n_vocab {
            return Err(format!(
                "quiet token {} is outside the vocabulary",
                src.quiet_token
            ));
        }
        let untied = grow_tensors(&mut file, &embd, src.k as u64)?;
        let rows = src.rows.iter().map(|v| v / scale).collect();
        Ok(Plan {
            source,
            file,
            rows,
            n_vocab,
            untied,
            quiet: u64::from(src.quiet_token),
        })
    }

    /// Writes a tensor's data: the grown embeddings and output, or a copy.
    fn data(&self, t: &TensorInfo, w: &mut dyn Write) -> std::io::Result<()> {
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        match t.name.as_str() {
            "token_embd.weight" => {
                let old = self
                    .source
                    .tensor(&t.name)
                    .ok_or_else(|| bad("no token_embd".into()))?;
                let bytes = self
                    .source
                    .read_tensor(&t.name)
                    .map_err(|e| bad(e.to_string()))?;
                let row = old
                    .row_bytes()
                    .ok_or_else(|| bad("unknown row size".into()))?;
                for chunk in bytes.chunks(row * 1024) {
                    let vals = gguf_file::dequantize_rows(old, chunk).ok_or_else(|| {
                        bad(format!(
                            "cannot dequantize token_embd.weight of type {}",
                            old.ggml_type
                        ))
                    })?;
                    write_f32(w, &vals)?;
                }
                write_f32(w, &self.rows)
            }
            "output.weight" => {
                let from = self
                    .source
                    .tensor("output.weight")
                    .or_else(|| self.source.tensor("token_embd.weight"))
                    .ok_or_else(|| bad("no output matrix".into()))?;
                self.source.copy_tensor(from, w)?;
                let row = t
                    .row_bytes()
                    .ok_or_else(|| bad("unknown row size".into()))?;
                let quiet = self
                    .source
                    .read_tensor_part(from, self.quiet * row as u64, row)
                    .map_err(|e| bad(e.to_string()))?;
                for _ in self.n_vocab..t.ne[1] {
                    w.write_all(&quiet)?;
                }
                Ok(())
            }
            name => {
                let from = self
                    .source
                    .tensor(name)
                    .ok_or_else(|| bad(format!("no {name}")))?;
                self.source.copy_tensor(from, w)
            }
        }
    }
}

/// `general.architecture` ("" when absent).
fn architecture(f: &GgufFile) -> &str {
    f.get("general.architecture")
        .and_then(MetaValue::as_str)
        .unwrap_or_default()
}

/// The keys that carry the prompt: `<arch>.vocab_size` grown by k (when present), the chat
/// template placing the tokens, and the `culturetune.*` keys.
fn set_carry_keys(
    file: &mut GgufFile,
    src: &CarrySource<'_>,
    insertion: &Insertion,
    base: &str,
    n_vocab: u64,
) {
    let vocab_size = format!("{}.vocab_size", architecture(file));
    if let Some(v) = file.get(&vocab_size).and_then(MetaValue::as_u64) {
        file.set(&vocab_size, MetaValue::U32((v + src.k as u64) as u32));
    }
    let tokens = token_text(src.k);
    let template = chat_template(base, insertion, &tokens);
    file.set(K_CHAT_TEMPLATE, MetaValue::string(&template));
    file.set(K_FORMAT, MetaValue::U32(FORMAT));
    let names = (0..src.k).map(|i| MetaValue::string(&token_name(i)));
    file.set(
        K_TOKENS,
        MetaValue::Array(gguf_file::TYPE_STR, names.collect()),
    );
    file.set(K_BASE_VOCAB, MetaValue::U64(n_vocab));
    file.set(K_CARD, MetaValue::string(&src.card.to_string()));
    file.set(K_TEMPLATE, MetaValue::string(base));
    let system = system_prompt(insertion, &tokens);
    file.set(K_SYSTEM, MetaValue::string(&system));
}

fn write_f32(w: &mut dyn Write, vals: &[f32]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(vals.len() * 4);
    for v in vals {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    w.write_all(&buf)
}

/// Refuses a model with a tensor other than the embeddings and the output sized by the
/// vocabulary (it would need rows for the new tokens too).
fn check_vocab_tensors(f: &GgufFile, n_vocab: u64) -> Result<(), String> {
    for t in &f.tensors {
        let sized = t.ne.iter().skip(1).any(|&n| n == n_vocab);
        if sized && t.name != "token_embd.weight" && t.name != "output.weight" {
            return Err(format!(
                "tensor {} is sized by the vocabulary ({n_vocab}); this architecture cannot take new tokens",
                t.name
            ));
        }
    }
    if let Some(o) = f.tensor("output.weight") {
        if o.ne.len() != 2 || o.ne[1] != n_vocab {
            return Err(format!(
                "output.weight is {:?}; expected [n_embd, {n_vocab}]",
                o.ne
            ));
        }
    }
    Ok(())
}

/// The Jinja template to extend: the run's `--chat-template` text, else the file's own.
fn base_template(f: &GgufFile, given: Option<&str>) -> Result<String, String> {
    let text = match given {
        Some(t) => t.to_string(),
        None => f
            .get(K_CHAT_TEMPLATE)
            .and_then(MetaValue::as_str)
            .ok_or("the model has no chat template")?
            .to_string(),
    };
    if crate::engine::builtin_chat_templates().contains(&text) && builtin_jinja(&text).is_none() {
        return Err(format!(
            "the run used llama.cpp's built-in chat template {text:?}, which has no Jinja text to carry the tokens (this build writes Jinja for {}); tune with --chat-template FILE (a Jinja template) to export a GGUF",
            BUILTIN_JINJA.map(|(n, _)| n).join(", ")
        ));
    }
    Ok(text)
}

/// Jinja text, written for culturetune, that renders as llama.cpp's built-in template of the
/// same name renders (llama-chat.cpp): the role markers, the trimming, and for `gemma` the
/// system message merged into the first user turn.
const BUILTIN_JINJA: [(&str, &str); 3] = [
    (
        "chatml",
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    ),
    (
        "llama3",
        "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + (message['content'] | trim) + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
    ),
    (
        "gemma",
        "{% set ns = namespace(system='') %}{% for message in messages %}{% if message['role'] == 'system' %}{% set ns.system = ns.system + (message['content'] | trim) %}{% else %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\\n' }}{% if ns.system and role != 'model' %}{{ ns.system + '\\n\\n' }}{% set ns.system = '' %}{% endif %}{{ (message['content'] | trim) + '<end_of_turn>\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}",
    ),
];

/// The Jinja text of a built-in template name this build writes one for.
fn builtin_jinja(name: &str) -> Option<&'static str> {
    BUILTIN_JINJA
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, j)| *j)
}

/// Appends the k tokens to the tokenizer's arrays (texts, types, scores).
fn grow_vocabulary(f: &mut GgufFile, n_vocab: u64, k: usize) -> Result<(), String> {
    let Some(MetaValue::Array(et, mut tokens)) = f.get(K_VOCAB_TOKENS).cloned() else {
        return Err(format!("no {K_VOCAB_TOKENS} array"));
    };
    if tokens.len() as u64 != n_vocab {
        return Err(format!(
            "{K_VOCAB_TOKENS} has {} entries for {n_vocab} embedding rows",
            tokens.len()
        ));
    }
    for i in 0..k {
        let name = token_name(i);
        if tokens.iter().any(|t| t.as_str() == Some(name.as_str())) {
            return Err(format!("the vocabulary already holds a token {name}"));
        }
        tokens.push(MetaValue::string(&name));
    }
    f.set(K_VOCAB_TOKENS, MetaValue::Array(et, tokens));
    let mut types = match f.get(K_TOKEN_TYPE).cloned() {
        Some(MetaValue::Array(TYPE_I32, t)) if t.len() as u64 == n_vocab => t,
        None => vec![MetaValue::I32(NORMAL); n_vocab as usize],
        Some(_) => return Err(format!("{K_TOKEN_TYPE} is not {n_vocab} i32 values")),
    };
    types.extend((0..k).map(|_| MetaValue::I32(USER_DEFINED)));
    f.set(K_TOKEN_TYPE, MetaValue::Array(TYPE_I32, types));
    if let Some(MetaValue::Array(TYPE_F32, mut scores)) = f.get(K_SCORES).cloned() {
        scores.extend((0..k).map(|_| MetaValue::F32(0.0)));
        f.set(K_SCORES, MetaValue::Array(TYPE_F32, scores));
    }
    Ok(())
}

/// The embeddings as F32 with k more rows; the output grown by k rows (added as a copy of the
/// embeddings' type and bytes when tied). Returns whether the output was added.
fn grow_tensors(f: &mut GgufFile, embd: &TensorInfo, k: u64) -> Result<bool, String> {
    let n_vocab = embd.ne[1];
    let untied = f.tensor("output.weight").is_none();
    let out_type = f.tensor("output.weight").unwrap_or(embd).ggml_type;
    for t in &mut f.tensors {
        if t.name == "token_embd.weight" {
            t.ggml_type = gguf_file::GGML_F32;
            t.ne[1] = n_vocab + k;
        } else if t.name == "output.weight" {
            t.ne[1] = n_vocab + k;
        }
    }
    if untied {
        f.tensors.push(TensorInfo {
            name: "output.weight".into(),
            ne: vec![embd.ne[0], n_vocab + k],
            ggml_type: out_type,
            offset: 0,
        });
    }
    Ok(untied)
}

/// The tuned prompt a GGUF file carries: `None` for a file without `culturetune.*` keys; an
/// error, naming the key, for one whose keys disagree with each other or with its
/// vocabulary, tensors or chat template (a tampered or damaged export).
pub fn read(path: &Path) -> Result<Option<Carried>, ExportError> {
    let f = GgufFile::read(path).map_err(engine(path))?;
    from_file(path, &f)
}

/// [`read`] for commands that take any model file (`survey`, `chat`): `None` also for a file
/// that is not a readable GGUF, whose loading then says why, as for any model.
pub fn detect(path: &Path) -> Result<Option<Carried>, ExportError> {
    match GgufFile::read(path) {
        Ok(f) => from_file(path, &f),
        Err(_) => Ok(None),
    }
}

fn from_file(path: &Path, f: &GgufFile) -> Result<Option<Carried>, ExportError> {
    let Some(format) = f.get(K_FORMAT) else {
        return Ok(None);
    };
    let bad = |key: &str, what: String| invalid(path, format!("{key}: {what}"));
    if format.as_u64() != Some(u64::from(FORMAT)) {
        return Err(bad(
            K_FORMAT,
            format!("{format:?}; this build reads {FORMAT}"),
        ));
    }
    let tokens: Vec<String> = f
        .get(K_TOKENS)
        .and_then(MetaValue::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .and_then(|t| t.filter(|t| !t.is_empty()))
        .ok_or_else(|| bad(K_TOKENS, "expected a non-empty array of token texts".into()))?;
    for (i, t) in tokens.iter().enumerate() {
        if *t != token_name(i) {
            return Err(bad(
                K_TOKENS,
                format!("entry {i} is {t:?}, expected {:?}", token_name(i)),
            ));
        }
    }
    let k = tokens.len();
    let base = f
        .get(K_BASE_VOCAB)
        .and_then(MetaValue::as_u64)
        .ok_or_else(|| bad(K_BASE_VOCAB, "expected an integer".into()))?;
    check_vocabulary(f, base, &tokens).map_err(|(key, m)| bad(key, m))?;
    let card: Value = f
        .get(K_CARD)
        .and_then(MetaValue::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| bad(K_CARD, "expected the prompt's card as JSON".into()))?;
    let rows = card.pointer("/parametrization/k").and_then(Value::as_u64);
    if rows != Some(k as u64) {
        return Err(bad(
            K_CARD,
            format!("the card's parametrization.k is {rows:?} but the file has {k} tokens"),
        ));
    }
    let insertion: Insertion =
        serde_json::from_value(card.get("insertion").cloned().unwrap_or(Value::Null))
            .map_err(|e| bad(K_CARD, format!("insertion: {e}")))?;
    let text = |key: &str| f.get(key).and_then(MetaValue::as_str).map(str::to_string);
    let template = text(K_CHAT_TEMPLATE).unwrap_or_default();
    let expected = text(K_TEMPLATE).map(|b| chat_template(&b, &insertion, &token_text(k)));
    if expected.as_deref() != Some(template.as_str()) {
        return Err(bad(
            K_CHAT_TEMPLATE,
            format!(
                "it does not place the {k} tokens as {K_TEMPLATE} and the card's insertion say"
            ),
        ));
    }
    Ok(Some(Carried {
        first_id: i32::try_from(base).map_err(|_| bad(K_BASE_VOCAB, "too large".into()))?,
        system_prompt: text(K_SYSTEM).unwrap_or_else(|| system_prompt(&insertion, &token_text(k))),
        base_template: text(K_TEMPLATE).unwrap_or_default(),
        tokens,
        card,
        insertion,
    }))
}

/// The vocabulary holds the base tokens then exactly the k new ones (user-defined), and the
/// embeddings, the output and `<arch>.vocab_size` agree with it.
fn check_vocabulary(
    f: &GgufFile,
    base: u64,
    tokens: &[String],
) -> Result<(), (&'static str, String)> {
    let n = base + tokens.len() as u64;
    let vocab = f
        .get(K_VOCAB_TOKENS)
        .and_then(MetaValue::as_array)
        .unwrap_or_default();
    if vocab.len() as u64 != n {
        return Err((
            K_TOKENS,
            format!(
                "lists {} tokens and {K_BASE_VOCAB} is {base}, but {K_VOCAB_TOKENS} holds {} tokens (expected {n})",
                tokens.len(),
                vocab.len()
            ),
        ));
    }
    for (i, t) in tokens.iter().enumerate() {
        if vocab[base as usize + i].as_str() != Some(t.as_str()) {
            return Err((
                K_VOCAB_TOKENS,
                format!("token {} is not {t}", base as usize + i),
            ));
        }
    }
    let types = f
        .get(K_TOKEN_TYPE)
        .and_then(MetaValue::as_array)
        .unwrap_or_default();
    let user = |v: &MetaValue| *v == MetaValue::I32(USER_DEFINED);
    if types.len() as u64 != n || !types[base as usize..].iter().all(user) {
        return Err((
            K_TOKEN_TYPE,
            format!(
                "expected {n} types, the last {} user-defined (4)",
                tokens.len()
            ),
        ));
    }
    for name in ["token_embd.weight", "output.weight"] {
        if f.tensor(name).map(|t| t.ne.get(1).copied()) != Some(Some(n)) {
            return Err(("tensors", format!("{name} must have {n} rows")));
        }
    }
    let key = format!("{}.vocab_size", architecture(f));
    if let Some(v) = f.get(&key).and_then(MetaValue::as_u64) {
        if v != n {
            return Err(("<arch>.vocab_size", format!("{key} is {v}, expected {n}")));
        }
    }
    Ok(())
}

/// [`read`], with the carried rows read back from the file's embeddings and scaled as
/// llama.cpp feeds token rows: the tuned rows as the run fed them (`k * n_embd` values).
pub fn read_with_rows(path: &Path) -> Result<Option<(Carried, Vec<f32>)>, ExportError> {
    let f = GgufFile::read(path).map_err(engine(path))?;
    let Some(carried) = from_file(path, &f)? else {
        return Ok(None);
    };
    let rows = rows(path, &f, &carried)?;
    Ok(Some((carried, rows)))
}

fn rows(path: &Path, f: &GgufFile, carried: &Carried) -> Result<Vec<f32>, ExportError> {
    let t = f
        .tensor("token_embd.weight")
        .filter(|t| t.ggml_type == gguf_file::GGML_F32)
        .ok_or_else(|| invalid(path, "token_embd.weight: expected F32 rows"))?
        .clone();
    let n_embd = t.ne[0] as usize;
    let from = carried.first_id as u64 * n_embd as u64 * 4;
    let part = f
        .read_tensor_part(&t, from, carried.k() * n_embd * 4)
        .map_err(engine(path))?;
    let scale = crate::engine::token_row_scale(architecture(f), n_embd);
    Ok(part
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * scale)
        .collect())
}

/// The survey's item prompts with the carried tokens where the run put its rows, as plain
/// tokens of `model` (the exported file, loaded): the tokens in place of the persona
/// sentence (prefix), or the naive persona in the system message and the tokens then the
/// answer opening at the start of the assistant's turn (answer).
pub fn survey_prompts(
    carried: &Carried,
    model: &crate::engine::Model,
    survey: &crate::survey::Survey,
    panel: &[crate::prompt::Respondent],
    counterbalance: bool,
) -> Result<crate::engine::evaluate::SurveyPrompts, EngineError> {
    use crate::engine::evaluate::SurveyPrompts;
    let tokens = token_text(carried.k());
    let ids = carried.ids();
    let prompts = match &carried.insertion {
        Insertion::Prefix { .. } => {
            SurveyPrompts::build(model, survey, &tokens, panel, counterbalance)?
        }
        Insertion::Answer {
            system_persona,
            answer_opening,
            ..
        } => {
            let mut open = ids.clone();
            open.extend(model.tokenize_text(answer_opening)?);
            let opening = Some((open.as_slice(), &*format!("{tokens}{answer_opening}")));
            SurveyPrompts::build_opened(
                model,
                survey,
                system_persona,
                panel,
                counterbalance,
                opening,
            )?
        }
    };
    check_tokens(model, &tokens, &ids)?;
    Ok(prompts)
}

/// The model reads the tokens' text as exactly the carried ids (it is the exported file).
fn check_tokens(
    model: &crate::engine::Model,
    tokens: &str,
    ids: &[i32],
) -> Result<(), EngineError> {
    let got = model.tokenize_text(tokens)?;
    if got != ids {
        return Err(EngineError::Prompt(format!(
            "the model reads {tokens} as tokens {got:?}, not the carried ids {ids:?}"
        )));
    }
    Ok(())
}

/// A chat turn with the carried tokens placed as the run placed its rows (see
/// [`survey_prompts`]): the tokens are the turn's persona tokens, decoded as text.
pub fn chat_prompt(
    carried: &Carried,
    model: &crate::engine::Model,
    message: &str,
) -> Result<crate::engine::evaluate::ChatPrompt, EngineError> {
    use crate::engine::evaluate::ChatPrompt;
    let tokens = token_text(carried.k());
    check_tokens(model, &tokens, &carried.ids())?;
    match &carried.insertion {
        Insertion::Prefix { .. } => ChatPrompt::build(model, &tokens, message),
        Insertion::Answer { system_persona, .. } => {
            ChatPrompt::build_answer(model, system_persona, &tokens, message)
        }
    }
}

/// How to run an exported file in other programs, as the card and `show` say it.
pub fn how_to_run(file: &str, modelfile: &str, system_prompt: &str) -> Value {
    serde_json::json!({
        "llama_server": format!("llama-server -m {file} --jinja --host 127.0.0.1 --port 8080  (then POST /v1/chat/completions: the file's chat template places the tokens; or POST /completion with the prompt text holding the tokens)"),
        "lm_studio": format!("load {file}: LM Studio renders the file's own chat template, which places the tokens; where a tool ignores it, set the system prompt to: {system_prompt}"),
        "ollama": format!("ollama create culturetune -f {modelfile} && ollama run culturetune  (Modelfile written beside the file; not checked by culturetune's tests)"),
    })
}

/// The card written beside an exported GGUF: the prompt's card, plus what the file holds and
/// how to run it elsewhere.
pub fn export_card(carried: &Carried, export: &GgufExport, out: &Path) -> Value {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let modelfile = crate::tuning::transfer::beside(out).1;
    let mut card = carried.card.clone();
    card["gguf"] = serde_json::json!({
        "file": name(out),
        "made_from": export.source.display().to_string(),
        "tokens": carried.tokens,
        "first_token_id": carried.first_id,
        "token_type": "USER_DEFINED (llama.cpp matches them in any text, also when special tokens are not parsed)",
        "token_embd": "F32: every original row exactly as llama.cpp dequantizes it, the tuned rows exactly",
        "output": format!(
            "{}: the original matrix in its own type plus, per new token, a copy of the row of token {} (the token with the lowest largest logit over the survey's answer positions), so original logits are unchanged and each new token is exactly as unlikely as that token",
            if export.untied_output { "output.weight added (the model tied it to token_embd)" } else { "output.weight grown" },
            export.quiet_token
        ),
        "chat_template": "tokenizer.chat_template is the run's template with the tokens placed as insertion says (culturetune.base_chat_template holds the original)",
        "system_prompt": carried.system_prompt,
        "run": how_to_run(&name(out), &name(&modelfile), &carried.system_prompt),
    });
    card
}

/// An Ollama Modelfile for the exported file `out`: the run's chat template turned into
/// Ollama's single-turn form (system and prompt), the tokens placed as the run placed its
/// rows, and the plain-text system prompt.
pub fn modelfile(carried: &Carried, out: &Path) -> String {
    let file = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (s, u) = ("\u{1}SYSTEM\u{1}", "\u{1}PROMPT\u{1}");
    let rendered =
        crate::engine::render_chat_with(&carried.base_template, &[("system", s), ("user", u)]);
    let mut text = format!(
        "# Ollama Modelfile for {file}, written by culturetune (run {}, region {}).\n# Not checked by culturetune's tests: Ollama is not installed there.\nFROM ./{file}\n",
        carried.card.get("run").and_then(Value::as_i64).unwrap_or(0),
        carried.card.get("region").and_then(Value::as_str).unwrap_or("?"),
    );
    if let Some(r) = rendered.filter(|r| r.contains(s) && r.contains(u)) {
        let mut t = r.replace(s, "{{ .System }}").replace(u, "{{ .Prompt }}");
        if let Insertion::Answer { answer_opening, .. } = &carried.insertion {
            t.push_str(&token_text(carried.k()));
            t.push_str(answer_opening);
        }
        text.push_str(&format!("TEMPLATE \"\"\"{t}\"\"\"\n"));
    }
    text.push_str(&format!("SYSTEM \"\"\"{}\"\"\"\n", carried.system_prompt));
    text
}
