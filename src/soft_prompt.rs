//! Soft-prompt parametrization for derivative-free search (Black-Box Tuning, Sun et al. 2022):
//! P = P0 + reshape(A z), with P0 the embedding rows of an initialisation text, A a fixed
//! random projection drawn from a stored seed, and z in [-1, 1]^d. z = 0 is exactly P0.
//! Pure arithmetic: no I/O, no model.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Where a soft prompt's rows go in each item prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// In place of the persona sentence at the start of the system message (the method of
    /// Masoud et al. 2025). Every candidate re-decodes every item after its rows.
    #[default]
    Prefix,
    /// At the start of the assistant's turn of each item, in place of the anchor text (see
    /// `AnswerAnchor`); the system message holds the naive persona. The item prefixes are
    /// decoded once per run and kept in the KV cache, so a candidate decodes only its rows
    /// and what follows them.
    Answer,
}

impl Placement {
    /// The placement an export card or a stored prompt's card names
    /// (`insertion.placement`); cards written before placements existed are `prefix`.
    pub fn from_card(card: &serde_json::Value) -> Result<Placement, String> {
        match card.pointer("/insertion/placement") {
            None => Ok(Placement::Prefix),
            Some(v) => match v.as_str() {
                Some("prefix") => Ok(Placement::Prefix),
                Some("answer") => Ok(Placement::Answer),
                _ => Err(format!(
                    "insertion.placement is {v}; expected \"prefix\" or \"answer\""
                )),
            },
        }
    }

    /// The name used on the command line, in the store and in export cards.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Prefix => "prefix",
            Placement::Answer => "answer",
        }
    }
}

/// What the rows of an answer-side soft prompt stand for at z = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum AnswerAnchor {
    /// A sentence in the assistant's voice before the answer opening ("Speaking as a person
    /// from China." then " Answer: "). Runs stored before anchors existed used this one.
    #[default]
    Persona,
    /// The answer opening itself ("Answer:" then " "): z = 0 is exactly the naive prompt.
    Opening,
}

impl AnswerAnchor {
    /// The anchor an export card names (`insertion.anchor`); cards without one are `persona`.
    pub fn from_card(card: &serde_json::Value) -> Result<AnswerAnchor, String> {
        match card.pointer("/insertion/anchor") {
            None => Ok(AnswerAnchor::Persona),
            Some(v) => match v.as_str() {
                Some("persona") => Ok(AnswerAnchor::Persona),
                Some("opening") => Ok(AnswerAnchor::Opening),
                _ => Err(format!(
                    "insertion.anchor is {v}; expected \"persona\" or \"opening\""
                )),
            },
        }
    }

    /// The name used on the command line, in the store and in export cards.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerAnchor::Persona => "persona",
            AnswerAnchor::Opening => "opening",
        }
    }
}

/// Most values the projection A may hold (1 GiB of f32): checked before it is allocated, so a
/// huge `--dims` or `--extra-rows` is an error rather than an allocation failure.
pub const MAX_PROJECTION_VALUES: usize = 1 << 28;

/// How a soft prompt is parametrized; stored with a run to rebuild A exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parametrization {
    /// Rows of the soft prompt (k).
    pub k: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Search dimensions (d).
    pub d: usize,
    /// Seed of A.
    pub seed: u64,
    /// Standard deviation of A's entries (embedding std / sqrt(d)).
    pub a_std: f64,
}

/// A parametrization with its projection matrix and starting rows.
#[derive(Debug, Clone)]
pub struct SoftPromptSpace {
    /// The settings.
    pub param: Parametrization,
    /// P0, `k * n_embd` values row-major.
    pub p0: Vec<f32>,
    /// A, stored column by column: column j (length k*n_embd) is the direction of z_j.
    a: Vec<f32>,
}

