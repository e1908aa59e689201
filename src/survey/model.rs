//! The validated survey model: items, answer scales, index formulas and the survey's own
//! constants, and the error of loading one.

use crate::dimension::{DimScores, Dimension};
use std::path::PathBuf;

/// Largest magnitude a formula coefficient may have (the VSM 2013's are at most 40), so that
/// no finite survey file can make an index overflow.
pub const MAX_COEF: f64 = 1000.0;

/// Why a survey definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    /// The file could not be read.
    #[error("cannot read survey file {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected keys and types.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file (or built-in name) being parsed.
        origin: String,
        /// The parser's message, which names the line and column.
        message: String,
    },
    /// The file parses but breaks a rule of the format (duplicate id, unknown scale, ...).
    #[error("{origin}:{line}: {field}: {message}")]
    Invalid {
        /// The file (or built-in name) being parsed.
        origin: String,
        /// 1-based line of the offending value.
        line: usize,
        /// The key path of the offending value, e.g. `items[3].scale`.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// No built-in survey has this id.
    #[error("no built-in survey {0:?}; built-in surveys: vsm13, vsm13-alt, vsm13-c, vsm13-ac (or give a file path)")]
    UnknownBuiltin(String),
}

impl SurveyError {
    /// The stable code of this error (bad input: `invalid_input`).
    pub fn code(&self) -> crate::error_code::ErrorCode {
        crate::error_code::ErrorCode::InvalidInput
    }
}

/// Fewest options an answer scale may have.
pub const MIN_OPTIONS: usize = 2;
/// Most options an answer scale may have (0..10 is eleven).
pub const MAX_OPTIONS: usize = 11;

/// An answer scale: consecutive whole-number codes from `first_code`, one label each, in code
/// order (the VSM 2013's: codes 1..5).
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// The scale's name as written in the file (`importance`, `agreement`, ...).
    pub name: String,
    /// Labels for codes `first_code`, `first_code + 1`, ...
    pub labels: Vec<String>,
    /// The code of the first label (1 unless the file says otherwise).
    pub first_code: u32,
}

impl Scale {
    /// How many options the scale has.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the scale has no option (never, for a validated survey).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The code of option `i` (0-based, in code order).
    pub fn code(&self, i: usize) -> u32 {
        self.first_code + i as u32
    }

    /// The code texts the model answers with, in code order (`"1"`..`"5"`).
    pub fn code_texts(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.code(i).to_string()).collect()
    }

    /// The lowest and the highest code.
    pub fn range(&self) -> (u32, u32) {
        (self.first_code, self.code(self.len().saturating_sub(1)))
    }
}

/// One survey question.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable id, also the column name in a responses CSV (`q01`).
    pub id: String,
    /// What the item measures, in a few words (documentation; never shown to the model).
    pub construct: String,
    /// Index into [`Survey::scales`].
    pub scale: usize,
    /// The question as put to a respondent.
    pub text: String,
}

/// One term of an index formula: `coef * (mean(plus) - mean(minus))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Term {
    /// The coefficient.
    pub coef: f64,
    /// Index into [`Survey::items`] of the item added, if any.
    pub plus: Option<usize>,
    /// Index into [`Survey::items`] of the item subtracted, if any.
    pub minus: Option<usize>,
}

/// An index formula: a linear combination of item means, plus a constant chosen at scoring time.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    /// The dimension this formula scores.
    pub dimension: Dimension,
    /// The terms, summed.
    pub terms: Vec<Term>,
}

impl Formula {
    /// The formula's value without its constant, from item means indexed like [`Survey::items`].
    pub fn raw_value(&self, item_means: &[f64]) -> f64 {
        self.terms
            .iter()
            .map(|t| {
                let plus = t.plus.map_or(0.0, |i| item_means[i]);
                let minus = t.minus.map_or(0.0, |i| item_means[i]);
                t.coef * (plus - minus)
            })
            .sum()
    }
}

/// A validated survey definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    /// Short stable id (`vsm13`).
    pub id: String,
    /// Human-readable title.
    pub name: String,
    /// What the survey is.
    pub description: String,
    /// Where the constructs, wording and formulas come from.
    pub provenance: String,
    /// Answer scales, in file order.
    pub scales: Vec<Scale>,
    /// Items, in file order (the order they are asked and reported).
    pub items: Vec<Item>,
    /// Index formulas, in canonical dimension order.
    pub formulas: Vec<Formula>,
    /// Constants given in the file's `[constants]` table (absent ones are not given).
    pub given_constants: DimScores,
    /// Where the survey came from: a file path or `builtin:<id>`.
    pub origin: String,
    /// The request that closes each question, with `{first}` and `{last}` for the scale's
    /// lowest and highest code (absent: culturetune's "Reply with one number from {first} to
    /// {last}.").
    pub request: Option<String>,
}

impl Survey {
    /// SHA-256 (hex) of what decides a survey's answers and indices: every item's text and its
    /// scale's labels, in order, and every formula's terms. Ids, names and descriptions are
    /// left out. Stored calibrations are keyed by it, so an edited survey file is calibrated
    /// again instead of reusing constants computed for other questions.
    pub fn content_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        for item in &self.items {
            field(item.text.as_bytes());
            let scale = &self.scales[item.scale];
            for label in &scale.labels {
                field(label.as_bytes());
            }
            // Only a scale that does not start at 1 adds its start, so that the hashes of
            // surveys from before scales could start elsewhere stay the same.
            if scale.first_code != 1 {
                field(&scale.first_code.to_le_bytes());
            }
        }
        if let Some(r) = &self.request {
            field(r.as_bytes());
        }
        for f in &self.formulas {
            field(f.dimension.code().as_bytes());
            for t in &f.terms {
                field(&t.coef.to_le_bytes());
                for side in [t.plus, t.minus] {
                    field(&side.map_or(u64::MAX, |i| i as u64).to_le_bytes());
                }
            }
        }
        crate::fingerprint::hex(&h.finalize())
    }

    /// The index of the item with this id.
    pub fn item_index(&self, id: &str) -> Option<usize> {
        self.items.iter().position(|i| i.id == id)
    }

    /// The answer scale of an item.
    pub fn scale_of(&self, item: &Item) -> &Scale {
        &self.scales[item.scale]
    }

    /// The formula for a dimension, if the survey defines one.
    pub fn formula(&self, d: Dimension) -> Option<&Formula> {
        self.formulas.iter().find(|f| f.dimension == d)
    }
}
