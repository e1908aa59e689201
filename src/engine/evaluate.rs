//! Survey evaluation: every item prompt of a panel decoded as one prefix tree, answers read
//! from the next-token probabilities of the digits "1".."5".
//!
//! **One fixed procedure.** Quantized models give slightly different probabilities for a
//! different batch layout, so every evaluation runs the same way: clear the KV cache; decode
//! the template's opening tokens; decode the persona block as its own batch (tokens, or the
//! rows of a soft prompt); decode the tree of everything after it in depth-first order, split
//! into batches of `n_batch`. Each respondent of the panel is one such pass. Context size,
//! micro-batch, threads and flash attention are fixed by [`EvalSettings`] for the life of an
//! [`Evaluator`]. The answer-side placement, which keeps item prefixes cached across
//! candidates, is in [`super::answer`].

use super::ffi::{BatchInput, ContextParams, RawContext};
use super::tree::PrefixTree;
use super::{EngineError, Model};
use crate::prompt::{self, Respondent};
use crate::survey::Survey;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

use crate::prompt::{ANSWER_PREFIX, CHAT_INSTRUCTIONS};

/// Most sequences one decode can carry (llama.cpp's LLAMA_MAX_SEQ).
pub const MAX_SEQ: usize = 256;

/// Most CPU threads llama.cpp takes (GGML_MAX_N_THREADS).
pub const MAX_THREADS: i32 = 512;

/// Most KV cells an evaluation may ask for: far beyond any survey (a few thousand cells), and
/// small enough that a typo cannot ask llama.cpp for terabytes.
pub const MAX_CTX: u32 = 1 << 20;

/// Settings that fix the evaluation procedure (and its speed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    /// CPU threads.
    pub threads: i32,
    /// KV cache cells; must hold the whole tree of one group.
    pub n_ctx: u32,
    /// Tokens per decode call.
    pub n_batch: u32,
    /// Tokens per physical micro-batch.
    pub n_ubatch: u32,
    /// Flash attention.
    pub flash_attn: bool,
    /// How the answer placement lays out its KV cache (see [`KvLayout`]). A configuration
    /// stored before this setting existed reads as [`KvLayout::Unified`], the layout it ran
    /// with, so its run resumes bit for bit.
    #[serde(default = "KvLayout::stored_before")]
    pub kv_layout: KvLayout,
}

/// The KV-cache layout of the answer placement's candidate evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum KvLayout {
    /// One stream per (candidate, prompt): each candidate token attends over its own prompt's
    /// cells only. The item prefixes are decoded once per run into their streams and copied
    /// to the other candidates' streams once.
    #[default]
    Streams,
    /// One cache shared by all sequences (the item prefixes stored once as a prefix tree):
    /// every candidate token attends, masked, over every cell in use.
    Unified,
}

impl KvLayout {
    /// The layout of a stored configuration that does not name one.
    pub fn stored_before() -> KvLayout {
        KvLayout::Unified
    }

    /// The name used on the command line and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            KvLayout::Streams => "streams",
            KvLayout::Unified => "unified",
        }
    }

    /// The other layout (`bench` times both).
    pub fn other(self) -> KvLayout {
        match self {
            KvLayout::Streams => KvLayout::Unified,
            KvLayout::Unified => KvLayout::Streams,
        }
    }
}

impl EvalSettings {
    /// Checks the settings against llama.cpp's limits, without a model: llama.cpp keeps one
    /// output row per sequence ([`MAX_SEQ`] of them) within n_batch outputs and cuts n_batch
    /// to n_ctx; outside these limits it aborts instead of failing.
    pub fn check(&self) -> Result<(), String> {
        let min = MAX_SEQ as u32;
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(format!(
                "threads is {}; it must be 1..={MAX_THREADS} (llama.cpp's limit; --threads)",
                self.threads
            ));
        }
        if self.n_ctx > MAX_CTX {
            return Err(format!(
                "n_ctx is {}; it must be at most {MAX_CTX} (lower --n-ctx)",
                self.n_ctx
            ));
        }
        if self.n_ctx < min {
            return Err(format!(
                "n_ctx is {}; it must be at least {min} (raise --n-ctx)",
                self.n_ctx
            ));
        }
        if self.n_batch < min
            || self.n_batch > self.n_ctx
            || self.n_ubatch == 0
            || self.n_ubatch > self.n_batch
        {
            return Err(format!(
                "invalid settings: n_batch {} ({min}..=n_ctx {}), n_ubatch {} (1..=n_batch)",
                self.n_batch, self.n_ctx, self.n_ubatch
            ));
        }
        Ok(())
    }
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get() as i32),
            n_ctx: 8192,
            n_batch: 2048,
            n_ubatch: 512,
            flash_attn: true,
            kv_layout: KvLayout::default(),
        }
    }
}

