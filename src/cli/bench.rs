//! `culturetune bench`: our survey throughput against llama.cpp's raw prompt processing, in one
//! process, with the same model and threads.

use super::engine_args::EngineArgs;
use crate::engine::answer::AnswerPrompts;
use crate::engine::evaluate::{EvalSettings, Evaluator, KvLayout, PersonaInput, SurveyPrompts};
use crate::engine::EmbeddingTable;
use crate::prompt;
use crate::regions::RegionTable;
use crate::soft_prompt::AnswerAnchor;
use crate::survey::Survey;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::Write;
use std::time::Duration;

/// Options of `culturetune bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    engine: EngineArgs,
    /// Region whose naive persona is used (its rows become the soft prompt).
    #[arg(long, default_value = "USA", value_name = "CODE")]
    region: String,
    /// Respondents in the panel.
    #[arg(long, default_value_t = 1)]
    panel: usize,
    /// Ask every item in both option orders.
    #[arg(long)]
    counterbalance: bool,
    /// Repetitions of each measurement; the fastest is reported (the least disturbed by other
    /// work on the machine).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Largest group of candidates per decode to measure (1, 2, 4, ... up to this).
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_group: usize,
    /// What the answer placement's rows stand for (as for `tune`).
    #[arg(long, value_enum, default_value = "opening")]
    anchor: AnswerAnchor,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn fastest(v: Vec<Duration>) -> Duration {
    v.into_iter().min().unwrap_or_default()
}

/// Runs the benchmark.
pub fn run(args: &Args, table: &RegionTable, out: &mut dyn Write) -> Result<()> {
    if args.reps == 0 || args.panel == 0 || args.panel > prompt::MAX_PANEL {
        bail!(
            "--reps must be at least 1 and --panel 1..={}",
            prompt::MAX_PANEL
        );
    }
    let region = table.find(&args.region)?;
    let survey = Survey::builtin("vsm13")?;
    let model = args.engine.load()?;
    let settings = args.engine.settings();
    let prompts = SurveyPrompts::build(
        &model,
        &survey,
        &prompt::persona(region),
        &prompt::panel(args.panel),
        args.counterbalance,
    )?;
    let table_e = EmbeddingTable::load(&model)?;
    let soft = table_e.rows(&prompts.persona_tokens)?;
    let mut ev = Evaluator::new(&model, settings)?;

    // (a) raw prompt processing: 512 real prompt tokens in one batch of one sequence.
    let raw_tokens = raw_tokens(&prompts)?;
    let raw = time_raw(&mut ev, &raw_tokens, args.reps)?;

    // (b) one survey evaluation through the soft-prompt (embedding) path.
    let sv = time_survey(&mut ev, &prompts, &soft, args.reps)?;
    let (survey_time, decoded, all_decoded) = (sv.seconds, sv.tail_decoded, sv.decoded);
    let (minimum, one_at_a_time) = (sv.minimum, sv.one_at_a_time);
    let survey_tps = all_decoded as f64 / survey_time.as_secs_f64();

    // (d) the answer-side placement, (e) candidates per decode.
    let ans = time_answer(
        &mut ev,
        &model,
        &survey,
        region,
        args,
        &table_e,
        &raw_tokens,
    )?;
    // The fastest raw batch of all: the one before the survey and those beside the candidates.
    let raw = raw.min(ans.raw_alongside);
    let raw_tps = 512.0 / raw.as_secs_f64();
    let (answer_tokens, answer_s, prefix_cells) = (ans.tokens, ans.seconds, ans.prefix_cells);
    let (groups, best_group) = (&ans.groups, ans.best);
    let report = json!({
        "model": model.info().description, "settings": settings, "panel": args.panel,
        "gpu_layers": model.info().gpu_layers, "devices": crate::engine::offload::devices(),
        "counterbalance": args.counterbalance, "prompts": prompts.leaves.len(), "reps": args.reps,
        "raw_pp512_seconds": raw.as_secs_f64(), "raw_tokens_per_second": raw_tps,
        "survey_seconds": survey_time.as_secs_f64(), "survey_tokens_decoded": all_decoded,
        "tail_tokens_decoded": decoded, "tail_tokens_minimum": minimum,
        "one_prompt_at_a_time_tokens": one_at_a_time, "survey_tokens_per_second": survey_tps,
        "decoded_over_minimum": decoded as f64 / minimum as f64,
        "survey_over_raw_throughput": survey_tps / raw_tps,
        "prefix_candidate_seconds": survey_time.as_secs_f64(), "prefix_candidate_tokens": all_decoded,
        "prefix_k": prompts.persona_tokens.len(),
        "answer_k": ans.k, "answer_anchor": args.anchor, "answer_prefix_cells": prefix_cells,
        "answer_first_call_seconds": ans.first_call_seconds,
        "answer_candidate_tokens": answer_tokens, "answer_candidate_seconds": answer_s,
        "answer_over_prefix_tokens": answer_tokens as f64 / all_decoded as f64,
        "answer_speedup_per_candidate": survey_time.as_secs_f64() / answer_s,
        "answer_tokens_per_second": answer_tokens as f64 / answer_s,
        "candidates_per_decode": groups.iter().map(|(g, t)| json!({"candidates": g, "seconds_per_candidate": t})).collect::<Vec<_>>(),
        "best_candidates_per_decode": best_group.0,
        "answer_kv_layout": settings.kv_layout,
        "answer_over_raw_throughput": answer_tokens as f64 / answer_s / raw_tps,
        "answer_short_prefix_seconds": ans.short_seconds,
        "answer_attention_share": 1.0 - ans.short_seconds / answer_s,
        "answer_other_kv_layout": ans.other.0, "answer_other_kv_layout_seconds": ans.other.1,
    });
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    print_report(out, &report)
}

