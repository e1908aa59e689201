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

use super::error::EngineError;
use super::ffi::{BatchInput, ContextParams, RawContext};
use super::model::Model;
pub use super::prompts::{ChatPrompt, Leaf, Readout, SurveyPrompts};
pub use super::settings::{EvalSettings, KvLayout, MAX_CTX, MAX_SEQ, MAX_THREADS};
use super::tree::PrefixTree;
use serde::Serialize;
use std::time::{Duration, Instant};

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
    /// Probabilities of the scale's codes, in code order, renormalised over the codes (mapped
    /// back to code order for a reversed prompt). For a continuation prompt, the second
    /// tokens' probabilities of the codes it continues.
    pub probs: Vec<f64>,
    /// Probability mass (over the whole vocabulary) that fell on the codes.
    pub digit_mass: f64,
    /// Hash of the full logits vector at the answer position (bit-level comparisons).
    pub logits_hash: u64,
}

/// The answer to one survey item, averaged over the panel (and option orders).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemAnswer {
    /// Mean probabilities of the scale's codes, in code order.
    pub probs: Vec<f64>,
    /// Mean digit mass.
    pub digit_mass: f64,
    /// Expected answer code, between the scale's lowest and highest code.
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
    pub(super) settings: EvalSettings,
    /// Answer-side prefixes held in the KV cache (see [`super::answer`]); `None` whenever the
    /// cache was cleared or used for anything else.
    pub(super) cached: Option<CachedPrefixes>,
    /// The answer placement's per-sequence streams ([`KvLayout::Streams`]), made on its first
    /// evaluation; kept while the main context is used for anything else.
    pub(super) streams: Option<super::streams::StreamCache<'m>>,
    /// Token ids whose probability is watched at every answer and reply position (the tokens
    /// a model carries a prompt in), and the largest seen.
    watch: Option<(std::ops::Range<i32>, f64)>,
    /// Each token's largest logit over every answer and reply position seen, when tracked.
    max_logits: Option<Vec<f32>>,
}

impl<'m> Evaluator<'m> {
    /// Creates the context. Fails if the model cannot answer with single-digit tokens.
    pub fn new(model: &'m Model, settings: EvalSettings) -> Result<Evaluator<'m>, EngineError> {
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
            settings,
            cached: None,
            streams: None,
            watch: None,
            max_logits: None,
        })
    }

    /// Watches the probability of the tokens `ids` (over the whole vocabulary) at every
    /// answer position of [`Evaluator::evaluate`] and every reply position of
    /// [`Evaluator::generate`] from now on.
    pub fn watch_tokens(&mut self, ids: std::ops::Range<i32>) {
        self.watch = Some((ids, 0.0));
    }

    /// The largest probability of any watched token at any position seen so far.
    pub fn watched_max_prob(&self) -> Option<f64> {
        self.watch.as_ref().map(|(_, p)| *p)
    }

    /// Tracks each token's largest logit at every answer position of
    /// [`Evaluator::evaluate`] and reply position of [`Evaluator::generate`] from now on.
    pub fn track_max_logits(&mut self) {
        self.max_logits = Some(Vec::new());
    }

    /// Each token's largest logit over the positions seen since [`Evaluator::track_max_logits`]
    /// (empty when none were).
    pub fn max_logits(&self) -> &[f32] {
        self.max_logits.as_deref().unwrap_or_default()
    }

    /// Folds one position's logits into what is tracked and watched.
    fn note_logits(&mut self, logits: &[f32]) {
        if let Some(m) = &mut self.max_logits {
            if m.is_empty() {
                m.extend_from_slice(logits);
            } else {
                m.iter_mut().zip(logits).for_each(|(a, &b)| *a = a.max(b));
            }
        }
        let Some((ids, max)) = &mut self.watch else {
            return;
        };
        let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = logits.iter().map(|&l| f64::from(l - top).exp()).sum();
        for id in ids.clone() {
            if let Some(&l) = logits.get(id as usize) {
                *max = max.max(f64::from(l - top).exp() / z);
            }
        }
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
            let (tail, shared) =
                self.evaluate_group(prompts, persona, persona_len, group, &mut leaves)?;
            tail_decoded += tail;
            decoded += shared + tail;
        }
        let leaves: Vec<LeafAnswer> = leaves
            .into_iter()
            .map(|l| l.expect("every leaf has an output"))
            .collect();
        let (leaves, items) = finish(&prompts.leaves, &prompts.readouts, prompts.n_items, leaves);
        Ok(SurveyAnswers {
            leaves,
            items,
            tail_tokens_decoded: tail_decoded,
            tokens_decoded: decoded,
            elapsed: start.elapsed(),
        })
    }

    /// One group of prompts (those that fit one cache): the head and the persona decoded
    /// once, then the group's prompt tree; each answer goes to its place in `leaves`. Returns
    /// the tail tokens decoded and the shared tokens before them.
    fn evaluate_group(
        &mut self,
        prompts: &SurveyPrompts,
        persona: PersonaInput<'_>,
        persona_len: usize,
        group: std::ops::Range<usize>,
        leaves: &mut [Option<LeafAnswer>],
    ) -> Result<(usize, usize), EngineError> {
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
                self.note_logits(&logits);
                let leaf = group.start + local;
                let meta = &prompts.leaves[leaf];
                let readout = &prompts.readouts[meta.item];
                leaves[leaf] = Some(read_answer(self.model, &logits, readout, meta)?);
            }
        }
        Ok((tree.unique_tokens(), shared))
    }

    /// Decodes `tokens` as sequence 0 from `pos` on (advanced past them), with the logits of
    /// the last one; returns its output index.
    fn decode_last(&mut self, tokens: &[i32], pos: &mut i32) -> Result<usize, EngineError> {
        let n = tokens.len();
        let positions: Vec<i32> = (*pos..*pos + n as i32).collect();
        let mut logits = vec![false; n];
        logits[n - 1] = true;
        let seq: &[i32] = &[0];
        self.ctx.decode(
            BatchInput::Tokens(tokens),
            &positions,
            &vec![seq; n],
            &logits,
        )?;
        *pos += n as i32;
        Ok(n - 1)
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
                last = self.decode_last(&input, &mut pos)?;
            }
            let l = self
                .ctx
                .logits(last)
                .ok_or_else(|| EngineError::Prompt("no logits".into()))?;
            self.note_logits(&l);
            let next = argmax(&l) as i32;
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

