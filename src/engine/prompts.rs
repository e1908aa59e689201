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
    /// Options listed from the last code's label down to the first's.
    pub reversed: bool,
    /// A continuation prompt: the same prompt with this first token of two-token codes
    /// (`"1"` of `"10"`) appended, whose answer position reads their second tokens. `None`
    /// for the prompt itself.
    pub cont: Option<i32>,
}

/// How the answers of one item are read: the tokens of each option's code, in the order the
/// options are shown (numbered by ascending code).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Readout {
    /// One or two tokens per code.
    pub codes: Vec<Vec<i32>>,
    /// The value of the first code (the others follow it).
    pub first_code: u32,
}

impl Readout {
    /// Whether every code is one token (the VSM 2013's): no continuation prompts, and each
    /// prompt's answer is complete where it is read. Allocation-free, for the per-answer path.
    pub fn is_single_token(&self) -> bool {
        self.codes.iter().all(|c| c.len() == 1)
    }

    /// The first tokens of the two-token codes, each once, in code order: the continuation
    /// prompts an item needs.
    pub fn continuations(&self) -> Vec<i32> {
        let mut out: Vec<i32> = Vec::new();
        for c in self.codes.iter().filter(|c| c.len() == 2) {
            if !out.contains(&c[0]) {
                out.push(c[0]);
            }
        }
        out
    }
}

/// The readout of every item of `survey` for `model`.
pub fn readouts(model: &Model, survey: &Survey) -> Result<Vec<Readout>, EngineError> {
    let per_scale: Vec<Readout> = survey
        .scales
        .iter()
        .map(|s| {
            Ok(Readout {
                codes: model.code_tokens(&s.code_texts(), &s.name)?,
                first_code: s.first_code,
            })
        })
        .collect::<Result<_, EngineError>>()?;
    Ok(survey
        .items
        .iter()
        .map(|i| per_scale[i.scale].clone())
        .collect())
}

/// Every prompt of a panel in the one order both layouts list them (respondent, then item,
/// then option order): its leaf and its system and user messages.
/// Each prompt's continuation prompts follow it (see [`Leaf::cont`]).
fn each_leaf<'a>(
    survey: &'a Survey,
    readouts: &'a [Readout],
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
            orders.iter().flat_map(move |&reversed| {
                let system = prompt::system_message(persona_block, resp);
                let user = prompt::user_message(survey, item, reversed);
                let conts =
                    std::iter::once(None).chain(readouts[i].continuations().into_iter().map(Some));
                conts
                    .map(|cont| {
                        let leaf = Leaf {
                            item: i,
                            respondent: r,
                            reversed,
                            cont,
                        };
                        (leaf, system.clone(), user.clone())
                    })
                    .collect::<Vec<_>>()
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
    /// How each item's answer is read.
    pub readouts: Vec<Readout>,
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
        let readouts = readouts(model, survey)?;
        // The answer prefix is rendered text (tokenized with the tail); an opening is tokens.
        let prefix = if opening.is_none() { ANSWER_PREFIX } else { "" };
        let all = each_leaf(survey, &readouts, persona_block, panel, counterbalance);
        for (leaf, system, user) in all {
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
            if let Some(t) = leaf.cont {
                tokens.push(t);
                text.push_str(&model.token_text(t));
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
            readouts,
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
    /// How each item's answer is read.
    pub readouts: Vec<Readout>,
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
            readouts: readouts(model, survey)?,
        };
        let suffix = model.tokenize_text(opening)?;
        let all = each_leaf(survey, &out.readouts, persona_block, panel, counterbalance);
        let mut built = Vec::new();
        for (leaf, system, user) in all {
            let rendered = model.render_chat(&[("system", &system), ("user", &user)])?;
            let mut prefix = bos.clone();
            prefix.extend(model.tokenize_rendered(&rendered, &[&system, &user])?);
            let mut suffix = suffix.clone();
            let mut text = format!("{rendered}{anchor}{opening}");
            if let Some(t) = leaf.cont {
                suffix.push(t);
                text.push_str(&model.token_text(t));
            }
            built.push((leaf, prefix, suffix, text));
        }
        for (leaf, prefix, suffix, text) in built {
            out.prefixes.push(prefix);
            out.suffixes.push(suffix);
            out.leaves.push(leaf);
            out.texts.push(text);
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
