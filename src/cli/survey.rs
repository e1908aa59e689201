//! `culturetune survey`: let the model answer the survey as a region's persona and score it.

use super::engine_args::EngineArgs;
use super::format::{cell, dim_header, dim_row};
use crate::engine::evaluate::{Evaluator, PersonaInput, SurveyPrompts};
use crate::prompt::{self, Method};
use crate::regions::RegionTable;
use crate::scoring::{indices, Loss};
use crate::survey::Survey;
use crate::tuning::placed::PromptPlacement;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `culturetune survey`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Region (code or name) the persona comes from and whose scores are the target.
    #[arg(long, value_name = "CODE")]
    region: String,
    /// Prompting method: `naive` (persona only) or `icl` (persona + the region's profile).
    #[arg(long, value_enum, default_value = "naive")]
    method: Method,
    /// Survey definition: a built-in id (vsm13, vsm13-alt, vsm13-c, vsm13-ac) or a survey TOML
    /// file.
    #[arg(long, default_value = "vsm13", value_name = "ID|FILE")]
    survey: String,
    /// Respondents in the panel (1 = one neutral persona; up to 6 vary gender and age).
    #[arg(long, default_value_t = 1)]
    panel: usize,
    /// Also ask every item with the options in reverse order and average (cancels a bias
    /// toward the first or smallest number; doubles the cost).
    #[arg(long)]
    counterbalance: bool,
    /// Index constants: `zero`, `survey`, or given values such as `PDI=20,IDV=10`.
    #[arg(long, default_value = "zero", value_name = "POLICY")]
    constants: String,
    /// Use an exported soft prompt (a directory written by `culturetune export`): in place of
    /// the persona block, or at the answer side, as its card says.
    #[arg(long, value_name = "DIR")]
    soft_prompt: Option<PathBuf>,
    /// Write every rendered prompt (exact text, token counts and token ids) as JSON lines to
    /// this file.
    #[arg(long, value_name = "FILE")]
    dump_prompts: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the survey on the model.
