//! The answer-side placement on the real default model: a cached-prefix evaluation equals an
//! uncached one within a documented tolerance (also after other candidates were dropped, and
//! with several candidates per decode), repeats bit-identically, and leaves no KV cells behind
//! over 1000 candidates; its chat path matches the text it starts from.
//!
//! Needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh fetches it).

mod common;

use culturetune::engine::answer::AnswerPrompts;
use culturetune::engine::evaluate::{
    ChatPrompt, EvalSettings, Evaluator, KvLayout, PersonaInput, SurveyAnswers,
};
use culturetune::engine::{converted_path, EmbeddingTable, Model, WeightType};
use culturetune::prompt;
use culturetune::regions::RegionTable;
use culturetune::soft_prompt::{AnswerAnchor, SoftPromptSpace};
use culturetune::survey::Survey;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Largest difference in any answer probability between the cached and the uncached
/// procedure, with the F16 weights the tuner evaluates (`--weights auto`). The two decode the
/// same tokens and rows at the same positions, but in other batches (the prefix as a tree
/// with 24 sequences vs one prompt alone), and the matrix kernels round differently per batch
/// shape. docs/tuning.md records the measured differences: about 0.003 with F16 weights; the
/// original 4-bit file differs by up to 0.06 between any two batch layouts.
const CACHED_VS_UNCACHED_TOL: f64 = 0.01;

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let p: PathBuf =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let f16 = converted_path(&p, WeightType::Auto, 2)
            .unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh to fetch the default model)"));
        Model::load(&f16, 0).unwrap()
    })
}

fn evaluator() -> Evaluator<'static> {
    evaluator_in(KvLayout::default())
}

fn evaluator_in(kv_layout: KvLayout) -> Evaluator<'static> {
    Evaluator::new(
        model(),
        EvalSettings {
            threads: 2,
            kv_layout,
            ..EvalSettings::default()
        },
    )
    .unwrap()
}

fn prompts(region: &str) -> AnswerPrompts {
    let t = RegionTable::builtin();
    let r = t.find(region).unwrap();
    let (anchor, opening) = prompt::answer_parts(AnswerAnchor::Persona, r);
    AnswerPrompts::build(
        model(),
        &Survey::builtin("vsm13").unwrap(),
        &prompt::persona(r),
        &anchor,
        &opening,
        &prompt::panel(1),
        false,
    )
    .unwrap()
}

/// The anchor's rows (z = 0) and a moved point of the same space.
fn candidates(p: &AnswerPrompts) -> (Vec<f32>, Vec<f32>) {
    let table = EmbeddingTable::load(model()).unwrap();
    let p0 = table.rows(&p.anchor_tokens).unwrap();
    let space =
        SoftPromptSpace::new(&p0, 576, p.anchor_tokens.len(), 16, 7, table.std().unwrap()).unwrap();
    let z: Vec<f64> = (0..16)
        .map(|j| if j % 2 == 0 { 0.8 } else { -0.6 })
        .collect();
    (space.rows(&[0.0; 16]), space.rows(&z))
}