/// What one prompt (leaf) asks: which item, which respondent, which option order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Leaf {
    /// Index into the survey's items.
    pub item: usize,
    /// Index into the panel.
    pub respondent: usize,
    /// Options listed from code 5 down to code 1.
    pub reversed: bool,
}

/// The token sequences of all item prompts for one persona block, split at the block.
#[derive(Debug, Clone)]
pub struct SurveyPrompts {
    /// BOS (if the model uses one) and the template's tokens before the persona block.
    pub head: Vec<i32>,
    /// The persona block as text and as tokens.
    pub persona_text: String,
    /// Tokens of the persona block.
    pub persona_tokens: Vec<i32>,
    /// One entry per prompt.
    pub leaves: Vec<Leaf>,
    /// Tokens after the persona block, per leaf.
    pub tails: Vec<Vec<i32>>,
    /// The full rendered prompt text per leaf (for --dump-prompts).
    pub texts: Vec<String>,
    /// Number of survey items.
    pub n_items: usize,
}

impl SurveyPrompts {
    /// Renders and tokenizes every (respondent, item, order) prompt.
    pub fn build(
        model: &Model,
        survey: &Survey,
        persona_block: &str,
        panel: &[Respondent],
        counterbalance: bool,
    ) -> Result<SurveyPrompts, EngineError> {
        let orders: &[bool] = if counterbalance {
            &[false, true]
        } else {
            &[false]
        };
        let mut head_text: Option<String> = None;
        let (mut leaves, mut tails, mut texts) = (vec![], vec![], vec![]);
        for (r, resp) in panel.iter().enumerate() {
            for (i, item) in survey.items.iter().enumerate() {
                for &reversed in orders {
                    let system = prompt::system_message(persona_block, resp);
                    let user = prompt::user_message(survey, item, reversed);
                    let text =
                        model.render_chat(&[("system", &system), ("user", &user)])? + ANSWER_PREFIX;
                    let at = text.find(persona_block).ok_or_else(|| {
                        EngineError::Prompt("the chat template altered the persona text".into())
                    })?;
                    let head = &text[..at];
                    match &head_text {
                        None => head_text = Some(head.to_string()),
                        Some(h) if h != head => {
                            return Err(EngineError::Prompt(
                                "the chat template renders a different opening per item".into(),
                            ))
                        }
                        _ => {}
                    }
                    tails.push(
                        model.tokenize_rendered(
                            &text[at + persona_block.len()..],
                            &[&system, &user],
                        )?,
                    );
                    leaves.push(Leaf {
                        item: i,
                        respondent: r,
                        reversed,
                    });
                    texts.push(text);
                }
            }
        }
        let mut head = model.bos_prefix();
        head.extend(model.tokenize(head_text.as_deref().unwrap_or_default())?);
        Ok(SurveyPrompts {
            head,
            persona_text: persona_block.to_string(),
            persona_tokens: model.tokenize_text(persona_block)?,
            leaves,
            tails,
            texts,
            n_items: survey.items.len(),
        })
    }

    /// The same prompts restricted to one leaf (for one-prompt-at-a-time checks).
    pub fn only(&self, leaf: usize) -> SurveyPrompts {
        SurveyPrompts {
            leaves: vec![self.leaves[leaf]],
            tails: vec![self.tails[leaf].clone()],
            texts: vec![self.texts[leaf].clone()],
            ..self.clone()
        }
    }

    /// Distinct tokens after the persona block over all prompts: the least any evaluation
    /// must decode.
    pub fn unique_tail_tokens(&self) -> usize {
        PrefixTree::new(&self.tails).map_or(0, |t| t.unique_tokens())
    }

