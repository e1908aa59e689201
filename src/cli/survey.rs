//! `culturetune survey`: let the model answer the survey as a region's persona and score it.

use super::engine_args::EngineArgs;
use super::format::{cell, dim_header, dim_row};
use crate::engine::evaluate::SurveyPrompts;
use crate::prompt::Method;
use crate::regions::RegionTable;
use crate::scoring::Constants;
use crate::survey::Survey;
use crate::tuning::survey_run::{prompt_dumps, SurveyAsk, SurveyReport};
use anyhow::{Context, Result};
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
    /// For a model file that carries a tuned prompt (`export --gguf`): ask with the hard
    /// prompt (--method) instead of the carried one.
    #[arg(long)]
    plain: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the survey on the model.
pub fn run(args: &Args, table: &RegionTable, out: &mut dyn Write) -> Result<()> {
    if let Some(path) = &args.dump_prompts {
        // Before the work: a target that must not be replaced is refused at once.
        crate::atomic_file::check_replaceable(path)
            .with_context(|| format!("--dump-prompts {}", path.display()))?;
    }
    let survey = Survey::from_id_or_path(&args.survey).context("loading the survey")?;
    let ask = SurveyAsk {
        survey: &survey,
        region: table.find(&args.region)?,
        method: args.method,
        panel: args.panel,
        counterbalance: args.counterbalance,
        constants: Constants::parse(&args.constants, &survey)?,
    };
    let carried = match args.plain || args.soft_prompt.is_some() {
        true => None,
        false => crate::carried::detect(&args.engine.model_path())?,
    };
    if let Some(c) = &carried {
        return run_carried(args, &ask, c, out);
    }
    ask.check(args.soft_prompt.is_some())?;
    let model = super::engine_args::load(&args.engine)?;
    let soft = args
        .soft_prompt
        .as_deref()
        .map(|dir| crate::export::import(dir, Some(model.info().n_embd)))
        .transpose()?;
    let soft = soft.as_ref().map(|sp| (sp.rows.as_slice(), &sp.card));
    let prompts = ask.prompts(&model)?;
    if let Some(path) = &args.dump_prompts {
        dump_prompts(path, &prompts)?;
    }
    let report = ask.run(&model, args.engine.settings(), &prompts, soft)?;
    if super::format::json(out, args.json, &report)? {
        return Ok(());
    }
    let who = match &args.soft_prompt {
        Some(d) => format!("the soft prompt in {}", d.display()),
        None => format!("{:?}", prompts.persona_text),
    };
    let order = if args.counterbalance {
        ", counterbalanced"
    } else {
        ""
    };
    writeln!(
        out,
        "survey {} as {who}, method {:?}, panel {}{order}",
        survey.id,
        args.method,
        report.panel.len()
    )?;
    print_answers(out, &report)
}

/// `survey` on a model file that carries a tuned prompt: its tokens as plain text, the model
/// loaded as exported.
fn run_carried(
    args: &Args,
    ask: &SurveyAsk<'_>,
    carried: &crate::carried::Carried,
    out: &mut dyn Write,
) -> Result<()> {
    ask.check(true)?;
    let tuned_for = carried.card.get("region").and_then(|v| v.as_str());
    if tuned_for != Some(ask.region.code.as_str()) {
        eprintln!(
            "note: the carried prompt was tuned for {}; scoring it against {}",
            tuned_for.unwrap_or("?"),
            ask.region.code
        );
    }
    let model = args
        .engine
        .load_carried(&carried.base_template, &mut |line| eprintln!("{line}"))
        .context("loading the model")?;
    let prompts = ask.carried_prompts(&model, carried)?;
    if let Some(path) = &args.dump_prompts {
        dump_prompts(path, &prompts)?;
    }
    let report = ask.run_carried(&model, args.engine.settings(), &prompts, carried)?;
    if super::format::json(out, args.json, &report)? {
        return Ok(());
    }
    writeln!(
        out,
        "survey {} with the tuned prompt the model carries ({} tokens {}..), panel {}",
        ask.survey.id,
        carried.k(),
        carried.tokens[0],
        report.panel.len()
    )?;
    print_answers(out, &report)?;
    if let Some(p) = report.carried_token_max_prob {
        writeln!(
            out,
            "largest probability of a carried token at an answer: {p:.2e}"
        )?;
    }
    Ok(())
}

/// The text form of `survey`'s results: every item's answer distribution, the indices next
/// to the region's, the loss, and the work done.
fn print_answers(out: &mut dyn Write, r: &SurveyReport) -> Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "{:<6}{:>9}{:>7}   P(each code, lowest first)",
        "item", "expected", "mass"
    )?;
    for i in &r.items {
        let probs: Vec<String> = i.probs.iter().map(|p| format!("{p:.2}")).collect();
        writeln!(
            out,
            "{:<6}{:>9.2}{:>7.2}   {}",
            i.id,
            i.expected,
            i.digit_mass,
            probs.join(" ")
        )?;
    }
    let region = &r.region;
    writeln!(out)?;
    writeln!(out, "constants: {}", r.constants.describe())?;
    let dims = super::format::dims_of(&[&r.indices, &region.scores]);
    writeln!(out, "{:<10}{}", "", dim_header(&dims, 8))?;
    writeln!(out, "{:<10}{}", "model", dim_row(&r.indices, &dims, 8))?;
    writeln!(
        out,
        "{:<10}{}",
        region.code,
        dim_row(&region.scores, &dims, 8)
    )?;
    if let Some(l) = &r.loss {
        writeln!(out, "{:<10}{}", "error", dim_row(&l.errors, &dims, 8))?;
        writeln!(out)?;
        writeln!(
            out,
            "loss vs {} ({}): L1 = {} over {} of {} dimensions (mean {})",
            region.code,
            region.name,
            cell(Some(l.l1)),
            l.dims_used,
            r.indices.count(),
            cell(Some(l.mean))
        )?;
    }
    writeln!(
        out,
        "{} tokens decoded in {:.2} s",
        r.tokens_decoded, r.seconds
    )?;
    Ok(())
}

fn dump_prompts(path: &Path, prompts: &SurveyPrompts) -> Result<()> {
    let mut text = String::new();
    for line in prompt_dumps(prompts) {
        text.push_str(&serde_json::to_string(&line)?);
        text.push('\n');
    }
    crate::atomic_file::write(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
