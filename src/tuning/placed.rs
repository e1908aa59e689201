//! The one place that maps a soft prompt's placement to prompts: a run's configuration or a
//! prompt's card gives a [`PromptPlacement`]; it builds the survey's prompts for it
//! ([`PlacedPrompts`], which evaluate rows in that placement), the chat turn for it, the
//! card's typed [`Insertion`] and the words `show` prints. The engine below takes the placed
//! prompts and never names a placement; the CLI never matches on one.

use crate::engine::answer::AnswerPrompts;
use crate::engine::evaluate::{ChatPrompt, Evaluator, PersonaInput, SurveyAnswers, SurveyPrompts};
use crate::engine::{EngineError, Model};
use crate::prompt::{self, Respondent};
use crate::regions::Region;
use crate::soft_prompt::{AnswerAnchor, Placement};
use crate::survey::Survey;
use serde::{Deserialize, Serialize};

/// Where a soft prompt's rows go, with what the answer placement's rows stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptPlacement {
    /// In place of the persona sentence at the start of the system message.
    Prefix,
    /// At the start of the assistant's turn, in place of the anchor text.
    Answer(AnswerAnchor),
}

/// A survey's item prompts laid out for soft-prompt rows in one placement.
pub enum PlacedPrompts {
    /// Rows in place of the persona sentence; every item re-decoded after them.
    Prefix(SurveyPrompts),
    /// Rows before each answer; the item prefixes cached.
    Answer(AnswerPrompts),
}

/// The card's `insertion`: where the rows go, in words and in the texts around them, for a
/// person or another program placing them (`culturetune.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "placement", rename_all = "lowercase")]
pub enum Insertion {
    /// In place of the persona sentence.
    Prefix {
        /// What the rows replace.
        replaces: String,
        /// Where they go.
        position: String,
        /// The persona sentence they start from (z = 0).
        persona_text: String,
    },
    /// At the start of the assistant's turn.
    Answer {
        /// What the rows stand for at z = 0.
        anchor: AnswerAnchor,
        /// What the rows replace.
        replaces: String,
        /// Where they go.
        position: String,
        /// The system message's persona.
        system_persona: String,
        /// The text the rows start from (z = 0).
        anchor_text: String,
        /// What follows the rows.
        answer_opening: String,
    },
}

impl PromptPlacement {
    /// The placement of a run's settings.
    pub fn new(placement: Placement, anchor: AnswerAnchor) -> PromptPlacement {
        match placement {
            Placement::Prefix => PromptPlacement::Prefix,
            Placement::Answer => PromptPlacement::Answer(anchor),
        }
    }

    /// The placement a prompt's card names (`insertion.placement` and `insertion.anchor`;
    /// cards written before either existed are `prefix`, and `persona`).
    pub fn from_card(card: &serde_json::Value) -> Result<PromptPlacement, String> {
        let placement = Placement::from_card(card)?;
        Ok(PromptPlacement::new(
            placement,
            AnswerAnchor::from_card(card)?,
        ))
    }

    /// The placement on its own (as stored and named on the command line).
    pub fn placement(self) -> Placement {
        match self {
            PromptPlacement::Prefix => Placement::Prefix,
            PromptPlacement::Answer(_) => Placement::Answer,
        }
    }

    /// Where the rows go, in words (for `show`).
    pub fn describe(self) -> String {
        match self {
            PromptPlacement::Prefix => "in place of the persona sentence".to_string(),
            PromptPlacement::Answer(a) => format!(
                "opening each answer from the {} anchor, the naive persona in the system message; questions cached",
                a.as_str()
            ),
        }
    }

    /// The survey's prompts for rows in this placement, as a region's respondents.
    pub fn survey_prompts(
        self,
        model: &Model,
        survey: &Survey,
        region: &Region,
        panel: &[Respondent],
        counterbalance: bool,
    ) -> Result<PlacedPrompts, EngineError> {
        let persona = prompt::persona(region);
        Ok(match self {
            PromptPlacement::Prefix => PlacedPrompts::Prefix(SurveyPrompts::build(
                model,
                survey,
                &persona,
                panel,
                counterbalance,
            )?),
            PromptPlacement::Answer(anchor) => {
                let (anchor, opening) = prompt::answer_parts(anchor, region);
                PlacedPrompts::Answer(AnswerPrompts::build(
                    model,
                    survey,
                    &persona,
                    &anchor,
                    &opening,
                    panel,
                    counterbalance,
                )?)
            }
        })
    }