    /// The leaves decoded together: one respondent's prompts at a time (at most [`MAX_SEQ`]).
    /// Keeping each group's KV cache small keeps attention cheap; the price is re-decoding the
    /// few tokens all respondents share, once per extra respondent.
    fn groups(&self) -> Vec<std::ops::Range<usize>> {
        let mut out: Vec<std::ops::Range<usize>> = Vec::new();
        for (k, leaf) in self.leaves.iter().enumerate() {
            match out.last_mut() {
                Some(g)
                    if self.leaves[g.start].respondent == leaf.respondent && g.len() < MAX_SEQ =>
                {
                    g.end = k + 1
                }
                _ => out.push(k..k + 1),
            }
        }
        out
    }
}

/// One chat turn split like a survey prompt: the template's opening, the persona block, and
/// everything after it (the user's message and the start of the assistant turn).
#[derive(Debug, Clone)]
pub struct ChatPrompt {
    /// BOS and the template's tokens before the persona block.
    pub head: Vec<i32>,
    /// The persona block's tokens.
    pub persona_tokens: Vec<i32>,
    /// Tokens after the persona block.
    pub tail: Vec<i32>,
}

impl ChatPrompt {
    /// Renders a system message that starts with `persona_block`, then the user's message.
    pub fn build(
        model: &Model,
        persona_block: &str,
        message: &str,
    ) -> Result<ChatPrompt, EngineError> {
        let system = format!("{persona_block} {CHAT_INSTRUCTIONS}");
        let text = model.render_chat(&[("system", &system), ("user", message)])?;
        let at = text.find(persona_block).ok_or_else(|| {
            EngineError::Prompt("the chat template altered the persona text".into())
        })?;
        let mut head = model.bos_prefix();
        head.extend(model.tokenize(&text[..at])?);
        Ok(ChatPrompt {
            head,
            persona_tokens: model.tokenize_text(persona_block)?,
            tail: model
                .tokenize_rendered(&text[at + persona_block.len()..], &[&system, message])?,
        })
    }
}

impl ChatPrompt {
    /// A chat turn for an answer-side soft prompt: the naive persona in the system message,
    /// the user's message, and the assistant's turn opened by `anchor` (the text whose place
    /// the rows take); the reply is generated right after the rows. `persona_tokens` are the
    /// anchor's tokens and `tail` is empty.
    pub fn build_answer(
        model: &Model,
        persona_block: &str,
        anchor: &str,
        message: &str,
    ) -> Result<ChatPrompt, EngineError> {
        let system = format!("{persona_block} {CHAT_INSTRUCTIONS}");
        let text = model.render_chat(&[("system", &system), ("user", message)])?;
        let mut head = model.bos_prefix();
        head.extend(model.tokenize_rendered(&text, &[&system, message])?);
        Ok(ChatPrompt {
            head,
            persona_tokens: model.tokenize_text(anchor)?,
            tail: vec![],
        })
    }
}

/// What goes in the persona block's place.
#[derive(Debug, Clone, Copy)]
pub enum PersonaInput<'a> {
    /// The persona block's own tokens (the hard prompt).
    Text,
    /// Embedding rows (a soft prompt), flattened row-major, `k * n_embd` values.
    Embeddings(&'a [f32]),
}

/// The answer of one prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeafAnswer {
    /// Probabilities of answer codes 1..5, renormalised over the five digits (mapped back to
    /// codes for a reversed prompt).
    pub probs: [f64; 5],
    /// Probability mass (over the whole vocabulary) that fell on the five digits.
    pub digit_mass: f64,
    /// Hash of the full logits vector at the answer position (bit-level comparisons).
    pub logits_hash: u64,
}

/// The answer to one survey item, averaged over the panel (and option orders).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemAnswer {
    /// Mean probabilities of codes 1..5.
    pub probs: [f64; 5],
    /// Mean digit mass.
    pub digit_mass: f64,
    /// Expected answer code, in [1, 5].
    pub expected: f64,
}

