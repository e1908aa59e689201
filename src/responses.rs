//! Human survey data: a CSV of respondents (one row each, a column per item id with codes 1..5)
//! reduced to per-item mean answers.

use crate::survey::Survey;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a responses file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ResponsesError {
    /// The file could not be opened or read.
    #[error("cannot read responses file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CSV itself is malformed (ragged row, bad UTF-8, ...).
    #[error("{origin}: line {line}: malformed CSV: {message}")]
    Csv {
        /// The file.
        origin: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// The CSV reader's message.
        message: String,
    },
    /// The header lacks a column for an item of the survey.
    #[error("{origin}: line 1 (header): missing column {column:?} for survey {survey}; expected one column per item: {expected}")]
    MissingColumn {
        /// The file.
        origin: String,
        /// The missing item id.
        column: String,
        /// The survey id.
        survey: String,
        /// All expected item columns.
        expected: String,
    },
    /// The header names the same item column twice.
    #[error("{origin}: line 1 (header): column {column:?} appears more than once")]
    DuplicateColumn {
        /// The file.
        origin: String,
        /// The repeated column.
        column: String,
    },
    /// A cell holds something other than a code 1..5 (or blank).
    #[error("{origin}: line {line}, column {column:?}: {value:?} is not a valid answer; expected a whole number 1..5 (or an empty cell for no answer)")]
    BadCode {
        /// The file.
        origin: String,
        /// 1-based line in the file.
        line: u64,
        /// The item column.
        column: String,
        /// The cell's text.
        value: String,
    },
    /// The file has a header but no respondent rows.
    #[error("{origin}: no respondents; expected a header line and at least one data row")]
    Empty {
        /// The file.
        origin: String,
    },
    /// An item has no answer from any respondent, so its mean is undefined.
    #[error(
        "{origin}: column {column:?} has no answers in any row; every item needs at least one"
    )]
    NoAnswers {
        /// The file.
        origin: String,
        /// The item column.
        column: String,
    },
}

impl ResponsesError {
    /// The stable code of this error (bad input: `invalid_input`).
    pub fn code(&self) -> crate::error_code::ErrorCode {
        crate::error_code::ErrorCode::InvalidInput
    }
}

/// Per-item means computed from a responses file.
#[derive(Debug, Clone, PartialEq)]
pub struct Responses {
    /// Number of respondent rows.
    pub respondents: usize,
    /// Mean code per item, in survey item order.
    pub item_means: Vec<f64>,
    /// How many respondents answered each item, in survey item order.
    pub answered: Vec<usize>,
}

