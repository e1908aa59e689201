//! Answer-side soft prompts with KV reuse across candidates.
//!
//! In this placement every item prompt is split in three: the **prefix** (template, system
//! message with the naive persona, the question and its options, up to the start of the
//! assistant turn), the soft prompt's **rows** (at z = 0 the tokens of a sentence in the
//! assistant's voice, "Speaking as a person from China."), and the **suffix** (the answer
//! opening " Answer: ", 3 tokens). The prefixes do not depend on the candidate, so they are
//! decoded once, as one prefix tree, and stay in the KV cache: leaf i's prefix lives on
//! sequence i. A group of G candidates then decodes only its rows and suffixes: candidate c's
//! copy of leaf i runs on sequence `c * n_leaves + i` (for c > 0 the prefix cells are shared
//! with `seq_cp`, nothing is copied), and afterwards every cell a candidate added is removed
//! again with `seq_rm`. llama.cpp moves its slot search back to the first freed cell, so the
//! cache is then in exactly the state it had after the prefix decode: every group of a run is
//! evaluated from the same state, which keeps results repeatable and resumable bit for bit.

use super::error::EngineError;
use super::evaluate::{
    finish, read_answer, CachedPrefixes, Evaluator, KvLayout, LeafAnswer, SurveyAnswers, MAX_SEQ,
};
use super::ffi::{BatchInput, RawContext};
pub use super::prompts::{group_limit, AnswerPrompts};
use super::streams::{decode_chunks, longest_prompt, StreamCache};
use super::tree::PrefixTree;
use std::time::Instant;

impl<'m> Evaluator<'m> {
    /// Evaluates a group of answer-side soft prompts (each `k * n_embd` values, all of the same
    /// k) in one pass. The prefixes are decoded on the first call for these prompts and reused
    /// afterwards; the candidates' cells are removed again before this returns.
    pub fn evaluate_answer(
        &mut self,
        prompts: &AnswerPrompts,
        candidates: &[&[f32]],
    ) -> Result<Vec<SurveyAnswers>, EngineError> {
        let start = Instant::now();
        let k = self.rows_of(candidates)?;
        let n = prompts.leaves.len();
        let g = candidates.len();
        if n == 0 || g * n > MAX_SEQ {
            return Err(EngineError::Prompt(format!(
                "{g} candidates x {n} prompts exceed the {MAX_SEQ} sequences of one decode; evaluate at most {} candidates at once",
                prompts.max_group()
            )));
        }
        let per_candidate = prompts.tokens_per_candidate(k);
        let (cells, fresh) = self.place_prefixes(prompts, g, k)?;
        // From here on the cache holds candidate cells until the clean-up; a failure in
        // between leaves it in an unknown state, so it is forgotten unless both succeed.
        let cached = self.cached.take();
        let decoded = self.decode_candidates(prompts, candidates, k);
        let dropped = self.drop_candidates(prompts, g);
        if decoded.is_err() || dropped.is_err() {
            self.streams = None;
        } else {
            self.cached = cached;
        }
        dropped?;
        let answers = decoded?
            .iter()
            .enumerate()
            .map(|(o, l)| {
                let meta = &prompts.leaves[o % n];
                read_answer(self.model, l, &prompts.readouts[meta.item], meta)
            })
            .collect::<Result<Vec<LeafAnswer>, EngineError>>()?;
        let elapsed = start.elapsed();
        Ok(answers
            .chunks(n)
            .map(|leaves| {
                finish(
                    &prompts.leaves,
                    &prompts.readouts,
                    prompts.n_items,
                    leaves.to_vec(),
                )
            })
            .enumerate()
            .map(|(c, (leaves, items))| SurveyAnswers {
                items,
                leaves,
                tail_tokens_decoded: per_candidate,
                tokens_decoded: per_candidate + if c == 0 && fresh { cells } else { 0 },
                elapsed: elapsed / g as u32,
            })
            .collect())
    }