/// The result of one survey evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurveyAnswers {
    /// Per prompt, in [`SurveyPrompts::leaves`] order.
    pub leaves: Vec<LeafAnswer>,
    /// Per survey item.
    pub items: Vec<ItemAnswer>,
    /// Tokens decoded after the persona block.
    pub tail_tokens_decoded: usize,
    /// Tokens decoded in all (head + persona + tails).
    pub tokens_decoded: usize,
    /// Wall time of the evaluation.
    #[serde(skip)]
    pub elapsed: Duration,
}

impl SurveyAnswers {
    /// Expected codes per item, in survey order: the input to scoring.
    pub fn item_means(&self) -> Vec<f64> {
        self.items.iter().map(|i| i.expected).collect()
    }
}

/// What the evaluator's KV cache holds between answer-side evaluations (the answer placement's
/// item prefixes, see [`super::answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CachedPrefixes {
    pub(super) fingerprint: u64,
    /// KV cells the prefix tree occupies.
    pub(super) cells: usize,
}

/// A context set up for survey evaluation with fixed settings.
pub struct Evaluator<'m> {
    pub(super) model: &'m Model,
    pub(super) ctx: RawContext<'m>,
    pub(super) digits: [i32; 5],
    pub(super) settings: EvalSettings,
    /// Answer-side prefixes held in the KV cache (see [`super::answer`]); `None` whenever the
    /// cache was cleared or used for anything else.
    pub(super) cached: Option<CachedPrefixes>,
    /// The answer placement's per-sequence streams ([`KvLayout::Streams`]), made on its first
    /// evaluation; kept while the main context is used for anything else.
    pub(super) streams: Option<super::streams::StreamCache<'m>>,
}