/// What `bench` measured of one survey through the prefix placement's embedding path.
struct SurveyTimes {
    /// The fastest evaluation.
    seconds: Duration,
    /// Tokens decoded after the soft prompt.
    tail_decoded: usize,
    /// Tokens decoded in all.
    decoded: usize,
    /// Distinct tokens after the soft prompt: the least any evaluation decodes.
    minimum: usize,
    /// Tokens a one-prompt-at-a-time evaluation would decode.
    one_at_a_time: usize,
}

/// Times `reps` survey evaluations with the soft prompt `soft` in the persona's place.
fn time_survey(
    ev: &mut Evaluator<'_>,
    prompts: &SurveyPrompts,
    soft: &[f32],
    reps: usize,
) -> Result<SurveyTimes> {
    let runs = (0..reps)
        .map(|_| ev.evaluate(prompts, PersonaInput::Embeddings(soft)))
        .collect::<Result<Vec<_>, _>>()
        .context("survey evaluation")?;
    Ok(SurveyTimes {
        seconds: fastest(runs.iter().map(|r| r.elapsed).collect()),
        tail_decoded: runs[0].tail_tokens_decoded,
        decoded: runs[0].tokens_decoded,
        minimum: prompts.unique_tail_tokens(),
        one_at_a_time: prompts
            .tails
            .iter()
            .map(|t| t.len() + prompts.head.len() + prompts.persona_tokens.len())
            .sum(),
    })
}

/// 512 of the survey's own prompt tokens, the batch llama.cpp's raw speed is measured on.
fn raw_tokens(prompts: &SurveyPrompts) -> Result<Vec<i32>> {
    let raw_tokens: Vec<i32> = prompts.tails.iter().flatten().copied().take(512).collect();
    if raw_tokens.len() < 512 {
        bail!(
            "the prompts have only {} tokens; cannot build a 512-token batch",
            raw_tokens.len()
        );
    }
    Ok(raw_tokens)
}

/// The fastest of `reps` of llama.cpp's raw prompt processing: the tokens in one batch of one
/// sequence.
fn time_raw(ev: &mut Evaluator<'_>, tokens: &[i32], reps: usize) -> Result<Duration> {
    let times = (0..reps)
        .map(|_| ev.time_raw_batch(tokens))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fastest(times))
}

/// What `bench` measured of the answer placement.
struct AnswerTimes {
    /// Soft-prompt rows (the anchor's tokens).
    k: usize,
    /// Seconds of the first call, which decodes the item prefixes.
    first_call_seconds: f64,
    /// Prefix cells decoded once.
    prefix_cells: usize,
    /// Tokens decoded per candidate.
    tokens: usize,
    /// Seconds per candidate, one per decode.
    seconds: f64,
    /// (candidates per decode, seconds per candidate).
    groups: Vec<(usize, f64)>,
    /// The fastest of `groups`.
    best: (usize, f64),
    /// Seconds per candidate on prefixes cut to one token (one per decode).
    short_seconds: f64,
    /// The other KV layout and its seconds per candidate (one per decode).
    other: (KvLayout, f64),
    /// llama.cpp's raw 512-token batch, timed in turns with the candidates.
    raw_alongside: Duration,
}

