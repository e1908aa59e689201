//! Survey definitions: items, answer scales and index formulas, loaded from TOML data files.
//!
//! A survey is data, not code: `surveys/vsm13.toml` and `surveys/vsm13-alt.toml` ship with
//! culturetune, and a user can write another file in the same format (see `surveys/README.md`).
//! Loading validates everything a later step relies on, so the rest of the program can index
//! items and formulas without checks.

mod builtin;
mod file;
mod load;
mod model;

pub use builtin::{BUILTIN_SURVEYS, HELDOUT_SURVEY_ID, TRAINING_SURVEY_ID, TWO_WORDINGS_SURVEY_ID};
pub use model::{Formula, Item, Scale, Survey, SurveyError, Term, MAX_COEF};
