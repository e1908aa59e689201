//! The benchmark of `culturetune bench`: our survey throughput against llama.cpp's raw prompt
//! processing, in one process, with the same model and threads. (a) a raw 512-token batch,
//! (b) one survey through the prefix placement's embedding path, (d) one answer-placement
//! candidate, (e) candidates per decode, (f) the other KV layout, (g) the attention share
//! (one candidate on prefixes cut to one token). Every figure is the fastest of `reps`.

use crate::engine::answer::AnswerPrompts;
use crate::engine::evaluate::{EvalSettings, Evaluator, KvLayout, PersonaInput, SurveyPrompts};
use crate::engine::offload::Device;
use crate::engine::{EmbeddingTable, EngineError, Model};
use crate::prompt;
use crate::regions::Region;
use crate::soft_prompt::AnswerAnchor;
use crate::survey::Survey;
use crate::tuning::decode_group::{default_candidates_per_decode, GroupFacts};
use serde::Serialize;
use std::time::Duration;

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Respondents in the panel.
    pub panel: usize,
    /// Ask every item in both option orders.
    pub counterbalance: bool,
    /// Repetitions of each measurement; the fastest is reported.
    pub reps: usize,
    /// Largest group of candidates per decode to measure (of [`GROUP_SIZES`]).
    pub max_group: usize,
    /// What the answer placement's rows stand for.
    pub anchor: AnswerAnchor,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options or the prompts cannot make the measurement.
    #[error("{0}")]
    Setup(String),
    /// The engine failed in a step.
    #[error("{step}: {source}")]
    Step {
        /// The step.
        step: String,
        /// The engine's error.
        source: EngineError,
    },
    /// The engine failed.
    #[error("{0}")]
    Engine(#[from] EngineError),
}

impl BenchError {
    fn step(step: impl Into<String>) -> impl FnOnce(EngineError) -> BenchError {
        let step = step.into();
        move |source| BenchError::Step { step, source }
    }

    /// The stable code of this error.
    pub fn code(&self) -> crate::error_code::ErrorCode {
        match self {
            BenchError::Setup(_) => crate::error_code::ErrorCode::InvalidInput,
            BenchError::Step { source: e, .. } | BenchError::Engine(e) => e.code(),
        }
    }
}

/// One group size's time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GroupTime {
    /// Candidates per decode.
    pub candidates: usize,
    /// Seconds per candidate.
    pub seconds_per_candidate: f64,
}