impl Responses {
    /// Reads a responses CSV for `survey`.
    pub fn from_path(path: &Path, survey: &Survey) -> Result<Responses, ResponsesError> {
        let bytes = crate::input_file::read_capped(path, crate::input_file::MAX_TABLE_BYTES)
            .map_err(|source| ResponsesError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Responses::from_reader(&bytes[..], &path.display().to_string(), survey)
    }

    /// Reads responses CSV text; `origin` names it in error messages.
    ///
    /// Columns not named after an item (respondent id, age, ...) are ignored. An empty cell is
    /// an unanswered item: it is left out of that item's mean, as the VSM manual does.
    pub fn from_reader(
        reader: impl Read,
        origin: &str,
        survey: &Survey,
    ) -> Result<Responses, ResponsesError> {
        let text = crate::csv_lines::CsvText::read(reader).map_err(|e| ResponsesError::Csv {
            origin: origin.to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        let mut csv = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(&text.data[..]);
        let csv_err = |e: csv::Error| ResponsesError::Csv {
            origin: origin.to_string(),
            line: text.line_of(e.position()),
            message: e.to_string(),
        };
        let header = csv.headers().map_err(csv_err)?.clone();
        let columns = item_columns(&header, origin, survey)?;

        let mut sums = vec![0.0f64; survey.items.len()];
        let mut answered = vec![0usize; survey.items.len()];
        let mut respondents = 0;
        for record in csv.records() {
            let record = record.map_err(csv_err)?;
            let line = text.line_of(record.position());
            // A row that answers no item (all its item cells empty) is nobody's answers.
            if columns
                .iter()
                .any(|&col| !record.get(col).unwrap_or("").is_empty())
            {
                respondents += 1;
            }
            for (k, &col) in columns.iter().enumerate() {
                let cell = record.get(col).unwrap_or("");
                if cell.is_empty() {
                    continue;
                }
                match cell.parse::<u8>() {
                    Ok(code @ 1..=5) => {
                        sums[k] += f64::from(code);
                        answered[k] += 1;
                    }
                    _ => {
                        return Err(ResponsesError::BadCode {
                            origin: origin.to_string(),
                            line,
                            column: survey.items[k].id.clone(),
                            value: crate::csv_lines::cut(cell),
                        })
                    }
                }
            }
        }
        if respondents == 0 {
            return Err(ResponsesError::Empty {
                origin: origin.to_string(),
            });
        }
        if let Some(k) = answered.iter().position(|&n| n == 0) {
            return Err(ResponsesError::NoAnswers {
                origin: origin.to_string(),
                column: survey.items[k].id.clone(),
            });
        }
        let item_means = sums
            .iter()
            .zip(&answered)
            .map(|(s, &n)| s / n as f64)
            .collect();
        Ok(Responses {
            respondents,
            item_means,
            answered,
        })
    }
}
/// The column of each survey item in a responses header (matched without regard to case):
/// exactly one per item.
fn item_columns(
    header: &csv::StringRecord,
    origin: &str,
    survey: &Survey,
) -> Result<Vec<usize>, ResponsesError> {
    let mut columns = Vec::with_capacity(survey.items.len());
    for item in &survey.items {
        let found: Vec<usize> = header
            .iter()
            .enumerate()
            .filter(|(_, h)| h.eq_ignore_ascii_case(&item.id))
            .map(|(i, _)| i)
            .collect();
        match found.as_slice() {
            [one] => columns.push(*one),
            [] => {
                return Err(ResponsesError::MissingColumn {
                    origin: origin.to_string(),
                    column: item.id.clone(),
                    survey: survey.id.clone(),
                    expected: survey
                        .items
                        .iter()
                        .map(|i| i.id.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                })
            }
            _ => {
                return Err(ResponsesError::DuplicateColumn {
                    origin: origin.to_string(),
                    column: item.id.clone(),
                })
            }
        }
    }
    Ok(columns)
}

/// Human responses scored (the JSON of `score --json`): the indices of their item means
/// and, with a region, the loss to its published scores.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoreReport {
    /// The survey's id.
    pub survey: String,
    /// The responses file.
    pub responses: PathBuf,
    /// Respondent rows.
    pub respondents: usize,
    /// Mean code per item id.
    pub item_means: std::collections::BTreeMap<String, f64>,
    /// Constants of the index formulas.
    pub constants: crate::scoring::Constants,
    /// The indices.
    pub indices: crate::dimension::DimScores,
    /// The region compared with.
    pub region: Option<crate::regions::Region>,
    /// The loss to its scores (absent without a region or a shared dimension).
    pub loss: Option<crate::scoring::Loss>,
}

impl ScoreReport {
    /// Scores `responses` (read from `path`) on `survey` under `constants`, against `region`.
    pub fn new(
        survey: &Survey,
        path: &Path,
        responses: &Responses,
        constants: crate::scoring::Constants,
        region: Option<&crate::regions::Region>,
    ) -> Result<ScoreReport, crate::scoring::ScoreError> {
        let scores = crate::scoring::indices(survey, &responses.item_means, &constants)?;
        Ok(ScoreReport {
            survey: survey.id.clone(),
            responses: path.to_path_buf(),
            respondents: responses.respondents,
            item_means: survey
                .items
                .iter()
                .zip(&responses.item_means)
                .map(|(i, m)| (i.id.clone(), *m))
                .collect(),
            constants,
            loss: region.and_then(|r| crate::scoring::Loss::between(&scores, &r.scores)),
            indices: scores,
            region: region.cloned(),
        })
    }
}
