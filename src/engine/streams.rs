//! The answer placement's per-sequence KV layout ([`KvLayout::Streams`]).
//!
//! A second llama.cpp context with one KV stream per sequence id (`kv_unified = false`). Leaf
//! i's prefix is decoded once into stream i; when a decode carries G candidates, streams
//! `c * n_leaves + i` (c = 1..G) receive a copy of stream i once, and keep it. A candidate's
//! rows and answer opening are decoded into its own streams and removed again afterwards, so
//! each candidate token attends over its own prompt's cells (a few dozen, padded by llama.cpp
//! to 256) instead of every cell of every prompt, as in the unified cache. The streams keep
//! their prefixes while the evaluator's main context is used for anything else.
//!
//! [`KvLayout::Streams`]: super::evaluate::KvLayout::Streams

use super::embeddings::token_rows;
use super::error::EngineError;
use super::ffi::{BatchInput, ContextParams, RawContext};
use super::model::Model;
use super::prompts::AnswerPrompts;
use super::settings::{EvalSettings, MAX_CTX};

use super::settings::STREAM_CELLS;

/// KV cells the longest of these prompts needs with `k` rows.
pub(super) fn longest_prompt(prompts: &AnswerPrompts, k: usize) -> usize {
    prompts
        .prefixes
        .iter()
        .zip(&prompts.suffixes)
        .map(|(p, s)| p.len() + k + s.len())
        .max()
        .unwrap_or(0)
}

/// The length of the longest token run every prefix starts with, leaving each prefix at
/// least one token of its own (0 for no prefixes).
fn common_head(prefixes: &[Vec<i32>]) -> usize {
    let Some(first) = prefixes.first() else {
        return 0;
    };
    let shortest = prefixes.iter().map(Vec::len).min().unwrap_or(0);
    (0..shortest.saturating_sub(1))
        .take_while(|&j| prefixes.iter().all(|p| p[j] == first[j]))
        .count()
}

/// Cells one stream needs for these prompts with `k` rows: a multiple of 256.
fn cells_per_stream(prompts: &AnswerPrompts, k: usize) -> usize {
    longest_prompt(prompts, k).div_ceil(STREAM_CELLS).max(1) * STREAM_CELLS
}

/// A context holding the item prefixes of one set of answer prompts, one stream per
/// (candidate slot, prompt).
pub(super) struct StreamCache<'m> {
    ctx: RawContext<'m>,
    /// Which prompts' prefixes the streams hold.
    fingerprint: u64,
    /// Prompts per candidate (streams 0..n hold the decoded prefixes).
    n_leaves: usize,
    /// Candidate slots whose streams hold the prefixes (1 after the decode).
    copies: usize,
    /// Candidate slots the context has streams for.
    slots: usize,
    /// The most rows a candidate may have for its prompts to fit their streams.
    room: usize,
    /// Prefix cells of one candidate slot (the sum of the prefix lengths).
    cells: usize,
    /// The answer openings the rows below are of, per leaf.
    suffixes: Vec<Vec<i32>>,
    /// The input rows of every leaf's answer opening, leaf after leaf, flattened: a candidate
    /// is decoded as rows only (its own, then these), in one decode.
    suffix_rows: Vec<f32>,
}

impl<'m> StreamCache<'m> {
    /// Whether this cache serves `slots` candidates of `k` rows of the prompts with this
    /// fingerprint.
    pub(super) fn fits(&self, fingerprint: u64, slots: usize, k: usize) -> bool {
        self.fingerprint == fingerprint && self.slots >= slots && self.room >= k
    }