    /// Puts the prefixes in place for `g` candidates of `k` rows in the layout of the
    /// settings: candidate c's copy of leaf i is sequence `c * n + i`. Returns the prefix cells
    /// and whether they were decoded now.
    fn place_prefixes(
        &mut self,
        prompts: &AnswerPrompts,
        g: usize,
        k: usize,
    ) -> Result<(usize, bool), EngineError> {
        let n = prompts.leaves.len();
        if self.settings.kv_layout == KvLayout::Streams {
            return self.ensure_streams(prompts, g, k);
        }
        let placed = self.ensure_prefixes(prompts, g * prompts.tokens_per_candidate(k))?;
        for c in 1..g {
            for i in 0..n {
                let ok = self.ctx.seq_cp(i as i32, (c * n + i) as i32, -1, -1);
                debug_assert!(ok, "sequence ids were checked by the caller");
            }
        }
        Ok(placed)
    }

    /// The context the candidates are decoded in.
    fn answer_ctx(&mut self) -> Result<&mut RawContext<'m>, EngineError> {
        match self.settings.kv_layout {
            KvLayout::Unified => Ok(&mut self.ctx),
            KvLayout::Streams => self.streams_mut().map(StreamCache::ctx),
        }
    }

    /// The streams layout's cache, set up by [`Self::ensure_streams`].
    fn streams_mut(&mut self) -> Result<&mut StreamCache<'m>, EngineError> {
        self.streams
            .as_mut()
            .ok_or_else(|| EngineError::Prompt("the prompt streams are not set up".into()))
    }

    /// Decodes every (candidate, leaf) and returns the logits of each leaf's last token,
    /// candidate by candidate, in the layout of the settings.
    fn decode_candidates(
        &mut self,
        prompts: &AnswerPrompts,
        candidates: &[&[f32]],
        k: usize,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        match self.settings.kv_layout {
            KvLayout::Streams => self.decode_in_streams(prompts, candidates, k),
            KvLayout::Unified => self.decode_in_unified(prompts, candidates, k),
        }
    }

    /// The streams layout: each (candidate, leaf) stream gets the candidate's rows and the
    /// input rows of the leaf's answer opening, all in one decode.
    fn decode_in_streams(
        &mut self,
        prompts: &AnswerPrompts,
        candidates: &[&[f32]],
        k: usize,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let (model, n_embd) = (self.model, self.model.info().n_embd);
        let n = prompts.leaves.len();
        let streams = self.streams_mut()?;
        let suffix_rows = streams.suffix_rows(model, prompts)?;
        let per_candidate = prompts.tokens_per_candidate(k);
        let mut rows = Vec::with_capacity(candidates.len() * per_candidate * n_embd);
        let (mut pos, mut seqs, mut outs) = (vec![], vec![], vec![]);
        for (c, cand) in candidates.iter().enumerate() {
            let mut at = 0;
            for (i, (prefix, suffix)) in prompts.prefixes.iter().zip(&prompts.suffixes).enumerate()
            {
                let (len, m, s) = (prefix.len() as i32, k + suffix.len(), suffix.len() * n_embd);
                rows.extend_from_slice(cand);
                rows.extend_from_slice(&suffix_rows[at..at + s]);
                at += s;
                pos.extend((0..m as i32).map(|r| len + r));
                seqs.extend(std::iter::repeat_n((c * n + i) as i32, m));
                outs.push(pos.len() - 1);
            }
        }
        let input = BatchInput::Embeddings(&rows);
        decode_chunks(streams.ctx(), n_embd, input, &pos, &seqs, &outs)
    }

    /// The unified layout: the rows of every (candidate, leaf), then every answer opening as
    /// tokens (two decodes).
    fn decode_in_unified(
        &mut self,
        prompts: &AnswerPrompts,
        candidates: &[&[f32]],
        k: usize,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let n_embd = self.model.info().n_embd;
        let lens: Vec<i32> = prompts.prefixes.iter().map(|p| p.len() as i32).collect();
        let n = lens.len();
        let mut rows = Vec::with_capacity(candidates.len() * n * k * n_embd);
        let (mut pos, mut seqs) = (vec![], vec![]);
        for (c, cand) in candidates.iter().enumerate() {
            for (i, &len) in lens.iter().enumerate() {
                rows.extend_from_slice(cand);
                pos.extend((0..k as i32).map(|r| len + r));
                seqs.extend(std::iter::repeat_n((c * n + i) as i32, k));
            }
        }
        let ctx = &mut self.ctx;
        decode_chunks(ctx, n_embd, BatchInput::Embeddings(&rows), &pos, &seqs, &[])?;
        let (mut tokens, mut pos, mut seqs, mut outs) = (vec![], vec![], vec![], vec![]);
        for c in 0..candidates.len() {
            for (i, suffix) in prompts.suffixes.iter().enumerate() {
                for (j, &t) in suffix.iter().enumerate() {
                    tokens.push(t);
                    pos.push(lens[i] + (k + j) as i32);
                    seqs.push((c * n + i) as i32);
                }
                outs.push(tokens.len() - 1);
            }
        }
        decode_chunks(ctx, n_embd, BatchInput::Tokens(&tokens), &pos, &seqs, &outs)
    }

    /// Drops every cell the `g` candidates added; the prefixes stay (in the unified cache
    /// candidate c > 0's sequences only shared them, so they are emptied).
    fn drop_candidates(&mut self, prompts: &AnswerPrompts, g: usize) -> Result<(), EngineError> {
        let layout = self.settings.kv_layout;
        let n = prompts.leaves.len();
        let ctx = self.answer_ctx()?;
        for c in 0..g {
            for (i, prefix) in prompts.prefixes.iter().enumerate() {
                let len = prefix.len() as i32;
                let from = if c == 0 || layout == KvLayout::Streams {
                    len
                } else {
                    -1
                };
                if !ctx.seq_rm((c * n + i) as i32, from, -1) {
                    return Err(EngineError::Prompt(
                        "llama.cpp refused to drop a candidate's cells".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The streams layout's [`Self::place_prefixes`]: a stream context holding these
    /// prompts' prefixes for `g` candidates (made and decoded when there is none that fits).
    fn ensure_streams(
        &mut self,
        prompts: &AnswerPrompts,
        g: usize,
        k: usize,
    ) -> Result<(usize, bool), EngineError> {
        let longest = longest_prompt(prompts, k);
        if longest > self.settings.n_ctx as usize {
            return Err(EngineError::Prompt(format!(
                "a prompt needs {longest} KV cells but n_ctx is {}; raise --n-ctx",
                self.settings.n_ctx
            )));
        }
        let fingerprint = prompts.fingerprint();
        let (mut cache, fresh) = match self.streams.take() {
            Some(s) if s.fits(fingerprint, g, k) => (s, false),
            _ => {
                let made = StreamCache::new(self.model, &self.settings, prompts, fingerprint, g, k);
                (made?, true)
            }
        };
        // On an error the cache is dropped: its streams are in an unknown state.
        cache.copy_to(g)?;
        let cells = cache.cells();
        self.streams = Some(cache);
        Ok((cells, fresh))
    }

    /// The reference procedure for checks: each prompt decoded alone from an empty cache
    /// (prefix tokens, rows, suffix), nothing reused.
    pub fn evaluate_answer_uncached(
        &mut self,
        prompts: &AnswerPrompts,
        rows: &[f32],
    ) -> Result<SurveyAnswers, EngineError> {
        let start = Instant::now();
        let k = self.rows_of(&[rows])?;
        let n_embd = self.model.info().n_embd;
        self.cached = None;
        let mut leaves = Vec::with_capacity(prompts.leaves.len());
        let mut decoded = 0;
        for (i, (prefix, suffix)) in prompts.prefixes.iter().zip(&prompts.suffixes).enumerate() {
            let total = prefix.len() + k + suffix.len();
            if total > self.settings.n_ctx as usize {
                return Err(EngineError::Prompt(format!(
                    "prompt {i} needs {total} KV cells but n_ctx is {}",
                    self.settings.n_ctx
                )));
            }
            self.ctx.clear();
            let seq = |m: usize| vec![0i32; m];
            let positions = |from: usize, m: usize| (from as i32..(from + m) as i32).collect();
            let p: Vec<i32> = positions(0, prefix.len());
            decode_chunks(
                &mut self.ctx,
                n_embd,
                BatchInput::Tokens(prefix),
                &p,
                &seq(prefix.len()),
                &[],
            )?;
            let p: Vec<i32> = positions(prefix.len(), k);
            decode_chunks(
                &mut self.ctx,
                n_embd,
                BatchInput::Embeddings(rows),
                &p,
                &seq(k),
                &[],
            )?;
            let p: Vec<i32> = positions(prefix.len() + k, suffix.len());
            let l = decode_chunks(
                &mut self.ctx,
                n_embd,
                BatchInput::Tokens(suffix),
                &p,
                &seq(suffix.len()),
                &[suffix.len() - 1],
            )?;
            let meta = &prompts.leaves[i];
            leaves.push(read_answer(
                self.model,
                &l[0],
                &prompts.readouts[meta.item],
                meta,
            )?);
            decoded += total;
        }
        self.ctx.clear();
        let (leaves, items) = finish(&prompts.leaves, &prompts.readouts, prompts.n_items, leaves);
        Ok(SurveyAnswers {
            items,
            leaves,
            tail_tokens_decoded: prompts.tokens_per_candidate(k),
            tokens_decoded: decoded,
            elapsed: start.elapsed(),
        })
    }

    /// The largest position sequence `seq` holds in the KV cache (-1: none). For checks that
    /// candidates leave nothing behind.
    pub fn seq_pos_max(&self, seq: usize) -> i32 {
        match (&self.streams, self.settings.kv_layout) {
            (Some(s), KvLayout::Streams) => s.ctx_ref().seq_pos_max(seq as i32),
            (None, KvLayout::Streams) => -1,
            (_, KvLayout::Unified) => self.ctx.seq_pos_max(seq as i32),
        }
    }

    /// KV cells held by one candidate's cached answer-side prefixes (0 when none are cached).
    pub fn cached_prefix_cells(&self) -> usize {
        match self.settings.kv_layout {
            KvLayout::Streams => self.streams.as_ref().map_or(0, StreamCache::cells),
            KvLayout::Unified => self.cached.map_or(0, |c| c.cells),
        }
    }

    /// k for a set of candidates: all must be whole, equal, non-empty sets of rows.
    fn rows_of(&self, candidates: &[&[f32]]) -> Result<usize, EngineError> {
        let n_embd = self.model.info().n_embd;
        let first = candidates
            .first()
            .ok_or_else(|| EngineError::Prompt("no candidate to evaluate".into()))?;
        if candidates
            .iter()
            .any(|c| c.is_empty() || c.len() % n_embd != 0 || c.len() != first.len())
        {
            return Err(EngineError::Prompt(format!(
                "every soft prompt must be the same k x {n_embd} values with k >= 1"
            )));
        }
        Ok(first.len() / n_embd)
    }

    /// Makes sure the KV cache holds exactly these prompts' prefixes with room for `extra`
    /// more cells; decodes them when it does not. Returns the prefix cells and whether they
    /// were decoded now.
    fn ensure_prefixes(
        &mut self,
        prompts: &AnswerPrompts,
        extra: usize,
    ) -> Result<(usize, bool), EngineError> {
        let fingerprint = prompts.fingerprint();
        let tree = PrefixTree::new(&prompts.prefixes)
            .ok_or_else(|| EngineError::Prompt("an item prompt has an empty prefix".into()))?;
        let cells = tree.unique_tokens();
        if cells + extra > self.settings.n_ctx as usize {
            return Err(EngineError::Prompt(format!(
                "this evaluation needs {} KV cells ({cells} for the cached prompts, {extra} for the candidates) but n_ctx is {}; raise --n-ctx or evaluate fewer candidates at once",
                cells + extra,
                self.settings.n_ctx
            )));
        }
        if self.cached == Some(CachedPrefixes { fingerprint, cells }) {
            return Ok((cells, false));
        }
        self.cached = None;
        self.ctx.clear();
        let (batches, _) = tree.schedule(0, self.settings.n_batch as usize);
        for batch in &batches {
            let seqs: Vec<&[i32]> = batch.seqs.iter().map(Vec::as_slice).collect();
            let none = vec![false; batch.tokens.len()];
            self.ctx
                .decode(BatchInput::Tokens(&batch.tokens), &batch.pos, &seqs, &none)?;
        }
        self.cached = Some(CachedPrefixes { fingerprint, cells });
        Ok((cells, true))
    }
}