impl<'m> Evaluator<'m> {
    /// Creates the context. Fails if the model cannot answer with single-digit tokens.
    pub fn new(model: &'m Model, settings: EvalSettings) -> Result<Evaluator<'m>, EngineError> {
        let digits = model.digit_tokens()?;
        settings.check().map_err(EngineError::Prompt)?;
        let params = ContextParams {
            n_ctx: settings.n_ctx,
            n_batch: settings.n_batch,
            n_ubatch: settings.n_ubatch,
            n_seq_max: MAX_SEQ as u32,
            n_threads: settings.threads,
            flash_attn: settings.flash_attn,
            unified: true,
        };
        let ctx = RawContext::new(model.raw(), params).ok_or(EngineError::ContextFailed {
            n_ctx: settings.n_ctx,
        })?;
        Ok(Evaluator {
            model,
            ctx,
            digits,
            settings,
            cached: None,
            streams: None,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> EvalSettings {
        self.settings
    }

    /// Evaluates every prompt with the persona block given as text or as embedding rows.
    pub fn evaluate(
        &mut self,
        prompts: &SurveyPrompts,
        persona: PersonaInput<'_>,
    ) -> Result<SurveyAnswers, EngineError> {
        let start = Instant::now();
        let n_embd = self.model.info().n_embd;
        let persona_len = match persona {
            PersonaInput::Text => prompts.persona_tokens.len(),
            PersonaInput::Embeddings(rows) => {
                if rows.is_empty() || rows.len() % n_embd != 0 {
                    return Err(EngineError::Prompt(format!(
                        "a soft prompt must be k x {n_embd} values with k >= 1; got {} values",
                        rows.len()
                    )));
                }
                rows.len() / n_embd
            }
        };
        if persona_len == 0 {
            return Err(EngineError::Prompt("the persona block is empty".into()));
        }
        self.cached = None;
        let mut leaves: Vec<Option<LeafAnswer>> = vec![None; prompts.leaves.len()];
        let (mut tail_decoded, mut decoded) = (0, 0);
        for group in prompts.groups() {
            let tree = PrefixTree::new(&prompts.tails[group.clone()]).ok_or_else(|| {
                EngineError::Prompt("an item prompt has no tokens after the persona".into())
            })?;
            let shared = prompts.head.len() + persona_len;
            let needed = shared + tree.unique_tokens();
            if needed > self.settings.n_ctx as usize {
                return Err(EngineError::Prompt(format!(
                    "this evaluation needs {needed} KV cells but n_ctx is {}; raise --n-ctx or use a smaller panel",
                    self.settings.n_ctx
                )));
            }
            let all: Vec<i32> = (0..group.len() as i32).collect();
            self.ctx.clear();
            let mut pos = 0i32;
            if !prompts.head.is_empty() {
                self.decode_shared(BatchInput::Tokens(&prompts.head), &mut pos, &all)?;
            }
            match persona {
                PersonaInput::Text => {
                    self.decode_shared(BatchInput::Tokens(&prompts.persona_tokens), &mut pos, &all)?
                }
                PersonaInput::Embeddings(rows) => {
                    self.decode_shared(BatchInput::Embeddings(rows), &mut pos, &all)?
                }
            }
            let (batches, outputs) = tree.schedule(pos, self.settings.n_batch as usize);
            for (b, batch) in batches.iter().enumerate() {
                let seqs: Vec<&[i32]> = batch.seqs.iter().map(Vec::as_slice).collect();
                self.ctx.decode(
                    BatchInput::Tokens(&batch.tokens),
                    &batch.pos,
                    &seqs,
                    &batch.logits,
                )?;
                for (local, out) in outputs.iter().enumerate().filter(|(_, o)| o.batch == b) {
                    let logits = self.ctx.logits(out.index).ok_or_else(|| {
                        EngineError::Prompt("llama.cpp returned no logits for an answer".into())
                    })?;
                    let leaf = group.start + local;
                    leaves[leaf] = Some(read_answer(
                        self.model,
                        &logits,
                        &self.digits,
                        prompts.leaves[leaf].reversed,
                    )?);
                }
            }
            tail_decoded += tree.unique_tokens();
            decoded += shared + tree.unique_tokens();
        }
        let leaves: Vec<LeafAnswer> = leaves
            .into_iter()
            .map(|l| l.expect("every leaf has an output"))
            .collect();
        let items = aggregate(&prompts.leaves, prompts.n_items, &leaves);
        Ok(SurveyAnswers {
            leaves,
            items,
            tail_tokens_decoded: tail_decoded,
            tokens_decoded: decoded,
            elapsed: start.elapsed(),
        })
    }

    fn decode_shared(
        &mut self,
        input: BatchInput<'_>,
        pos: &mut i32,
        all: &[i32],
    ) -> Result<(), EngineError> {
        let n = match input {
            BatchInput::Tokens(t) => t.len(),
            BatchInput::Embeddings(e) => e.len() / self.model.info().n_embd,
        };
        let positions: Vec<i32> = (*pos..*pos + n as i32).collect();
        let seqs = vec![all; n];
        self.ctx.decode(input, &positions, &seqs, &vec![false; n])?;
        *pos += n as i32;
        Ok(())
    }

    /// Greedy generation (deterministic) after a chat prompt, with the persona block as text
    /// or as soft-prompt rows; stops at the end of the turn or after `max_tokens`.
    pub fn generate(
        &mut self,
        prompt: &ChatPrompt,
        persona: PersonaInput<'_>,
        max_tokens: usize,
    ) -> Result<String, EngineError> {
        let needed =
            prompt.head.len() + prompt.persona_tokens.len().max(1) + prompt.tail.len() + max_tokens;
        if needed > self.settings.n_ctx as usize {
            return Err(EngineError::Prompt(format!(
                "the chat needs {needed} KV cells; n_ctx is {}",
                self.settings.n_ctx
            )));
        }
        self.cached = None;
        self.ctx.clear();
        let seq: &[i32] = &[0];
        let mut pos = 0i32;
        if !prompt.head.is_empty() {
            self.decode_shared(BatchInput::Tokens(&prompt.head), &mut pos, seq)?;
        }
        // The persona block (or soft prompt) is the last input when there is no tail: then its
        // last entry's logits give the first reply token.
        let (input, n) = match persona {
            PersonaInput::Text => (
                BatchInput::Tokens(&prompt.persona_tokens),
                prompt.persona_tokens.len(),
            ),
            PersonaInput::Embeddings(rows) => (
                BatchInput::Embeddings(rows),
                rows.len() / self.model.info().n_embd.max(1),
            ),
        };
        if n == 0 {
            return Err(EngineError::Prompt("the persona block is empty".into()));
        }
        let positions: Vec<i32> = (pos..pos + n as i32).collect();
        let mut want = vec![false; n];
        want[n - 1] = prompt.tail.is_empty();
        self.ctx.decode(input, &positions, &vec![seq; n], &want)?;
        pos += n as i32;
        let mut out = String::new();
        let mut input = prompt.tail.clone();
        let mut last = n - 1;
        for _ in 0..max_tokens {
            if !input.is_empty() {
                let n = input.len();
                let positions: Vec<i32> = (pos..pos + n as i32).collect();
                let mut logits = vec![false; n];
                logits[n - 1] = true;
                self.ctx.decode(
                    BatchInput::Tokens(&input),
                    &positions,
                    &vec![seq; n],
                    &logits,
                )?;
                pos += n as i32;
                last = n - 1;
            }
            let l = self
                .ctx
                .logits(last)
                .ok_or_else(|| EngineError::Prompt("no logits".into()))?;
            let next = l
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
                    if v > b.1 {
                        (i, v)
                    } else {
                        b
                    }
                })
                .0 as i32;
            if self.model.is_end_of_turn(next) {
                break;
            }
            out.push_str(&self.model.token_text(next));
            input = vec![next];
        }
        Ok(out.trim().to_string())
    }

    /// Decodes `tokens` as one batch of one sequence from an empty cache and returns the wall
    /// time: llama.cpp's raw prompt-processing speed, for benchmarks.
    pub fn time_raw_batch(&mut self, tokens: &[i32]) -> Result<Duration, EngineError> {
        self.cached = None;
        self.ctx.clear();
        let pos: Vec<i32> = (0..tokens.len() as i32).collect();
        let seqs = vec![&[0][..]; tokens.len()];
        let mut logits = vec![false; tokens.len()];
        if let Some(l) = logits.last_mut() {
            *l = true;
        }
        let start = Instant::now();
        self.ctx
            .decode(BatchInput::Tokens(tokens), &pos, &seqs, &logits)?;
        Ok(start.elapsed())
    }
}

/// Softmax over the whole vocabulary, then the five digits renormalised. Logits that are NaN
/// or infinite (a finite model never gives them; a file with damaged tensor data does) are
/// an error naming the model file.
pub(super) fn read_answer(
    model: &Model,
    logits: &[f32],
    digits: &[i32; 5],
    reversed: bool,
) -> Result<LeafAnswer, EngineError> {
    if let Some(i) = logits.iter().position(|l| !l.is_finite()) {
        return Err(EngineError::Damaged {
            path: model.info().path.display().to_string(),
            detail: format!("llama.cpp computed a logit of {} (token {i})", logits[i]),
        });
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let shown: [f64; 5] =
        std::array::from_fn(|i| (logits[digits[i] as usize] as f64 - max).exp() / z);
    let mass: f64 = shown.iter().sum();
    let mut probs: [f64; 5] = std::array::from_fn(|i| shown[i] / mass);
    if reversed {
        probs.reverse();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for l in logits {
        h ^= u64::from(l.to_bits());
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(LeafAnswer {
        probs,
        digit_mass: mass,
        logits_hash: h,
    })
}

/// Averages leaf answers into item answers (over respondents and option orders).
pub(super) fn aggregate(meta: &[Leaf], n_items: usize, leaves: &[LeafAnswer]) -> Vec<ItemAnswer> {
    (0..n_items)
        .map(|item| {
            let mine: Vec<&LeafAnswer> = meta
                .iter()
                .zip(leaves)
                .filter(|(l, _)| l.item == item)
                .map(|(_, a)| a)
                .collect();
            let n = mine.len().max(1) as f64;
            let probs: [f64; 5] =
                std::array::from_fn(|c| mine.iter().map(|a| a.probs[c]).sum::<f64>() / n);
            let digit_mass = mine.iter().map(|a| a.digit_mass).sum::<f64>() / n;
            let expected = probs
                .iter()
                .enumerate()
                .map(|(c, p)| (c + 1) as f64 * p)
                .sum();
            ItemAnswer {
                probs,
                digit_mass,
                expected,
            }
        })
        .collect()
}