/// Times the answer placement: prefixes cached once (the first call, timed apart), then each
/// candidate's rows and answer openings, with 1, 2, 4, 8 and 16 candidates per decode; then
/// [`side_by_side`].
fn time_answer<'m>(
    ev: &mut Evaluator<'m>,
    model: &'m crate::engine::Model,
    survey: &Survey,
    region: &crate::regions::Region,
    args: &Args,
    table_e: &EmbeddingTable,
    raw_tokens: &[i32],
) -> Result<AnswerTimes> {
    let (anchor, opening) = prompt::answer_parts(args.anchor, region);
    let answer = AnswerPrompts::build(
        model,
        survey,
        &prompt::persona(region),
        &anchor,
        &opening,
        &prompt::panel(args.panel),
        args.counterbalance,
    )?;
    let anchor_rows = table_e.rows(&answer.anchor_tokens)?;
    let first = ev.evaluate_answer(&answer, &[&anchor_rows])?.remove(0);
    let mut groups = Vec::new();
    for g in [1usize, 2, 4, 8, 16] {
        if g > answer.max_group() || (g > 1 && g > args.max_group) {
            continue;
        }
        let t = time_candidates(ev, &answer, &anchor_rows, g, args.reps)
            .with_context(|| format!("answer-side evaluation, {g} candidates per decode"))?;
        groups.push((g, t));
    }
    let best = groups
        .iter()
        .copied()
        .fold(groups[0], |b, x| if x.1 < b.1 { x } else { b });
    let side = side_by_side(ev, model, &answer, &anchor_rows, raw_tokens, args.reps)?;
    Ok(AnswerTimes {
        k: answer.anchor_tokens.len(),
        first_call_seconds: first.elapsed.as_secs_f64(),
        prefix_cells: answer.unique_prefix_tokens(),
        tokens: answer.tokens_per_candidate(answer.anchor_tokens.len()),
        seconds: groups[0].1.min(side.full),
        groups,
        best,
        short_seconds: side.short,
        other: (side.other_layout, side.other),
        raw_alongside: side.raw,
    })
}

/// Timings taken in turns, one of each per repetition, so that a slow spell of the machine
/// touches them all alike.
struct SideBySide {
    /// Seconds per candidate, one per decode.
    full: f64,
    /// The same on prefixes cut to their first token.
    short: f64,
    /// The other KV layout.
    other_layout: KvLayout,
    /// Seconds per candidate in the other layout.
    other: f64,
    /// llama.cpp's raw processing of the 512 tokens.
    raw: Duration,
}

/// One candidate per decode, in turns: on the real prefixes, on prefixes cut to one token (the
/// same rows and openings with almost nothing to attend to: what attending over the prefixes
/// costs), in the other KV layout, and llama.cpp's raw 512-token batch, each the fastest of
/// `reps`.
fn side_by_side<'m>(
    ev: &mut Evaluator<'m>,
    model: &'m crate::engine::Model,
    answer: &AnswerPrompts,
    rows: &[f32],
    raw_tokens: &[i32],
    reps: usize,
) -> Result<SideBySide> {
    let mut short = answer.clone();
    short.prefixes.iter_mut().for_each(|p| p.truncate(1));
    let other_layout = match ev.settings().kv_layout {
        KvLayout::Streams => KvLayout::Unified,
        KvLayout::Unified => KvLayout::Streams,
    };
    let mut ev_short = Evaluator::new(model, ev.settings())?;
    let other_settings = EvalSettings {
        kv_layout: other_layout,
        ..ev.settings()
    };
    let mut ev_other = Evaluator::new(model, other_settings)?;
    let (mut full, mut shorts, mut others, mut raws) = (vec![], vec![], vec![], vec![]);
    for rep in 0..=reps {
        // The raw batch clears the main context, which the streams layout does not use.
        let raw_ev = match other_layout {
            KvLayout::Unified => &mut *ev,
            KvLayout::Streams => &mut ev_other,
        };
        let raw = raw_ev.time_raw_batch(raw_tokens)?;
        let t = (
            time_once(ev, answer, &[rows])?,
            time_once(&mut ev_short, &short, &[rows])
                .context("answer-side evaluation on 1-token prefixes")?,
            time_once(&mut ev_other, answer, &[rows])
                .context("answer-side evaluation in the other KV layout")?,
        );
        // The first round decodes the prefixes of each evaluator; it is not timed.
        if rep > 0 {
            raws.push(raw);
            full.push(t.0);
            shorts.push(t.1);
            others.push(t.2);
        }
    }
    let min = |v: Vec<f64>| v.into_iter().fold(f64::INFINITY, f64::min);
    Ok(SideBySide {
        full: min(full),
        short: min(shorts),
        other_layout,
        other: min(others),
        raw: fastest(raws),
    })
}

/// Seconds per candidate with `g` copies of `rows` per decode, the fastest of `reps` (the
/// prefixes decoded before the timing).
fn time_candidates(
    ev: &mut Evaluator<'_>,
    answer: &AnswerPrompts,
    rows: &[f32],
    g: usize,
    reps: usize,
) -> Result<f64> {
    let cands: Vec<&[f32]> = vec![rows; g];
    ev.evaluate_answer(answer, &cands)?;
    let times = (0..reps)
        .map(|_| time_once(ev, answer, &cands))
        .collect::<Result<Vec<_>>>()?;
    Ok(times.into_iter().fold(f64::INFINITY, f64::min))
}