fn max_prob_diff(a: &SurveyAnswers, b: &SurveyAnswers) -> f64 {
    a.leaves
        .iter()
        .zip(&b.leaves)
        .flat_map(|(x, y)| x.probs.iter().zip(&y.probs).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn the_prompts_split_around_the_rows_and_candidates_are_cheap() {
    let _one = common::one_model_at_a_time();
    let p = prompts("USA");
    assert_eq!(p.leaves.len(), 24);
    assert_eq!(
        p.anchor_text,
        "Speaking as a person from the United States."
    );
    assert_eq!(p.anchor_tokens, model().tokenize(&p.anchor_text).unwrap());
    // The suffix is the answer opening alone; the prefix ends with the assistant header.
    assert_eq!(p.suffixes[0], model().tokenize(" Answer: ").unwrap());
    let head: String = p.prefixes[0]
        .iter()
        .map(|&t| model().token_text(t))
        .collect();
    assert!(
        head.contains("You are a person from the United States."),
        "{head}"
    );
    assert!(head.ends_with("<|im_start|>assistant\n"), "{head:?}");
    assert!(
        p.texts[0].ends_with("assistant\nSpeaking as a person from the United States. Answer: ")
    );
    let k = p.anchor_tokens.len();
    assert_eq!(p.tokens_per_candidate(k), 24 * (k + 3));
    assert!(
        p.unique_prefix_tokens() > 1000,
        "{}",
        p.unique_prefix_tokens()
    );
}

#[test]
fn cached_prefixes_equal_uncached_evaluation_also_after_dropping_candidates() {
    let _one = common::one_model_at_a_time();
    cached_equals_uncached(KvLayout::Streams);
}

#[test]
fn in_the_unified_layout_too_cached_prefixes_equal_uncached_evaluation() {
    let _one = common::one_model_at_a_time();
    cached_equals_uncached(KvLayout::Unified);
}

#[test]
fn the_two_kv_layouts_answer_alike_and_each_repeats_bit_for_bit() {
    let _one = common::one_model_at_a_time();
    let p = prompts("IND");
    let (z0, moved) = candidates(&p);
    let (mut s, mut u) = (
        evaluator_in(KvLayout::Streams),
        evaluator_in(KvLayout::Unified),
    );
    for rows in [&z0, &moved] {
        let a = s.evaluate_answer(&p, &[rows]).unwrap().remove(0);
        let b = u.evaluate_answer(&p, &[rows]).unwrap().remove(0);
        let d = max_prob_diff(&a, &b);
        eprintln!("streams vs unified, max |dP| {d:.5}");
        assert!(d <= CACHED_VS_UNCACHED_TOL, "{d}");
        assert_eq!(s.evaluate_answer(&p, &[rows]).unwrap()[0].leaves, a.leaves);
        assert_eq!(u.evaluate_answer(&p, &[rows]).unwrap()[0].leaves, b.leaves);
    }
    // A fresh evaluator of the streams layout (a resumed run) answers bit for bit as the first.
    let again = evaluator_in(KvLayout::Streams)
        .evaluate_answer(&p, &[&moved])
        .unwrap()
        .remove(0);
    assert_eq!(
        again.leaves,
        s.evaluate_answer(&p, &[&moved]).unwrap()[0].leaves
    );
}

fn cached_equals_uncached(layout: KvLayout) {
    let p = prompts("CHI");
    let (z0, moved) = candidates(&p);
    let mut ev = evaluator_in(layout);
    let u0 = ev.evaluate_answer_uncached(&p, &z0).unwrap();
    let u1 = ev.evaluate_answer_uncached(&p, &moved).unwrap();

    let c0 = ev.evaluate_answer(&p, &[&z0]).unwrap().remove(0);
    assert!(
        c0.tokens_decoded > c0.tail_tokens_decoded,
        "the first call decodes the prefixes"
    );
    let c1 = ev.evaluate_answer(&p, &[&moved]).unwrap().remove(0);
    assert_eq!(
        c1.tokens_decoded, c1.tail_tokens_decoded,
        "later calls reuse them"
    );
    let c0_again = ev.evaluate_answer(&p, &[&z0]).unwrap().remove(0);

    let (d0, d1) = (max_prob_diff(&c0, &u0), max_prob_diff(&c1, &u1));
    eprintln!("cached vs uncached, max |dP|: z = 0 {d0:.5}, moved {d1:.5}");
    assert!(
        d0 <= CACHED_VS_UNCACHED_TOL && d1 <= CACHED_VS_UNCACHED_TOL,
        "{d0} {d1}"
    );
    // The moved prompt really answers differently (the comparison above is not vacuous).
    assert!(max_prob_diff(&c0, &c1) > 10.0 * d0.max(d1).max(1e-4));
    // After a candidate was evaluated and dropped, the same candidate answers bit-identically.
    assert_eq!(c0.leaves, c0_again.leaves);

    // Several candidates per decode: each answers as it does alone, within the tolerance.
    let group = ev.evaluate_answer(&p, &[&moved, &z0, &moved]).unwrap();
    assert_eq!(group.len(), 3);
    assert!(max_prob_diff(&group[1], &c0) <= CACHED_VS_UNCACHED_TOL);
    assert!(max_prob_diff(&group[0], &c1) <= CACHED_VS_UNCACHED_TOL);
    // The same candidate twice in one group sits in other places of the batch (other
    // micro-batch splits), so it agrees within the tolerance, not bit for bit.
    assert!(max_prob_diff(&group[0], &group[2]) <= CACHED_VS_UNCACHED_TOL);
    if layout == KvLayout::Streams {
        // With streams each candidate attends over streams of its own, and the CPU computes
        // every row of a matrix product alike whatever the batch: a group answers bit for bit
        // as its candidates alone (why `tune` takes 4 per decode on the CPU without changing
        // what a run finds; docs/performance.md).
        assert_eq!(group[1].leaves, c0.leaves);
        assert_eq!(group[0].leaves, c1.leaves);
        assert_eq!(group[0].leaves, group[2].leaves);
    }
    // A plain evaluation in between clears the unified cache (the prefixes are decoded again)
    // and leaves the streams alone; either way the result is the same as before, bit for bit.
    let naive = culturetune::engine::evaluate::SurveyPrompts::build(
        model(),
        &Survey::builtin("vsm13").unwrap(),
        "You are a person from China.",
        &prompt::panel(1),
        false,
    )
    .unwrap();
    let cells = ev.cached_prefix_cells();
    ev.evaluate(&naive, PersonaInput::Text).unwrap();
    let kept = if layout == KvLayout::Streams {
        cells
    } else {
        0
    };
    assert_eq!(ev.cached_prefix_cells(), kept);
    let c0_fresh = ev.evaluate_answer(&p, &[&z0]).unwrap().remove(0);
    assert_eq!(c0_fresh.leaves, c0.leaves);
}

#[test]
fn kv_cells_in_use_do_not_grow_over_1000_candidates() {
    let _one = common::one_model_at_a_time();
    // Two items keep each candidate cheap; the unified cache holds 8192 cells and each stream
    // 256, so 1000 candidates that each leaked their k + 3 cells per prompt would run out of
    // room long before the end.
    for layout in [KvLayout::Streams, KvLayout::Unified] {
        kv_cells_stay_flat(layout);
    }
}

fn kv_cells_stay_flat(layout: KvLayout) {
    let mut p = prompts("IND");
    for v in [&mut p.prefixes, &mut p.suffixes] {
        v.truncate(2);
    }
    p.leaves.truncate(2);
    p.texts.truncate(2);
    let (z0, moved) = candidates(&p);
    let mut ev = evaluator_in(layout);
    let first = ev.evaluate_answer(&p, &[&z0]).unwrap().remove(0);
    let cells = ev.cached_prefix_cells();
    let lens: Vec<i32> = p.prefixes.iter().map(|x| x.len() as i32).collect();
    // Groups of 10 (sequences 0..20) alternate with single candidates (sequences 0 and 1).
    let ten: Vec<&[f32]> = (0..10)
        .map(|c| if c % 3 == 0 { &z0[..] } else { &moved[..] })
        .collect();
    let mut evaluated = 1;
    let mut calls = 0;
    while evaluated < 1000 {
        let group: Vec<&[f32]> = if calls % 10 == 9 {
            vec![&moved]
        } else {
            ten.clone()
        };
        calls += 1;
        evaluated += ev.evaluate_answer(&p, &group).unwrap().len();
        for (i, &len) in lens.iter().enumerate() {
            assert_eq!(ev.seq_pos_max(i), len - 1, "sequence {i} after {evaluated}");
        }
        // Unified: the other candidates' sequences only shared the prefixes and are empty.
        // Streams: the other candidates' streams keep their copy of the prefixes.
        for extra in 2..24 {
            let want = match layout {
                KvLayout::Streams if extra < 20 => lens[extra % 2] - 1,
                _ => -1,
            };
            assert_eq!(
                ev.seq_pos_max(extra),
                want,
                "sequence {extra} after {evaluated} ({layout:?})"
            );
        }
        assert_eq!(ev.cached_prefix_cells(), cells);
    }
    let last = ev.evaluate_answer(&p, &[&z0]).unwrap().remove(0);
    assert_eq!(
        first.leaves, last.leaves,
        "the 1001st candidate answers like the 1st"
    );
}

#[test]
fn answer_side_chat_from_the_anchor_rows_replies_like_the_anchor_text() {
    let _one = common::one_model_at_a_time();
    let t = RegionTable::builtin();
    let r = t.find("JPN").unwrap();
    let chat = ChatPrompt::build_answer(
        model(),
        &prompt::persona(r),
        &prompt::answer_anchor(r),
        "What makes a good boss?",
    )
    .unwrap();
    assert!(chat.tail.is_empty());
    let rows = EmbeddingTable::load(model())
        .unwrap()
        .rows(&chat.persona_tokens)
        .unwrap();
    let mut ev = evaluator();
    let text = ev.generate(&chat, PersonaInput::Text, 12).unwrap();
    let soft = ev
        .generate(&chat, PersonaInput::Embeddings(&rows), 12)
        .unwrap();
    assert!(!text.is_empty());
    assert_eq!(text, soft);
}

#[test]
fn bad_answer_side_input_is_an_error() {
    let _one = common::one_model_at_a_time();
    let p = prompts("USA");
    let mut ev = evaluator();
    let e = ev.evaluate_answer(&p, &[&[0.0f32; 100]]).unwrap_err();
    assert!(e.to_string().contains("k x 576"), "{e}");
    let (z0, _) = candidates(&p);
    let too_many: Vec<&[f32]> = vec![&z0; 11];
    let e = ev.evaluate_answer(&p, &too_many).unwrap_err();
    assert!(e.to_string().contains("at most 10 candidates"), "{e}");
    let nan = vec![f32::NAN; z0.len()];
    assert!(ev.evaluate_answer(&p, &[&nan]).is_err());
    // After a refused candidate the cache is still usable and answers as before.
    let a = ev.evaluate_answer(&p, &[&z0]).unwrap().remove(0);
    let b = ev.evaluate_answer(&p, &[&z0]).unwrap().remove(0);
    assert_eq!(a.leaves, b.leaves);
}

#[test]
fn the_opening_anchor_at_z_zero_is_the_naive_prompt() {
    let _one = common::one_model_at_a_time();
    let t = RegionTable::builtin();
    let r = t.find("USA").unwrap();
    let survey = Survey::builtin("vsm13").unwrap();
    let (anchor, opening) = prompt::answer_parts(AnswerAnchor::Opening, r);
    assert_eq!((anchor.as_str(), opening.as_str()), ("Answer:", " "));
    let p = AnswerPrompts::build(
        model(),
        &survey,
        &prompt::persona(r),
        &anchor,
        &opening,
        &prompt::panel(1),
        false,
    )
    .unwrap();
    let naive = culturetune::engine::evaluate::SurveyPrompts::build(
        model(),
        &survey,
        &prompt::persona(r),
        &prompt::panel(1),
        false,
    )
    .unwrap();
    // The same text, and the same tokens: prefix + anchor + opening = head + persona + tail.
    assert_eq!(p.texts, naive.texts);
    for (i, tail) in naive.tails.iter().enumerate() {
        let whole: Vec<i32> = naive
            .head
            .iter()
            .chain(&naive.persona_tokens)
            .chain(tail)
            .copied()
            .collect();
        let split: Vec<i32> = p.prefixes[i]
            .iter()
            .chain(&p.anchor_tokens)
            .chain(&p.suffixes[i])
            .copied()
            .collect();
        assert_eq!(split, whole, "prompt {i}");
    }
    // So z = 0 answers as the naive prompt does, within the procedure tolerance.
    let rows = EmbeddingTable::load(model())
        .unwrap()
        .rows(&p.anchor_tokens)
        .unwrap();
    let mut ev = evaluator();
    let a = ev.evaluate(&naive, PersonaInput::Text).unwrap();
    let b = ev.evaluate_answer(&p, &[&rows]).unwrap().remove(0);
    let d = max_prob_diff(&a, &b);
    eprintln!("opening anchor at z = 0 vs the naive prompt: max |dP| {d:.5}");
    assert!(d <= CACHED_VS_UNCACHED_TOL, "{d}");
}
