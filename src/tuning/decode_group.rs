//! How many candidates one decode evaluates when the user does not say: a pure choice from
//! where the layers run, the placement, the KV layout and the memory the candidates' KV
//! streams would take. The figures behind each constant are in docs/performance.md.

use crate::engine::answer::group_limit;
use crate::engine::settings::{KvLayout, STREAM_CELLS};
use crate::soft_prompt::Placement;
use crate::survey::Survey;

/// Candidates per decode when layers are on a GPU: measured on an H200 with an 8B-shaped
/// model (unified layout), 8 per decode evaluate 1.65x as many candidates per second as 1.
pub const GPU_CANDIDATES_PER_DECODE: usize = 8;

/// Candidates per decode on the CPU for the answer placement in the streams layout: on the
/// 2-core development machine, 4 per decode cost 5-9 % less per candidate than 1 in each of
/// five `bench` runs and were within 0.01 s of the fastest size in four of them; 4 also
/// divides the default population of 12.
pub const CPU_STREAMS_CANDIDATES_PER_DECODE: usize = 4;

/// Memory the candidates' KV streams may take by default on the CPU: each candidate slot
/// holds a copy of every item prefix (a stream of at least 256 cells per prompt), 141 MB a
/// slot for the default model but 0.8 GB for an 8B model, whose one slot then stays the
/// default.
pub const STREAMS_KV_BUDGET_BYTES: u64 = 1 << 30;

/// What the default depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupFacts {
    /// Layers on the GPU (0 = CPU).
    pub gpu_layers: u32,
    /// Where the soft prompt goes.
    pub placement: Placement,
    /// The answer placement's KV layout.
    pub kv_layout: KvLayout,
    /// Prompts of one candidate (items x respondents x option orders).
    pub prompts: usize,
    /// Bytes of one KV cell in all layers (K and V in F16).
    pub kv_bytes_per_cell: u64,
}

/// The default candidates per decode: [`GPU_CANDIDATES_PER_DECODE`] with layers on a GPU;
/// on the CPU 1, except for the answer placement's streams, where it is
/// [`CPU_STREAMS_CANDIDATES_PER_DECODE`] or fewer, as many as fit
/// [`STREAMS_KV_BUDGET_BYTES`]; never more than one decode's sequences allow.
pub fn default_candidates_per_decode(f: &GroupFacts) -> usize {
    let limit = group_limit(f.prompts, 1, false);
    let wanted = if f.gpu_layers > 0 {
        GPU_CANDIDATES_PER_DECODE
    } else if f.placement == Placement::Answer && f.kv_layout == KvLayout::Streams {
        let slot = f.prompts as u64 * STREAM_CELLS as u64 * f.kv_bytes_per_cell;
        let fit = STREAMS_KV_BUDGET_BYTES / slot.max(1);
        (fit as usize).clamp(1, CPU_STREAMS_CANDIDATES_PER_DECODE)
    } else {
        1
    };
    wanted.min(limit)
}

/// At least as many prompts as one candidate of `survey` has: each item once per respondent
/// and option order, plus one continuation prompt per distinct first character of its scale's
/// codes of two or more characters (`"10"` and `"11"` share one). A tokenizer that reads such
/// a code as one token needs fewer.
pub fn prompt_bound(survey: &Survey, panel: usize, counterbalance: bool) -> usize {
    let per_item: usize = survey
        .items
        .iter()
        .map(|item| {
            let mut firsts: Vec<char> = survey.scales[item.scale]
                .code_texts()
                .iter()
                .filter(|c| c.chars().count() > 1)
                .filter_map(|c| c.chars().next())
                .collect();
            firsts.sort_unstable();
            firsts.dedup();
            1 + firsts.len()
        })
        .sum();
    per_item * panel * if counterbalance { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_bound_counts_continuations_of_two_digit_codes() {
        let vsm = Survey::builtin("vsm13").unwrap();
        assert_eq!(prompt_bound(&vsm, 1, false), 24);
        assert_eq!(prompt_bound(&vsm, 2, true), 96);
        let eleven = Survey::from_id_or_path(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/surveys/examples/life-11.toml"
        ))
        .unwrap();
        // Codes 0..10: "10" adds one continuation prompt per item.
        assert_eq!(prompt_bound(&eleven, 1, false), 2 * eleven.items.len());
    }

    /// SmolLM2-135M: 30 layers, 3 KV heads of 64: 2 x 2 x 192 x 30 bytes a cell.
    const SMOL_CELL: u64 = 23_040;
    /// Llama-3-8B: 32 layers, 8 KV heads of 128.
    const LLAMA8B_CELL: u64 = 131_072;

    fn facts(gpu_layers: u32, kv_bytes_per_cell: u64) -> GroupFacts {
        GroupFacts {
            gpu_layers,
            placement: Placement::Answer,
            kv_layout: KvLayout::Streams,
            prompts: 24,
            kv_bytes_per_cell,
        }
    }

    #[test]
    fn the_cpu_takes_four_streams_candidates_of_a_small_model_and_one_of_an_8b_model() {
        assert_eq!(default_candidates_per_decode(&facts(0, SMOL_CELL)), 4);
        assert_eq!(default_candidates_per_decode(&facts(0, LLAMA8B_CELL)), 1);
        // A model between the two: as many slots as fit the budget (2 x 0.4 GiB).
        assert_eq!(
            default_candidates_per_decode(&facts(0, LLAMA8B_CELL / 2)),
            2
        );
    }

    #[test]
    fn the_gpu_takes_eight_and_other_layouts_one() {
        assert_eq!(default_candidates_per_decode(&facts(33, LLAMA8B_CELL)), 8);
        let unified = GroupFacts {
            kv_layout: KvLayout::Unified,
            ..facts(0, SMOL_CELL)
        };
        assert_eq!(default_candidates_per_decode(&unified), 1);
        let prefix = GroupFacts {
            placement: Placement::Prefix,
            ..facts(0, SMOL_CELL)
        };
        assert_eq!(default_candidates_per_decode(&prefix), 1);
    }

    #[test]
    fn never_more_than_one_decode_holds() {
        // 4 respondents x 24 items x 2 orders = 192 prompts: one candidate per decode.
        let big = GroupFacts {
            prompts: 192,
            ..facts(0, 1)
        };
        assert_eq!(default_candidates_per_decode(&big), 1);
        let gpu = GroupFacts {
            prompts: 48,
            ..facts(1, SMOL_CELL)
        };
        assert_eq!(default_candidates_per_decode(&gpu), 5);
    }
}
