//! The survey files shipped inside the binary, so culturetune works from any directory.

use super::model::{Survey, SurveyError};

/// Id of the default training survey (wording A, 24 items).
pub const TRAINING_SURVEY_ID: &str = "vsm13";
/// Id of wordings A and C asked together (48 items, each index the mean of the two wordings'):
/// `tune --survey vsm13-ac` trains on two wordings at twice the time per candidate.
pub const TWO_WORDINGS_SURVEY_ID: &str = "vsm13-ac";
/// Id of the held-out survey (wording B), which shares no sentence with A or C.
pub const HELDOUT_SURVEY_ID: &str = "vsm13-alt";

/// Built-in surveys: (id, TOML text). The texts are the files in `surveys/`.
pub const BUILTIN_SURVEYS: [(&str, &str); 4] = [
    (TRAINING_SURVEY_ID, include_str!("../../surveys/vsm13.toml")),
    (
        HELDOUT_SURVEY_ID,
        include_str!("../../surveys/vsm13-alt.toml"),
    ),
    ("vsm13-c", include_str!("../../surveys/vsm13-c.toml")),
    (
        TWO_WORDINGS_SURVEY_ID,
        include_str!("../../surveys/vsm13-ac.toml"),
    ),
];

pub(super) fn load(id: &str) -> Result<Survey, SurveyError> {
    let (_, text) = BUILTIN_SURVEYS
        .iter()
        .find(|(known, _)| *known == id)
        .ok_or_else(|| SurveyError::UnknownBuiltin(id.to_string()))?;
    super::file::parse(text, &format!("builtin:{id}"))
}