pub fn run(args: &Args, table: &RegionTable, out: &mut dyn Write) -> Result<()> {
    if args.panel == 0 || args.panel > prompt::MAX_PANEL {
        bail!(
            "--panel must be 1..={}, got {}",
            prompt::MAX_PANEL,
            args.panel
        );
    }
    if args.soft_prompt.is_some() && args.method != Method::Naive {
        bail!("--soft-prompt is answered beside the naive persona, as it was tuned (its rows replace the persona sentence, or open the answer): leave out --method icl");
    }
    if let Some(path) = &args.dump_prompts {
        // Before the work: a target that must not be replaced is refused at once.
        crate::atomic_file::check_replaceable(path)
            .with_context(|| format!("--dump-prompts {}", path.display()))?;
    }
    let survey = Survey::from_id_or_path(&args.survey).context("loading the survey")?;
    let constants = super::constants::parse(&args.constants, &survey)?;
    let region = table.find(&args.region)?;
    let model = args.engine.load()?;
    let block = prompt::persona_block(args.method, region);
    let panel = prompt::panel(args.panel);
    let prompts = SurveyPrompts::build(&model, &survey, &block, &panel, args.counterbalance)?;
    if let Some(path) = &args.dump_prompts {
        dump_prompts(path, &prompts)?;
    }
    let soft = args
        .soft_prompt
        .as_deref()
        .map(|dir| crate::export::import(dir, Some(model.info().n_embd)))
        .transpose()?;
    let mut ev = Evaluator::new(&model, args.engine.settings())?;
    let answers = match &soft {
        None => ev.evaluate(&prompts, PersonaInput::Text)?,
        Some(sp) => {
            // As it was tuned: in the placement its card names, beside the naive persona.
            let dir = args.soft_prompt.as_deref().unwrap_or(Path::new(""));
            let placement = PromptPlacement::from_card(&sp.card)
                .map_err(|e| anyhow!("{}: culturetune.json: {e}", dir.display()))?;
            let placed =
                placement.survey_prompts(&model, &survey, region, &panel, args.counterbalance)?;
            placed.evaluate(&mut ev, &[&sp.rows], 1)?.remove(0)
        }
    };
    let scores = indices(&survey, &answers.item_means(), &constants)?;
    let loss = Loss::between(&scores, &region.scores);

    if args.json {
        let items = item_json(&survey, &answers);
        let report = json!({
            "model": model.info(), "survey": survey.id, "region": region, "method": args.method,
            "panel": panel, "counterbalance": args.counterbalance, "settings": ev.settings(),
            "items": items, "constants": constants, "indices": scores, "loss": loss,
            "tokens_decoded": answers.tokens_decoded, "seconds": answers.elapsed.as_secs_f64(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let who = match &args.soft_prompt {
        Some(d) => format!("the soft prompt in {}", d.display()),
        None => format!("{block:?}"),
    };
    let order = if args.counterbalance {
        ", counterbalanced"
    } else {
        ""
    };
    let (method, n) = (args.method, panel.len());
    writeln!(
        out,
        "survey {} as {who}, method {method:?}, panel {n}{order}",
        survey.id
    )?;
    print_answers(
        out,
        &survey,
        &answers,
        &constants,
        &scores,
        region,
        loss.as_ref(),
    )
}

/// Each item's answer as JSON: id, expected answer, digit mass, distribution.
fn item_json(
    survey: &Survey,
    answers: &crate::engine::evaluate::SurveyAnswers,
) -> Vec<serde_json::Value> {
    survey
        .items
        .iter()
        .zip(&answers.items)
        .map(|(i, a)| json!({"id": i.id, "expected": a.expected, "digit_mass": a.digit_mass, "probs": a.probs}))
        .collect()
}

/// The text form of `survey`'s results: every item's answer distribution, the indices next
/// to the region's, the loss, and the work done.
fn print_answers(
    out: &mut dyn Write,
    survey: &Survey,
    answers: &crate::engine::evaluate::SurveyAnswers,
    constants: &crate::scoring::Constants,
    scores: &crate::dimension::DimScores,
    region: &crate::regions::Region,
    loss: Option<&Loss>,
) -> Result<()> {
    writeln!(out)?;
    writeln!(out, "{:<6}{:>9}{:>7}   P(1..5)", "item", "expected", "mass")?;
    for (i, a) in survey.items.iter().zip(&answers.items) {
        let probs: Vec<String> = a.probs.iter().map(|p| format!("{p:.2}")).collect();
        writeln!(
            out,
            "{:<6}{:>9.2}{:>7.2}   {}",
            i.id,
            a.expected,
            a.digit_mass,
            probs.join(" ")
        )?;
    }
    writeln!(out)?;
    writeln!(out, "constants: {}", constants.describe())?;
    writeln!(out, "{:<10}{}", "", dim_header(8))?;
    writeln!(out, "{:<10}{}", "model", dim_row(scores, 8))?;
    writeln!(out, "{:<10}{}", region.code, dim_row(&region.scores, 8))?;
    if let Some(l) = loss {
        writeln!(out, "{:<10}{}", "error", dim_row(&l.errors, 8))?;
        writeln!(out)?;
        writeln!(
            out,
            "loss vs {} ({}): L1 = {} over {} of 6 dimensions (mean {})",
            region.code,
            region.name,
            cell(Some(l.l1)),
            l.dims_used,
            cell(Some(l.mean))
        )?;
    }
    writeln!(
        out,
        "{} tokens decoded in {:.2} s",
        answers.tokens_decoded,
        answers.elapsed.as_secs_f64()
    )?;
    Ok(())
}

fn dump_prompts(path: &Path, prompts: &SurveyPrompts) -> Result<()> {
    let mut text = String::new();
    for (k, leaf) in prompts.leaves.iter().enumerate() {
        let line = json!({
            "item": leaf.item, "respondent": leaf.respondent, "reversed": leaf.reversed,
            "text": prompts.texts[k],
            "tokens": prompts.head.len() + prompts.persona_tokens.len() + prompts.tails[k].len(),
            "head_tokens": prompts.head.len(), "persona_tokens": prompts.persona_tokens.len(),
            "tail_tokens": prompts.tails[k].len(),
            "token_ids": prompts.head.iter().chain(&prompts.persona_tokens).chain(&prompts.tails[k]).collect::<Vec<_>>(),
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    crate::atomic_file::write(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