/// Seconds per candidate of one evaluation of `cands`.
fn time_once(ev: &mut Evaluator<'_>, answer: &AnswerPrompts, cands: &[&[f32]]) -> Result<f64> {
    let start = std::time::Instant::now();
    ev.evaluate_answer(answer, cands)?;
    Ok(start.elapsed().as_secs_f64() / cands.len() as f64)
}

/// The text form of a bench report (the figures of `--json`, in words).
fn print_report(out: &mut dyn Write, r: &serde_json::Value) -> Result<()> {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let st = &r["settings"];
    writeln!(
        out,
        "settings: {} threads, n_ubatch {}, n_batch {}, flash attention {}, n_ctx {}",
        st["threads"],
        st["n_ubatch"],
        st["n_batch"],
        if st["flash_attn"].as_bool() == Some(true) {
            "on"
        } else {
            "off"
        },
        st["n_ctx"]
    )?;
    writeln!(
        out,
        "(a) raw prompt processing, 512 tokens: {:.3} s = {:.0} tok/s (fastest of {})",
        f("raw_pp512_seconds"),
        f("raw_tokens_per_second"),
        n("reps")
    )?;
    writeln!(
        out,
        "(b) survey, {} prompts: {} tokens decoded ({} after the soft prompt; minimum {}; one prompt at a time would be {}) in {:.3} s = {:.0} tok/s",
        n("prompts"),
        n("survey_tokens_decoded"),
        n("tail_tokens_decoded"),
        n("tail_tokens_minimum"),
        n("one_prompt_at_a_time_tokens"),
        f("survey_seconds"),
        f("survey_tokens_per_second")
    )?;
    writeln!(
        out,
        "(c) decoded/minimum = {:.3} (goal <= 1.05); survey/raw throughput = {:.2} (goal >= 0.8)",
        f("decoded_over_minimum"),
        f("survey_over_raw_throughput")
    )?;
    print_answer_lines(out, r)
}

/// Lines (d) and (e) of the text report: the two placements per candidate, and candidates per
/// decode.
fn print_answer_lines(out: &mut dyn Write, r: &serde_json::Value) -> Result<()> {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    writeln!(
        out,
        "(d) per candidate: prefix placement (k {}) {} tokens in {:.3} s; answer placement (k {}, {} anchor) {} tokens in {:.3} s, after {} prefix cells decoded once in {:.3} s",
        n("prefix_k"),
        n("prefix_candidate_tokens"),
        f("prefix_candidate_seconds"),
        n("answer_k"),
        r["answer_anchor"].as_str().unwrap_or("?"),
        n("answer_candidate_tokens"),
        f("answer_candidate_seconds"),
        n("answer_prefix_cells"),
        f("answer_first_call_seconds")
    )?;
    writeln!(
        out,
        "    answer/prefix tokens = {:.3} (goal <= 0.25); speed-up per candidate = {:.1}x (goal >= 3); {:.0} tok/s = {:.2} of raw",
        f("answer_over_prefix_tokens"),
        f("answer_speedup_per_candidate"),
        f("answer_tokens_per_second"),
        f("answer_tokens_per_second") / f("raw_tokens_per_second")
    )?;
    let per: Vec<String> = r["candidates_per_decode"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|g| {
            format!(
                "{}: {:.3} s",
                g["candidates"],
                g["seconds_per_candidate"].as_f64().unwrap_or(f64::NAN)
            )
        })
        .collect();
    writeln!(
        out,
        "(e) candidates per decode, seconds per candidate: {} (fastest: {})",
        per.join(", "),
        r["best_candidates_per_decode"]
    )?;
    let layout = |k: &str| r[k].as_str().unwrap_or("?").to_string();
    writeln!(
        out,
        "(f) KV layout {}: {:.3} s per candidate; {}: {:.3} s ({:.2}x)",
        layout("answer_kv_layout"),
        f("answer_candidate_seconds"),
        layout("answer_other_kv_layout"),
        f("answer_other_kv_layout_seconds"),
        f("answer_other_kv_layout_seconds") / f("answer_candidate_seconds")
    )?;
    writeln!(
        out,
        "(g) attention over the item prefixes: {:.0} % of a candidate ({:.3} s; {:.3} s on 1-token prefixes)",
        100.0 * f("answer_attention_share"),
        f("answer_candidate_seconds"),
        f("answer_short_prefix_seconds")
    )?;
    Ok(())
}
