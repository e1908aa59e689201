//! `culturetune bench`: the options and the text form of `culturetune::bench`'s report.

use super::engine_args::EngineArgs;
use crate::bench::{self, BenchOptions, BenchReport};
use crate::regions::RegionTable;
use crate::soft_prompt::AnswerAnchor;
use anyhow::Result;
use std::io::Write;

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
    /// Largest group of candidates per decode to measure (1, 2, 3, 4, 6, 8, 10, 12 up to
    /// this and what one decode's sequences allow).
    #[arg(long, default_value_t = 12, value_name = "N")]
    max_group: usize,
    /// What the answer placement's rows stand for (as for `tune`).
    #[arg(long, value_enum, default_value = "opening")]
    anchor: AnswerAnchor,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark.
pub fn run(args: &Args, table: &RegionTable, out: &mut dyn Write) -> Result<()> {
    let region = table.find(&args.region)?;
    let model = super::engine_args::load(&args.engine)?;
    let opts = BenchOptions {
        panel: args.panel,
        counterbalance: args.counterbalance,
        reps: args.reps,
        max_group: args.max_group,
        anchor: args.anchor,
    };
    let report = bench::run(&model, args.engine.settings(), region, &opts)?;
    if super::format::json(out, args.json, &report)? {
        return Ok(());
    }
    print_report(out, &report)
}

/// The text form of a bench report (the figures of `--json`, in words).
fn print_report(out: &mut dyn Write, r: &BenchReport) -> Result<()> {
    let st = &r.settings;
    writeln!(
        out,
        "settings: {} threads, n_ubatch {}, n_batch {}, flash attention {}, n_ctx {}",
        st.threads,
        st.n_ubatch,
        st.n_batch,
        if st.flash_attn { "on" } else { "off" },
        st.n_ctx
    )?;
    writeln!(
        out,
        "(a) raw prompt processing, 512 tokens: {:.3} s = {:.0} tok/s (fastest of {})",
        r.raw_pp512_seconds, r.raw_tokens_per_second, r.reps
    )?;
    writeln!(
        out,
        "(b) survey, {} prompts: {} tokens decoded ({} after the soft prompt; minimum {}; one prompt at a time would be {}) in {:.3} s = {:.0} tok/s",
        r.prompts,
        r.survey_tokens_decoded,
        r.tail_tokens_decoded,
        r.tail_tokens_minimum,
        r.one_prompt_at_a_time_tokens,
        r.survey_seconds,
        r.survey_tokens_per_second
    )?;
    writeln!(
        out,
        "(c) decoded/minimum = {:.3} (goal <= 1.05); survey/raw throughput = {:.2} (goal >= 0.8)",
        r.decoded_over_minimum, r.survey_over_raw_throughput
    )?;
    print_answer_lines(out, r)
}

/// Lines (d) to (g) of the text report: the two placements per candidate, candidates per
/// decode, the other KV layout and the attention share.
fn print_answer_lines(out: &mut dyn Write, r: &BenchReport) -> Result<()> {
    writeln!(
        out,
        "(d) per candidate: prefix placement (k {}) {} tokens in {:.3} s; answer placement (k {}, {} anchor) {} tokens in {:.3} s, after {} prefix cells decoded once in {:.3} s",
        r.prefix_k,
        r.prefix_candidate_tokens,
        r.prefix_candidate_seconds,
        r.answer_k,
        r.answer_anchor.as_str(),
        r.answer_candidate_tokens,
        r.answer_candidate_seconds,
        r.answer_prefix_cells,
        r.answer_first_call_seconds
    )?;
    writeln!(
        out,
        "    answer/prefix tokens = {:.3} (goal <= 0.25); speed-up per candidate = {:.1}x (goal >= 3); {:.0} tok/s = {:.2} of raw",
        r.answer_over_prefix_tokens,
        r.answer_speedup_per_candidate,
        r.answer_tokens_per_second,
        r.answer_over_raw_throughput
    )?;
    let per: Vec<String> = r
        .candidates_per_decode
        .iter()
        .map(|g| format!("{}: {:.3} s", g.candidates, g.seconds_per_candidate))
        .collect();
    writeln!(
        out,
        "(e) candidates per decode, seconds per candidate: {} (fastest: {})",
        per.join(", "),
        r.best_candidates_per_decode
    )?;
    writeln!(
        out,
        "    at tune's default of {} per decode: {:.3} s per candidate, {:.0} tok/s = {:.2} of raw (goal >= 0.8)",
        r.default_candidates_per_decode,
        r.default_seconds_per_candidate,
        r.answer_candidate_tokens as f64 / r.default_seconds_per_candidate,
        r.default_over_raw_throughput
    )?;
    writeln!(
        out,
        "(f) KV layout {}: {:.3} s per candidate; {}: {:.3} s ({:.2}x)",
        r.answer_kv_layout.as_str(),
        r.answer_candidate_seconds,
        r.answer_other_kv_layout.as_str(),
        r.answer_other_kv_layout_seconds,
        r.answer_other_kv_layout_seconds / r.answer_candidate_seconds
    )?;
    writeln!(
        out,
        "(g) attention over the item prefixes: {:.0} % of a candidate ({:.3} s; {:.3} s on 1-token prefixes)",
        100.0 * r.answer_attention_share,
        r.answer_candidate_seconds,
        r.answer_short_prefix_seconds
    )?;
    Ok(())
}
