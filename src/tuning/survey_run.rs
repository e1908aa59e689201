//! `survey`: one survey put to the model as a region's persona, with the naive or ICL hard
//! prompt or an imported soft prompt in the placement its card names, and scored against the
//! region's published indices.

use super::placed::PromptPlacement;
use super::TuneError;
use crate::carried::Carried;
use crate::dimension::DimScores;
use crate::engine::evaluate::{
    EvalSettings, Evaluator, PersonaInput, SurveyAnswers, SurveyPrompts,
};
use crate::engine::{Model, ModelInfo};
use crate::prompt::{self, Method, Respondent};
use crate::regions::Region;
use crate::scoring::{indices, Constants, Loss};
use crate::survey::Survey;
use serde::Serialize;

/// What to ask: the survey, as whom, and how to score it.
pub struct SurveyAsk<'a> {
    /// The survey.
    pub survey: &'a Survey,
    /// The region whose persona answers and whose scores are the target.
    pub region: &'a Region,
    /// The hard prompt (naive or ICL); a soft prompt takes the naive persona.
    pub method: Method,
    /// Respondents.
    pub panel: usize,
    /// Both option orders.
    pub counterbalance: bool,
    /// Constants of the index formulas.
    pub constants: Constants,
}

/// An imported soft prompt: its rows and its card.
pub type SoftPrompt<'a> = (&'a [f32], &'a serde_json::Value);

/// One item's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemReport {
    /// The item's id.
    pub id: String,
    /// The expected answer code.
    pub expected: f64,
    /// The probability mass on the answer codes.
    pub digit_mass: f64,
    /// The probabilities of the scale's codes, in code order.
    pub probs: Vec<f64>,
}

/// What `survey` found (the JSON of `survey --json`).
#[derive(Debug, Clone, Serialize)]
pub struct SurveyReport {
    /// The model.
    pub model: ModelInfo,
    /// The survey's id.
    pub survey: String,
    /// The target region.
    pub region: Region,
    /// The hard prompt.
    pub method: Method,
    /// The respondents.
    pub panel: Vec<Respondent>,
    /// Both option orders.
    pub counterbalance: bool,
    /// The evaluation settings.
    pub settings: EvalSettings,
    /// Every item's answer.
    pub items: Vec<ItemReport>,
    /// Constants of the index formulas.
    pub constants: Constants,
    /// The indices.
    pub indices: DimScores,
    /// The loss against the region's scores (absent when no dimension has both).
    pub loss: Option<Loss>,
    /// For a model that carries a tuned prompt as tokens: the largest probability of any of
    /// those tokens at any answer position (they should never be the answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carried_token_max_prob: Option<f64>,
    /// Tokens decoded.
    pub tokens_decoded: usize,
    /// Seconds of evaluation.
    pub seconds: f64,
}

