//! Where a survey comes from: a TOML file, TOML text, or one of the surveys shipped inside
//! the binary.

use super::builtin::{self, BUILTIN_SURVEYS};
use super::file;
use super::model::{Survey, SurveyError};
use std::path::Path;

impl Survey {
    /// Loads and validates a survey file.
    pub fn from_path(path: &Path) -> Result<Survey, SurveyError> {
        let text = crate::input_file::read_text(path, crate::input_file::MAX_TEXT_BYTES).map_err(
            |source| SurveyError::Io {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Survey::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates a survey from TOML text; `origin` names it in error messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Survey, SurveyError> {
        file::parse(text, origin)
    }

    /// One of the surveys shipped inside the binary, by id (`vsm13`, `vsm13-alt`, `vsm13-c`,
    /// `vsm13-ac`).
    pub fn builtin(id: &str) -> Result<Survey, SurveyError> {
        builtin::load(id)
    }

    /// A built-in survey id, or else a path to a survey file.
    pub fn from_id_or_path(spec: &str) -> Result<Survey, SurveyError> {
        if BUILTIN_SURVEYS.iter().any(|(id, _)| *id == spec) {
            Survey::builtin(spec)
        } else {
            Survey::from_path(Path::new(spec))
        }
    }
}