/// Softmax over the whole vocabulary, then the probabilities of the tokens `leaf` reads.
/// A prompt whose codes are all one token gets its answer here: the codes' probabilities
/// renormalised, mapped back to code order for a reversed prompt. A prompt with two-token
/// codes gets its first tokens' probabilities as they are, and a continuation prompt the
/// second tokens' of the codes it continues (0 for the others), both completed by
/// [`finish`]. Logits that are NaN or infinite (a finite model never gives them; a file with
/// damaged tensor data does) are an error naming the model file.
pub(super) fn read_answer(
    model: &Model,
    logits: &[f32],
    readout: &Readout,
    leaf: &Leaf,
) -> Result<LeafAnswer, EngineError> {
    if let Some(i) = logits.iter().position(|l| !l.is_finite()) {
        return Err(EngineError::Damaged {
            path: model.info().path.display().to_string(),
            detail: format!("llama.cpp computed a logit of {} (token {i})", logits[i]),
        });
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let p = |t: i32| (logits[t as usize] as f64 - max).exp() / z;
    let shown: Vec<f64> = match leaf.cont {
        None => readout.codes.iter().map(|c| p(c[0])).collect(),
        Some(t) => readout
            .codes
            .iter()
            .map(|c| {
                if c.len() == 2 && c[0] == t {
                    p(c[1])
                } else {
                    0.0
                }
            })
            .collect(),
    };
    let mass: f64 = shown.iter().sum();
    let probs = if leaf.cont.is_none() && readout.is_single_token() {
        let mut probs: Vec<f64> = shown.iter().map(|s| s / mass).collect();
        if leaf.reversed {
            probs.reverse();
        }
        probs
    } else {
        shown
    };
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

/// Completes the answers of prompts with two-token codes from their continuation prompts
/// (which follow each prompt, see [`Leaf::cont`]): a two-token code's probability is its first
/// token's times its second token's after the first; a one-token code that starts a longer
/// one keeps its first token's probability times the share that continued with none of them.
/// Then the codes are renormalised and mapped back to code order, as one-token codes are by
/// [`read_answer`]. The items' answers are the means over the prompts (continuations aside).
pub(super) fn finish(
    meta: &[Leaf],
    readouts: &[Readout],
    n_items: usize,
    mut leaves: Vec<LeafAnswer>,
) -> (Vec<LeafAnswer>, Vec<ItemAnswer>) {
    for k in 0..meta.len() {
        let readout = &readouts[meta[k].item];
        if meta[k].cont.is_some() || readout.is_single_token() {
            continue;
        }
        let after = |t: i32| {
            (k + 1..meta.len())
                .take_while(|&j| meta[j].cont.is_some())
                .find(|&j| meta[j].cont == Some(t))
                .map(|j| &leaves[j].probs)
        };
        let first = &leaves[k].probs;
        let mut p = Vec::with_capacity(first.len());
        for (i, code) in readout.codes.iter().enumerate() {
            let next = after(code[0]);
            p.push(match (code.len(), next) {
                (2, Some(next)) => first[i] * next[i],
                (_, Some(next)) => {
                    let longer: f64 = next.iter().sum();
                    first[i] * (1.0f64 - longer).max(0.0)
                }
                _ => first[i],
            });
        }
        let mass: f64 = p.iter().sum();
        let mut probs: Vec<f64> = p.iter().map(|v| v / mass).collect();
        if meta[k].reversed {
            probs.reverse();
        }
        leaves[k].probs = probs;
        leaves[k].digit_mass = mass;
    }
    let items = aggregate(meta, readouts, n_items, &leaves);
    (leaves, items)
}

/// Averages leaf answers into item answers (over respondents and option orders;
/// continuation prompts are part of their prompt's answer, not answers of their own).
fn aggregate(
    meta: &[Leaf],
    readouts: &[Readout],
    n_items: usize,
    leaves: &[LeafAnswer],
) -> Vec<ItemAnswer> {
    (0..n_items)
        .map(|item| {
            let mine: Vec<&LeafAnswer> = meta
                .iter()
                .zip(leaves)
                .filter(|(l, _)| l.item == item && l.cont.is_none())
                .map(|(_, a)| a)
                .collect();
            let n = mine.len().max(1) as f64;
            let codes = readouts[item].codes.len();
            let probs: Vec<f64> = (0..codes)
                .map(|c| mine.iter().map(|a| a.probs[c]).sum::<f64>() / n)
                .collect();
            let digit_mass = mine.iter().map(|a| a.digit_mass).sum::<f64>() / n;
            let first = f64::from(readouts[item].first_code);
            let expected = probs
                .iter()
                .enumerate()
                .map(|(c, p)| (first + c as f64) * p)
                .sum();
            ItemAnswer {
                probs,
                digit_mass,
                expected,
            }
        })
        .collect()
}

/// The index of the largest value (the first of equals): greedy decoding's next token.
fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
            if v > b.1 {
                (i, v)
            } else {
                b
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(reversed: bool, cont: Option<i32>) -> Leaf {
        Leaf {
            item: 0,
            respondent: 0,
            reversed,
            cont,
        }
    }

    fn answer(probs: &[f64]) -> LeafAnswer {
        LeafAnswer {
            probs: probs.to_vec(),
            digit_mass: probs.iter().sum(),
            logits_hash: 0,
        }
    }

    /// Three consecutive codes 0, 1, 2 whose third is spelled with two tokens [1, 0] (as "10"
    /// is on a 0..10 scale): "1" is both a code and the start of a longer one.
    fn readout() -> Readout {
        Readout {
            codes: vec![vec![0], vec![1], vec![1, 0]],
            first_code: 0,
        }
    }

    #[test]
    fn a_two_token_code_is_its_first_token_times_its_second() {
        assert_eq!(readout().continuations(), vec![1]);
        // P("0") = 0.2, P("1") = 0.6; after "1", P("0") = 0.25: so P("10") = 0.15 and
        // P(1) = 0.6 * 0.75 = 0.45 (the rest of "1" did not continue with "0").
        let meta = [leaf(false, None), leaf(false, Some(1))];
        let leaves = vec![answer(&[0.2, 0.6, 0.6]), answer(&[0.0, 0.0, 0.25])];
        let (leaves, items) = finish(&meta, &[readout()], 1, leaves);
        let mass = 0.2 + 0.45 + 0.15;
        let want = [0.2 / mass, 0.45 / mass, 0.15 / mass];
        for (got, want) in leaves[0].probs.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{:?}", leaves[0].probs);
        }
        assert!((leaves[0].digit_mass - mass).abs() < 1e-12);
        // The item is the prompt's answer; the continuation is not an answer of its own.
        assert_eq!(items[0].probs, leaves[0].probs);
        let expected = want[1] + 2.0 * want[2];
        assert!((items[0].expected - expected).abs() < 1e-12);
    }

    #[test]
    fn a_reversed_prompt_is_mapped_back_after_completion() {
        // Shown reversed: position 0 holds the last code's label. Same readings as above.
        let meta = [leaf(true, None), leaf(true, Some(1))];
        let leaves = vec![answer(&[0.2, 0.6, 0.6]), answer(&[0.0, 0.0, 0.25])];
        let (leaves, _) = finish(&meta, &[readout()], 1, leaves);
        let mass = 0.8;
        let want = [0.15 / mass, 0.45 / mass, 0.2 / mass];
        for (got, want) in leaves[0].probs.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{:?}", leaves[0].probs);
        }
    }
}