/// What `bench` measured (the JSON of `bench --json`; docs/performance.md reads these keys).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// llama.cpp's description of the model.
    pub model: String,
    /// The evaluation settings.
    pub settings: EvalSettings,
    /// Respondents.
    pub panel: usize,
    /// Layers on the GPU.
    pub gpu_layers: i32,
    /// The devices llama.cpp sees.
    pub devices: Vec<Device>,
    /// Both option orders.
    pub counterbalance: bool,
    /// Prompts of the survey.
    pub prompts: usize,
    /// Repetitions of each figure.
    pub reps: usize,
    /// (a) seconds of the raw 512-token batch.
    pub raw_pp512_seconds: f64,
    /// (a) its tokens per second.
    pub raw_tokens_per_second: f64,
    /// (b) seconds of one survey (prefix placement).
    pub survey_seconds: f64,
    /// (b) tokens it decoded.
    pub survey_tokens_decoded: usize,
    /// (b) tokens decoded after the soft prompt.
    pub tail_tokens_decoded: usize,
    /// (b) distinct tokens after the soft prompt.
    pub tail_tokens_minimum: usize,
    /// (b) tokens a one-prompt-at-a-time evaluation would decode.
    pub one_prompt_at_a_time_tokens: usize,
    /// (b) tokens per second.
    pub survey_tokens_per_second: f64,
    /// (c) decoded over the minimum.
    pub decoded_over_minimum: f64,
    /// (c) survey over raw throughput.
    pub survey_over_raw_throughput: f64,
    /// (d) seconds per prefix-placement candidate.
    pub prefix_candidate_seconds: f64,
    /// (d) its tokens.
    pub prefix_candidate_tokens: usize,
    /// (d) its rows.
    pub prefix_k: usize,
    /// (d) the answer placement's rows.
    pub answer_k: usize,
    /// (d) its anchor.
    pub answer_anchor: AnswerAnchor,
    /// (d) prefix cells decoded once.
    pub answer_prefix_cells: usize,
    /// (d) seconds of the first call (the prefixes decoded).
    pub answer_first_call_seconds: f64,
    /// (d) tokens per answer-placement candidate.
    pub answer_candidate_tokens: usize,
    /// (d) seconds per answer-placement candidate.
    pub answer_candidate_seconds: f64,
    /// (d) answer over prefix tokens.
    pub answer_over_prefix_tokens: f64,
    /// (d) prefix over answer seconds.
    pub answer_speedup_per_candidate: f64,
    /// (d) answer-placement tokens per second.
    pub answer_tokens_per_second: f64,
    /// (e) seconds per candidate by group size.
    pub candidates_per_decode: Vec<GroupTime>,
    /// (e) the fastest group size.
    pub best_candidates_per_decode: usize,
    /// (e) the group size `tune` takes by default with this model, layers and layout.
    pub default_candidates_per_decode: usize,
    /// (e) seconds per candidate at that size.
    pub default_seconds_per_candidate: f64,
    /// (e) a candidate's throughput at that size over raw throughput: the figure to hold
    /// against llama.cpp's speed.
    pub default_over_raw_throughput: f64,
    /// (f) the KV layout measured.
    pub answer_kv_layout: KvLayout,
    /// (d) answer-placement over raw throughput.
    pub answer_over_raw_throughput: f64,
    /// (g) seconds per candidate on 1-token prefixes.
    pub answer_short_prefix_seconds: f64,
    /// (g) the attention share of a candidate.
    pub answer_attention_share: f64,
    /// (f) the other KV layout.
    pub answer_other_kv_layout: KvLayout,
    /// (f) its seconds per candidate.
    pub answer_other_kv_layout_seconds: f64,
}

fn fastest(v: Vec<Duration>) -> Duration {
    v.into_iter().min().unwrap_or_default()
}

/// Measures `model` with `settings` on the survey vsm13 as `region`'s naive persona (its rows
/// are the soft prompt).
pub fn run(
    model: &Model,
    settings: EvalSettings,
    region: &Region,
    opts: &BenchOptions,
) -> Result<BenchReport, BenchError> {
    if opts.reps == 0 || opts.panel == 0 || opts.panel > prompt::MAX_PANEL {
        return Err(BenchError::Setup(format!(
            "--reps must be at least 1 and --panel 1..={}",
            prompt::MAX_PANEL
        )));
    }
    let survey = Survey::builtin("vsm13").map_err(|e| BenchError::Setup(e.to_string()))?;
    let prompts = SurveyPrompts::build(
        model,
        &survey,
        &prompt::persona(region),
        &prompt::panel(opts.panel),
        opts.counterbalance,
    )?;
    let table_e = EmbeddingTable::load(model)?;
    let soft = table_e.rows(&prompts.persona_tokens)?;
    let mut ev = Evaluator::new(model, settings)?;
    // (a) raw prompt processing: 512 real prompt tokens in one batch of one sequence.
    let raw_tokens = raw_tokens(&prompts)?;
    let raw = time_raw(&mut ev, &raw_tokens, opts.reps)?;
    // (b) one survey evaluation through the soft-prompt (embedding) path.
    let sv = time_survey(&mut ev, &prompts, &soft, opts.reps)?;
    // (d) the answer-side placement, (e) candidates per decode, (f), (g).
    let ans = time_answer(&mut ev, model, &survey, region, opts, &table_e, &raw_tokens)?;
    // The fastest raw batch of all: the one before the survey and those beside the candidates.
    let raw = raw.min(ans.raw_alongside);
    Ok(report(model, settings, opts, &prompts, raw, &sv, &ans))
}