impl SurveyAsk<'_> {
    /// Checks what needs no model: the panel size, and (`soft_prompt`: one is given) the
    /// naive persona beside a soft prompt.
    pub fn check(&self, soft_prompt: bool) -> Result<(), TuneError> {
        if self.panel == 0 || self.panel > prompt::MAX_PANEL {
            return Err(TuneError::Invalid(format!(
                "--panel must be 1..={}, got {}",
                prompt::MAX_PANEL,
                self.panel
            )));
        }
        if soft_prompt && self.method != Method::Naive {
            return Err(TuneError::Invalid(
                "--soft-prompt is answered beside the naive persona, as it was tuned (its rows replace the persona sentence, or open the answer): leave out --method icl".into(),
            ));
        }
        Ok(())
    }

    /// The hard prompt's item prompts (the persona block split out), as `--dump-prompts`
    /// writes them; a soft prompt's rows take the place of the block.
    pub fn prompts(&self, model: &Model) -> Result<SurveyPrompts, TuneError> {
        let block = prompt::persona_block(self.method, self.region);
        let panel = prompt::panel(self.panel);
        Ok(SurveyPrompts::build(
            model,
            self.survey,
            &block,
            &panel,
            self.counterbalance,
        )?)
    }

    /// Evaluates the survey (`prompts` from [`SurveyAsk::prompts`]), with the hard prompt or
    /// `soft_prompt`, and scores it.
    pub fn run(
        &self,
        model: &Model,
        settings: EvalSettings,
        prompts: &SurveyPrompts,
        soft_prompt: Option<SoftPrompt<'_>>,
    ) -> Result<SurveyReport, TuneError> {
        self.check(soft_prompt.is_some())?;
        let mut ev = Evaluator::new(model, settings)?;
        let panel = prompt::panel(self.panel);
        let answers = match soft_prompt {
            None => ev.evaluate(prompts, PersonaInput::Text)?,
            Some((rows, card)) => {
                // As it was tuned: in the placement its card names, beside the naive persona.
                let placement = PromptPlacement::from_card(card)
                    .map_err(|e| TuneError::Invalid(format!("culturetune.json: {e}")))?;
                let placed = placement.survey_prompts(
                    model,
                    self.survey,
                    self.region,
                    &panel,
                    self.counterbalance,
                )?;
                placed.evaluate(&mut ev, &[rows], 1)?.remove(0)
            }
        };
        self.report(model, &ev, answers)
    }

    /// The item prompts with the tuned prompt `model` carries as tokens (`crate::carried`).
    pub fn carried_prompts(
        &self,
        model: &Model,
        carried: &Carried,
    ) -> Result<SurveyPrompts, TuneError> {
        let panel = prompt::panel(self.panel);
        Ok(crate::carried::survey_prompts(
            carried,
            model,
            self.survey,
            &panel,
            self.counterbalance,
        )?)
    }

    /// Evaluates the survey with the tuned prompt `model` carries (`prompts` from
    /// [`SurveyAsk::carried_prompts`]) as plain tokens, no embedding input, watching the
    /// carried tokens' probability at every answer position.
    pub fn run_carried(
        &self,
        model: &Model,
        settings: EvalSettings,
        prompts: &SurveyPrompts,
        carried: &Carried,
    ) -> Result<SurveyReport, TuneError> {
        self.check(true)?;
        let mut ev = Evaluator::new(model, settings)?;
        ev.watch_tokens(carried.id_range());
        let answers = ev.evaluate(prompts, PersonaInput::Text)?;
        self.report(model, &ev, answers)
    }

    fn report(
        &self,
        model: &Model,
        ev: &Evaluator<'_>,
        answers: SurveyAnswers,
    ) -> Result<SurveyReport, TuneError> {
        let panel = prompt::panel(self.panel);
        let scores = indices(self.survey, &answers.item_means(), &self.constants)?;
        Ok(SurveyReport {
            carried_token_max_prob: ev.watched_max_prob(),
            model: model.info().clone(),
            survey: self.survey.id.clone(),
            region: self.region.clone(),
            method: self.method,
            panel,
            counterbalance: self.counterbalance,
            settings: ev.settings(),
            items: item_reports(self.survey, &answers),
            constants: self.constants.clone(),
            loss: Loss::between(&scores, &self.region.scores),
            indices: scores,
            tokens_decoded: answers.tokens_decoded,
            seconds: answers.elapsed.as_secs_f64(),
        })
    }
}

fn item_reports(survey: &Survey, answers: &SurveyAnswers) -> Vec<ItemReport> {
    survey
        .items
        .iter()
        .zip(&answers.items)
        .map(|(i, a)| ItemReport {
            id: i.id.clone(),
            expected: a.expected,
            digit_mass: a.digit_mass,
            probs: a.probs.clone(),
        })
        .collect()
}

/// One rendered prompt as `--dump-prompts` writes it (a JSON line).
#[derive(Debug, Clone, Serialize)]
pub struct PromptDump<'a> {
    /// The item's index.
    pub item: usize,
    /// The respondent's index.
    pub respondent: usize,
    /// Options in reverse order.
    pub reversed: bool,
    /// The rendered text.
    pub text: &'a str,
    /// Tokens in all.
    pub tokens: usize,
    /// Tokens before the persona block.
    pub head_tokens: usize,
    /// Tokens of the persona block.
    pub persona_tokens: usize,
    /// Tokens after it.
    pub tail_tokens: usize,
    /// Every token id.
    pub token_ids: Vec<i32>,
}

/// Every prompt of `prompts`, in order.
pub fn prompt_dumps(prompts: &SurveyPrompts) -> Vec<PromptDump<'_>> {
    let (head, persona) = (&prompts.head, &prompts.persona_tokens);
    prompts
        .leaves
        .iter()
        .enumerate()
        .map(|(k, leaf)| {
            let tail = &prompts.tails[k];
            PromptDump {
                item: leaf.item,
                respondent: leaf.respondent,
                reversed: leaf.reversed,
                text: &prompts.texts[k],
                tokens: head.len() + persona.len() + tail.len(),
                head_tokens: head.len(),
                persona_tokens: persona.len(),
                tail_tokens: tail.len(),
                token_ids: head.iter().chain(persona).chain(tail).copied().collect(),
            }
        })
        .collect()
}