    /// A chat turn of a region's persona for rows in this placement (the naive persona's
    /// turn for the prefix placement: the rows replace its persona block).
    pub fn chat_prompt(
        self,
        model: &Model,
        region: &Region,
        message: &str,
    ) -> Result<ChatPrompt, EngineError> {
        let persona = prompt::persona(region);
        match self {
            PromptPlacement::Prefix => ChatPrompt::build(model, &persona, message),
            PromptPlacement::Answer(anchor) => {
                let anchor = prompt::answer_parts(anchor, region).0;
                ChatPrompt::build_answer(model, &persona, &anchor, message)
            }
        }
    }

    /// The card's insertion for rows that start from `anchor_text` (z = 0).
    pub fn insertion(self, region: &Region, anchor_text: &str) -> Insertion {
        match self {
            PromptPlacement::Prefix => Insertion::Prefix {
                replaces: "persona sentence".into(),
                position: "start of the system message, right after the chat template's opening tokens".into(),
                persona_text: anchor_text.into(),
            },
            PromptPlacement::Answer(anchor) => Insertion::Answer {
                anchor,
                replaces: "the start of the assistant's turn (anchor_text)".into(),
                position: "start of the assistant turn (after the chat template's assistant header), followed by answer_opening; the system message holds the naive persona".into(),
                system_persona: prompt::persona(region),
                anchor_text: anchor_text.into(),
                answer_opening: prompt::answer_parts(anchor, region).1,
            },
        }
    }
}

impl PlacedPrompts {
    /// The tokens the rows stand for at z = 0 (the persona sentence or the anchor).
    pub fn anchor_tokens(&self) -> &[i32] {
        match self {
            PlacedPrompts::Prefix(p) => &p.persona_tokens,
            PlacedPrompts::Answer(p) => &p.anchor_tokens,
        }
    }

    /// The text the rows stand for at z = 0.
    pub fn anchor_text(&self) -> &str {
        match self {
            PlacedPrompts::Prefix(p) => &p.persona_text,
            PlacedPrompts::Answer(p) => &p.anchor_text,
        }
    }

    /// Checks a number of candidates per evaluation call: 1 up to what one decode can
    /// carry for the answer placement (the prefix placement evaluates one at a time whatever
    /// is asked).
    pub fn check_group(&self, group: usize) -> Result<(), String> {
        match self {
            PlacedPrompts::Prefix(_) => Ok(()),
            PlacedPrompts::Answer(p) if group == 0 || group > p.max_group() => Err(format!(
                "candidates per decode must be 1..={} for {} prompts",
                p.max_group(),
                p.leaves.len()
            )),
            PlacedPrompts::Answer(_) => Ok(()),
        }
    }

    /// The answers to these prompts of each soft prompt in `all`, `group` candidates per
    /// evaluation call where the placement can take several.
    pub fn evaluate(
        &self,
        ev: &mut Evaluator<'_>,
        all: &[&[f32]],
        group: usize,
    ) -> Result<Vec<SurveyAnswers>, EngineError> {
        let mut out = Vec::with_capacity(all.len());
        match self {
            PlacedPrompts::Prefix(p) => {
                for rows in all {
                    out.push(ev.evaluate(p, PersonaInput::Embeddings(rows))?);
                }
            }
            PlacedPrompts::Answer(p) => {
                for chunk in all.chunks(group.max(1)) {
                    out.extend(ev.evaluate_answer(p, chunk)?);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insertions_read_back_as_the_placement_they_name() {
        let region = Region {
            code: "CHI".into(),
            name: "China".into(),
            scores: Default::default(),
        };
        for p in [
            PromptPlacement::Prefix,
            PromptPlacement::Answer(AnswerAnchor::Persona),
            PromptPlacement::Answer(AnswerAnchor::Opening),
        ] {
            let card = serde_json::json!({ "insertion": p.insertion(&region, "x") });
            assert_eq!(PromptPlacement::from_card(&card), Ok(p));
            let back: Insertion = serde_json::from_value(card["insertion"].clone()).unwrap();
            assert_eq!(back, p.insertion(&region, "x"));
        }
        let old = serde_json::json!({});
        assert_eq!(
            PromptPlacement::from_card(&old),
            Ok(PromptPlacement::Prefix)
        );
    }
}
