//! The survey files shipped inside the binary, so culturetune works from any directory.

use super::{Survey, SurveyError};

/// Id of the training survey (wording A).
pub const TRAINING_SURVEY_ID: &str = "vsm13";
/// Id of the held-out survey (wording B).
pub const HELDOUT_SURVEY_ID: &str = "vsm13-alt";

/// Built-in surveys: (id, TOML text). The texts are the files in `surveys/`.
pub const BUILTIN_SURVEYS: [(&str, &str); 2] = [
    (TRAINING_SURVEY_ID, include_str!("../../surveys/vsm13.toml")),
    (
        HELDOUT_SURVEY_ID,
        include_str!("../../surveys/vsm13-alt.toml"),
    ),
];

pub(super) fn load(id: &str) -> Result<Survey, SurveyError> {
    let (_, text) = BUILTIN_SURVEYS
        .iter()
        .find(|(known, _)| *known == id)
        .ok_or_else(|| SurveyError::UnknownBuiltin(id.to_string()))?;
    Survey::from_toml_str(text, &format!("builtin:{id}"))
}
