//! The token layouts of what the evaluator decodes: a survey's item prompts split at the
//! persona block (`SurveyPrompts`, the prefix placement and the hard prompts), split around an
//! answer-side soft prompt (`AnswerPrompts`), and a chat turn (`ChatPrompt`). Built from the
//! wording in `crate::prompt` and the model's chat template; no decoding here.

use super::error::EngineError;
use super::model::Model;
use super::settings::MAX_SEQ;
use super::tree::PrefixTree;
use crate::prompt::{self, Respondent};
use crate::prompt::{ANSWER_PREFIX, CHAT_INSTRUCTIONS};
use crate::survey::Survey;
use serde::Serialize;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

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

/// Every prompt of a panel in the one order both layouts list them (respondent, then item,
/// then option order): its leaf and its system and user messages.
fn each_leaf<'a>(
    survey: &'a Survey,
    persona_block: &'a str,
    panel: &'a [Respondent],
    counterbalance: bool,
) -> impl Iterator<Item = (Leaf, String, String)> + 'a {
    let orders: &'static [bool] = if counterbalance {
        &[false, true]
    } else {
        &[false]
    };
    panel.iter().enumerate().flat_map(move |(r, resp)| {
        survey.items.iter().enumerate().flat_map(move |(i, item)| {
            orders.iter().map(move |&reversed| {
                let leaf = Leaf {
                    item: i,
                    respondent: r,
                    reversed,
                };
                let system = prompt::system_message(persona_block, resp);
                (leaf, system, prompt::user_message(survey, item, reversed))
            })
        })
    })
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
        SurveyPrompts::build_opened(model, survey, persona_block, panel, counterbalance, None)
    }

    /// [`SurveyPrompts::build`] with the assistant's turn opened by `opening` (tokens, with
    /// their text) instead of the answer prefix: each tail is the rendered chat's tokens
    /// after the persona block, then `opening`. For a prompt that a model carries as tokens
    /// (`crate::carried`).
    pub fn build_opened(
        model: &Model,
        survey: &Survey,
        persona_block: &str,
        panel: &[Respondent],
        counterbalance: bool,
        opening: Option<(&[i32], &str)>,
    ) -> Result<SurveyPrompts, EngineError> {
        let mut head_text: Option<String> = None;
        let (mut leaves, mut tails, mut texts) = (vec![], vec![], vec![]);
        // The answer prefix is rendered text (tokenized with the tail); an opening is tokens.
        let prefix = if opening.is_none() { ANSWER_PREFIX } else { "" };
        for (leaf, system, user) in each_leaf(survey, persona_block, panel, counterbalance) {
            let mut text = model.render_chat(&[("system", &system), ("user", &user)])? + prefix;
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
            let tail = &text[at + persona_block.len()..];
            let mut tokens = model.tokenize_rendered(tail, &[&system, &user])?;
            if let Some((open, open_text)) = opening {
                tokens.extend_from_slice(open);
                text.push_str(open_text);
            }
            tails.push(tokens);
            leaves.push(leaf);
            texts.push(text);
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
    pub(super) fn groups(&self) -> Vec<std::ops::Range<usize>> {
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

/// The item prompts of a survey split around an answer-side soft prompt.
#[derive(Debug, Clone)]
pub struct AnswerPrompts {
    /// One entry per prompt.
    pub leaves: Vec<Leaf>,
    /// Tokens before the rows, per leaf (BOS included).
    pub prefixes: Vec<Vec<i32>>,
    /// The text the rows stand for at z = 0.
    pub anchor_text: String,
    /// Tokens of the anchor text.
    pub anchor_tokens: Vec<i32>,
    /// Tokens after the rows (the answer opening), per leaf.
    pub suffixes: Vec<Vec<i32>>,
    /// The full rendered prompt text per leaf, anchor included.
    pub texts: Vec<String>,
    /// Number of survey items.
    pub n_items: usize,
}

/// The most candidates one decode can hold for a survey of `n_items` items asked of `panel`
/// respondents, in both option orders when `counterbalance`: each candidate needs a sequence
/// per (respondent, item, order) leaf, as [`AnswerPrompts::build`] lays them out.
pub fn group_limit(n_items: usize, panel: usize, counterbalance: bool) -> usize {
    leaf_limit(n_items * panel * if counterbalance { 2 } else { 1 })
}

fn leaf_limit(n_leaves: usize) -> usize {
    (MAX_SEQ / n_leaves.max(1)).max(1)
}

impl AnswerPrompts {
    /// Renders every (respondent, item, order) prompt with `persona_block` in the system
    /// message, and tokenizes its three parts: the chat up to the start of the assistant turn,
    /// `anchor` (the text the rows stand for at z = 0), and the answer `opening` after the rows
    /// (see `prompt::answer_parts`).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        model: &Model,
        survey: &Survey,
        persona_block: &str,
        anchor: &str,
        opening: &str,
        panel: &[Respondent],
        counterbalance: bool,
    ) -> Result<AnswerPrompts, EngineError> {
        if anchor.trim().is_empty() {
            return Err(EngineError::Prompt(
                "the answer-side anchor text is empty".into(),
            ));
        }
        if opening.is_empty() {
            return Err(EngineError::Prompt(
                "the answer opening after the rows is empty".into(),
            ));
        }
        let bos = model.bos_prefix();
        let mut out = AnswerPrompts {
            leaves: vec![],
            prefixes: vec![],
            anchor_text: anchor.to_string(),
            anchor_tokens: model.tokenize_text(anchor)?,
            suffixes: vec![],
            texts: vec![],
            n_items: survey.items.len(),
        };
        let suffix = model.tokenize_text(opening)?;
        for (leaf, system, user) in each_leaf(survey, persona_block, panel, counterbalance) {
            let rendered = model.render_chat(&[("system", &system), ("user", &user)])?;
            let mut prefix = bos.clone();
            prefix.extend(model.tokenize_rendered(&rendered, &[&system, &user])?);
            out.prefixes.push(prefix);
            out.suffixes.push(suffix.clone());
            out.leaves.push(leaf);
            out.texts.push(format!("{rendered}{anchor}{opening}"));
        }
        Ok(out)
    }

    /// The most candidates one decode can carry: every (candidate, leaf) pair needs its own
    /// sequence id.
    pub fn max_group(&self) -> usize {
        leaf_limit(self.leaves.len())
    }

    /// Tokens a candidate of `k` rows decodes (its rows plus every suffix).
    pub fn tokens_per_candidate(&self, k: usize) -> usize {
        self.suffixes.iter().map(|s| k + s.len()).sum()
    }

    /// Distinct prefix tokens: what is decoded once and kept.
    pub fn unique_prefix_tokens(&self) -> usize {
        PrefixTree::new(&self.prefixes).map_or(0, |t| t.unique_tokens())
    }

    pub(super) fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.prefixes.hash(&mut h);
        h.finish()
    }
}