    /// Creates the context for `slots` candidates of `k` rows of these prompts (each stream
    /// rounded up to a multiple of 256 cells) and decodes every prefix into its stream.
    pub(super) fn new(
        model: &'m Model,
        settings: &EvalSettings,
        prompts: &AnswerPrompts,
        fingerprint: u64,
        slots: usize,
        k: usize,
    ) -> Result<StreamCache<'m>, EngineError> {
        let n = prompts.prefixes.len();
        let per_stream = cells_per_stream(prompts, k);
        let n_ctx = slots * n * per_stream;
        if n_ctx > MAX_CTX as usize {
            return Err(EngineError::Prompt(format!(
                "{slots} candidates x {n} prompts x {per_stream} cells need {n_ctx} KV cells, over the limit of {MAX_CTX}; evaluate fewer candidates at once"
            )));
        }
        let n_batch = settings.n_batch.min(n_ctx as u32);
        let params = ContextParams {
            n_ctx: n_ctx as u32,
            n_batch,
            n_ubatch: settings.n_ubatch.min(n_batch),
            n_seq_max: (slots * n) as u32,
            n_threads: settings.threads,
            flash_attn: settings.flash_attn,
            unified: false,
        };
        let mut ctx = RawContext::new(model.raw(), params).ok_or(EngineError::ContextFailed {
            n_ctx: n_ctx as u32,
        })?;
        let n_embd = model.info().n_embd;
        // The tokens every prompt starts with (template and system message) are decoded once
        // in stream 0 and copied to the others whole; then each stream gets the rest of its
        // own prompt.
        let head = common_head(&prompts.prefixes);
        if head > 0 && n > 1 {
            let pos: Vec<i32> = (0..head as i32).collect();
            let tokens = BatchInput::Tokens(&prompts.prefixes[0][..head]);
            decode_chunks(&mut ctx, n_embd, tokens, &pos, &vec![0; head], &[])?;
            for i in 1..n {
                if !ctx.seq_cp(0, i as i32, -1, -1) {
                    return Err(EngineError::Prompt(format!(
                        "llama.cpp refused to copy the shared prompt start to stream {i}"
                    )));
                }
            }
        }
        let from = if n > 1 { head } else { 0 };
        let (mut tokens, mut pos, mut seqs) = (vec![], vec![], vec![]);
        for (i, prefix) in prompts.prefixes.iter().enumerate() {
            tokens.extend_from_slice(&prefix[from..]);
            pos.extend(from as i32..prefix.len() as i32);
            seqs.extend(std::iter::repeat_n(i as i32, prefix.len() - from));
        }
        if !tokens.is_empty() {
            decode_chunks(
                &mut ctx,
                n_embd,
                BatchInput::Tokens(&tokens),
                &pos,
                &seqs,
                &[],
            )?;
        }
        let cells = prompts.prefixes.iter().map(Vec::len).sum();
        Ok(StreamCache {
            ctx,
            fingerprint,
            n_leaves: n,
            copies: 1,
            slots,
            room: per_stream - longest_prompt(prompts, 0),
            cells,
            suffixes: vec![],
            suffix_rows: vec![],
        })
    }

    /// The input rows of the prompts' answer openings (read from the model file when they
    /// changed), leaf after leaf, flattened.
    pub(super) fn suffix_rows(
        &mut self,
        model: &Model,
        prompts: &AnswerPrompts,
    ) -> Result<&[f32], EngineError> {
        if self.suffixes != prompts.suffixes {
            let tokens: Vec<i32> = prompts.suffixes.iter().flatten().copied().collect();
            self.suffix_rows = token_rows(model, &tokens)?;
            self.suffixes = prompts.suffixes.clone();
        }
        Ok(&self.suffix_rows)
    }

    /// Makes sure the streams of the first `slots` candidate slots hold the prefixes (copies
    /// of slot 0's streams, made once).
    pub(super) fn copy_to(&mut self, slots: usize) -> Result<(), EngineError> {
        let n = self.n_leaves;
        for c in self.copies..slots {
            for i in 0..n {
                if !self.ctx.seq_cp(i as i32, (c * n + i) as i32, -1, -1) {
                    return Err(EngineError::Prompt(format!(
                        "llama.cpp refused to copy the prefix of stream {i}"
                    )));
                }
            }
        }
        self.copies = self.copies.max(slots);
        Ok(())
    }

    /// The context, for the candidates' decodes and clean-up.
    pub(super) fn ctx(&mut self) -> &mut RawContext<'m> {
        &mut self.ctx
    }

    /// The context, for queries.
    pub(super) fn ctx_ref(&self) -> &RawContext<'m> {
        &self.ctx
    }

    /// Prefix cells of one candidate slot.
    pub(super) fn cells(&self) -> usize {
        self.cells
    }
}

/// Decodes entries (one sequence id each) in chunks of the context's n_batch, in order, and returns the
/// logits of the entries listed in `outputs` (ascending indices), in that order.
pub(super) fn decode_chunks(
    ctx: &mut RawContext<'_>,
    n_embd: usize,
    input: BatchInput<'_>,
    pos: &[i32],
    seqs: &[i32],
    outputs: &[usize],
) -> Result<Vec<Vec<f32>>, EngineError> {
    let step = ctx.n_batch() as usize;
    let mut logits = Vec::with_capacity(outputs.len());
    let mut next_out = outputs.iter().peekable();
    for start in (0..pos.len()).step_by(step) {
        let end = (start + step).min(pos.len());
        let chunk = match input {
            BatchInput::Tokens(t) => BatchInput::Tokens(&t[start..end]),
            BatchInput::Embeddings(e) => BatchInput::Embeddings(&e[start * n_embd..end * n_embd]),
        };
        let ids: Vec<[i32; 1]> = seqs[start..end].iter().map(|&s| [s]).collect();
        let seq_refs: Vec<&[i32]> = ids.iter().map(|s| &s[..]).collect();
        let mut want = vec![false; end - start];
        let mut here = vec![];
        while let Some(&&o) = next_out.peek() {
            if o >= end {
                break;
            }
            want[o - start] = true;
            here.push(o - start);
            next_out.next();
        }
        ctx.decode(chunk, &pos[start..end], &seq_refs, &want)?;
        for i in here {
            logits.push(ctx.logits(i).ok_or_else(|| {
                EngineError::Prompt("llama.cpp returned no logits for an answer".into())
            })?);
        }
    }
    Ok(logits)
}

#[cfg(test)]
mod tests {
    use super::common_head;

    #[test]
    fn the_common_head_leaves_every_prefix_a_token_of_its_own() {
        assert_eq!(common_head(&[]), 0);
        assert_eq!(common_head(&[vec![1, 2, 3]]), 2);
        assert_eq!(common_head(&[vec![1, 2, 3, 4], vec![1, 2, 5]]), 2);
        assert_eq!(common_head(&[vec![1, 2], vec![1, 2, 3]]), 1);
        assert_eq!(common_head(&[vec![7, 2], vec![1, 2]]), 0);
        assert_eq!(common_head(&[vec![1], vec![1]]), 0);
    }
}