/// The report of the timings.
fn report(
    model: &Model,
    settings: EvalSettings,
    opts: &BenchOptions,
    prompts: &SurveyPrompts,
    raw: Duration,
    sv: &SurveyTimes,
    ans: &AnswerTimes,
) -> BenchReport {
    let raw_tps = 512.0 / raw.as_secs_f64();
    let survey_s = sv.seconds.as_secs_f64();
    let survey_tps = sv.decoded as f64 / survey_s;
    let answer_tps = ans.tokens as f64 / ans.seconds;
    let at_default = ans
        .groups
        .iter()
        .find(|g| g.0 == ans.default_group)
        .map_or(ans.seconds, |g| g.1);
    BenchReport {
        model: model.info().description.clone(),
        settings,
        panel: opts.panel,
        gpu_layers: model.info().gpu_layers,
        devices: crate::engine::offload::devices(),
        counterbalance: opts.counterbalance,
        prompts: prompts.leaves.len(),
        reps: opts.reps,
        raw_pp512_seconds: raw.as_secs_f64(),
        raw_tokens_per_second: raw_tps,
        survey_seconds: survey_s,
        survey_tokens_decoded: sv.decoded,
        tail_tokens_decoded: sv.tail_decoded,
        tail_tokens_minimum: sv.minimum,
        one_prompt_at_a_time_tokens: sv.one_at_a_time,
        survey_tokens_per_second: survey_tps,
        decoded_over_minimum: sv.tail_decoded as f64 / sv.minimum as f64,
        survey_over_raw_throughput: survey_tps / raw_tps,
        prefix_candidate_seconds: survey_s,
        prefix_candidate_tokens: sv.decoded,
        prefix_k: prompts.persona_tokens.len(),
        answer_k: ans.k,
        answer_anchor: opts.anchor,
        answer_prefix_cells: ans.prefix_cells,
        answer_first_call_seconds: ans.first_call_seconds,
        answer_candidate_tokens: ans.tokens,
        answer_candidate_seconds: ans.seconds,
        answer_over_prefix_tokens: ans.tokens as f64 / sv.decoded as f64,
        answer_speedup_per_candidate: survey_s / ans.seconds,
        answer_tokens_per_second: answer_tps,
        candidates_per_decode: ans
            .groups
            .iter()
            .map(|&(candidates, seconds_per_candidate)| GroupTime {
                candidates,
                seconds_per_candidate,
            })
            .collect(),
        best_candidates_per_decode: ans.best.0,
        default_candidates_per_decode: ans.default_group,
        default_seconds_per_candidate: at_default,
        default_over_raw_throughput: ans.tokens as f64 / at_default / raw_tps,
        answer_kv_layout: settings.kv_layout,
        answer_over_raw_throughput: answer_tps / raw_tps,
        answer_short_prefix_seconds: ans.short_seconds,
        answer_attention_share: 1.0 - ans.short_seconds / ans.seconds,
        answer_other_kv_layout: ans.other.0,
        answer_other_kv_layout_seconds: ans.other.1,
    }
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
) -> Result<SurveyTimes, BenchError> {
    let runs = (0..reps)
        .map(|_| ev.evaluate(prompts, PersonaInput::Embeddings(soft)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(BenchError::step("survey evaluation"))?;
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
fn raw_tokens(prompts: &SurveyPrompts) -> Result<Vec<i32>, BenchError> {
    let raw_tokens: Vec<i32> = prompts.tails.iter().flatten().copied().take(512).collect();
    if raw_tokens.len() < 512 {
        return Err(BenchError::Setup(format!(
            "the prompts have only {} tokens; cannot build a 512-token batch",
            raw_tokens.len()
        )));
    }
    Ok(raw_tokens)
}

/// The fastest of `reps` of llama.cpp's raw prompt processing: the tokens in one batch of one
/// sequence.
fn time_raw(ev: &mut Evaluator<'_>, tokens: &[i32], reps: usize) -> Result<Duration, BenchError> {
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
    /// `tune`'s default group size (one of `groups`).
    default_group: usize,
    /// Seconds per candidate on prefixes cut to one token (one per decode).
    short_seconds: f64,
    /// The other KV layout and its seconds per candidate (one per decode).
    other: (KvLayout, f64),
    /// llama.cpp's raw 512-token batch, timed in turns with the candidates.
    raw_alongside: Duration,
}

/// Times the answer placement: prefixes cached once (the first call, timed apart), then each
/// candidate's rows and answer openings, with each of [`GROUP_SIZES`] candidates per decode; then
/// [`side_by_side`].
fn time_answer<'m>(
    ev: &mut Evaluator<'m>,
    model: &'m Model,
    survey: &Survey,
    region: &crate::regions::Region,
    args: &BenchOptions,
    table_e: &EmbeddingTable,
    raw_tokens: &[i32],
) -> Result<AnswerTimes, BenchError> {
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
    let default_group = default_group(model, ev.settings(), answer.leaves.len())?;
    let mut sizes: Vec<usize> = GROUP_SIZES
        .into_iter()
        .filter(|&g| g == 1 || (g <= answer.max_group() && g <= args.max_group))
        .chain([default_group])
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let groups = time_groups(ev, &answer, &anchor_rows, &sizes, args.reps)?;
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
        default_group,
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
    model: &'m Model,
    answer: &AnswerPrompts,
    rows: &[f32],
    raw_tokens: &[i32],
    reps: usize,
) -> Result<SideBySide, BenchError> {
    let mut short = answer.clone();
    short.prefixes.iter_mut().for_each(|p| p.truncate(1));
    let other_layout = ev.settings().kv_layout.other();
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
            time_once(&mut ev_short, &short, &[rows]).map_err(BenchError::step(
                "answer-side evaluation on 1-token prefixes",
            ))?,
            time_once(&mut ev_other, answer, &[rows]).map_err(BenchError::step(
                "answer-side evaluation in the other KV layout",
            ))?,
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

/// The candidates per decode `tune` takes by default for this model, its layers and the
/// layout, for `prompts` prompts of the answer placement.
fn default_group(
    model: &Model,
    settings: EvalSettings,
    prompts: usize,
) -> Result<usize, BenchError> {
    let info = crate::engine::inspect(&model.info().path)?;
    Ok(default_candidates_per_decode(&GroupFacts {
        gpu_layers: model.info().gpu_layers.max(0) as u32,
        placement: crate::soft_prompt::Placement::Answer,
        kv_layout: settings.kv_layout,
        prompts,
        kv_bytes_per_cell: crate::engine::offload::kv_bytes_per_cell(&info),
    }))
}

/// The group sizes `bench` measures (up to `--max-group` and what one decode's sequences
/// allow: 10 for the 24 prompts of VSM 2013): 1 to the default population of 12.
const GROUP_SIZES: [usize; 8] = [1, 2, 3, 4, 6, 8, 10, 12];

/// Seconds per candidate with `g` copies of `rows` per decode for each `g` of `sizes`, the
/// fastest of `reps`, timed in turns (one of each size per repetition); the streams of the
/// largest group are filled before the timing, so no size pays for copying prefixes.
fn time_groups(
    ev: &mut Evaluator<'_>,
    answer: &AnswerPrompts,
    rows: &[f32],
    sizes: &[usize],
    reps: usize,
) -> Result<Vec<(usize, f64)>, BenchError> {
    let largest = sizes.iter().copied().max().unwrap_or(1);
    ev.evaluate_answer(answer, &vec![rows; largest])
        .map_err(BenchError::step(format!(
            "answer-side evaluation, {largest} candidates per decode"
        )))?;
    let mut best = vec![f64::INFINITY; sizes.len()];
    for _ in 0..reps {
        for (b, &g) in best.iter_mut().zip(sizes) {
            let t = time_once(ev, answer, &vec![rows; g]).map_err(BenchError::step(format!(
                "answer-side evaluation, {g} candidates per decode"
            )))?;
            *b = b.min(t);
        }
    }
    Ok(sizes.iter().copied().zip(best).collect())
}

/// Seconds per candidate of one evaluation of `cands`.
fn time_once(
    ev: &mut Evaluator<'_>,
    answer: &AnswerPrompts,
    cands: &[&[f32]],
) -> Result<f64, EngineError> {
    let start = std::time::Instant::now();
    ev.evaluate_answer(answer, cands)?;
    Ok(start.elapsed().as_secs_f64() / cands.len() as f64)
}