impl SoftPromptSpace {
    /// Builds the space. `init_rows` are the rows of the initialisation text (`t * n_embd`
    /// values); when `k > t`, the extra rows repeat the text's rows cyclically. `k` must be at
    /// least the text's row count so that z = 0 reproduces the text.
    pub fn new(
        init_rows: &[f32],
        n_embd: usize,
        k: usize,
        d: usize,
        seed: u64,
        embedding_std: f64,
    ) -> Result<SoftPromptSpace, String> {
        if n_embd == 0 || init_rows.is_empty() || init_rows.len() % n_embd != 0 {
            return Err(format!(
                "initialisation rows must be a non-empty multiple of n_embd {n_embd}"
            ));
        }
        let t = init_rows.len() / n_embd;
        if k < t {
            return Err(format!(
                "k = {k} is smaller than the initialisation text's {t} rows"
            ));
        }
        if d == 0 || !(embedding_std.is_finite() && embedding_std > 0.0) {
            return Err(format!(
                "need d >= 1 and a positive embedding std (got d {d}, std {embedding_std})"
            ));
        }
        let values = (k as u128) * (n_embd as u128) * (d as u128);
        if values > MAX_PROJECTION_VALUES as u128 {
            return Err(format!(
                "the projection A would hold {k} rows x {n_embd} x {d} dimensions = {values} values ({} MiB); at most {MAX_PROJECTION_VALUES} are allowed: lower --dims or --extra-rows",
                (values * 4) >> 20
            ));
        }
        let mut p0 = init_rows.to_vec();
        for r in t..k {
            let src = (r - t) % t;
            p0.extend_from_slice(&init_rows[src * n_embd..(src + 1) * n_embd]);
        }
        let a_std = embedding_std / (d as f64).sqrt();
        let normal = Normal::new(0.0, a_std).map_err(|e| e.to_string())?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = (0..k * n_embd * d)
            .map(|_| normal.sample(&mut rng) as f32)
            .collect();
        Ok(SoftPromptSpace {
            param: Parametrization {
                k,
                n_embd,
                d,
                seed,
                a_std,
            },
            p0,
            a,
        })
    }

    /// The soft prompt for a point z (length d): P0 + A z, `k * n_embd` values.
    pub fn rows(&self, z: &[f64]) -> Vec<f32> {
        let mut p = self.p0.clone();
        let len = p.len();
        for (j, &zj) in z.iter().enumerate().take(self.param.d) {
            if zj == 0.0 {
                continue;
            }
            let col = &self.a[j * len..(j + 1) * len];
            let zj = zj as f32;
            for (pv, av) in p.iter_mut().zip(col) {
                *pv += zj * av;
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_p0_and_the_seed_fixes_a() {
        let init: Vec<f32> = (0..12).map(|v| v as f32 * 0.1).collect(); // 3 rows of 4
        let s = SoftPromptSpace::new(&init, 4, 5, 8, 42, 0.5).unwrap();
        assert_eq!(s.rows(&[0.0; 8]), s.p0);
        assert_eq!(&s.p0[..12], &init[..]);
        assert_eq!(&s.p0[12..16], &init[0..4]); // extra rows repeat the text
        let again = SoftPromptSpace::new(&init, 4, 5, 8, 42, 0.5).unwrap();
        let z = [0.3, -1.0, 0.0, 0.5, 0.2, -0.7, 1.0, 0.1];
        assert_eq!(s.rows(&z), again.rows(&z));
        let other = SoftPromptSpace::new(&init, 4, 5, 8, 43, 0.5).unwrap();
        assert_ne!(s.rows(&z), other.rows(&z));
    }

    #[test]
    fn a_is_scaled_to_the_embedding_spread() {
        let init = vec![0.0f32; 64 * 100];
        let s = SoftPromptSpace::new(&init, 64, 100, 100, 1, 2.0).unwrap();
        let n = s.a.len() as f64;
        let var = s.a.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n;
        assert!((var.sqrt() - 0.2).abs() < 0.01, "{}", var.sqrt()); // 2 / sqrt(100)
                                                                    // A unit z in every coordinate moves rows by about the embedding std (6400 samples:
                                                                    // standard error of the estimate about 0.02).
        let moved = s.rows(&[1.0; 100]);
        let rms =
            (moved.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / moved.len() as f64).sqrt();
        assert!((rms - 2.0).abs() < 0.1, "{rms}");
    }

    #[test]
    fn placement_is_read_from_cards() {
        use serde_json::json;
        assert_eq!(Placement::from_card(&json!({})), Ok(Placement::Prefix));
        let answer = json!({"insertion": {"placement": "answer"}});
        assert_eq!(Placement::from_card(&answer), Ok(Placement::Answer));
        let bad = json!({"insertion": {"placement": 3}});
        assert!(Placement::from_card(&bad).unwrap_err().contains("expected"));
    }

    #[test]
    fn bad_shapes_are_rejected() {
        assert!(SoftPromptSpace::new(&[0.0; 10], 4, 3, 2, 0, 1.0).is_err());
        assert!(SoftPromptSpace::new(&[0.0; 8], 4, 1, 2, 0, 1.0).is_err());
        assert!(SoftPromptSpace::new(&[0.0; 8], 4, 2, 0, 0, 1.0).is_err());
    }
}
